/**
 * What the slow-poll detector reports (the watchdog, watchdog.ts, finds the poll; the
 * executor builds the report once that poll has returned) and the default way of
 * reporting it: one line on stderr naming the task, where it was spawned and what it waits
 * on now.
 *
 * Must never: be on a hot path (it runs once per slow poll), or throw.
 */
import type { Future } from "../future.ts";
import type { Task } from "../task/task.ts";
import { spawnSite, taskName } from "./names.ts";

/**
 * What the slow-poll detector reports: a poll that held the thread longer than
 * {@link RuntimeOptions.slowPollMs}.
 *
 * @example
 * ```ts
 * new Runtime({ onSlowPoll: (r) => log.warn(`task ${r.taskId} ${r.name ?? ""} blocked ${r.ms} ms at ${r.spawnedAt}`) });
 * ```
 */
export interface SlowPoll {
  taskId: number;
  /** The name given at spawn, or the generator function's name, or null. */
  name: string | null;
  /** Where the task was spawned (with `spawnSites: true`), else null. */
  spawnedAt: string | null;
  /** How long the poll held the thread, at least (ms). */
  ms: number;
  /** The threshold it crossed (ms). */
  thresholdMs: number;
  /** What the task waits on after that poll. */
  waitingOn: string;
}

/**
 * The report for task `t` whose poll held the thread at least `ms` (`f`: the future it
 * polled, for its name when the task has finished and dropped it).
 *
 * @example
 * ```ts
 * onSlowPoll(slowPollReport(task, fut, 73, 50));
 * ```
 */
export function slowPollReport(t: Task<unknown>, f: Future<unknown> | null, ms: number, thresholdMs: number): SlowPoll {
  return {
    taskId: t.id,
    name: taskName(t, f),
    spawnedAt: spawnSite(t),
    ms: Math.max(thresholdMs, ms),
    thresholdMs,
    waitingOn: t.isComplete ? "nothing (it finished)" : t.waitingOn(),
  };
}

/**
 * The default `onSlowPoll`: one line on stderr.
 *
 * @example
 * ```ts
 * new Runtime({ onSlowPoll: (r) => { metrics.slow++; reportSlowPoll(r); } });
 * ```
 */
export function reportSlowPoll(r: SlowPoll): void {
  const who = `task ${r.taskId}${r.name !== null ? ` "${r.name}"` : ""}`;
  const where = r.spawnedAt !== null ? `spawned at ${r.spawnedAt}` : "spawn site not recorded (REEL_SPAWN_SITES=1 or { spawnSites: true })";
  console.error(
    `reel: slow poll: ${who} held the thread for at least ${r.ms} ms in one poll (threshold ${r.thresholdMs} ms) — ` +
      `a blocking call in async code? ${where}; now waiting on: ${r.waitingOn}`,
  );
}


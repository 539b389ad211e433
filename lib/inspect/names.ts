/**
 * How a task is named in dumps and slow-poll reports: the name given at spawn, else the
 * generator function's name; and where it was spawned, from the stack captured at spawn
 * (only when the runtime records spawn sites: capturing costs ~1 µs per spawn).
 *
 * Must never: capture a stack itself, or be called on a hot path.
 */
import type { Task } from "../task/task.ts";

/**
 * A task's name for reports: the one given, else its future's (a generator function's
 * name; `future` when the task has already dropped its own), else null.
 *
 * @example
 * ```ts
 * taskName(task); // "echo"
 * ```
 */
export function taskName(t: Task<unknown>, future: unknown = t.future): string | null {
  if (t.name !== null) return t.name;
  const f = (future ?? null) as { name?: unknown } | null;
  return f !== null && typeof f.name === "string" && f.name !== "gen" && f.name !== "" ? f.name : null;
}

/** Frames of reel's own spawning layers, skipped when naming a spawn site. */
const OWN_FRAME = /\/lib\/(executor|future|combinators\/|net\/serve|interop\/|task\/|stream\/)/;

/**
 * The first stack frame of a task's spawn site outside reel's own spawning code ("at
 * server.ts:42:7" → "server.ts:42:7"), or null when no site was recorded.
 *
 * @example
 * ```ts
 * spawnSite(task); // "/app/server.ts:42:7"
 * ```
 */
export function spawnSite(t: Task<unknown>): string | null {
  const stack = t.site?.stack;
  if (stack === undefined) return null;
  const lines = stack.split("\n").slice(1).map((l) => l.trim());
  const outside = lines.find((l) => !OWN_FRAME.test(l));
  const frame = (outside ?? lines[0] ?? "").replace(/^at /, "");
  return frame === "" ? null : frame;
}

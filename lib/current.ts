/**
 * What runs on this thread right now: the runtime inside `blockOn()` or a hosted slice,
 * its driver, and the node of the task tree being polled (a task, or a scope inside one).
 * This is the one place that state lives; the executor enters and leaves it, and
 * everything that needs "the current driver" (timers, sockets, files) or "the current
 * task" (spawn, cleanup adoption, each()) asks here.
 *
 * Invariants: at most one runtime is current on a thread; `currentDriver()` is the current
 * runtime's driver, or throws ENORUNTIME outside any runtime; `running.node` is the tree
 * node whose poll is on the stack (set by the executor before each task poll and by a
 * scope around its body), or null between polls.
 *
 * Must never import: lib/executor.ts, lib/task/**, lib/driver/**
 * (it holds them by type only), so that every layer can import it without a cycle.
 */
import type { Driver } from "./driver/driver.ts";
import { RuntimeError } from "./errors.ts";

/**
 * Why an error reached the runtime's report hook (`RunningRuntime.report`): a task failure, or a cleanup's.
 *
 * @example
 * ```ts
 * const kind: ReportKind = "cleanup"; // a cleanup future threw
 * ```
 */
export type ReportKind = "failed" | "cleanup";

/** The part of a Runtime this module knows: its driver, its reporting hook and limits. */
export interface RunningRuntime {
  readonly driver: Driver;
  /**
   * How long an asynchronous cleanup (a generator's `finally` that yields, after a
   * cancel) may run before it is reported and force-ended, in ms; 0 = no limit.
   */
  readonly cleanupLimitMs: number;
  /** Reports an error nobody else will see: the runtime's `onTaskError` hook. */
  report(err: unknown, taskId: number, kind: ReportKind): void;
}

/**
 * A node of the task tree, as this module sees it: a task (with an id), or a scope or
 * serve() group inside one. lib/task/tree.ts defines the real thing.
 */
export interface TreeNodeRef {
  /** The id of the task this node is, or belongs to (0 when none). */
  readonly taskId: number;
}

let runtime: RunningRuntime | null = null;
let driver: Driver | null = null;

/**
 * @internal What is being polled right now: written by the executor before every task
 * poll (one store: the cost of knowing where `spawn()` attaches), by scope() around its
 * body, and by the tree while it cancels a task's future. A plain object with one field
 * so the write is a property store, not a function call.
 *
 * @example
 * ```ts
 * const prev = running.node; running.node = group; try { body.poll(cx); } finally { running.node = prev; }
 * ```
 */
export const running: { node: TreeNodeRef | null } = { node: null };

/**
 * The current runtime's driver; throws RuntimeError ENORUNTIME outside any runtime.
 *
 * @example
 * ```ts
 * const wheel = currentDriver().wheel; // inside a future's poll
 * ```
 */
export function currentDriver(): Driver {
  if (driver === null) {
    throw new RuntimeError("No reel runtime is running: call this inside blockOn()/run() (or a task they run)", "ENORUNTIME");
  }
  return driver;
}

/**
 * The current runtime's driver, or null outside any runtime.
 *
 * @example
 * ```ts
 * const d = currentDriverOrNull(); // null between blockOn() calls
 * ```
 */
export function currentDriverOrNull(): Driver | null {
  return driver;
}

/**
 * The runtime running on this thread, or null.
 *
 * @example
 * ```ts
 * if (runningRuntime() === null) console.log("not inside blockOn()/run()");
 * ```
 */
export function runningRuntime(): RunningRuntime | null {
  return runtime;
}

/**
 * The id of the task being polled now (0 between polls or outside any runtime).
 *
 * @example
 * ```ts
 * console.log(`in task ${currentTaskId()}`);
 * ```
 */
export function currentTaskId(): number {
  return running.node === null ? 0 : running.node.taskId;
}

/**
 * Makes `rt` current (the executor, on entering blockOn or a hosted slice); returns the
 * runtime that was current before, for {@link leaveRuntime}.
 *
 * @example
 * ```ts
 * const prev = enterRuntime(rt);
 * try { tick(); } finally { leaveRuntime(prev); }
 * ```
 */
export function enterRuntime(rt: RunningRuntime): RunningRuntime | null {
  const prev = runtime;
  if (driver !== null) driver.leave();
  runtime = rt;
  driver = rt.driver;
  // The driver's clock becomes the one now() reads (the simulator's: virtual time).
  rt.driver.enter();
  return prev;
}

/**
 * Restores the runtime that was current before {@link enterRuntime}.
 *
 * @example
 * ```ts
 * leaveRuntime(prev);
 * ```
 */
export function leaveRuntime(prev: RunningRuntime | null): void {
  const d = driver;
  runtime = prev;
  driver = prev === null ? null : prev.driver;
  if (d !== null) d.leave();
  if (driver !== null) driver.enter();
}

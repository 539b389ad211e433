/**
 * What runs on this thread right now: the runtime inside `blockOn()` or a hosted slice,
 * and its driver. This is the one place that state lives; the executor enters and leaves
 * it, and everything that needs "the current driver" (timers, sockets, files) asks here.
 *
 * Invariants: at most one runtime is current on a thread; `currentDriver()` is the current
 * runtime's driver, or throws ENORUNTIME outside any runtime.
 *
 * Must never import: lib/executor.ts, lib/driver/**
 * (it holds them by type only), so that every layer can import it without a cycle.
 */
import type { Driver } from "./driver/driver.ts";
import { RuntimeError } from "./errors.ts";

/** The part of a Runtime this module knows: its driver. */
export interface RunningRuntime {
  readonly driver: Driver;
}

let runtime: RunningRuntime | null = null;
let driver: Driver | null = null;

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

/** The current runtime's driver, or null outside any runtime. */
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
 * Makes `rt` current (the executor, on entering blockOn or a hosted slice); returns the
 * runtime that was current before, for {@link leaveRuntime}.
 */
export function enterRuntime(rt: RunningRuntime): RunningRuntime | null {
  const prev = runtime;
  runtime = rt;
  driver = rt.driver;
  return prev;
}

/** Restores the runtime that was current before {@link enterRuntime}. */
export function leaveRuntime(prev: RunningRuntime | null): void {
  runtime = prev;
  driver = prev === null ? null : prev.driver;
}

/**
 * The limit on asynchronous cleanup: a timer per running cleanup, and the one place that
 * reports what cleanup could not do (an error thrown from a `finally`, a cleanup past its
 * limit).
 *
 * A cleanup future (lib/future.ts's `Cleanup`) arms a {@link Bound} on its first poll:
 * a wheel entry at `now + cleanupLimitMs` on the current runtime's driver. If it fires
 * before the cleanup is done, the cleanup's task is woken, its next poll sees `expired`,
 * reports a RuntimeError ECLEANUP through the runtime's `onTaskError` hook and force-ends
 * the cleanup. Outside a runtime, or with `cleanupLimitMs: 0`, the bound is {@link NO_BOUND}.
 *
 * Invariants: an armed bound is in at most one wheel; `stop()` removes it (idempotent).
 *
 * Must never: import lib/future.ts (it is imported by it), poll anything, or report an
 * error twice.
 */
import { currentTaskId, runningRuntime, type TreeNodeRef } from "../current.ts";
import { deadlineIn } from "../time/clock.ts";
import { TimerEntry, type TimerWheel } from "../time/wheel.ts";

/** The part of a Waker a bound needs (lib/future.ts's Waker). */
interface WakerLike {
  wake(): void;
}

/**
 * A cleanup's deadline: a timer entry that wakes the cleanup's task when the limit passes.
 *
 * @example
 * ```ts
 * const b = armBound();
 * if (b.expired) forceEnd(); else b.waker = cx.waker;
 * b.stop();
 * ```
 */
export class Bound extends TimerEntry {
  /** True once the limit passed. */
  expired = false;
  /** The waker of whoever drives the cleanup (updated on every poll). */
  waker: WakerLike | null = null;
  constructor(
    private readonly wheel: TimerWheel | null,
    /** The limit in ms (for the report). */
    readonly limitMs: number,
  ) {
    super();
  }

  override fire(): void {
    this.expired = true;
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }

  /** Removes the timer. Idempotent. */
  stop(): void {
    this.waker = null;
    this.wheel?.remove(this);
  }
}

/**
 * The bound of cleanups that have none (outside a runtime, or `cleanupLimitMs: 0`).
 *
 * @example
 * ```ts
 * if (bound === NO_BOUND) return; // nothing armed
 * ```
 */
export const NO_BOUND = new Bound(null, 0);

/**
 * Arms a bound for a cleanup starting now on the current runtime.
 *
 * @example
 * ```ts
 * this.bound = armBound();
 * ```
 */
export function armBound(): Bound {
  const rt = runningRuntime();
  if (rt === null || !(rt.cleanupLimitMs > 0)) return NO_BOUND;
  const b = new Bound(rt.driver.wheel, rt.cleanupLimitMs);
  rt.driver.wheel.insert(b, deadlineIn(rt.cleanupLimitMs));
  return b;
}

/**
 * Reports an error a cleanup produced (a `finally` that threw, a cancel hook that threw,
 * a cleanup past its limit) through the running runtime's `onTaskError` hook, naming the
 * task that owned it; outside any runtime, on stderr. Never throws.
 *
 * @example
 * ```ts
 * try { fut.cancel(); } catch (err) { reportCleanupError(err, owner); }
 * ```
 */
export function reportCleanupError(err: unknown, owner: TreeNodeRef | null): void {
  const id = owner !== null ? owner.taskId : currentTaskId();
  const rt = runningRuntime();
  try {
    if (rt !== null) rt.report(err, id, "cleanup");
    else console.error(`reel: the cleanup of task ${id} failed:`, err);
  } catch (hookErr) {
    // A throwing hook must not take the runtime down from inside a cancel: stderr it is.
    console.error("reel: onTaskError threw while reporting a cleanup error:", hookErr, "original error:", err);
  }
}

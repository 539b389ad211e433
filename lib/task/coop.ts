/**
 * Cooperative scheduling budget, as tokio's coop: each task turn may make at most
 * {@link BUDGET} units of progress on I/O resources; past that, resources answer PENDING
 * (after waking the task) so a task whose sockets are always ready still yields to the
 * others and to the driver.
 *
 * The executor resets the budget before each poll; I/O futures call {@link proceed}
 * before doing work. Must never: allocate, or touch anything but the one counter.
 */
import type { Context } from "../future.ts";

/** Units of I/O progress one task poll may make (tokio uses 128). */
export const BUDGET = 128;

let remaining = BUDGET;

/** Called by the executor before each task poll. */
export function resetBudget(): void {
  remaining = BUDGET;
}

/**
 * Consumes one unit. When the budget is spent it wakes the task (so it is polled again
 * after the others) and returns false: the caller returns PENDING without doing I/O.
 *
 * @example
 * ```ts
 * poll(cx) {
 *   if (!proceed(cx)) return PENDING;
 *   // … try the syscall …
 * }
 * ```
 */
export function proceed(cx: Context): boolean {
  if (remaining > 0) {
    remaining--;
    return true;
  }
  cx.waker.wake();
  return false;
}

/** Units left in this turn (for tests). */
export function budgetLeft(): number {
  return remaining;
}

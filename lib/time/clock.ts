/**
 * The runtime's clock: milliseconds since this module loaded, from performance.now()
 * (monotonic). Timer deadlines and the driver's wheel share it, so a deadline can be
 * computed before any runtime exists (`blockOn(sleep(10))`).
 *
 * Must never: go backwards, or be read on a hot path more than once per driver turn.
 */
const origin = performance.now();

/** Milliseconds since reel's clock started (fractional, monotonic). */
export function now(): number {
  return performance.now() - origin;
}

/** The wheel time (integer ms) of a deadline `ms` from now: rounded up, so never early. */
export function deadlineIn(ms: number): number {
  return Math.ceil(now() + ms);
}

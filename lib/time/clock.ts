/**
 * The runtime's clock: milliseconds since this module loaded. Timer deadlines and the
 * driver's wheel share it, so a deadline can be computed before any runtime exists.
 *
 * Every driver owns a {@link Clock}. A real backend's clock reads performance.now()
 * (monotonic) and can be paused, advanced and resumed for tests (time/control.ts, as
 * tokio's `time::pause`); the simulator's clock is *virtual*: it never reads real time and
 * moves only when the driver moves it (to the next timer or network event, once every task
 * is idle). While a runtime runs on this thread its driver's clock is the *active* one and
 * {@link now} reads it; outside any runtime {@link now} reads real time.
 *
 * Invariants: a clock never goes backwards; a virtual clock never reads real time; the
 * active clock is set and cleared only by the driver entering and leaving (current.ts).
 *
 * Must never: go backwards, or be read on a hot path more than once per driver turn.
 * Must never import: lib/**
 */
// The original function, captured before anything (the simulator) patches the global.
const perfNow = performance.now;
const perf = performance;
const origin = perfNow.call(perf);

/** Real milliseconds since reel's clock started, whatever clock is active. */
function realNow(): number {
  return perfNow.call(perf) - origin;
}

/**
 * A driver's clock: real (optionally paused or moved ahead) or virtual.
 *
 * @example
 * ```ts
 * const c = new Clock();     // real time
 * c.pause();                 // frozen at c.now()
 * c.advanceTo(c.now() + 50); // 50 ms later, at once
 * c.resume();                // runs on from there
 * ```
 */
export class Clock {
  /** True for the simulator's clock: it starts at 0 and moves only when told to. */
  readonly virtual: boolean;
  /** Running: now = real time + offset (moved by advance and resume). */
  private offset = 0;
  /** ≥ 0 while frozen (paused, or always when virtual): the time it shows. */
  private frozenAt = -1;

  constructor(virtual = false) {
    this.virtual = virtual;
    if (virtual) this.frozenAt = 0;
  }

  /** The time on this clock, in ms. */
  now(): number {
    const f = this.frozenAt;
    return f >= 0 ? f : perfNow.call(perf) - origin + this.offset;
  }

  /** True while the clock does not follow real time (paused, or virtual). */
  get frozen(): boolean {
    return this.frozenAt >= 0;
  }

  /** Stops following real time; now() stays where it is until advanced or resumed. */
  pause(): void {
    if (this.frozenAt < 0) this.frozenAt = realNow() + this.offset;
  }

  /** Follows real time again, from where the clock stands. A virtual clock cannot resume. */
  resume(): void {
    if (this.virtual) throw new RangeError("The simulator's virtual clock cannot resume real time");
    const f = this.frozenAt;
    if (f < 0) return;
    this.offset = f - realNow();
    this.frozenAt = -1;
  }

  /** Moves the clock to `t` if that is later than now (never backwards). */
  advanceTo(t: number): void {
    if (typeof t !== "number" || Number.isNaN(t)) throw new TypeError(`Cannot move a clock to ${String(t)}`);
    const f = this.frozenAt;
    if (f >= 0) {
      if (t > f) this.frozenAt = t;
      return;
    }
    const cur = realNow() + this.offset;
    if (t > cur) this.offset += t - cur;
  }
}

let active: Clock | null = null;

/**
 * Makes `c` the clock {@link now} reads (the driver entering; null when it leaves).
 * Returns the clock that was active.
 *
 * @example
 * ```ts
 * const prev = setActiveClock(driver.clock);
 * try { tick(); } finally { setActiveClock(prev); }
 * ```
 */
export function setActiveClock(c: Clock | null): Clock | null {
  const prev = active;
  active = c;
  return prev;
}

/**
 * The clock of the runtime running on this thread, or null outside any runtime.
 *
 * @example
 * ```ts
 * if (activeClock()?.virtual) console.log("simulated time");
 * ```
 */
export function activeClock(): Clock | null {
  return active;
}

/**
 * Milliseconds on reel's clock (fractional, monotonic): the running runtime's clock
 * (virtual under the simulator, frozen while paused), or real time outside any runtime.
 *
 * @example
 * ```ts
 * import { now } from "reel";
 * const t0 = now();
 * yield* sleep(10);
 * console.log(now() - t0); // ≥ 10
 * ```
 */
export function now(): number {
  const c = active;
  return c === null ? realNow() : c.now();
}

/**
 * The wheel time (integer ms) of a deadline `ms` from now: rounded up, so never early.
 *
 * @example
 * ```ts
 * wheel.insert(entry, deadlineIn(250));
 * ```
 */
export function deadlineIn(ms: number): number {
  return Math.ceil(now() + ms);
}

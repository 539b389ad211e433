/**
 * Timer futures on the driver's wheel: sleep, sleepUntil, interval, timeout.
 *
 * A deadline is fixed when the future is created (reel's clock, rounded up to the next
 * whole ms so a timer never fires early) and inserted into the current driver's wheel on
 * the first poll. A sleep, timeout or interval made outside any runtime (`blockOn(sleep(10))`)
 * counts from its first poll instead, on the clock of the runtime that polls it: outside
 * a runtime there is no clock of its own to count on (a paused or simulated one differs
 * from real time). The wheel fires an entry by waking the stored waker; the next poll sees
 * it fired. `cancel()` removes the entry in O(1).
 *
 * `sleep(0)` and past deadlines complete on the next driver turn, not inline: they yield.
 *
 * `interval()` is also a Stream (lib/stream/stream.ts) of tick times that never ends:
 * `each(interval(100))`, `interval(100).take(5)`.
 *
 * `timeout(fut, ms)` takes what spawn takes (a Future or a generator function). When the
 * deadline passes it cancels the inner future and drives the cleanup that leaves (a
 * generator's `finally` that yields) before it throws TimeoutError: when the error
 * reaches you, the inner future's cleanup has finished.
 *
 * Must never: allocate per poll, or leave an entry in the wheel after cancel or completion.
 */
import {
  BaseFuture,
  FutureStateError,
  PENDING,
  cancelOf,
  describeFuture,
  handOut,
  intoFuture,
  pollGuarded,
  type Cleanup,
  type Context,
  type Future,
  type IntoFuture,
  type Poll,
  type Waker,
} from "../future.ts";
import { StreamBase } from "../stream/stream.ts";
import { currentDriver } from "../current.ts";
import { TimeoutError, checkMs } from "../errors.ts";
import { TimerEntry, type TimerWheel } from "./wheel.ts";
import { activeClock, deadlineIn, now } from "./clock.ts";

/** A wheel entry that wakes one waker when it fires. */
class WakerEntry extends TimerEntry {
  waker: Waker | null = null;
  fired = false;
  override fire(): void {
    this.fired = true;
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }
}

/**
 * The future returned by {@link sleep} and {@link sleepUntil}: completes once its deadline
 * (wheel time, whole ms) has passed; `cancel()` removes its timer.
 *
 * @example
 * ```ts
 * const s: Sleep = sleep(100);
 * if (!s.isElapsed) yield* s;
 * ```
 */
export class Sleep extends BaseFuture<void> {
  private readonly entry = new WakerEntry();
  private wheel: TimerWheel | null = null;
  private done = false;
  /** Wheel time in integer ms (see time/clock.ts); -1 - ms until the first poll for a sleep made outside any runtime. */
  private deadline: number;

  /**
   * @param deadline wheel time in integer ms (see time/clock.ts), or, when negative,
   * -1 - ms: made outside any runtime, the deadline is ms after the first poll.
   */
  constructor(deadline: number) {
    super();
    this.deadline = deadline;
  }

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("sleep() future polled after completion");
    const e = this.entry;
    if (e.fired) {
      this.done = true;
      return undefined;
    }
    if (this.wheel === null) {
      this.wheel = currentDriver().wheel;
      const d = this.deadline;
      this.wheel.insert(e, d >= 0 ? d : this.startNow(d));
    }
    e.waker = cx.waker;
    return PENDING;
  }

  /** Made outside any runtime (deadline -1 - ms): it counts from now, on this runtime's clock. Kept out of poll(), which stays small. */
  private startNow(d: number): number {
    const ms = -1 - d;
    return (this.deadline = ms === 0 ? Math.floor(now()) : deadlineIn(ms));
  }

  /** Removes the timer. Idempotent. */
  override cancel(): void {
    this.done = true;
    this.entry.waker = null;
    this.wheel?.remove(this.entry);
  }

  /** True once the deadline has passed and the timer fired. */
  get isElapsed(): boolean {
    return this.entry.fired;
  }

  override describe(): string {
    if (this.deadline < 0) return `sleep ${-1 - this.deadline} ms (not polled yet)`;
    return `sleep until ${this.deadline} ms (${describeIn(this.deadline)})`;
  }
}

function describeIn(deadline: number): string {
  const d = deadline - now();
  return d > 0 ? `in ${Math.ceil(d)} ms` : "due";
}

/**
 * Completes after `ms` milliseconds (rounded up to whole ms; 0 = the next driver turn).
 *
 * @example
 * ```ts
 * import { blockOn, sleep } from "reel";
 * blockOn(function* () { yield* sleep(50); console.log("50 ms later"); });
 * ```
 */
export function sleep(ms: number): Sleep {
  checkMs(ms, "sleep() duration");
  // One read of the running runtime's clock (timer arm+cancel is a hot path).
  const c = activeClock();
  if (c === null) return new Sleep(-1 - ms);
  const t = c.now();
  return new Sleep(ms === 0 ? Math.floor(t) : Math.ceil(t + ms));
}

/**
 * Completes at `deadline`, a time on reel's clock (see {@link now}); a past deadline
 * completes on the next driver turn.
 *
 * @example
 * ```ts
 * import { now, sleepUntil } from "reel";
 * const t0 = now();
 * yield* sleepUntil(t0 + 100);
 * ```
 */
export function sleepUntil(deadline: number): Sleep {
  if (typeof deadline !== "number" || Number.isNaN(deadline)) throw new TypeError(`sleepUntil() deadline must be a number, got ${String(deadline)}`);
  // A past deadline is due at once; below 0 it would read as a relative one (see Sleep).
  const d = Math.ceil(deadline);
  return new Sleep(d > 0 ? d : 0);
}

/**
 * A periodic timer: each `tick()` completes at the next multiple of `period` after the
 * start; the first tick completes at once. Missed ticks are delivered at once, one per
 * `tick()` call, until it has caught up (tokio's default, MissedTickBehavior::Burst).
 *
 * @example
 * ```ts
 * import { interval } from "reel";
 * const every = interval(100);
 * for (let i = 0; i < 3; i++) { const at = yield* every.tick(); console.log("tick at", at); }
 * ```
 */
export class Interval extends StreamBase<number> {
  private next_: number;
  /** The tick a pending pollNext waits for. */
  private slot: TickFuture | null = null;
  constructor(readonly period: number) {
    super();
    checkMs(period, "interval() period");
    if (period === 0) throw new RangeError("interval() period must be > 0 ms, got 0");
    // Made outside any runtime: it starts at the first tick() (see the module header).
    this.next_ = activeClock() === null ? -1 : Math.ceil(now());
  }

  /** A future that completes at the next tick, with that tick's scheduled time (ms). */
  tick(): BaseFuture<number> {
    if (this.next_ < 0) this.next_ = Math.ceil(now());
    const at = this.next_;
    this.next_ = at + this.period;
    return new TickFuture(at);
  }

  /** Stream: the next tick's scheduled time, or PENDING; never ends. Cancel-safe. */
  pollNext(cx: Context): Poll<number | null> {
    const t = (this.slot ??= this.tick() as TickFuture);
    const v = t.poll(cx);
    if (v !== PENDING) this.slot = null;
    return v;
  }

  /** Stream: removes the pending tick's timer; that tick is still the next one returned. */
  override cancelNext(): void {
    this.slot?.disarm();
  }

  describe(): string {
    const at = this.slot?.at ?? this.next_;
    return at < 0 ? `interval ${this.period} ms, not started` : `interval ${this.period} ms, next tick at ${at} ms`;
  }
}

class TickFuture extends BaseFuture<number> {
  private sleep: Sleep;
  private done = false;
  constructor(readonly at: number) {
    super();
    this.sleep = new Sleep(at);
  }
  poll(cx: Context): Poll<number> {
    if (this.done) throw new FutureStateError("interval tick() future polled after completion");
    // A tick already due completes at once (the first one, and any missed ones).
    if (this.at > now() && this.sleep.poll(cx) === PENDING) return PENDING;
    this.done = true;
    this.sleep.cancel(); // its wheel entry, if a poll inserted one before the tick was due
    return this.at;
  }
  override cancel(): void {
    this.sleep.cancel();
  }

  /** Removes the timer but keeps the tick pending (the stream's cancelNext). */
  disarm(): void {
    this.sleep.cancel();
    this.sleep = new Sleep(this.at);
  }

  override describe(): string {
    return `interval tick at ${this.at} ms (${describeIn(this.at)})`;
  }
}

/**
 * A periodic timer of `ms` milliseconds. See {@link Interval}.
 *
 * @example
 * ```ts
 * import { each, interval } from "reel";
 * for (const at of yield* each(interval(1000).take(3))) {
 *   console.log("tick", at);
 *   yield* each.next();
 * }
 * ```
 */
export function interval(ms: number): Interval {
  return new Interval(ms);
}

const T_RUNNING = 0;
const T_CLEANING = 1; // expired: driving the inner future's cleanup before throwing
const T_DONE = 2;

/**
 * Polls the inner future with a time limit. If `ms` passes first, the inner future is
 * cancelled, its cleanup (if any) driven to the end, and the timeout fails with
 * {@link TimeoutError}.
 */
class Timeout<T> extends BaseFuture<T> {
  private readonly timer: Sleep;
  private state = T_RUNNING;
  private cleanup: Cleanup | null = null;
  constructor(
    private readonly inner: Future<T>,
    private readonly ms: number,
  ) {
    super();
    this.timer = sleep(ms);
  }

  poll(cx: Context): Poll<T> {
    if (this.state === T_CLEANING) return this.pollCleanup(cx);
    if (this.state === T_DONE) throw new FutureStateError("timeout() future polled after completion");
    const v = pollGuarded(this.inner, cx, this);
    if (v !== PENDING) return v;
    if (this.timer.poll(cx) === PENDING) return PENDING;
    const c = cancelOf(this.inner);
    if (c === null) {
      this.state = T_DONE;
      throw new TimeoutError(this.ms);
    }
    this.cleanup = c;
    this.state = T_CLEANING;
    return this.pollCleanup(cx);
  }

  private pollCleanup(cx: Context): Poll<T> {
    if (this.cleanup!.poll(cx) === PENDING) return PENDING;
    this.cleanup = null;
    this.state = T_DONE;
    throw new TimeoutError(this.ms);
  }

  /** Releases the guard; called by pollGuarded when the inner future settles. */
  finish(): void {
    this.state = T_DONE;
    this.timer.cancel();
  }

  /** Cancels the inner future (or hands over its cleanup, when the deadline already passed). */
  override cancel(): Future<void> | void {
    if (this.state === T_CLEANING) {
      const c = this.cleanup!;
      this.cleanup = null;
      this.state = T_DONE;
      return handOut(c);
    }
    if (this.state === T_DONE) return;
    this.finish();
    return this.inner.cancel?.();
  }

  override describe(): string {
    if (this.state === T_CLEANING) return `timeout ${this.ms} ms (expired, cleaning up) → ${describeFuture(this.cleanup)}`;
    return `timeout ${this.ms} ms (${this.timer.isElapsed ? "expired" : "running"}) → ${describeFuture(this.inner)}`;
  }
}

/**
 * Runs `fut` (a Future or a generator function) with a deadline of `ms` milliseconds: its
 * value, or TimeoutError — thrown once the inner future has been cancelled and its
 * cleanup (a `finally` that yields) has finished.
 *
 * @example
 * ```ts
 * import { TimeoutError, timeout } from "reel";
 * try { const n = yield* timeout(stream.read(buf), 1000); }
 * catch (e) { if (e instanceof TimeoutError) stream.close(); else throw e; }
 * ```
 */
export function timeout<T>(fut: IntoFuture<T>, ms: number): BaseFuture<T> {
  return new Timeout(intoFuture(fut, "timeout()"), ms);
}

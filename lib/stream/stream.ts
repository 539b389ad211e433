/**
 * Streams of values: one contract, `pollNext(cx)` → the next value, PENDING (the waker is
 * stored, as for a Future), or `null` once the stream has ended — the same end marker
 * reel's receivers already use (`recv()` → null), so stream values are never `null`.
 *
 * Implemented by the channel receivers (mpsc, broadcast, watch), `interval()` and
 * FramedRead; consumed with `yield* s.next()`, `for (const v of yield* each(s))` in a
 * generator task (each.ts), `for await` in hosted mode, and transformed by the combinators
 * below (map, filter, take, timeout per item) and merge (merge.ts).
 *
 * A stream that returned PENDING holds the consumer's waker. A consumer that stops
 * waiting calls `cancelNext()`, which drops that registration (a parked channel waiter,
 * a timer) without consuming anything. `next()` futures do it when cancelled.
 *
 * Cancel safety (a pending `next()` or `pollNext` abandoned with `cancelNext()`):
 *
 * | stream / combinator          | cancel-safe? |
 * |------------------------------|--------------|
 * | mpsc, broadcast receivers    | yes: nothing is taken until a value is returned |
 * | watch receiver               | yes: a version is marked seen only when returned |
 * | interval()                   | yes: the tick stays due and is returned next time |
 * | FramedRead                   | yes: decoded bytes stay buffered |
 * | map, filter, take            | as the source (the function runs only on a value returned) |
 * | timeout(ms) per item         | as the source; the TimeoutError leaves the stream usable |
 * | merge(...)                   | as every source |
 *
 * Must never: return a value after `null`, allocate per poll, or leave a registration
 * behind `cancelNext()`.
 */
import { BaseFuture, FutureStateError, PENDING, describeFuture, type Context, type Poll, type Waker } from "../future.ts";
import { currentDriver } from "../current.ts";
import { TimeoutError, checkMs } from "../errors.ts";
import { TimerEntry, type TimerWheel } from "../time/wheel.ts";
import { deadlineIn } from "../time/clock.ts";
import { RuntimeError } from "../errors.ts";

/**
 * A stream of values (see the module header).
 *
 * @example
 * ```ts
 * class Countdown implements Stream<number> {
 *   constructor(private n: number) {}
 *   pollNext(_cx: Context): Poll<number | null> { return this.n > 0 ? this.n-- : null; }
 * }
 * ```
 */
export interface Stream<T> {
  /** The next value, PENDING (waker stored), or null once ended. */
  pollNext(cx: Context): Poll<T | null>;
  /** Drops the registration a PENDING pollNext left (the consumer stopped waiting). */
  cancelNext?(): void;
  /** What a pending pollNext waits on, for dumps. */
  describe?(): string;
}

/**
 * True when `x` has a `pollNext` method: the structural test for a Stream.
 *
 * @example
 * ```ts
 * isStream(rx); // true
 * ```
 */
export function isStream(x: unknown): x is Stream<unknown> {
  return typeof x === "object" && x !== null && typeof (x as { pollNext?: unknown }).pollNext === "function";
}

/**
 * Checks a stream argument; TypeError naming the call and what it got.
 *
 * @example
 * ```ts
 * const s = checkStream(arg, "merge() argument 0");
 * ```
 */
export function checkStream<T>(x: Stream<T>, what: string): Stream<T> {
  if (!isStream(x)) {
    const got = x === null ? "null" : typeof x === "object" ? ((x as object).constructor?.name ?? "an object") : typeof x;
    throw new TypeError(`${what} expects a Stream (something with pollNext(cx)), got ${got}`);
  }
  return x;
}

/** How `for await` over a stream runs: installed by lib/interop/web.ts (hosted mode). */
type HostIterate = <T>(stream: Stream<T>) => AsyncIterator<T>;
let hostIterate: HostIterate | null = null;

/**
 * @internal Installs `for await` support (lib/interop/web.ts does, on load).
 *
 * @example
 * ```ts
 * setHostIterator((s) => streamIterator(s));
 * ```
 */
export function setHostIterator(fn: HostIterate): void {
  hostIterate = fn;
}

/**
 * The base of reel's streams: `next()`, the combinators, and `for await`.
 *
 * @example
 * ```ts
 * const evens = rx.filter((n) => n % 2 === 0).map((n) => n * 10).take(3);
 * for (let v; (v = yield* evens.next()) !== null; ) console.log(v);
 * ```
 */
export abstract class StreamBase<T> implements Stream<T>, AsyncIterable<T> {
  abstract pollNext(cx: Context): Poll<T | null>;

  /** Drops a pending registration; the base has none. */
  cancelNext(): void {}

  /** A future of the next value (null once ended). Cancel-safe as the stream is. */
  next(): BaseFuture<T | null> {
    return new NextFuture(this);
  }

  /** The values, each passed through `fn` (which must not return null). */
  map<U>(fn: (value: T) => U): StreamBase<U> {
    if (typeof fn !== "function") throw new TypeError(`Stream map() expects a function, got ${typeof fn}`);
    return new MapStream(this, fn);
  }

  /** The values for which `pred` is true. */
  filter(pred: (value: T) => boolean): StreamBase<T> {
    if (typeof pred !== "function") throw new TypeError(`Stream filter() expects a function, got ${typeof pred}`);
    return new FilterStream(this, pred);
  }

  /** The first `n` values, then the end (the source is left as it is). */
  take(n: number): StreamBase<T> {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`Invalid take() count ${String(n)}: must be an integer ≥ 0`);
    return new TakeStream(this, n);
  }

  /** Each value must come within `ms` of asking: otherwise TimeoutError (the stream stays usable). */
  timeout(ms: number): StreamBase<T> {
    checkMs(ms, "Stream timeout()");
    return new TimeoutStream(this, ms);
  }

  /** `for await (const v of stream)` in hosted mode (ordinary async code). */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (hostIterate === null) throw new RuntimeError("for await over a reel stream needs reel's interop layer: import from \"reel\" (lib/index.ts)", "ENOHOST");
    return hostIterate(this);
  }
}

/**
 * A plain {@link Stream} with StreamBase's methods (next, map, filter, take, timeout, for await).
 *
 * @example
 * ```ts
 * const s = asStream(myStream).take(10);
 * ```
 */
export function asStream<T>(s: Stream<T>): StreamBase<T> {
  if (s instanceof StreamBase) return s;
  return new Wrapped(checkStream(s, "asStream()"));
}

class Wrapped<T> extends StreamBase<T> {
  constructor(private readonly src: Stream<T>) {
    super();
  }
  pollNext(cx: Context): Poll<T | null> {
    return this.src.pollNext(cx);
  }
  override cancelNext(): void {
    this.src.cancelNext?.();
  }
  describe(): string {
    return describeStream(this.src);
  }
}

/**
 * What a stream waits on, for dumps: its `describe()`, or its class name.
 *
 * @example
 * ```ts
 * describeStream(rx); // "channel: 0 queued, 4 free, 1 sender(s)"
 * ```
 */
export function describeStream(s: Stream<unknown>): string {
  return typeof s.describe === "function" ? s.describe() : (s.constructor?.name ?? "a stream");
}

/**
 * The future of `stream.next()`: one pollNext; cancelling it calls `cancelNext()`.
 *
 * @example
 * ```ts
 * const v = yield* new NextFuture(stream); // as stream.next()
 * ```
 */
export class NextFuture<T> extends BaseFuture<T | null> {
  private done = false;
  constructor(private readonly src: Stream<T>) {
    super();
  }
  poll(cx: Context): Poll<T | null> {
    if (this.done) throw new FutureStateError("next() future polled after completion");
    let v: Poll<T | null>;
    try {
      v = this.src.pollNext(cx);
    } catch (err) {
      this.done = true;
      throw err;
    }
    if (v !== PENDING) this.done = true;
    return v;
  }
  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.src.cancelNext?.();
  }
  override describe(): string {
    return `next → ${describeStream(this.src)}`;
  }
}

class MapStream<T, U> extends StreamBase<U> {
  constructor(
    private readonly src: Stream<T>,
    private readonly fn: (value: T) => U,
  ) {
    super();
  }
  pollNext(cx: Context): Poll<U | null> {
    const v = this.src.pollNext(cx);
    if (v === PENDING) return PENDING;
    if (v === null) return null;
    const u = this.fn(v);
    if (u === null) throw new TypeError("Stream map(): the function returned null, which marks a stream's end; map to another value");
    return u;
  }
  override cancelNext(): void {
    this.src.cancelNext?.();
  }
  describe(): string {
    return `map → ${describeStream(this.src)}`;
  }
}

class FilterStream<T> extends StreamBase<T> {
  constructor(
    private readonly src: Stream<T>,
    private readonly pred: (value: T) => boolean,
  ) {
    super();
  }
  pollNext(cx: Context): Poll<T | null> {
    // Bounded by the source: a ready source consumes the coop budget and answers PENDING.
    for (;;) {
      const v = this.src.pollNext(cx);
      if (v === PENDING || v === null) return v;
      if (this.pred(v)) return v;
    }
  }
  override cancelNext(): void {
    this.src.cancelNext?.();
  }
  describe(): string {
    return `filter → ${describeStream(this.src)}`;
  }
}

class TakeStream<T> extends StreamBase<T> {
  constructor(
    private readonly src: Stream<T>,
    private left: number,
  ) {
    super();
  }
  pollNext(cx: Context): Poll<T | null> {
    if (this.left === 0) return null;
    const v = this.src.pollNext(cx);
    if (v === PENDING) return PENDING;
    if (v === null) {
      this.left = 0;
      return null;
    }
    this.left--;
    return v;
  }
  override cancelNext(): void {
    this.src.cancelNext?.();
  }
  describe(): string {
    return `take (${this.left} left) → ${describeStream(this.src)}`;
  }
}

/** The per-item deadline: a wheel entry that wakes the consumer. */
class Deadline extends TimerEntry {
  waker: Waker | null = null;
  fired = false;
  override fire(): void {
    this.fired = true;
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }
}

class TimeoutStream<T> extends StreamBase<T> {
  private readonly timer = new Deadline();
  private wheel: TimerWheel | null = null;
  private armed = false;
  constructor(
    private readonly src: Stream<T>,
    private readonly ms: number,
  ) {
    super();
  }
  pollNext(cx: Context): Poll<T | null> {
    const t = this.timer;
    if (!this.armed) {
      this.armed = true;
      t.fired = false;
      this.wheel = currentDriver().wheel;
      this.wheel.insert(t, deadlineIn(this.ms));
    }
    let v: Poll<T | null>;
    try {
      v = this.src.pollNext(cx);
    } catch (err) {
      this.disarm();
      throw err;
    }
    if (v !== PENDING) {
      this.disarm();
      return v;
    }
    if (!t.fired) {
      t.waker = cx.waker;
      return PENDING;
    }
    this.disarm();
    this.src.cancelNext?.();
    throw new TimeoutError(this.ms);
  }
  private disarm(): void {
    this.armed = false;
    this.timer.waker = null;
    this.wheel?.remove(this.timer);
  }
  override cancelNext(): void {
    this.disarm();
    this.src.cancelNext?.();
  }
  describe(): string {
    return `timeout ${this.ms} ms per item → ${describeStream(this.src)}`;
  }
}

/**
 * Small future combinators: ready, pollFn, map, andThen. Each takes what spawn takes (a
 * Future or a generator function; anything else is a TypeError naming the call), and
 * cancelling map/andThen passes the inner future's cleanup on to the canceller.
 *
 * Must never: poll the inner future after it completed, or drop its cleanup.
 */
import { BaseFuture, FutureStateError, PENDING, describeFuture, describeValue, type Context, type Future, type Poll } from "../future/core.ts";
import { intoFuture, type IntoFuture } from "../future/gen.ts";

/** A future that is ready at once with `value`. */
class Ready<T> extends BaseFuture<T> {
  private done = false;
  constructor(private readonly value: T) {
    super();
  }
  poll(_cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError("ready() future polled after completion");
    this.done = true;
    return this.value;
  }
  override describe(): string {
    return "ready";
  }
}

/**
 * A future that completes immediately with `value`.
 *
 * @example
 * ```ts
 * import { blockOn, ready } from "reel";
 * blockOn(ready(7)); // 7
 * ```
 */
export function ready<T>(value: T): BaseFuture<T> {
  return new Ready(value);
}

/** A future from a poll function. */
class PollFn<T> extends BaseFuture<T> {
  constructor(
    private readonly fn: (cx: Context) => Poll<T>,
    private readonly onCancel?: () => Future<void> | void,
  ) {
    super();
  }
  poll(cx: Context): Poll<T> {
    return this.fn(cx);
  }
  override cancel(): Future<void> | void {
    return this.onCancel?.();
  }
  override describe(): string {
    return `pollFn(${this.fn.name || "anonymous"})`;
  }
}

/**
 * Builds a future from a poll function (and an optional cancel hook, which may return a
 * cleanup future). The function must keep the Future contract: store `cx.waker` before
 * returning PENDING.
 *
 * @example
 * ```ts
 * import { PENDING, blockOn, pollFn } from "reel";
 * let polls = 0;
 * const twice = pollFn((cx) => {
 *   if (++polls === 2) return "done";
 *   cx.waker.wake();
 *   return PENDING;
 * });
 * blockOn(twice); // "done"
 * ```
 */
export function pollFn<T>(fn: (cx: Context) => Poll<T>, onCancel?: () => Future<void> | void): BaseFuture<T> {
  if (typeof fn !== "function") throw new TypeError(`pollFn() expects a poll function, got ${describeValue(fn)}`);
  return new PollFn(fn, onCancel);
}

class Map<T, U> extends BaseFuture<U> {
  private done = false;
  constructor(
    private readonly inner: Future<T>,
    private readonly fn: (value: T) => U,
  ) {
    super();
  }
  poll(cx: Context): Poll<U> {
    if (this.done) throw new FutureStateError("map() future polled after completion");
    const v = this.inner.poll(cx);
    if (v === PENDING) return PENDING;
    this.done = true;
    return this.fn(v);
  }
  /** Cancels the inner future; its cleanup, if any, passes to the caller. */
  override cancel(): Future<void> | void {
    if (this.done) return;
    this.done = true;
    return this.inner.cancel?.();
  }
  override describe(): string {
    return `map → ${describeFuture(this.inner)}`;
  }
}

/**
 * A future that applies `fn` to the value of `fut` (a Future or a generator function).
 * Cancelling it cancels `fut`, and passes on `fut`'s cleanup.
 *
 * @example
 * ```ts
 * import { blockOn, map, ready } from "reel";
 * blockOn(map(ready(20), (n) => n + 1)); // 21
 * ```
 */
export function map<T, U>(fut: IntoFuture<T>, fn: (value: T) => U): BaseFuture<U> {
  const f = intoFuture(fut, "map()");
  if (typeof fn !== "function") throw new TypeError(`map() expects a function, got ${describeValue(fn)}`);
  return new Map(f, fn);
}

class AndThen<T, U> extends BaseFuture<U> {
  private second: Future<U> | null = null;
  private done = false;
  constructor(
    private readonly first: Future<T>,
    private readonly fn: (value: T) => IntoFuture<U>,
  ) {
    super();
  }
  poll(cx: Context): Poll<U> {
    if (this.done) throw new FutureStateError("andThen() future polled after completion");
    if (this.second === null) {
      const v = this.first.poll(cx);
      if (v === PENDING) return PENDING;
      this.second = intoFuture(this.fn(v), "andThen() callback result");
    }
    const u = this.second.poll(cx);
    if (u === PENDING) return PENDING;
    this.done = true;
    return u;
  }
  /** Cancels whichever future is running; its cleanup, if any, passes to the caller. */
  override cancel(): Future<void> | void {
    if (this.done) return;
    this.done = true;
    return this.second !== null ? this.second.cancel?.() : this.first.cancel?.();
  }
  override describe(): string {
    return `andThen → ${describeFuture(this.second ?? this.first)}`;
  }
}

/**
 * Chains `fn`'s future after `fut`: the result is the value of the second future. Both
 * may be Futures or generator functions. Cancelling passes on the running one's cleanup.
 *
 * @example
 * ```ts
 * import { andThen, blockOn, ready, sleep } from "reel";
 * blockOn(andThen(sleep(5), () => ready("slept"))); // "slept"
 * ```
 */
export function andThen<T, U>(fut: IntoFuture<T>, fn: (value: T) => IntoFuture<U>): BaseFuture<U> {
  const f = intoFuture(fut, "andThen()");
  if (typeof fn !== "function") throw new TypeError(`andThen() expects a function, got ${describeValue(fn)}`);
  return new AndThen(f, fn);
}


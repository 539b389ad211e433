/**
 * The Future contract: poll-based state machines, as Rust's `Future`.
 *
 * A future is polled by the executor with a {@link Context}. It either returns its value
 * (ready) or {@link PENDING}. Invariants every future in reel keeps:
 *
 * - Returning PENDING means `cx.waker` has been stored where it will fire when progress is
 *   possible (a driver registration, a timer, a channel's waiter list). No lost wake-ups.
 * - Spurious polls are harmless: a future polled without having been woken re-checks and
 *   returns PENDING again, re-storing the (possibly new) waker.
 * - Polling after ready is an error ({@link FutureStateError}).
 * - A failed future throws from `poll`; the error travels up to whoever polls it.
 * - `cancel()` is JS's stand-in for Rust's Drop: it removes timers and waker slots and hands
 *   any kernel-held buffer to the driver until its completion. Cancelling a finished or
 *   already-cancelled future is a no-op. Combinators cancel the futures they abandon.
 *
 * This module must never import the executor or the driver: it is the contract both use.
 *
 * Futures extending {@link BaseFuture} are `yield*`-able inside generator tasks (see
 * {@link gen}): the future is its own one-shot iterator, so `yield*` costs no generator
 * object per operation.
 */

/** The value a future returns from `poll` when it cannot complete yet. */
export const PENDING: unique symbol = Symbol("reel.PENDING");

/** The result of polling a future: its value, or {@link PENDING}. */
export type Poll<T> = T | typeof PENDING;

/**
 * A handle that schedules its task to be polled again.
 *
 * `wake()` only enqueues: it never polls inline, and waking a task that is already
 * scheduled does not queue it twice.
 */
export interface Waker {
  wake(): void;
}

/** What a future is polled with: the waker of the task that polls it. */
export interface Context {
  readonly waker: Waker;
}

/**
 * A poll-based asynchronous computation.
 *
 * @example
 * ```ts
 * import { PENDING, type Context, type Future, type Poll } from "reel";
 * class Once implements Future<number> {
 *   private woken = false;
 *   poll(cx: Context): Poll<number> {
 *     if (this.woken) return 42;
 *     this.woken = true;
 *     cx.waker.wake(); // ask to be polled again: a yield
 *     return PENDING;
 *   }
 * }
 * ```
 */
export interface Future<T> {
  poll(cx: Context): Poll<T>;
  cancel?(): void;
}

/** Thrown when a future is polled after it has completed or been cancelled. */
export class FutureStateError extends Error {
  override name = "FutureStateError";
}

/** The iterator result a {@link BaseFuture} yields: itself, once. */
type Step<T> = IteratorResult<Future<unknown>, T>;

/** The shared results of BaseFuture.next() (see there). */
const YIELD_STEP: { done: false; value: unknown } = { done: false, value: undefined };
const DONE_STEP: { done: true; value: unknown } = { done: true, value: undefined };

/**
 * A base class for hand-written futures that makes them `yield*`-able in {@link gen}
 * tasks. The future acts as its own iterator: the first `next()` yields the future to the
 * generator driver, the second returns the value the driver resumes it with.
 *
 * @example
 * ```ts
 * import { BaseFuture, PENDING, gen, type Context, type Poll } from "reel";
 * class Answer extends BaseFuture<number> {
 *   poll(_cx: Context): Poll<number> { return 42; }
 * }
 * const task = gen(function* () { return (yield* new Answer()) + 1; }); // 43
 * ```
 */
export abstract class BaseFuture<T> implements Future<T>, Iterator<Future<unknown>, T, unknown> {
  /** 0: not yet yielded to a gen driver; 1: yielded, awaiting the resume value. */
  private iterState = 0;

  abstract poll(cx: Context): Poll<T>;

  cancel(): void {}

  [Symbol.iterator](): Iterator<Future<unknown>, T, unknown> {
    return this;
  }

  // The two results are shared objects, not allocated per step: `yield*` reads `done` and
  // `value` at once, and a generator passes an inner yield result straight out to the gen
  // driver, which reads it before polling anything. Saves two objects per operation.
  next(value?: unknown): Step<T> {
    if (this.iterState === 0) {
      this.iterState = 1;
      YIELD_STEP.value = this;
      return YIELD_STEP as Step<T>;
    }
    YIELD_STEP.value = undefined; // drop the reference to the future that just finished
    DONE_STEP.value = value;
    return DONE_STEP as Step<T>;
  }

  // `yield*` forwards gen.throw() here; rethrowing delivers the error at the `yield*` site.
  throw(err?: unknown): Step<T> {
    throw err;
  }

  // `yield*` forwards gen.return() here (task cancellation): just finish.
  return(value?: unknown): Step<T> {
    return { done: true, value: value as T };
  }
}

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
    private readonly onCancel?: () => void,
  ) {
    super();
  }
  poll(cx: Context): Poll<T> {
    return this.fn(cx);
  }
  override cancel(): void {
    this.onCancel?.();
  }
}

/**
 * Builds a future from a poll function (and an optional cancel hook). The function must
 * keep the Future contract: store `cx.waker` before returning PENDING.
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
export function pollFn<T>(fn: (cx: Context) => Poll<T>, onCancel?: () => void): BaseFuture<T> {
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
  override cancel(): void {
    if (!this.done) {
      this.done = true;
      this.inner.cancel?.();
    }
  }
}

/**
 * A future that applies `fn` to the value of `fut`.
 *
 * @example
 * ```ts
 * import { blockOn, map, ready } from "reel";
 * blockOn(map(ready(20), (n) => n + 1)); // 21
 * ```
 */
export function map<T, U>(fut: Future<T>, fn: (value: T) => U): BaseFuture<U> {
  return new Map(fut, fn);
}

class AndThen<T, U> extends BaseFuture<U> {
  private second: Future<U> | null = null;
  private done = false;
  constructor(
    private readonly first: Future<T>,
    private readonly fn: (value: T) => Future<U>,
  ) {
    super();
  }
  poll(cx: Context): Poll<U> {
    if (this.done) throw new FutureStateError("andThen() future polled after completion");
    if (this.second === null) {
      const v = this.first.poll(cx);
      if (v === PENDING) return PENDING;
      this.second = this.fn(v);
    }
    const u = this.second.poll(cx);
    if (u === PENDING) return PENDING;
    this.done = true;
    return u;
  }
  override cancel(): void {
    if (this.done) return;
    this.done = true;
    if (this.second !== null) this.second.cancel?.();
    else this.first.cancel?.();
  }
}

/**
 * Chains `fn`'s future after `fut`: the result is the value of the second future.
 *
 * @example
 * ```ts
 * import { andThen, blockOn, ready, sleep } from "reel";
 * blockOn(andThen(sleep(5), () => ready("slept"))); // "slept"
 * ```
 */
export function andThen<T, U>(fut: Future<T>, fn: (value: T) => Future<U>): BaseFuture<U> {
  return new AndThen(fut, fn);
}

/**
 * Drives a generator that yields futures: the generator adapter behind `yield*`.
 *
 * Each step polls the future the generator is waiting on; when it is ready the generator
 * resumes with its value (or, when `poll` throws, the error is thrown at the `yield*`).
 * Cancelling cancels the awaited future, then runs the generator's `finally` blocks.
 */
class GenFuture<T> extends BaseFuture<T> {
  private current: Future<unknown> | null = null;
  private state = 0; // 0 running, 1 done, 2 cancelled

  constructor(private readonly it: Generator<unknown, T, unknown>) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.state !== 0) throw new FutureStateError("gen() future polled after completion");
    let step: IteratorResult<unknown, T>;
    if (this.current === null) {
      step = this.resumeNext(undefined);
    } else {
      step = this.settle(cx, this.current);
      if (step === PENDING_STEP) return PENDING;
    }
    // Loop while the futures it yields are ready at once; the executor's coop budget
    // (consumed by I/O futures) bounds how long this can run without yielding.
    for (;;) {
      if (step.done) {
        this.state = 1;
        this.current = null;
        return step.value;
      }
      const fut = step.value;
      if (!isFuture(fut)) {
        step = this.resumeThrow(new TypeError(`gen(): yielded ${describe(fut)}, expected a Future (use yield* for reel futures)`));
        continue;
      }
      this.current = fut;
      step = this.settle(cx, fut);
      if (step === PENDING_STEP) return PENDING;
    }
  }

  /** Polls the awaited future and resumes the generator with its outcome. */
  private settle(cx: Context, fut: Future<unknown>): IteratorResult<unknown, T> {
    let v: unknown;
    try {
      v = fut.poll(cx);
    } catch (err) {
      this.current = null;
      return this.resumeThrow(err);
    }
    if (v === PENDING) return PENDING_STEP;
    this.current = null;
    return this.resumeNext(v);
  }

  /** Resumes the generator with a value; if it throws, this future is done (failed). */
  private resumeNext(v: unknown): IteratorResult<unknown, T> {
    try {
      return this.it.next(v);
    } catch (err) {
      this.state = 1;
      throw err;
    }
  }

  /** Throws into the generator at its `yield*`; if it does not catch, this future fails. */
  private resumeThrow(e: unknown): IteratorResult<unknown, T> {
    try {
      return this.it.throw(e);
    } catch (err) {
      this.state = 1;
      throw err;
    }
  }

  override cancel(): void {
    if (this.state !== 0) return;
    this.state = 2;
    const cur = this.current;
    this.current = null;
    cur?.cancel?.();
    // Runs the generator's finally blocks; a future yielded from a finally is not awaited.
    this.it.return(undefined as T);
  }
}

const PENDING_STEP = { done: false, value: PENDING } as IteratorResult<unknown, never>;

/**
 * Polls `inner` for a future that guards it (timeout, withToken, withSignal): when `inner`
 * completes or throws, `owner.finish()` releases the guard (its timer, waiter slot or
 * listener) first. Returns `inner`'s poll result; rethrows its error.
 *
 * @example
 * ```ts
 * const v = pollGuarded(this.inner, cx, this);
 * if (v !== PENDING) return v;
 * // … still pending: check the guard (the deadline, the token) …
 * ```
 */
export function pollGuarded<T>(inner: Future<T>, cx: Context, owner: { finish(): void }): Poll<T> {
  let v: Poll<T>;
  try {
    v = inner.poll(cx);
  } catch (err) {
    owner.finish();
    throw err;
  }
  if (v !== PENDING) owner.finish();
  return v;
}

/** True when `x` has a `poll` method: the structural test for a Future. */
export function isFuture(x: unknown): x is Future<unknown> {
  return typeof x === "object" && x !== null && typeof (x as { poll?: unknown }).poll === "function";
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "object") return (x as object).constructor?.name ?? "an object";
  return typeof x;
}

/**
 * Turns a generator function into a Future: write sequential code with `yield*`.
 *
 * @example
 * ```ts
 * import { blockOn, gen, sleep, TcpStream } from "reel";
 * blockOn(gen(function* () {
 *   const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: 7000 });
 *   yield* s.writeAll(new TextEncoder().encode("hi"));
 *   yield* sleep(10);
 *   s.close();
 * }));
 * ```
 */
export function gen<T>(fn: () => Generator<unknown, T, unknown>): BaseFuture<T> {
  if (typeof fn !== "function") throw new TypeError(`gen() expects a generator function, got ${describe(fn)}`);
  const it = fn();
  if (typeof it !== "object" || it === null || typeof (it as { next?: unknown }).next !== "function") {
    throw new TypeError(`gen() expects a generator function (function*), but the function returned ${describe(it)}`);
  }
  return new GenFuture(it);
}

/** Anything a task can be made from: a Future, or a generator function run by {@link gen}. */
export type IntoFuture<T> = Future<T> | (() => Generator<unknown, T, unknown>);

/** Turns {@link IntoFuture} into a Future; throws TypeError naming anything else. */
export function intoFuture<T>(x: IntoFuture<T>): Future<T> {
  if (typeof x === "function") return gen(x);
  if (isFuture(x)) return x as Future<T>;
  throw new TypeError(`Expected a Future or a generator function, got ${describe(x)}`);
}

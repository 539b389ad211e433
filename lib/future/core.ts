/**
 * The core of the Future contract (see lib/future.ts, which re-exports everything here):
 * PENDING, Poll, Waker, Context, Future, BaseFuture (a future that is its own one-shot
 * iterator, so `yield*` costs no generator object), and the small helpers every layer
 * uses to check and name futures.
 *
 * Must never: import anything but lib/future's own modules' dependencies-free code (it is
 * the bottom of the import graph), or allocate per `yield*` step.
 * Must never import: lib/driver/**, lib/executor.ts, lib/net/**, lib/fs/**, ffi/**, bun:ffi
 */
/**
 * The value a future returns from `poll` when it cannot complete yet.
 *
 * @example
 * ```ts
 * const notYet = pollFn((cx) => (done ? 42 : (waiter = cx.waker, PENDING)));
 * ```
 */
export const PENDING: unique symbol = Symbol("reel.PENDING");

/**
 * The result of polling a future: its value, or {@link PENDING}.
 *
 * @example
 * ```ts
 * function poll(cx: Context): Poll<number> {
 *   return ready ? 42 : PENDING;
 * }
 * ```
 */
export type Poll<T> = T | typeof PENDING;

/**
 * A handle that schedules its task to be polled again.
 *
 * `wake()` only enqueues: it never polls inline, and waking a task that is already
 * scheduled does not queue it twice.
 *
 * @example
 * ```ts
 * let waker: Waker | null = null;
 * const f = pollFn((cx) => (fired ? "fired" : ((waker = cx.waker), PENDING)));
 * setTimeout(() => { fired = true; waker?.wake(); }, 10);
 * ```
 */
export interface Waker {
  wake(): void;
}

/**
 * What a future is polled with: the waker of the task that polls it.
 *
 * @example
 * ```ts
 * class Flag extends BaseFuture<void> {
 *   set = false;
 *   waker: Waker | null = null;
 *   poll(cx: Context): Poll<void> {
 *     if (this.set) return;
 *     this.waker = cx.waker; // woken by whoever sets the flag
 *     return PENDING;
 *   }
 * }
 * ```
 */
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
 *   describe() { return "once"; }
 * }
 * ```
 */
export interface Future<T> {
  poll(cx: Context): Poll<T>;
  /**
   * The drop: removes timers and waker slots. Returns nothing when the future is gone at
   * once, or a `Future<void>` for the asynchronous cleanup still to run (see the module
   * header): whoever cancels drives it.
   */
  cancel?(): Future<void> | void;
  /**
   * What the future waits on right now, for `runtime.dump()`: a leaf names its resource
   * ("read fd 7", "sleep until 1250 ms", "mpsc recv (empty)"); a combinator or the
   * generator adapter forwards to what it polls ("echo → read fd 7"). Called only when
   * someone looks, never on a hot path.
   */
  describe?(): string;
}

/**
 * Thrown when a future is polled after it has completed or been cancelled.
 *
 * @example
 * ```ts
 * const f = ready(1);
 * blockOn(f);
 * try { blockOn(f); } catch (e) { if (e instanceof FutureStateError) console.log("already done"); }
 * ```
 */
export class FutureStateError extends Error {
  override name = "FutureStateError";
}

/** The iterator result a {@link BaseFuture} yields: itself, once. */
type Step<T> = IteratorResult<Future<unknown>, T>;

/**
 * @internal Inline polling (see BaseFuture.next): while a generator adapter resumes its
 * generator from a poll, `cx` is that poll's context, so a future the generator reaches
 * with `yield*` is polled right there; a ready one never suspends the generator.
 * `pendingPolled` tells the adapter that the future it is handed was just polled and is
 * pending (its waker stored): it must not be polled again in the same step. Only the
 * generator adapter (lib/future/gen.ts) sets `cx`, saving and restoring it around each
 * resume.
 */
export const inlinePoll: { cx: Context | null; pendingPolled: boolean } = { cx: null, pendingPolled: false };

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
  /**
   * 0: not yet yielded to a gen driver; 1: yielded, awaiting the resume value; 2: its
   * value was handed to the `yield*` (consumed: see {@link BaseFuture.consumed}).
   */
  private iterState = 0;

  abstract poll(cx: Context): Poll<T>;

  cancel(): Future<void> | void {}

  /** What it waits on, for dumps (see {@link Future.describe}); optional. */
  describe?(): string;

  [Symbol.iterator](): Iterator<Future<unknown>, T, unknown> {
    return this;
  }

  // The two results are shared objects, not allocated per step: `yield*` reads `done` and
  // `value` at once, and a generator passes an inner yield result straight out to the gen
  // driver, which reads it before polling anything. Saves two objects per operation.
  //
  // Inside a generator adapter's resume (inlinePoll.cx set) the first next() polls the
  // future at once: ready, and `yield*` gets its value without the generator suspending
  // (one suspend and resume saved per operation that completes at once); pending, and
  // the future is yielded to the adapter marked as polled (it waits for its waker). An
  // error from poll is thrown at the `yield*`, as the adapter would throw it there.
  next(value?: unknown): Step<T> {
    if (this.iterState === 0) {
      const cx = inlinePoll.cx;
      if (cx !== null) {
        this.iterState = 2;
        const v = this.poll(cx);
        if (v !== PENDING) {
          YIELD_STEP.value = undefined;
          DONE_STEP.value = v;
          return DONE_STEP as Step<T>;
        }
        inlinePoll.pendingPolled = true;
      }
      this.iterState = 1;
      YIELD_STEP.value = this;
      return YIELD_STEP as Step<T>;
    }
    this.iterState = 2;
    YIELD_STEP.value = undefined; // drop the reference to the future that just finished
    DONE_STEP.value = value;
    return DONE_STEP as Step<T>;
  }

  /**
   * True once a `yield*` has taken this future's result. In `yield* rx.recv()` nobody
   * else ever held the future, so the object that made it may hand it out again
   * ({@link BaseFuture.rearm}) instead of allocating: the channels do, for their hot ops.
   */
  protected get consumed(): boolean {
    return this.iterState === 2;
  }

  /** Makes a consumed future `yield*`-able again (its subclass resets its own state). */
  protected rearm(): void {
    this.iterState = 0;
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

/**
 * True when `x` has a `poll` method: the structural test for a Future.
 *
 * @example
 * ```ts
 * isFuture(sleep(1)); // true
 * isFuture(function* () {}); // false: a generator function, see intoFuture()
 * ```
 */
export function isFuture(x: unknown): x is Future<unknown> {
  return typeof x === "object" && x !== null && typeof (x as { poll?: unknown }).poll === "function";
}

/**
 * Names a value for an error message: "null", "number", a class name ("Promise"), or "a
 * generator object …" with a hint.
 *
 * @example
 * ```ts
 * throw new TypeError(`expected a Future, got ${describeValue(x)}`);
 * ```
 */
export function describeValue(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "object") {
    const it = x as { next?: unknown; throw?: unknown; [Symbol.iterator]?: unknown };
    if (typeof it.next === "function" && typeof it.throw === "function" && typeof it[Symbol.iterator] === "function") {
      return "a generator object (pass the generator function itself, not the result of calling it)";
    }
    return (x as object).constructor?.name ?? "an object";
  }
  return typeof x;
}

/**
 * What `fut` waits on, for dumps: its `describe()`, or its class name.
 *
 * @example
 * ```ts
 * describeFuture(sleep(10)); // "sleep until 1250 ms (in 10 ms)"
 * ```
 */
export function describeFuture(fut: Future<unknown> | null | undefined): string {
  if (fut === null || fut === undefined) return "nothing";
  try {
    if (typeof fut.describe === "function") return fut.describe();
  } catch (err) {
    return `${fut.constructor?.name ?? "a future"} (describe() threw: ${String(err)})`;
  }
  return fut.constructor?.name ?? "a future";
}


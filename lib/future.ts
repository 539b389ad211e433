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
 * - `describe()` (optional) says what the future waits on, for `runtime.dump()`.
 *
 * Cleanup runs to completion (the protocol):
 *
 * - `cancel()` returns nothing when the future is gone at once, or a {@link Cleanup}: a
 *   `Future<void>` for the asynchronous cleanup that is left — a generator whose `finally`
 *   yields (`finally { yield* file.close(); }`). The generator adapter runs it deepest
 *   first: the cleanup of the future the generator was waiting on, then its `finally`
 *   blocks, driving every future they yield until the generator has finished.
 * - Whoever cancels drives the cleanup before it completes: timeout, select/race, tryJoin,
 *   withToken/withSignal, map/andThen, scope, serve and JoinHandle.abort all do, so after
 *   `yield* timeout(…)` throws TimeoutError the inner future's cleanup has finished. A
 *   combinator that is itself cancelled while it drives one returns it from its own
 *   `cancel()` (reel uses {@link cancelOf} to take a cleanup, {@link handOut} to give one).
 * - A cleanup nobody drives is never lost: one handed out and not polled by the end of the
 *   task poll (say, `fut.cancel()` called directly and its result ignored) is adopted by
 *   the executor as a task under the task that cancelled it, which waits for it.
 * - It is bounded: a cleanup still running `cleanupLimitMs` after it started (a Runtime
 *   option, default 5000 ms) is reported through `onTaskError` as RuntimeError ECLEANUP and
 *   force-ended (each `finally` left at its current `yield`, what it waits on cancelled).
 *   An error thrown by a cleanup is reported the same way; it never replaces the outcome
 *   of the combinator that cancelled (a TimeoutError stays a TimeoutError).
 *
 * This module must never import the executor or the driver: it is the contract both use
 * (it reads what is running through lib/current.ts, and arms the cleanup bound through
 * lib/task/bound.ts).
 *
 * Futures extending {@link BaseFuture} are `yield*`-able inside generator tasks (see
 * {@link gen}): the future is its own one-shot iterator, so `yield*` costs no generator
 * object per operation.
 */
import { running, type TreeNodeRef } from "./current.ts";
import { NO_BOUND, armBound, reportCleanupError, type Bound } from "./task/bound.ts";
import { RuntimeError } from "./errors.ts";

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

  cancel(): Future<void> | void {}

  /** What it waits on, for dumps (see {@link Future.describe}); optional. */
  describe?(): string;

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

/**
 * @internal Cleanups handed out by `cancel()` and not yet taken by a driver. The executor
 * checks `length` after every task poll (one load) and adopts what nobody claimed.
 */
export const unclaimed: Cleanup[] = [];

/**
 * The asynchronous cleanup a `cancel()` left (see the module header): a `Future<void>`
 * that never throws (a cleanup's error is reported, not raised), bounded by the runtime's
 * `cleanupLimitMs`, and force-ended by its own `cancel()`.
 *
 * Subclasses implement `step` (one poll of the cleanup work) and `abandon` (end at once).
 *
 * @example
 * ```ts
 * class Drain extends Cleanup {
 *   constructor(private readonly group: { empty: boolean; waker: Waker | null }) { super(); }
 *   protected step(cx: Context): Poll<void> {
 *     if (this.group.empty) return undefined;
 *     this.group.waker = cx.waker;
 *     return PENDING;
 *   }
 *   protected abandon(): void {}
 * }
 * ```
 */
export abstract class Cleanup extends BaseFuture<void> {
  /** @internal True once a driver took it (polled it, or received it from {@link cancelOf}). */
  claimed = false;
  /** @internal The tree node that was running when it was handed out: where it is adopted. */
  owner: TreeNodeRef | null = null;
  private ended = false;
  private bound: Bound | null = null;

  /** True once the cleanup has finished (done, failed and reported, or force-ended). */
  get isFinished(): boolean {
    return this.ended;
  }

  poll(cx: Context): Poll<void> {
    if (this.ended) throw new FutureStateError("cleanup future polled after completion");
    this.claimed = true;
    let b = this.bound;
    if (b === null) b = this.bound = armBound();
    else if (b.expired) {
      this.expire(b.limitMs);
      return undefined;
    }
    let r: Poll<void>;
    try {
      r = this.step(cx);
    } catch (err) {
      this.end();
      reportCleanupError(err, this.owner);
      return undefined;
    }
    if (r === PENDING) {
      if (b !== NO_BOUND) b.waker = cx.waker;
      return PENDING;
    }
    this.end();
    return undefined;
  }

  /** Force-ends the cleanup: what it waits on is cancelled, its `finally` blocks left. */
  override cancel(): void {
    if (this.ended) return;
    this.end();
    this.abandonQuietly();
  }

  /** One poll of the cleanup work; throwing ends it (the error is reported). */
  protected abstract step(cx: Context): Poll<void>;

  /** Ends at once: the limit passed, or the cleanup itself was cancelled. */
  protected abstract abandon(): void;

  private end(): void {
    this.ended = true;
    const b = this.bound;
    if (b !== null && b !== NO_BOUND) b.stop();
  }

  private expire(limitMs: number): void {
    this.end();
    const what = this.describe?.() ?? this.constructor.name;
    const id = this.owner?.taskId ?? running.node?.taskId ?? 0;
    reportCleanupError(
      new RuntimeError(`The cleanup of task ${id} ran past the ${limitMs} ms limit (cleanupLimitMs) and was force-ended: ${what}`, "ECLEANUP"),
      this.owner,
    );
    this.abandonQuietly();
  }

  private abandonQuietly(): void {
    try {
      this.abandon();
    } catch (err) {
      reportCleanupError(err, this.owner);
    }
  }
}

/**
 * Gives a cleanup to whoever called `cancel()`: marks it unclaimed (so the executor adopts
 * it if nobody drives it) and notes the running node as its owner. For `cancel()`
 * implementations; returns `c`.
 *
 * @example
 * ```ts
 * override cancel(): Cleanup | void {
 *   if (this.cleanup !== null) return handOut(this.cleanup); // I was driving it: now you do
 * }
 * ```
 */
export function handOut<C extends Cleanup>(c: C): C {
  c.claimed = false;
  c.owner = running.node;
  unclaimed.push(c);
  return c;
}

/** Drives a foreign cleanup future (one a user's `cancel()` returned) as a Cleanup. */
class ForeignCleanup extends Cleanup {
  constructor(private readonly inner: Future<void>) {
    super();
  }
  protected step(cx: Context): Poll<void> {
    return this.inner.poll(cx);
  }
  protected abandon(): void {
    forceCancel(this.inner);
  }
  override describe(): string {
    return `cleanup ${describeFuture(this.inner)}`;
  }
}

/**
 * Cancels `fut` and takes its cleanup: the claimed {@link Cleanup} to drive, or null when
 * the future is gone at once. A `cancel()` that throws is reported (onTaskError), not
 * raised. What every reel combinator uses to cancel what it abandons.
 *
 * @example
 * ```ts
 * const c = cancelOf(this.inner);
 * if (c !== null) this.cleanup = c; // poll it until done, then complete
 * ```
 */
export function cancelOf(fut: Future<unknown>): Cleanup | null {
  let c: unknown;
  try {
    c = fut.cancel?.();
  } catch (err) {
    reportCleanupError(err, running.node);
    return null;
  }
  if (c === undefined || c === null) return null;
  if (c instanceof Cleanup) {
    if (c.isFinished) return null;
    c.claimed = true;
    return c;
  }
  if (isFuture(c)) {
    const w = new ForeignCleanup(c as Future<void>);
    w.claimed = true;
    return w;
  }
  reportCleanupError(new TypeError(`cancel() of ${describeFuture(fut)} returned ${describeValue(c)}: expected nothing or a cleanup Future`), running.node);
  return null;
}

/** Several cleanups driven together (a combinator that cancelled several futures). */
class AllCleanup extends Cleanup {
  constructor(private readonly parts: Cleanup[]) {
    super();
  }
  protected step(cx: Context): Poll<void> {
    return pollCleanups(this.parts, cx) ? undefined : PENDING;
  }
  protected abandon(): void {
    for (const c of this.parts.splice(0)) c.cancel();
  }
  override describe(): string {
    return `cleanup of ${this.parts.length} futures: ${this.parts.map((c) => describeFuture(c)).join("; ")}`;
  }
}

/**
 * Polls every cleanup in `list` (they share `cx`), dropping the finished ones; true once
 * the list is empty. Cleanups never throw.
 *
 * @example
 * ```ts
 * if (!pollCleanups(this.cleanups, cx)) return PENDING;
 * ```
 */
export function pollCleanups(list: Cleanup[], cx: Context): boolean {
  let n = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!;
    if (c.isFinished || c.poll(cx) !== PENDING) continue;
    list[n++] = c;
  }
  list.length = n;
  return n === 0;
}

/**
 * One cleanup for several (claimed) ones: null for none, the one itself, or a composite
 * that drives them together. For a combinator's `cancel()`, which then hands it out.
 *
 * @example
 * ```ts
 * const all = joinCleanups(this.children.map(cancelOf).filter((c) => c !== null));
 * return all === null ? undefined : handOut(all);
 * ```
 */
export function joinCleanups(list: Cleanup[]): Cleanup | null {
  if (list.length === 0) return null;
  if (list.length === 1) return list[0]!;
  const all = new AllCleanup(list);
  all.claimed = true;
  return all;
}

/** Cancels `fut` and force-ends its cleanup, if any (the bound passed: nothing is awaited). */
function forceCancel(fut: Future<unknown>): void {
  const c = cancelOf(fut);
  if (c !== null) c.cancel();
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

/**
 * @internal The generator adapter resuming right now, if any: what `each.next()` uses to
 * find its loop (lib/stream/each.ts). Saved and restored around every resume.
 */
export const genContext: { current: GenFuture<unknown> | null } = { current: null };

const G_RUNNING = 0;
const G_DONE = 1;
const G_CANCELLED = 2; // cancelled: its cleanup (if any) is running or done

/**
 * Drives a generator that yields futures: the generator adapter behind `yield*`.
 * Made by {@link gen} (and {@link genOf}); exported for its type.
 *
 * @example
 * ```ts
 * const g = gen(function* echo() { yield* sleep(1); }) as GenFuture<void>;
 * g.name; // "echo"
 * ```
 *
 * Each step polls the future the generator is waiting on; when it is ready the generator
 * resumes with its value (or, when `poll` throws, the error is thrown at the `yield*`).
 * Cancelling cancels the awaited future, then runs the generator's `finally` blocks; if
 * either leaves asynchronous work (the awaited future's cleanup, a `yield` inside a
 * `finally`), `cancel()` returns a {@link Cleanup} that drives it to the end, deepest
 * first (the awaited future's cleanup, then the finally blocks).
 */
export class GenFuture<T> extends BaseFuture<T> {
  private current: Future<unknown> | null = null;
  private state = G_RUNNING;
  /** Cancelled: the awaited future's cleanup, driven before the finally blocks run. */
  private sub: Cleanup | null = null;
  /** Cancelled: the first step of the finally blocks, not yet driven. */
  private firstStep: IteratorResult<unknown, T> | null = null;
  /** @internal The each() loops open in this generator, innermost last (lib/stream/each.ts). */
  eachStack: unknown[] | null = null;

  constructor(
    private readonly it: Generator<unknown, T, unknown>,
    /** The generator function (for names in dumps). */
    private readonly fn: Function | null,
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.state !== G_RUNNING) throw new FutureStateError("gen() future polled after completion");
    let step: IteratorResult<unknown, T>;
    if (this.current === null) {
      step = this.resumeNext(undefined);
    } else {
      step = this.settle(cx, this.current);
      if (step === PENDING_STEP) return PENDING;
    }
    return this.drive(cx, step);
  }

  /**
   * Loops while the futures it yields are ready at once; the executor's coop budget
   * (consumed by I/O futures) bounds how long this can run without yielding.
   */
  private drive(cx: Context, first: IteratorResult<unknown, T>): Poll<T> {
    let step = first;
    for (;;) {
      if (step.done) {
        if (this.state === G_RUNNING) this.state = G_DONE;
        this.current = null;
        return step.value;
      }
      const fut = step.value;
      if (!isFuture(fut)) {
        step = this.resumeThrow(new TypeError(`gen(): yielded ${describeValue(fut)}, expected a Future (use yield* for reel futures)`));
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
    const prev = genContext.current;
    genContext.current = this as GenFuture<unknown>;
    try {
      const step = this.it.next(v);
      genContext.current = prev;
      return step;
    } catch (err) {
      genContext.current = prev;
      this.finished();
      throw err;
    }
  }

  /** Throws into the generator at its `yield*`; if it does not catch, this future fails. */
  private resumeThrow(e: unknown): IteratorResult<unknown, T> {
    const prev = genContext.current;
    genContext.current = this as GenFuture<unknown>;
    try {
      const step = this.it.throw(e);
      genContext.current = prev;
      return step;
    } catch (err) {
      genContext.current = prev;
      this.finished();
      throw err;
    }
  }

  /** Returns from the generator's current `yield`: its finally blocks run. */
  private resumeReturn(): IteratorResult<unknown, T> {
    const prev = genContext.current;
    genContext.current = this as GenFuture<unknown>;
    try {
      const step = this.it.return(undefined as T);
      genContext.current = prev;
      return step;
    } catch (err) {
      genContext.current = prev;
      this.finished();
      throw err;
    }
  }

  private finished(): void {
    if (this.state === G_RUNNING) this.state = G_DONE;
    this.current = null;
  }

  /**
   * Cancels the awaited future and runs the finally blocks. Returns a Cleanup when either
   * left asynchronous work; a `finally` that throws synchronously throws from here.
   */
  override cancel(): Cleanup | void {
    if (this.state !== G_RUNNING) return;
    this.state = G_CANCELLED;
    const cur = this.current;
    this.current = null;
    if (cur !== null) {
      const sub = cancelOf(cur);
      if (sub !== null) {
        this.sub = sub;
        return handOut(new GenCleanup(this as GenFuture<unknown>));
      }
    }
    const step = this.resumeReturn();
    if (step.done) return;
    this.firstStep = step;
    return handOut(new GenCleanup(this as GenFuture<unknown>));
  }

  /** @internal One poll of the cleanup (GenCleanup.step): sub-cleanup, then the finally blocks. */
  pollCleanup(cx: Context): Poll<void> {
    let step: IteratorResult<unknown, T>;
    if (this.sub !== null) {
      if (this.sub.poll(cx) === PENDING) return PENDING;
      this.sub = null;
      step = this.resumeReturn();
    } else if (this.firstStep !== null) {
      step = this.firstStep;
      this.firstStep = null;
    } else if (this.current !== null) {
      step = this.settle(cx, this.current);
      if (step === PENDING_STEP) return PENDING;
    } else return undefined;
    return this.drive(cx, step) === PENDING ? PENDING : undefined;
  }

  /** @internal Force-ends the cleanup: cancels what it waits on, leaves every finally block. */
  abandonCleanup(): void {
    const sub = this.sub;
    const cur = this.current;
    this.sub = null;
    this.current = null;
    this.firstStep = null;
    sub?.cancel();
    if (cur !== null) forceCancel(cur);
    // Each return() leaves the finally the generator is suspended in; nested ones may yield
    // again. Bounded: a generator still yielding after this many is reported and dropped.
    for (let i = 0; i < 64; i++) {
      const step = this.resumeReturn();
      if (step.done) return;
      if (isFuture(step.value)) forceCancel(step.value);
    }
    throw new RuntimeError(`gen(): ${this.name} kept yielding from finally blocks after its cleanup was force-ended`, "ECLEANUP");
  }

  /** The generator function's name (for dumps), or "gen". */
  get name(): string {
    return (this.fn as { name?: string } | null)?.name || "gen";
  }

  override describe(): string {
    if (this.state === G_RUNNING) return this.current === null ? this.name : `${this.name} → ${describeFuture(this.current)}`;
    if (this.sub !== null) return `${this.name} (cancelled) → ${describeFuture(this.sub)}`;
    if (this.current !== null) return `${this.name} (cancelled, in finally) → ${describeFuture(this.current)}`;
    return `${this.name} (finished)`;
  }
}

/** The cleanup of a cancelled generator: see {@link GenFuture}. */
class GenCleanup extends Cleanup {
  constructor(private readonly g: GenFuture<unknown>) {
    super();
  }
  protected step(cx: Context): Poll<void> {
    return this.g.pollCleanup(cx);
  }
  protected abandon(): void {
    this.g.abandonCleanup();
  }
  override describe(): string {
    return `cleanup of ${this.g.describe()}`;
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
  if (typeof fn !== "function") throw new TypeError(`gen() expects a generator function, got ${describeValue(fn)}`);
  return genOf(fn(), fn);
}

/**
 * @internal The adapter for a generator already made (`it`) by `fn` (for its name): scope()
 * and serve() call their body with arguments. Throws TypeError when `it` is no generator.
 *
 * @example
 * ```ts
 * const fut = genOf(body(scopeHandle), body);
 * ```
 */
export function genOf<T>(it: Generator<unknown, T, unknown>, fn: Function | null): GenFuture<T> {
  if (typeof it !== "object" || it === null || typeof (it as { next?: unknown }).next !== "function") {
    throw new TypeError(`gen() expects a generator function (function*), but the function returned ${describeValue(it)}`);
  }
  return new GenFuture(it, fn);
}

/** Anything a task can be made from: a Future, or a generator function run by {@link gen}. */
export type IntoFuture<T> = Future<T> | (() => Generator<unknown, T, unknown>);

/**
 * Turns {@link IntoFuture} into a Future; throws TypeError naming anything else (and the
 * call, `what`, when given: "timeout(): Expected a Future or a generator function, got
 * a generator object …").
 *
 * @example
 * ```ts
 * const f = intoFuture(arg, "timeout()");
 * ```
 */
export function intoFuture<T>(x: IntoFuture<T>, what?: string): Future<T> {
  if (typeof x === "function") return gen(x);
  if (isFuture(x)) return x as Future<T>;
  throw new TypeError(`${what === undefined ? "" : `${what}: `}Expected a Future or a generator function, got ${describeValue(x)}`);
}

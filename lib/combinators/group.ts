/**
 * Polling several futures inside one task: join, joinAll, tryJoin, tryJoinAll, select, race.
 *
 * One engine ({@link Group}) serves them all. Each child future gets its own Context whose
 * waker ({@link Child}) records "child i may progress" in a ready list and wakes the task
 * that polls the group. A group poll then polls only the children that were woken (as
 * FuturesUnordered does), so a join of n futures costs O(woken) per poll, not O(n), and
 * nothing is allocated per poll: the Child objects and two index arrays are made once.
 * Ready lists are swapped before a batch is polled, so a child that wakes itself while
 * being polled (a yield) is polled on the *next* group poll, not in a loop.
 *
 * Modes:
 * - join / joinAll: every future runs to completion; none is cancelled. If any failed, the
 *   group throws after all have settled: that error, or an AggregateError when several did.
 * - tryJoin / tryJoinAll: the first failure cancels every unfinished future and is thrown.
 * - select / race: the first future to complete (value or error) wins; every other one is
 *   cancelled before the result is returned. Ties go to the one woken first (on the first
 *   poll: the first argument).
 *
 * Cancel safety: cancelling a group cancels every unfinished child, so each combinator is
 * exactly as cancel-safe as its children. select/race losers are cancelled, so use
 * cancel-safe futures (recv, accept, read, sleep, lock…) as branches you intend to retry.
 *
 * Cleanup (future.ts): the children it cancels may leave asynchronous cleanup (a generator
 * whose `finally` yields). The group drives all of it, together, before it returns the
 * winner or throws the failure; cancelled itself, it hands what is left to its canceller.
 *
 * Arguments: each future may be a Future or a generator function (as spawn takes);
 * anything else is a TypeError naming the combinator and what it got.
 *
 * Must never: poll a finished or cancelled child, poll a child without its own Context,
 * or return before the losers/rest have been cancelled and their cleanup has finished.
 */
import {
  BaseFuture,
  FutureStateError,
  PENDING,
  cancelOf,
  describeFuture,
  handOut,
  intoFuture,
  joinCleanups,
  pollCleanups,
  type Cleanup,
  type Context,
  type Future,
  type IntoFuture,
  type Poll,
  type Waker,
} from "../future.ts";

const JOIN = 0;
const TRY_JOIN = 1;
const SELECT = 2;
const RACE = 3;
const NAMES = ["join()", "tryJoin()", "select()", "race()"];

/**
 * The value type of a Future or of a generator function.
 *
 * @example
 * ```ts
 * const f = sleep(5); // Future<void>
 * type V = Output<typeof f>; // void
 * ```
 */
export type Output<F> = F extends Future<infer V> ? V : F extends () => Generator<unknown, infer V, unknown> ? V : never;

/**
 * The tuple of values `join(...futs)` produces.
 *
 * @example
 * ```ts
 * const both = join(sleep(1), ready(7)); // Future<JoinOutputs<[Sleep, Future<number>]>>
 * const [, seven] = blockOn(both); // [undefined, 7]
 * ```
 */
export type JoinOutputs<T extends readonly unknown[]> = { -readonly [K in keyof T]: Output<T[K]> };

/**
 * What `select(...futs)` produces: which future won (its argument index) and its value.
 *
 * @example
 * ```ts
 * const s = blockOn(select(ready(1), sleep(10))); // Selected<[…]>[number]
 * if (s.index === 0) console.log(s.value + 1); // the index narrows the value's type
 * ```
 */
export type Selected<T extends readonly unknown[]> = {
  [K in keyof T]: { readonly index: K extends `${infer N extends number}` ? N : number; readonly value: Output<T[K]> };
}[number];

function checkIterable<T>(x: Iterable<T>, what: string): Iterable<T> {
  if (x === null || x === undefined || typeof (x as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== "function") {
    throw new TypeError(`${what} expects an iterable of Futures or generator functions, got ${x === null ? "null" : typeof x}`);
  }
  return x;
}

/** A child's waker and context: queues the child in the group's ready list. */
class Child implements Waker, Context {
  readonly waker: Waker = this;
  queued = true;
  constructor(
    private readonly group: Group<unknown>,
    readonly index: number,
  ) {}

  wake(): void {
    if (this.queued) return;
    this.queued = true;
    this.group.schedule(this.index);
  }
}

/** The engine behind every combinator in this module. See the module header. */
class Group<R> extends BaseFuture<R> {
  private readonly futs: (Future<unknown> | null)[];
  private readonly children: Child[];
  private readonly results: unknown[];
  private ready: Int32Array;
  private spare: Int32Array;
  private readyLen: number;
  private remaining: number;
  private parent: Waker | null = null;
  private finished = false;
  private errors: unknown[] | null = null;
  /** Decided: the cleanups of the children it cancelled, driven before the outcome is delivered. */
  private cleanups: Cleanup[] | null = null;
  private outcome: unknown = undefined;
  private outcomeIsError = false;
  private delivered = false;

  constructor(
    futs: IntoFuture<unknown>[],
    private readonly mode: number,
    what: string = NAMES[mode]!,
  ) {
    super();
    const n = futs.length;
    this.futs = futs.map((f, i) => intoFuture(f, `${what} argument ${i}`));
    this.children = [];
    this.results = new Array<unknown>(n);
    this.ready = new Int32Array(n);
    this.spare = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      this.children.push(new Child(this as Group<unknown>, i));
      this.ready[i] = i;
    }
    this.readyLen = n;
    this.remaining = n;
  }

  /** A child was woken: queue it and wake whoever polls the group. */
  schedule(index: number): void {
    if (this.finished) return;
    this.ready[this.readyLen++] = index;
    this.parent?.wake();
  }

  poll(cx: Context): Poll<R> {
    if (this.cleanups !== null) return this.pollCleanup(cx);
    if (this.finished) throw new FutureStateError("join/select future polled after completion");
    this.parent = cx.waker;
    // Swap lists: children woken while this batch runs go to the next poll.
    const batch = this.ready;
    const n = this.readyLen;
    this.ready = this.spare;
    this.spare = batch;
    this.readyLen = 0;
    for (let i = 0; i < n; i++) {
      const idx = batch[i]!;
      const out = this.step(idx);
      if (out !== PENDING) return out;
      if (this.cleanups !== null) return this.pollCleanup(cx);
    }
    if (this.remaining === 0) return this.complete();
    return PENDING;
  }

  /** Polls child `idx`; returns the group's result when it is decided by this child. */
  private step(idx: number): Poll<R> {
    const child = this.children[idx]!;
    child.queued = false;
    const fut = this.futs[idx];
    if (fut === null || fut === undefined) return PENDING;
    let v: unknown;
    try {
      v = fut.poll(child);
    } catch (err) {
      this.futs[idx] = null;
      if (this.mode === JOIN) {
        (this.errors ??= []).push(err);
        this.remaining--;
        return PENDING;
      }
      if (this.finish()) throw err;
      this.keep(err, true);
      return PENDING;
    }
    if (v === PENDING) return PENDING;
    this.futs[idx] = null;
    if (this.mode === SELECT || this.mode === RACE) {
      const out = (this.mode === RACE ? v : { index: idx, value: v }) as R;
      if (this.finish()) return out;
      this.keep(out, false);
      return PENDING;
    }
    this.results[idx] = v;
    this.remaining--;
    return PENDING;
  }

  /** Every child settled (join modes): the results, or the failure(s). */
  private complete(): R {
    this.finished = true;
    this.parent = null;
    const errs = this.errors;
    if (errs !== null) {
      this.errors = null;
      if (errs.length === 1) throw errs[0];
      throw new AggregateError(errs, `${errs.length} of ${this.futs.length} joined futures failed`);
    }
    return this.results as R;
  }

  /**
   * Decided early (a winner or a failure): cancels every unfinished child. True when
   * none left cleanup; otherwise `cleanups` holds it and the outcome waits for it.
   */
  private finish(): boolean {
    this.finished = true;
    this.parent = null;
    const futs = this.futs;
    let left: Cleanup[] | null = null;
    for (let i = 0; i < futs.length; i++) {
      const f = futs[i];
      if (f === null || f === undefined) continue;
      futs[i] = null;
      const c = cancelOf(f);
      if (c !== null) (left ??= []).push(c);
    }
    this.cleanups = left;
    return left === null;
  }

  /** Holds the decided outcome until the cleanups are done. */
  private keep(outcome: unknown, isError: boolean): void {
    this.outcome = outcome;
    this.outcomeIsError = isError;
  }

  /** Drives the losers' cleanups; then delivers the outcome. */
  private pollCleanup(cx: Context): Poll<R> {
    if (this.delivered) throw new FutureStateError("join/select future polled after completion");
    if (!pollCleanups(this.cleanups!, cx)) return PENDING;
    this.cleanups = null;
    this.delivered = true;
    const out = this.outcome;
    this.outcome = undefined;
    if (this.outcomeIsError) throw out;
    return out as R;
  }

  /** Cancels every unfinished child; their cleanup (or the losers' still running) goes to the caller. */
  override cancel(): Cleanup | void {
    if (this.cleanups !== null) {
      const left = joinCleanups(this.cleanups);
      this.cleanups = null;
      this.delivered = true;
      this.outcome = undefined;
      return left === null ? undefined : handOut(left);
    }
    if (this.finished) return;
    this.finished = true;
    this.parent = null;
    const futs = this.futs;
    const left: Cleanup[] = [];
    for (let i = 0; i < futs.length; i++) {
      const f = futs[i];
      if (f === null || f === undefined) continue;
      futs[i] = null;
      const c = cancelOf(f);
      if (c !== null) left.push(c);
    }
    const all = joinCleanups(left);
    return all === null ? undefined : handOut(all);
  }

  override describe(): string {
    const name = NAMES[this.mode]!.slice(0, -2);
    if (this.cleanups !== null) return `${name}: decided, cleaning up the rest → ${this.cleanups.map((c) => describeFuture(c)).join("; ")}`;
    const live: string[] = [];
    this.futs.forEach((f, i) => {
      if (f !== null) live.push(`[${i}] ${describeFuture(f)}`);
    });
    return `${name}(${this.futs.length}): ${live.join(" | ")}`;
  }
}

/**
 * Runs futures concurrently in this task and returns all their values as a typed tuple.
 * Every future runs to completion (none is cancelled because another failed); if any
 * failed, the join throws after all have settled — the error, or an AggregateError.
 *
 * @example
 * ```ts
 * import { join, sleep } from "reel";
 * const [a, b] = yield* join(fetchUser(id), function* () { yield* sleep(5); return 2; });
 * ```
 */
export function join<T extends readonly IntoFuture<unknown>[]>(...futs: T): BaseFuture<JoinOutputs<T>> {
  return new Group<JoinOutputs<T>>([...futs], JOIN);
}

/**
 * {@link join} for an array (or any iterable) of futures of one type.
 *
 * @example
 * ```ts
 * import { joinAll, spawn } from "reel";
 * const handles = urls.map((u) => spawn(download(u)));
 * const bodies = yield* joinAll(handles);
 * ```
 */
export function joinAll<T>(futs: Iterable<IntoFuture<T>>): BaseFuture<T[]> {
  return new Group<T[]>([...checkIterable(futs, "joinAll()")], JOIN, "joinAll()");
}

/**
 * Like {@link join}, but fails fast: the first future to throw cancels all unfinished ones
 * and its error is thrown.
 *
 * @example
 * ```ts
 * import { tryJoin } from "reel";
 * const [cfg, db] = yield* tryJoin(loadConfig(), connectDb()); // one fails → the other is cancelled
 * ```
 */
export function tryJoin<T extends readonly IntoFuture<unknown>[]>(...futs: T): BaseFuture<JoinOutputs<T>> {
  return new Group<JoinOutputs<T>>([...futs], TRY_JOIN);
}

/**
 * {@link tryJoin} for an iterable of futures of one type.
 *
 * @example
 * ```ts
 * const parts = yield* tryJoinAll(chunks.map((c) => upload(c)));
 * ```
 */
export function tryJoinAll<T>(futs: Iterable<IntoFuture<T>>): BaseFuture<T[]> {
  return new Group<T[]>([...checkIterable(futs, "tryJoinAll()")], TRY_JOIN, "tryJoinAll()");
}

/**
 * Waits for the first of `futs` to complete: `{ index, value }` of the winner, typed per
 * argument. Every other future is cancelled first. If the first to finish threw, that
 * error is thrown (the rest are cancelled too).
 *
 * @example
 * ```ts
 * import { select, sleep } from "reel";
 * const r = yield* select(rx.recv(), sleep(1000));
 * if (r.index === 0) handle(r.value); else console.log("idle for 1 s");
 * ```
 */
export function select<T extends readonly IntoFuture<unknown>[]>(...futs: T): BaseFuture<Selected<T>> {
  if (futs.length === 0) throw new TypeError("select() needs at least one future");
  return new Group<Selected<T>>([...futs], SELECT);
}

/**
 * Like {@link select} but returns just the winner's value (as Promise.race); the losers
 * are cancelled.
 *
 * @example
 * ```ts
 * import { race } from "reel";
 * const first = yield* race(primary.read(buf), replica.read(buf2));
 * ```
 */
export function race<T extends readonly IntoFuture<unknown>[]>(...futs: T): BaseFuture<Output<T[number]>> {
  if (futs.length === 0) throw new TypeError("race() needs at least one future");
  return new Group<Output<T[number]>>([...futs], RACE);
}

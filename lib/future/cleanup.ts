/**
 * The cleanup protocol (see lib/future.ts's header): `cancel()` may return a Cleanup, a
 * future for the asynchronous cleanup still to run; whoever cancels drives it (taking it
 * with {@link cancelOf}), or gives it on from its own `cancel()` ({@link handOut}); one
 * nobody takes stays in {@link unclaimed} until the executor adopts it as a task. A Cleanup
 * never throws (its errors are reported), arms the runtime's cleanup bound on its first
 * poll, and is force-ended by its own `cancel()`.
 *
 * Must never: lose a cleanup (unclaimed until driven or adopted), let a cleanup's error
 * replace its canceller's outcome, or import the executor.
 * Must never import: lib/driver/**, lib/executor.ts, lib/net/**, lib/fs/**, ffi/**, bun:ffi
 */
import { running, type TreeNodeRef } from "../current.ts";
import { NO_BOUND, armBound, reportCleanupError, type Bound } from "../task/bound.ts";
import { RuntimeError } from "../errors.ts";
import { BaseFuture, FutureStateError, PENDING, describeFuture, describeValue, isFuture, type Context, type Future, type Poll } from "./core.ts";

/**
 * @internal Cleanups handed out by `cancel()` and not yet taken by a driver. The executor
 * checks `length` when a task's poll completes, when it cancels a task's future, and at
 * the start of every batch (one load each), and adopts what nobody claimed.
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
/** @internal Cancels `fut` and force-ends its cleanup, if any. */
export function forceCancel(fut: Future<unknown>): void {
  const c = cancelOf(fut);
  if (c !== null) c.cancel();
}


/**
 * JoinSet: a set of spawned tasks whose results are collected as they finish (tokio's
 * `JoinSet`).
 *
 * Each task's JoinHandle is registered with a per-entry waker ({@link Entry}); when the
 * task completes, its entry goes on the ready queue and the parked `joinNext()` futures are
 * woken. `joinNext()` takes finished entries in completion order. Entries live in an
 * intrusive list (O(1) removal); nothing is allocated per poll.
 *
 * Results: `joinNext()` returns the next task's value, throws its {@link JoinError} (failed
 * or cancelled task — tokio's `Err(JoinError)`), or returns `null` when the set is empty.
 * The tasks are "observed": a failure is delivered through `joinNext()`, not printed.
 *
 * Lifetime: JS has no Drop, so "abort all on drop" is `close()` / `[Symbol.dispose]`
 * (`using set = new JoinSet()`): every task is aborted and the set forgets them.
 * `abortAll()` aborts but keeps them, so `joinNext()` then reports each as cancelled;
 * `shutdown()` aborts and waits for all of them to finish.
 *
 * Cancel safety: `joinNext()` is cancel-safe: a finished task stays in the set until a
 * joinNext() completes with it.
 *
 * Must never: lose a finished task's result, or keep an entry after it was joined.
 */
import { FutureStateError, PENDING, type Context, type IntoFuture, type Poll, type Waker } from "../future.ts";
import { spawn, type SpawnOptions } from "../executor.ts";
import type { JoinHandle } from "../task/task.ts";
import { proceed } from "../task/coop.ts";
import { Queue } from "../task/queue.ts";
import { WaitList, Waiter } from "../sync/waitlist.ts";

const NONE_READY: unique symbol = Symbol("reel.JoinSet.NONE_READY");

/** One task in a set: its handle, its links, and the waker its handle wakes. */
class Entry<T> implements Waker, Context {
  readonly waker: Waker = this;
  set: JoinSet<T> | null;
  prev: Entry<T> | null = null;
  next: Entry<T> | null = null;
  queued = false;
  constructor(
    set: JoinSet<T>,
    readonly handle: JoinHandle<T>,
  ) {
    this.set = set;
  }

  /** The task finished: queue this entry and wake the joinNext() waiters. */
  wake(): void {
    const s = this.set;
    if (s === null || this.queued) return;
    this.queued = true;
    s.ready.push(this);
    s.waiters.wakeAll();
  }
}

/**
 * A handle that can abort one task of a {@link JoinSet} (its result still comes through
 * `joinNext()`).
 *
 * @example
 * ```ts
 * const h = set.spawn(work());
 * h.abort();
 * ```
 */
export class AbortHandle {
  constructor(private readonly handle: JoinHandle<unknown>) {}
  /** The task's id. */
  get id(): number {
    return this.handle.id;
  }
  /** True once the task completed, failed or was aborted. */
  get isFinished(): boolean {
    return this.handle.isFinished;
  }
  /** Aborts the task; joinNext() will report it as a cancelled JoinError. */
  abort(): void {
    this.handle.abort();
  }
}

/**
 * A set of tasks; results come out in the order the tasks finish.
 *
 * @example
 * ```ts
 * import { JoinSet, blockOn } from "reel";
 * blockOn(function* () {
 *   using set = new JoinSet<number>();   // tasks still running at scope exit are aborted
 *   for (const n of [30, 10, 20]) set.spawn(function* () { yield* sleep(n); return n; });
 *   const order = [];
 *   for (let v; (v = yield* set.joinNext()) !== null; ) order.push(v); // [10, 20, 30]
 * });
 * ```
 */
export class JoinSet<T> implements Disposable {
  private head: Entry<T> | null = null;
  private count = 0;
  /** @internal Entries whose task finished (or that were woken), oldest first. */
  readonly ready = new Queue<Entry<T>>();
  /** @internal Parked joinNext()/shutdown() futures. */
  readonly waiters = new WaitList<Waiter<unknown>>();

  /** Tasks in the set: running, or finished and not yet joined. */
  get size(): number {
    return this.count;
  }

  get isEmpty(): boolean {
    return this.count === 0;
  }

  /** Number of parked joinNext() futures (for tests and diagnostics). */
  get waiterCount(): number {
    return this.waiters.length;
  }

  /** Spawns `fut` on the current runtime as a member of this set (a child of the spawning task). */
  spawn(fut: IntoFuture<T>, opts?: SpawnOptions): AbortHandle {
    const handle = spawn(fut, opts);
    const e = new Entry(this, handle);
    e.next = this.head;
    if (this.head !== null) this.head.prev = e;
    this.head = e;
    this.count++;
    // Registers `e` as the handle's waker (the task has not run yet: always PENDING).
    handle.poll(e);
    return new AbortHandle(handle as JoinHandle<unknown>);
  }

  /**
   * The next task to finish: its value, its JoinError thrown, or null when the set is
   * empty (use `size` to tell a null result apart). Cancel-safe.
   */
  joinNext(): JoinNext<T> {
    return new JoinNext(this);
  }

  /** Aborts every task; they stay in the set and joinNext() reports them as cancelled. */
  abortAll(): void {
    for (let e = this.head; e !== null; e = e.next) e.handle.abort();
  }

  /** Forgets every task without aborting it: they keep running, detached. */
  detachAll(): void {
    for (let e = this.head; e !== null; ) {
      const next = e.next;
      e.set = null;
      e.prev = e.next = null;
      e.handle.cancel();
      e = next;
    }
    this.head = null;
    this.count = 0;
    this.ready.clear();
    this.waiters.wakeAll();
  }

  /** Aborts every task and forgets them: the set is empty afterwards. */
  close(): void {
    this.abortAll();
    this.detachAll();
  }

  /** `using set = new JoinSet()`: closes the set at scope exit (tokio's abort on drop). */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Aborts every task and waits until all have finished; their results are dropped. */
  shutdown(): Shutdown<T> {
    this.abortAll();
    return new Shutdown(this);
  }

  /**
   * @internal One attempt: the next finished task's value (or its JoinError thrown),
   * null when the set is empty, NONE_READY when every task is still running.
   */
  step(): T | null | typeof NONE_READY {
    const q = this.ready;
    while (q.length > 0) {
      const e = q.shift()!;
      e.queued = false;
      if (e.set !== this) continue;
      if (!e.handle.isFinished) {
        e.handle.poll(e); // a spurious wake: re-register
        continue;
      }
      this.unlink(e);
      return e.handle.poll(e) as T;
    }
    return this.count === 0 ? null : NONE_READY;
  }

  private unlink(e: Entry<T>): void {
    if (e.prev !== null) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next !== null) e.next.prev = e.prev;
    e.prev = e.next = null;
    e.set = null;
    this.count--;
  }
}

/**
 * What joinNext() and shutdown() share: parking in the set's waiter list, and leaving it
 * on completion or cancel.
 */
abstract class SetWaiter<T, R> extends Waiter<R> {
  protected done = false;
  constructor(protected readonly set: JoinSet<T>) {
    super();
  }

  /** Stores the waker and joins the set's waiter list (once). */
  protected park(cx: Context): typeof PENDING {
    this.waker = cx.waker;
    if (this.wList === null) this.set.waiters.push(this);
    return PENDING;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.waker = null;
    this.set.waiters.remove(this);
  }
}

/**
 * The future of {@link JoinSet.joinNext}.
 *
 * @example
 * ```ts
 * const v = yield* set.joinNext(); // null when the set is empty
 * ```
 */
export class JoinNext<T> extends SetWaiter<T, T | null> {
  override describe(): string {
    return `JoinSet joinNext (${this.set.size} task(s))`;
  }

  poll(cx: Context): Poll<T | null> {
    if (this.done) throw new FutureStateError("joinNext() future polled after completion");
    if (!proceed(cx)) return PENDING;
    let r: T | null | typeof NONE_READY;
    try {
      r = this.set.step();
    } catch (err) {
      this.cancel();
      throw err;
    }
    if (r !== NONE_READY) {
      this.cancel();
      return r;
    }
    return this.park(cx);
  }
}

/**
 * The future of {@link JoinSet.shutdown}: joins everything, dropping results.
 *
 * @example
 * ```ts
 * yield* set.shutdown();
 * ```
 */
export class Shutdown<T> extends SetWaiter<T, void> {
  override describe(): string {
    return `JoinSet shutdown (${this.set.size} task(s) to finish)`;
  }

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("shutdown() future polled after completion");
    for (;;) {
      let r: T | null | typeof NONE_READY;
      try {
        r = this.set.step();
      } catch {
        continue; // a failed or cancelled task: dropped, as tokio's shutdown does
      }
      if (r === null) {
        this.cancel();
        return undefined;
      }
      if (r === NONE_READY) break;
    }
    return this.park(cx);
  }
}

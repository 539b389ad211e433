/**
 * A fair (FIFO) counting semaphore — and the permit engine Mutex, RwLock and the bounded
 * mpsc channel are built on (as tokio's batch_semaphore).
 *
 * How permits move:
 * - acquire(n) takes `n` at once if nobody is queued and `n` are free; otherwise it parks
 *   at the back of the wait list. No barging: a newcomer never overtakes a queued waiter,
 *   even when enough permits are free for it (they are being saved for the head).
 * - release(n) adds permits, then *assigns* them from the head of the list while the head's
 *   whole request fits: the waiter is unlinked, marked `granted` (it now owns its permits)
 *   and woken. Its next poll just completes.
 * - A waiter cancelled while queued unlinks in O(1); if it was blocking the head, the next
 *   waiters are re-checked. A waiter cancelled after being granted but before its poll
 *   completed gives its permits back through release(), which passes them on: no permit is
 *   ever lost to cancellation.
 * - close() wakes every waiter; those not yet granted fail with AcquireError.
 *
 * Acquiring consumes the task's coop budget (as tokio's), so a lock/unlock loop yields.
 *
 * Cancel safety: `acquire()` is cancel-safe in tokio's sense — cancelling it never leaks or
 * consumes permits — but the waiter loses its place in the queue.
 *
 * Invariants: `permits` counts only free, unassigned permits; every granted waiter either
 * completes (ownership moves to its SemaphorePermit/guard) or returns its permits on cancel.
 *
 * Must never: wake a waiter while the list is being modified, or let a waiter that is not
 * at the head take permits.
 */
import { FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { proceed } from "../task/coop.ts";
import { AcquireError, checkCount } from "./errors.ts";
import { WaitList, Waiter, wakeWaiter } from "./waitlist.ts";

/**
 * The most permits a semaphore can hold (2^30 − 1).
 *
 * @example
 * ```ts
 * const unlimited = new Semaphore(MAX_PERMITS);
 * ```
 */
export const MAX_PERMITS = 0x3fff_ffff;

/**
 * A waiter that wants `needed` permits; `granted` once they were assigned to it. The base
 * of every future the semaphore queues (acquire, lock, a bounded channel's send).
 *
 * @example
 * ```ts
 * class Take extends PermitWaiter<void> {
 *   constructor(private readonly sem: Semaphore) { super(1); }
 *   poll(cx: Context): Poll<void> { return this.sem.pollAcquire(this, cx) ? undefined : PENDING; }
 *   override cancel(): void { this.sem.dropWaiter(this); }
 * }
 * ```
 */
export abstract class PermitWaiter<T> extends Waiter<T> {
  /** Set by the semaphore when the permits were assigned to this waiter. */
  granted = false;
  constructor(readonly needed: number) {
    super();
  }
}

/**
 * A counting semaphore with fair FIFO hand-off.
 *
 * @example
 * ```ts
 * import { Semaphore, blockOn, spawn } from "reel";
 * const limit = new Semaphore(10); // at most 10 requests in flight
 * blockOn(function* () {
 *   using permit = yield* limit.acquire();
 *   yield* doRequest();
 * }); // the permit is released when `permit` goes out of scope
 * ```
 */
export class Semaphore {
  private permits: number;
  private closed = false;
  private readonly waiters = new WaitList<PermitWaiter<unknown>>();

  constructor(permits: number) {
    this.permits = checkCount(permits, "Semaphore permits", 0, MAX_PERMITS);
  }

  /** Free permits right now (permits assigned to a waiter are not counted). */
  get availablePermits(): number {
    return this.permits;
  }

  /** Number of parked acquire() futures (for tests and diagnostics). */
  get waiterCount(): number {
    return this.waiters.length;
  }

  /** True once close() was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Waits for `n` permits (default 1), in FIFO order with the other waiters.
   * Throws AcquireError if the semaphore is closed first. Cancel-safe (no permit is lost),
   * but a cancelled waiter gives up its place in the queue.
   */
  acquire(n = 1): Acquire {
    return new Acquire(this, checkCount(n, "acquire() permit count", 0, MAX_PERMITS));
  }

  /**
   * Takes `n` permits now if they are free and nobody is queued ahead; otherwise null.
   * Throws AcquireError when closed.
   */
  tryAcquire(n = 1): SemaphorePermit | null {
    checkCount(n, "tryAcquire() permit count", 0, MAX_PERMITS);
    if (this.closed) throw new AcquireError();
    return this.tryTake(n) ? new SemaphorePermit(this, n) : null;
  }

  /** Adds `n` permits (handing them to queued waiters first). */
  addPermits(n: number): void {
    checkCount(n, "addPermits() count", 0, MAX_PERMITS - this.permits);
    this.release(n);
  }

  /** Closes the semaphore: every waiter not yet granted fails with AcquireError. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiters.wakeAll();
  }

  /** @internal Takes `n` free permits if nobody is queued (no barging). */
  tryTake(n: number): boolean {
    if (this.waiters.length !== 0 || this.permits < n) return false;
    this.permits -= n;
    return true;
  }

  /**
   * @internal The acquire step of a waiter's poll: true once it owns its permits (the
   * caller then completes), false after parking with `cx.waker` stored.
   */
  pollAcquire(w: PermitWaiter<unknown>, cx: Context): boolean {
    if (w.granted) return true;
    if (w.wList === null) {
      if (this.closed) throw new AcquireError();
      if (this.tryTake(w.needed)) {
        w.granted = true;
        return true;
      }
      this.waiters.push(w);
    }
    w.waker = cx.waker;
    return false;
  }

  /**
   * @internal A waiter was cancelled before completing: unlink it, or give back the
   * permits it had been granted (which passes them on to the next waiters).
   */
  dropWaiter(w: PermitWaiter<unknown>): void {
    w.waker = null;
    if (this.waiters.remove(w)) {
      // It may have been the head holding back smaller requests behind it.
      this.assign();
    } else if (w.granted) {
      w.granted = false;
      this.release(w.needed);
    }
  }

  /** @internal Returns `n` permits and assigns them to waiters from the head. */
  release(n: number): void {
    this.permits += n;
    this.assign();
  }

  private assign(): void {
    const q = this.waiters;
    let h = q.first;
    while (h !== null && this.permits >= h.needed) {
      this.permits -= h.needed;
      q.remove(h);
      h.granted = true;
      wakeWaiter(h);
      h = q.first;
    }
  }
}

/**
 * The base of every future that waits for permits: poll = acquire, then `output()`.
 * Cancelling it never loses a permit (see {@link Semaphore.dropWaiter}).
 *
 * @example
 * ```ts
 * class Lock<T> extends AcquireBase<MutexGuard<T>> {
 *   constructor(private readonly m: Mutex<T>) { super(m.sem, 1); }
 *   protected output() { return new MutexGuard(this.m); }
 * }
 * ```
 */
export abstract class AcquireBase<T> extends PermitWaiter<T> {
  private done = false;
  constructor(
    protected readonly sem: Semaphore,
    needed: number,
  ) {
    super(needed);
  }

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError(`${this.constructor.name} future polled after completion`);
    if (!proceed(cx) || !this.sem.pollAcquire(this, cx)) return PENDING;
    this.done = true;
    return this.output();
  }

  /** Builds the result once the permits are owned (a permit, a guard). */
  protected abstract output(): T;

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.sem.dropWaiter(this);
  }

  /** "Mutex lock", "RwLock write", "Semaphore acquire(2)" … with the queue length. */
  protected what(): string {
    return `Semaphore acquire(${this.needed})`;
  }

  override describe(): string {
    return `${this.what()} (${this.granted ? "granted" : `${this.sem.waiterCount} waiting, ${this.sem.availablePermits} free`})`;
  }
}

/**
 * The future of {@link Semaphore.acquire}: resolves to a {@link SemaphorePermit}.
 *
 * @example
 * ```ts
 * const permit = yield* sem.acquire(2);
 * ```
 */
export class Acquire extends AcquireBase<SemaphorePermit> {
  protected output(): SemaphorePermit {
    return new SemaphorePermit(this.sem, this.needed);
  }
}

/**
 * Permits held from a {@link Semaphore}. `release()` (or leaving a `using` scope) gives
 * them back; `forget()` drops them for good.
 *
 * @example
 * ```ts
 * const p = yield* sem.acquire(3);
 * try { work(); } finally { p.release(); }
 * ```
 */
export class SemaphorePermit implements Disposable {
  private sem: Semaphore | null;
  constructor(
    sem: Semaphore,
    /** How many permits this holds. */
    readonly permits: number,
  ) {
    this.sem = sem;
  }

  /** True once released or forgotten. */
  get isReleased(): boolean {
    return this.sem === null;
  }

  /** Returns the permits to the semaphore (waking waiters). Idempotent. */
  release(): void {
    const s = this.sem;
    if (s === null) return;
    this.sem = null;
    s.release(this.permits);
  }

  /** Drops the permits without returning them: the semaphore shrinks by `permits`. */
  forget(): void {
    this.sem = null;
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

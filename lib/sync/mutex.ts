/**
 * An async Mutex holding a value: a Semaphore of one permit plus the value, as tokio's
 * `Mutex<T>`. Waiters are served in FIFO order (no barging); the guard gives the value
 * and releases on `release()` or at the end of a `using` scope.
 *
 * Why an async mutex in a single-threaded runtime: to keep a value consistent across
 * `yield*` points (a multi-step update of shared state that awaits I/O in between).
 *
 * Cancel safety: `lock()` is cancel-safe — a lock future cancelled while waiting leaves the
 * queue in O(1); one cancelled after the lock was handed to it passes the lock on to the
 * next waiter. It does lose its place in the queue.
 *
 * Must never: hand out two guards at once, or let a guard touch the value after release.
 */
import { RuntimeError } from "../errors.ts";
import { AcquireBase, Semaphore } from "./semaphore.ts";

/**
 * A FIFO async mutex around a value of type `T`.
 *
 * @example
 * ```ts
 * import { Mutex, blockOn, spawn } from "reel";
 * const counter = new Mutex(0);
 * blockOn(function* () {
 *   using g = yield* counter.lock();
 *   g.value = g.value + 1; // no other task holds the lock until `g` is released
 * });
 * ```
 */
export class Mutex<T> {
  /** @internal */
  readonly sem = new Semaphore(1);
  /** @internal The protected value; reach it through a guard. */
  data: T;

  constructor(value: T) {
    this.data = value;
  }

  /** Waits for the lock; FIFO among waiters. Cancel-safe (see the module header). */
  lock(): AcquireBase<MutexGuard<T>> {
    return new Lock(this);
  }

  /** Takes the lock now if it is free and nobody is queued; otherwise null. */
  tryLock(): MutexGuard<T> | null {
    return this.sem.tryTake(1) ? new MutexGuard(this) : null;
  }

  /** True while a guard is held (or the lock was handed to a waiter not yet polled). */
  get isLocked(): boolean {
    return this.sem.availablePermits === 0;
  }

  /** Number of parked lock() futures (for tests and diagnostics). */
  get waiterCount(): number {
    return this.sem.waiterCount;
  }
}

class Lock<T> extends AcquireBase<MutexGuard<T>> {
  constructor(private readonly mutex: Mutex<T>) {
    super(mutex.sem, 1);
  }
  protected output(): MutexGuard<T> {
    return new MutexGuard(this.mutex);
  }
  protected override what(): string {
    return "Mutex lock";
  }
}

/**
 * Proof of holding a {@link Mutex}: read and write `value`, then `release()` (or let
 * `using` do it). Using it after release throws RuntimeError (code "ERELEASED").
 *
 * @example
 * ```ts
 * const g = yield* m.lock();
 * try { g.value.push(item); } finally { g.release(); }
 * ```
 */
export class MutexGuard<T> implements Disposable {
  private mutex: Mutex<T> | null;
  constructor(mutex: Mutex<T>) {
    this.mutex = mutex;
  }

  /** The protected value. */
  get value(): T {
    return this.held().data;
  }

  set value(v: T) {
    this.held().data = v;
  }

  /** True once released. */
  get isReleased(): boolean {
    return this.mutex === null;
  }

  /** Unlocks (handing the lock to the next waiter). Idempotent. */
  release(): void {
    const m = this.mutex;
    if (m === null) return;
    this.mutex = null;
    m.sem.release(1);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  private held(): Mutex<T> {
    if (this.mutex === null) throw new RuntimeError("MutexGuard used after release()", "ERELEASED");
    return this.mutex;
  }
}

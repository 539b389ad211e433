/**
 * An async reader-writer lock holding a value, as tokio's `RwLock<T>`: a Semaphore of
 * MAX_READERS permits where a reader takes one and a writer takes all of them.
 *
 * Fairness follows from the semaphore's FIFO: once a writer is queued, readers arriving
 * after it wait behind it (no writer starvation), and the readers queued behind a writer
 * are let in together when it releases.
 *
 * Cancel safety: `read()` and `write()` are cancel-safe — a cancelled waiter leaves the
 * queue in O(1), and one cancelled after being granted passes the permits on. It loses its
 * place in the queue.
 *
 * Must never: let a writer hold the lock alongside anyone else, or let a guard touch the
 * value after release.
 */
import { RuntimeError } from "../errors.ts";
import { AcquireBase, MAX_PERMITS, Semaphore } from "./semaphore.ts";

/**
 * How many readers may hold the lock at once.
 *
 * @example
 * ```ts
 * lock.readers <= MAX_READERS; // always
 * ```
 */
export const MAX_READERS = MAX_PERMITS;

/**
 * A fair async reader-writer lock around a value of type `T`.
 *
 * @example
 * ```ts
 * import { RwLock } from "reel";
 * const config = new RwLock({ port: 80 });
 * // many tasks at once:
 * { using r = yield* config.read(); use(r.value.port); }
 * // exclusive:
 * { using w = yield* config.write(); w.value = { port: 8080 }; }
 * ```
 */
export class RwLock<T> {
  /** @internal */
  readonly sem = new Semaphore(MAX_READERS);
  /** @internal The protected value; reach it through a guard. */
  data: T;

  constructor(value: T) {
    this.data = value;
  }

  /** Waits for shared access (behind any queued writer). Cancel-safe. */
  read(): AcquireBase<RwLockReadGuard<T>> {
    return new ReadLock(this);
  }

  /** Waits for exclusive access. Cancel-safe. */
  write(): AcquireBase<RwLockWriteGuard<T>> {
    return new WriteLock(this);
  }

  /** Shared access now if no writer holds or waits for the lock; otherwise null. */
  tryRead(): RwLockReadGuard<T> | null {
    return this.sem.tryTake(1) ? new RwLockReadGuard(this) : null;
  }

  /** Exclusive access now if the lock is free and nobody waits; otherwise null. */
  tryWrite(): RwLockWriteGuard<T> | null {
    return this.sem.tryTake(MAX_READERS) ? new RwLockWriteGuard(this) : null;
  }

  /** Readers holding the lock now (0 when free or write-locked). */
  get readers(): number {
    const free = this.sem.availablePermits;
    return free === 0 ? 0 : MAX_READERS - free;
  }

  /** True while a writer holds the lock (or it was handed to a writer not yet polled). */
  get isWriteLocked(): boolean {
    return this.sem.availablePermits === 0;
  }

  /** Number of parked read()/write() futures (for tests and diagnostics). */
  get waiterCount(): number {
    return this.sem.waiterCount;
  }
}

class ReadLock<T> extends AcquireBase<RwLockReadGuard<T>> {
  constructor(private readonly lock: RwLock<T>) {
    super(lock.sem, 1);
  }
  protected output(): RwLockReadGuard<T> {
    return new RwLockReadGuard(this.lock);
  }
  protected override what(): string {
    return "RwLock read";
  }
}

class WriteLock<T> extends AcquireBase<RwLockWriteGuard<T>> {
  constructor(private readonly lock: RwLock<T>) {
    super(lock.sem, MAX_READERS);
  }
  protected output(): RwLockWriteGuard<T> {
    return new RwLockWriteGuard(this.lock);
  }
  protected override what(): string {
    return "RwLock write";
  }
}

/** Shared base of the two guards: holds the lock until released. */
abstract class RwGuard<T> implements Disposable {
  private lock: RwLock<T> | null;
  constructor(
    lock: RwLock<T>,
    private readonly permits: number,
  ) {
    this.lock = lock;
  }

  /** True once released. */
  get isReleased(): boolean {
    return this.lock === null;
  }

  /** Gives the access back (waking the next waiters). Idempotent. */
  release(): void {
    const l = this.lock;
    if (l === null) return;
    this.lock = null;
    l.sem.release(this.permits);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  protected held(): RwLock<T> {
    if (this.lock === null) throw new RuntimeError(`${this.constructor.name} used after release()`, "ERELEASED");
    return this.lock;
  }
}

/**
 * Shared access to an {@link RwLock}'s value (read-only).
 *
 * @example
 * ```ts
 * using r = yield* lock.read();
 * console.log(r.value);
 * ```
 */
export class RwLockReadGuard<T> extends RwGuard<T> {
  constructor(lock: RwLock<T>) {
    super(lock, 1);
  }
  /** The protected value. */
  get value(): T {
    return this.held().data;
  }
}

/**
 * Exclusive access to an {@link RwLock}'s value.
 *
 * @example
 * ```ts
 * using w = yield* lock.write();
 * w.value = next;
 * ```
 */
export class RwLockWriteGuard<T> extends RwGuard<T> {
  constructor(lock: RwLock<T>) {
    super(lock, MAX_READERS);
  }
  /** The protected value. */
  get value(): T {
    return this.held().data;
  }
  set value(v: T) {
    this.held().data = v;
  }
}

/**
 * Notify: wake one task or all of them, without data (tokio's `Notify`).
 *
 * - `notifyOne()` hands a notification to the oldest waiting `notified()` future; with
 *   nobody waiting it stores a single permit that the next `notified()` consumes at once
 *   (permits do not accumulate).
 * - `notifyWaiters()` completes every `notified()` future created before the call — polled
 *   yet or not — and stores no permit. A future records the notifyWaiters epoch it was
 *   created in; a later epoch means it was notified.
 *
 * Cancel safety: `notified()` is cancel-safe. A future cancelled while queued leaves the
 * list in O(1); one cancelled after `notifyOne()` chose it but before it completed passes
 * the notification on (to the next waiter, or back as the permit), so none is lost.
 *
 * Must never: drop a notifyOne() notification, or wake more than one waiter for it.
 */
import { FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { WaitList, Waiter, wakeWaiter } from "./waitlist.ts";

/**
 * A notification primitive: one task waits with `notified()`, another calls `notifyOne()`.
 *
 * @example
 * ```ts
 * import { Notify, blockOn, spawn } from "reel";
 * const ready = new Notify();
 * blockOn(function* () {
 *   const h = spawn(function* () { yield* ready.notified(); return "woken"; });
 *   ready.notifyOne();
 *   return yield* h; // "woken"
 * });
 * ```
 */
export class Notify {
  private permit = false;
  /** @internal Bumped by every notifyWaiters(). */
  epoch = 0;
  /** @internal */
  readonly waiters = new WaitList<Notified>();

  /**
   * A future that completes on the next notifyOne() aimed at it, on a stored permit, or on
   * any notifyWaiters() called after this call. Cancel-safe.
   */
  notified(): Notified {
    return new Notified(this);
  }

  /** Wakes the oldest waiter, or stores one permit when nobody waits. */
  notifyOne(): void {
    const w = this.waiters.shift();
    if (w === null) {
      this.permit = true;
      return;
    }
    w.notified = true;
    wakeWaiter(w);
  }

  /** Completes every notified() future created before this call; stores no permit. */
  notifyWaiters(): void {
    this.epoch++;
    this.waiters.wakeAll();
  }

  /** Number of parked notified() futures (for tests and diagnostics). */
  get waiterCount(): number {
    return this.waiters.length;
  }

  /** @internal Consumes the stored permit, if any. */
  takePermit(): boolean {
    if (!this.permit) return false;
    this.permit = false;
    return true;
  }
}

/**
 * The future of {@link Notify.notified}.
 *
 * @example
 * ```ts
 * const woken = notify.notified(); // counts for notifyWaiters() from now on
 * yield* woken;
 * ```
 */
export class Notified extends Waiter<void> {
  /** @internal Set by notifyOne() when it chose this waiter. */
  notified = false;
  private done = false;
  private readonly epoch: number;

  constructor(private readonly notify: Notify) {
    super();
    this.epoch = notify.epoch;
  }

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("notified() future polled after completion");
    const n = this.notify;
    if (this.notified || n.epoch !== this.epoch || (this.wList === null && n.takePermit())) {
      n.waiters.remove(this);
      this.notified = false;
      this.done = true;
      return undefined;
    }
    this.waker = cx.waker;
    if (this.wList === null) n.waiters.push(this);
    return PENDING;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.waker = null;
    if (this.notify.waiters.remove(this)) return;
    // Chosen by notifyOne() but never completed: pass the notification on.
    if (this.notified) {
      this.notified = false;
      this.notify.notifyOne();
    }
  }

  override describe(): string {
    return `Notify notified (${this.notify.waiterCount} waiting)`;
  }
}

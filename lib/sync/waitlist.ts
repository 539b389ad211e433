/**
 * Intrusive FIFO wait lists: the queue of parked futures every sync primitive keeps.
 *
 * A waiting future *is* its own list node ({@link Waiter} carries the links), so parking
 * allocates nothing and a cancelled waiter unlinks itself in O(1) — no scan, no dangling
 * entry. The list never wakes anyone by itself except through {@link WaitList.wakeAll};
 * the primitives decide who to wake and hand over what (a permit, a notification).
 *
 * Invariants:
 * - A node is in at most one list; `wList` names it (null = not linked). `wPrev`/`wNext`
 *   are null whenever `wList` is null.
 * - `length` counts the linked nodes exactly (tests read it as the waiter count).
 * - A node is unlinked *before* its waker is called, so a waker that (indirectly) touches
 *   the list never sees a half-removed node.
 *
 * Must never: wake a waker while a node is half-linked, allocate per push/remove, or keep
 * a reference to an unlinked node.
 *
 * Single-threaded: no atomics. The discipline is tokio's (a waiter list under a lock), minus
 * the lock.
 */
import { BaseFuture, type Waker } from "../future.ts";

/**
 * A future that can park itself in a {@link WaitList}. Subclasses store `cx.waker` in
 * `waker` before returning PENDING and unlink themselves in `cancel()`.
 *
 * @example
 * ```ts
 * class Wait extends Waiter<void> {
 *   constructor(private readonly q: WaitList<Wait>, private flag: { set: boolean }) { super(); }
 *   poll(cx: Context): Poll<void> {
 *     if (this.flag.set) { this.q.remove(this); return undefined; }
 *     this.waker = cx.waker;
 *     if (this.wList === null) this.q.push(this);
 *     return PENDING;
 *   }
 *   override cancel(): void { this.q.remove(this); }
 * }
 * ```
 */
export abstract class Waiter<T> extends BaseFuture<T> {
  /** @internal Previous node in `wList`, or null. */
  wPrev: Waiter<unknown> | null = null;
  /** @internal Next node in `wList`, or null. */
  wNext: Waiter<unknown> | null = null;
  /** @internal The list this node is linked in, or null. */
  wList: WaitList<Waiter<unknown>> | null = null;
  /** The waker to call when this waiter may make progress; set by `poll`. */
  waker: Waker | null = null;

  /** True while this waiter is parked in a list. */
  get isQueued(): boolean {
    return this.wList !== null;
  }
}

/**
 * A doubly-linked FIFO of {@link Waiter}s with O(1) push, shift and remove.
 *
 * @example
 * ```ts
 * const q = new WaitList<Wait>();
 * q.push(w);       // park
 * q.remove(w);     // cancelled: O(1), returns true if it was linked here
 * q.wakeAll();     // unlink everyone, then call their wakers
 * q.length;        // 0
 * ```
 */
export class WaitList<N extends Waiter<unknown>> {
  private head: N | null = null;
  private tail: N | null = null;
  private count = 0;

  /** Number of linked waiters. */
  get length(): number {
    return this.count;
  }

  /** The oldest waiter, or null. */
  get first(): N | null {
    return this.head;
  }

  /** Appends `n`; it must not be linked anywhere. */
  push(n: N): void {
    if (n.wList !== null) throw new Error("WaitList.push: the waiter is already queued");
    n.wList = this as unknown as WaitList<Waiter<unknown>>;
    n.wPrev = this.tail;
    n.wNext = null;
    if (this.tail === null) this.head = n;
    else this.tail.wNext = n;
    this.tail = n;
    this.count++;
  }

  /** Unlinks `n` if it is in this list; returns whether it was. O(1). */
  remove(n: N): boolean {
    if (n.wList !== (this as unknown as WaitList<Waiter<unknown>>)) return false;
    const p = n.wPrev as N | null;
    const x = n.wNext as N | null;
    if (p === null) this.head = x;
    else p.wNext = x;
    if (x === null) this.tail = p;
    else x.wPrev = p;
    n.wPrev = null;
    n.wNext = null;
    n.wList = null;
    this.count--;
    return true;
  }

  /** Unlinks and returns the oldest waiter, or null. */
  shift(): N | null {
    const n = this.head;
    if (n !== null) this.remove(n);
    return n;
  }

  /**
   * Unlinks every waiter, then wakes each (the waker is taken out of the node first).
   * Returns how many were woken. Waiters that re-park while this runs are not woken again.
   */
  wakeAll(): number {
    let n = this.head;
    if (n === null) return 0;
    // Detach the whole chain first, so the list is consistent before any waker runs.
    this.head = null;
    this.tail = null;
    const woken = this.count;
    this.count = 0;
    while (n !== null) {
      const next = n.wNext as N | null;
      n.wPrev = null;
      n.wNext = null;
      n.wList = null;
      const w = n.waker;
      n.waker = null;
      w?.wake();
      n = next;
    }
    return woken;
  }
}

/**
 * Takes `w.waker` out of a waiter and wakes it (a no-op when none is stored). The waiter
 * must already be unlinked.
 *
 * @example
 * ```ts
 * const w = list.shift();
 * if (w !== null) { w.granted = true; wakeWaiter(w); }
 * ```
 */
export function wakeWaiter(w: Waiter<unknown>): void {
  const waker = w.waker;
  w.waker = null;
  waker?.wake();
}

/**
 * A growable FIFO ring buffer, the one queue of the runtime: the executor's run queue of
 * tasks, the message store of the mpsc channels and JoinSet's ready queue.
 *
 * Invariants: capacity is a power of two; `head` indexes the oldest item, `length` items
 * follow it (wrapping); slots outside that range hold `undefined` so the GC can free what
 * was taken out.
 *
 * Must never: shrink while items are queued, keep a reference to a shifted item, or
 * allocate per push or shift (only when it grows).
 */

/**
 * A FIFO queue backed by a power-of-two ring; push/shift are O(1) amortised.
 *
 * @example
 * ```ts
 * const q = new Queue<string>();
 * q.push("a"); q.push("b");
 * q.shift(); // "a"
 * q.length;  // 1
 * ```
 */
export class Queue<T> {
  protected buf: (T | undefined)[];
  protected head = 0;
  private len = 0;
  protected mask: number;

  /** @param initial a capacity hint; rounded up to a power of two (≥ 4). */
  constructor(initial = 16) {
    let cap = 4;
    while (cap < initial && cap < 1 << 30) cap <<= 1;
    this.buf = new Array<T | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
  }

  /** Number of queued items. */
  get length(): number {
    return this.len;
  }

  /** Appends `v`. */
  push(v: T): void {
    if (this.len > this.mask) this.grow();
    this.buf[(this.head + this.len) & this.mask] = v;
    this.len++;
  }

  /** Removes and returns the oldest item; `undefined` when empty (check `length` first). */
  shift(): T | undefined {
    if (this.len === 0) return undefined;
    const i = this.head;
    const v = this.buf[i];
    this.buf[i] = undefined;
    this.head = (i + 1) & this.mask;
    this.len--;
    return v;
  }

  /** The oldest item without removing it; `undefined` when empty. */
  peek(): T | undefined {
    return this.len === 0 ? undefined : this.buf[this.head];
  }

  /** Drops every item. */
  clear(): void {
    this.buf.fill(undefined);
    this.head = 0;
    this.len = 0;
  }

  private grow(): void {
    const old = this.buf;
    const n = old.length;
    const next = new Array<T | undefined>(n * 2).fill(undefined);
    for (let i = 0; i < n; i++) next[i] = old[(this.head + i) & this.mask];
    this.buf = next;
    this.head = 0;
    this.mask = n * 2 - 1;
  }
}

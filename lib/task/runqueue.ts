/**
 * The executor's run queue: a FIFO ring of tasks that grows by doubling and never shrinks
 * (a task is in it at most once: its SCHEDULED bit).
 *
 * Must never: allocate per push or shift (only when it grows), or hold a task it handed out.
 */
import type { Task } from "./task.ts";

/**
 * A FIFO ring of tasks.
 *
 * @example
 * ```ts
 * const q = new RunQueue();
 * q.push(task);
 * const next = q.shift(); // task
 * ```
 */
export class RunQueue {
  private buf: (Task<unknown> | undefined)[] = new Array(256);
  private head = 0;
  private tail = 0;
  private mask = 255;

  get length(): number {
    return (this.tail - this.head) & this.mask;
  }

  push(t: Task<unknown>): void {
    this.buf[this.tail] = t;
    this.tail = (this.tail + 1) & this.mask;
    if (this.tail === this.head) this.grow();
  }

  shift(): Task<unknown> | undefined {
    if (this.head === this.tail) return undefined;
    const t = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    return t;
  }

  private grow(): void {
    const old = this.buf;
    const n = old.length;
    // The queue was full (tail caught up with head): unroll it from head into a buffer twice the size.
    const next: (Task<unknown> | undefined)[] = new Array(n * 2);
    for (let i = 0; i < n; i++) next[i] = old[(this.head + i) & this.mask];
    this.buf = next;
    this.head = 0;
    this.tail = n;
    this.mask = n * 2 - 1;
  }
}


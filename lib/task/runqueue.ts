/**
 * The executor's run queue: a FIFO ring of tasks that grows by doubling and never shrinks
 * (a task is in it at most once: its SCHEDULED bit). Under the simulator the executor
 * uses {@link SeededRunQueue} instead, whose `shift()` takes a task chosen by a seeded
 * policy rather than the oldest; the FIFO class is untouched by it, so the real backends'
 * executor keeps its monomorphic, branch-free path.
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
  protected buf: (Task<unknown> | undefined)[] = new Array(256);
  protected head = 0;
  private tail = 0;
  protected mask = 255;

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


/**
 * How a {@link SeededRunQueue} chooses: `pick(n)` gives the index (0 = the oldest) of the
 * next task among `n` queued; `picked(task)` sees every choice (the simulator traces it).
 *
 * @example
 * ```ts
 * const fifo: SchedulePolicy = { pick: () => 0, picked: () => {} };
 * ```
 */
export interface SchedulePolicy {
  pick(n: number): number;
  picked(task: Task<unknown>): void;
}

/**
 * A run queue whose next task is chosen by a policy (the simulator's seeded pick): the
 * chosen task is swapped to the head, then taken as FIFO takes it.
 *
 * @example
 * ```ts
 * const q = new SeededRunQueue({ pick: (n) => rng.below(n), picked: (t) => trace.poll(t.id) });
 * ```
 */
export class SeededRunQueue extends RunQueue {
  constructor(private readonly policy: SchedulePolicy) {
    super();
  }

  override shift(): Task<unknown> | undefined {
    const n = this.length;
    if (n === 0) return undefined;
    const i = n === 1 ? 0 : this.policy.pick(n);
    if (i !== 0) {
      const b = this.buf;
      const a = this.head;
      const c = (a + i) & this.mask;
      const t = b[a];
      b[a] = b[c];
      b[c] = t;
    }
    const t = super.shift()!;
    this.policy.picked(t);
    return t;
  }
}

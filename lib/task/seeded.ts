/**
 * The simulator's run queue: the executor's FIFO {@link Queue} whose `shift()` takes a
 * task chosen by a seeded policy rather than the oldest. The plain Queue is untouched by
 * it, so the real backends' executor keeps its monomorphic, branch-free path.
 *
 * Must never: change which tasks are queued (only their order), or allocate per shift.
 * Must never import: lib/driver/**, lib/sim/**
 */
import type { Task } from "./task.ts";
import { Queue } from "./queue.ts";

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
export class SeededRunQueue extends Queue<Task<unknown>> {
  constructor(private readonly policy: SchedulePolicy) {
    super(256);
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

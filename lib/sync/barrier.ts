/**
 * Barrier: `n` tasks wait until all `n` have arrived, then all continue (tokio's
 * `Barrier`). The last to arrive is the leader. The barrier then resets for the next
 * generation.
 *
 * A waiter arrives on its first poll (not when `wait()` is called) and parks. When the
 * count reaches `n`, every parked waiter of this generation is unlinked, marked released
 * and woken, and the arriving one returns as leader at once.
 *
 * Cancel safety: `wait()` is cancel-safe here (stricter than tokio's): a waiter cancelled
 * before its generation trips leaves the list in O(1) and un-counts its arrival, as if it
 * never came. One cancelled after the trip already counted and changes nothing.
 *
 * Must never: release a generation with fewer than `n` live arrivals, or leave a released
 * waiter in the list.
 */
import { FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { checkCount } from "./errors.ts";
import { WaitList, Waiter, wakeWaiter } from "./waitlist.ts";

/**
 * What {@link Barrier.wait} returns: `isLeader` is true for exactly one waiter per
 * generation (the last to arrive).
 *
 * @example
 * ```ts
 * if ((yield* barrier.wait()).isLeader) console.log("all arrived");
 * ```
 */
export class BarrierWaitResult {
  constructor(readonly isLeader: boolean) {}
}

const LEADER = new BarrierWaitResult(true);
const FOLLOWER = new BarrierWaitResult(false);

/**
 * A reusable barrier for `n` tasks.
 *
 * @example
 * ```ts
 * import { Barrier, blockOn, joinAll, spawn } from "reel";
 * const b = new Barrier(3);
 * blockOn(function* () {
 *   const hs = [1, 2, 3].map(() => spawn(function* () { return (yield* b.wait()).isLeader; }));
 *   const leaders = (yield* joinAll(hs)).filter(Boolean).length; // 1
 * });
 * ```
 */
export class Barrier {
  /** @internal Arrivals in the current generation. */
  arrived = 0;
  /** @internal Completed generations. */
  generation = 0;
  /** @internal */
  readonly waiters = new WaitList<BarrierWait>();
  /** How many tasks each generation waits for (0 behaves as 1). */
  readonly n: number;

  constructor(n: number) {
    this.n = checkCount(n, "Barrier size", 0, 0x7fff_ffff);
  }

  /** Arrives (on first poll) and waits for the rest of the generation. Cancel-safe. */
  wait(): BarrierWait {
    return new BarrierWait(this);
  }

  /** Number of parked waiters (for tests and diagnostics). */
  get waiterCount(): number {
    return this.waiters.length;
  }

  /** @internal The n-th arrival: release everyone parked, start the next generation. */
  trip(): void {
    this.arrived = 0;
    this.generation++;
    const q = this.waiters;
    for (let w = q.shift(); w !== null; w = q.shift()) {
      w.released = true;
      wakeWaiter(w);
    }
  }
}

/**
 * The future of {@link Barrier.wait}.
 *
 * @example
 * ```ts
 * const { isLeader } = yield* barrier.wait();
 * ```
 */
export class BarrierWait extends Waiter<BarrierWaitResult> {
  /** @internal Set when this waiter's generation tripped. */
  released = false;
  private arrived = false;
  private done = false;

  constructor(private readonly barrier: Barrier) {
    super();
  }

  poll(cx: Context): Poll<BarrierWaitResult> {
    if (this.done) throw new FutureStateError("Barrier wait() future polled after completion");
    if (this.released) {
      this.done = true;
      return FOLLOWER;
    }
    const b = this.barrier;
    if (!this.arrived) {
      this.arrived = true;
      if (++b.arrived >= b.n) {
        b.trip();
        this.done = true;
        return LEADER;
      }
      b.waiters.push(this);
    }
    this.waker = cx.waker;
    return PENDING;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.waker = null;
    // Still parked: the generation has not tripped, so take the arrival back.
    if (this.barrier.waiters.remove(this)) this.barrier.arrived--;
  }

  override describe(): string {
    return `Barrier wait (${this.barrier.arrived} of ${this.barrier.n} arrived)`;
  }
}

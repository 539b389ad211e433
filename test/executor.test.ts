// The executor and tasks: wake dedup, task states, abort, failure isolation, fairness,
// re-entrancy and deadlock detection.
import { afterAll, describe, expect, test } from "bun:test";
import {
  BaseFuture,
  JoinError,
  PENDING,
  POLLS_PER_TICK,
  Runtime,
  RuntimeError,
  blockOn,
  gen,
  pollFn,
  sleep,
  spawn,
  yieldNow,
  type Context,
  type Poll,
  type Waker,
} from "../lib/index.ts";
import { ABORTED, COMPLETE, RUNNING, SCHEDULED, Task } from "../lib/task/task.ts";
import { BUDGET, budgetLeft, proceed } from "../lib/task/coop.ts";

/** A future that stays pending, handing out its waker, and records cancel(). */
class Parked extends BaseFuture<number> {
  waker: Waker | null = null;
  polls = 0;
  cancelled = false;
  value: number | null = null;
  poll(cx: Context): Poll<number> {
    this.polls++;
    if (this.value !== null) return this.value;
    this.waker = cx.waker;
    return PENDING;
  }
  override cancel(): void {
    this.cancelled = true;
  }
}

/** A scheduler for tasks driven by hand: every hook a no-op. */
const quietScheduler = { enqueue() {}, unobserved() {}, settled() {}, sweep() {}, addRoot() {}, removeRoot() {} };

describe("executor", () => {
  const rt = new Runtime();
  afterAll(() => rt.close());

  test("many wakes of a scheduled task queue it once (the SCHEDULED bit)", () => {
    const p = new Parked();
    rt.blockOn(function* () {
      const h = spawn(p);
      yield* yieldNow(); // let it run once and park
      expect(p.polls).toBe(1);
      for (let i = 0; i < 100; i++) p.waker!.wake();
      expect(rt.queued).toBe(1);
      yield* yieldNow();
      expect(p.polls).toBe(2);
      p.value = 9;
      p.waker!.wake();
      expect(yield* h).toBe(9);
    });
  });

  test("task state bits move SCHEDULED → RUNNING → COMPLETE", () => {
    const seen: number[] = [];
    const sched = { ...quietScheduler };
    let task!: Task<number>;
    task = new Task<number>(
      pollFn(() => {
        seen.push(task.state);
        return 1;
      }),
      sched,
    );
    task.state = SCHEDULED;
    task.run();
    expect(seen[0]! & RUNNING).toBe(RUNNING);
    expect(seen[0]! & SCHEDULED).toBe(0);
    expect(task.state & COMPLETE).toBe(COMPLETE);
    expect(task.value).toBe(1);
  });

  test("a wake while RUNNING re-queues the task after its poll returns", () => {
    const queued: unknown[] = [];
    const sched = { ...quietScheduler, enqueue: (t: unknown) => void queued.push(t) };
    const task = new Task<number>(
      pollFn((cx) => {
        cx.waker.wake(); // self-wake during poll: must not enqueue inline
        expect(queued.length).toBe(0);
        return PENDING;
      }),
      sched,
    );
    task.state = SCHEDULED;
    task.run();
    expect(queued).toEqual([task]);
  });

  test("abort() cancels the task's future and fails the handle with a cancelled JoinError", () => {
    const p = new Parked();
    const err = rt.blockOn(function* () {
      const h = spawn(p);
      yield* yieldNow();
      h.abort();
      try {
        yield* h;
      } catch (e) {
        return e;
      }
    });
    expect(p.cancelled).toBe(true);
    expect(err).toBeInstanceOf(JoinError);
    expect((err as JoinError).isCancelled()).toBe(true);
  });

  test("abort() from inside the task takes effect when its poll returns", () => {
    const out = rt.blockOn(function* () {
      let self: { abort(): void } | null = null;
      const h = spawn(function* () {
        self!.abort();
        yield* yieldNow();
        return "not reached";
      });
      self = h;
      try {
        return yield* h;
      } catch (e) {
        return (e as JoinError).isCancelled() ? "cancelled" : "other";
      }
    });
    expect(out).toBe("cancelled");
  });

  test("abort() after completion keeps the result", () => {
    const v = rt.blockOn(function* () {
      const h = spawn(function* () {
        return 3;
      });
      yield* yieldNow();
      yield* yieldNow();
      expect(h.isFinished).toBe(true);
      h.abort();
      return yield* h;
    });
    expect(v).toBe(3);
  });

  test("a task that throws fails its JoinHandle, not the runtime", () => {
    const out = rt.blockOn(function* () {
      const bad = spawn(function* () {
        yield* yieldNow();
        throw new Error("task blew up");
      });
      const good = spawn(function* () {
        yield* yieldNow();
        yield* yieldNow();
        return "still running";
      });
      let failure: JoinError | null = null;
      try {
        yield* bad;
      } catch (e) {
        failure = e as JoinError;
      }
      return { failure, good: yield* good };
    });
    expect(out.failure).toBeInstanceOf(JoinError);
    expect(out.failure!.isFailed()).toBe(true);
    expect((out.failure!.cause as Error).message).toBe("task blew up");
    expect(out.good).toBe("still running");
  });

  test("a failed task nobody awaits is reported, not lost", () => {
    const reported: [unknown, number][] = [];
    const own = new Runtime({ onTaskError: (e, id) => reported.push([e, id]) });
    try {
      own.blockOn(function* () {
        spawn(function* () {
          throw new Error("unobserved");
        });
        yield* yieldNow();
        yield* yieldNow();
      });
    } finally {
      own.close();
    }
    expect(reported.length).toBe(1);
    expect((reported[0]![0] as Error).message).toBe("unobserved");
  });

  test("the coop budget makes an always-ready task yield to others", () => {
    // A task that loops on an always-ready resource must still let another task run.
    const order: string[] = [];
    rt.blockOn(function* () {
      const spinner = spawn(
        pollFn<void>((cx) => {
          // Each "I/O op" consumes budget; the task only yields when the budget says so.
          for (let i = 0; i < 10 * BUDGET; i++) {
            if (!proceed(cx)) {
              order.push("spinner-yield");
              return PENDING;
            }
          }
          order.push("spinner-done");
          return undefined;
        }),
      );
      const other = spawn(function* () {
        order.push("other");
      });
      yield* other;
      spinner.abort();
    });
    expect(order.indexOf("other")).toBeGreaterThan(-1);
    expect(order.indexOf("other")).toBeLessThan(order.indexOf("spinner-done") === -1 ? Infinity : order.indexOf("spinner-done"));
    expect(order[0]).toBe("spinner-yield");
  });

  test("the budget is reset for each task poll", () => {
    rt.blockOn(
      pollFn<void>(() => {
        expect(budgetLeft()).toBe(BUDGET);
        return undefined;
      }),
    );
  });

  test("the driver is turned at least every POLLS_PER_TICK polls (no starvation of timers)", () => {
    // Busy tasks that always re-wake themselves: a timer must still fire.
    const fired = rt.blockOn(function* () {
      const busy = [];
      for (let i = 0; i < 4; i++) {
        busy.push(
          spawn(
            pollFn<void>((cx) => {
              cx.waker.wake();
              return PENDING;
            }),
          ),
        );
      }
      yield* sleep(5);
      for (const b of busy) b.abort();
      return true;
    });
    expect(fired).toBe(true);
    expect(POLLS_PER_TICK).toBe(61);
  });

  test("yieldNow() runs other queued tasks first", () => {
    const order: number[] = [];
    rt.blockOn(function* () {
      const h = spawn(function* () {
        order.push(2);
      });
      order.push(1);
      yield* yieldNow();
      order.push(3);
      yield* h;
    });
    expect(order).toEqual([1, 2, 3]);
  });

  test("blockOn inside blockOn throws a RuntimeError", () => {
    const err = rt.blockOn(function* () {
      try {
        blockOn(function* () {});
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe("EREENTRANT");
  });

  test("spawn outside a runtime throws a RuntimeError", () => {
    expect(() => spawn(function* () {})).toThrow(RuntimeError);
  });

  test("a future nothing can wake is reported as a deadlock, not a hang", () => {
    let err: unknown;
    try {
      rt.blockOn(new Parked());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe("EDEADLK");
  });

  test("a Promise resolved through microtasks settles inside blockOn", () => {
    let settled = false;
    Promise.resolve().then(() => {
      settled = true;
    });
    rt.blockOn(function* () {
      yield* yieldNow();
    });
    expect(settled).toBe(true);
  });

  test("spawning after close() throws", () => {
    const own = new Runtime();
    own.close();
    expect(() => own.spawn(function* () {})).toThrow(RuntimeError);
    expect(() => own.blockOn(function* () {})).toThrow(RuntimeError);
  });

  test("ABORTED is set by abort", () => {
    const t = new Task(new Parked(), quietScheduler);
    t.abort();
    expect(t.state & ABORTED).toBe(ABORTED);
    expect(t.error?.isCancelled()).toBe(true);
  });

  test("gen tasks run side by side with 1000 spawned tasks", () => {
    const sum = rt.blockOn(
      gen(function* () {
        const hs = [];
        for (let i = 0; i < 1000; i++) {
          hs.push(
            spawn(function* () {
              yield* yieldNow();
              return i;
            }),
          );
        }
        let s = 0;
        for (const h of hs) s += yield* h;
        return s;
      }),
    );
    expect(sum).toBe((999 * 1000) / 2);
  });
});

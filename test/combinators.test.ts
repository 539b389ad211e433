/**
 * Tests for lib/combinators: join, joinAll, tryJoin, select, race, JoinSet.
 *
 * Cancellation is checked two ways: with Gate futures that record being cancelled, and
 * with real sleeps and socket reads whose timer-wheel entries and driver wakers must be
 * gone afterwards (those suites run on every backend through forEachBackend).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { BaseFuture, FutureStateError, PENDING, ready, type Context, type IntoFuture, type Poll, type Waker } from "../lib/future.ts";
import { Runtime, spawn, yieldNow } from "../lib/executor.ts";
import { JoinError } from "../lib/task/task.ts";
import { sleep } from "../lib/time/sleep.ts";
import { TcpListener, TcpStream } from "../lib/net/tcp.ts";
import { JoinSet, join, joinAll, race, select, tryJoin, tryJoinAll } from "../lib/combinators/index.ts";
import { oneshot } from "../lib/sync/index.ts";
import { forEachBackend } from "./helpers.ts";

const taskErrors: unknown[] = [];
const rt = new Runtime({ onTaskError: (e) => taskErrors.push(e) });
afterAll(() => rt.close());
const run = <T>(f: IntoFuture<T>): T => rt.blockOn(f);

/** A future completed from outside: records its polls and whether it was cancelled. */
class Gate<T> extends BaseFuture<T> {
  polls = 0;
  cancelled = false;
  private waker: Waker | null = null;
  private outcome: { ok: boolean; v: unknown } | null = null;
  poll(cx: Context): Poll<T> {
    if (this.cancelled) throw new FutureStateError("Gate polled after cancel");
    this.polls++;
    const o = this.outcome;
    if (o === null) {
      this.waker = cx.waker;
      return PENDING;
    }
    if (!o.ok) throw o.v;
    return o.v as T;
  }
  open(v: T): void {
    this.outcome = { ok: true, v };
    this.waker?.wake();
  }
  fail(e: unknown): void {
    this.outcome = { ok: false, v: e };
    this.waker?.wake();
  }
  override cancel(): void {
    this.cancelled = true;
    this.waker = null;
  }
}

/** Polls `inner` with its own waker, counting every wake it receives. */
class Spy<T> extends BaseFuture<T> implements Waker, Context {
  readonly waker: Waker = this;
  wakes = 0;
  cancelled = false;
  private outer: Waker | null = null;
  constructor(private readonly inner: BaseFuture<T>) {
    super();
  }
  poll(cx: Context): Poll<T> {
    this.outer = cx.waker;
    return this.inner.poll(this);
  }
  wake(): void {
    this.wakes++;
    if (!this.cancelled) this.outer?.wake();
  }
  override cancel(): void {
    this.cancelled = true;
    this.inner.cancel();
  }
}

describe("join / joinAll", () => {
  test("join returns every value as a typed tuple, generator functions included", () => {
    const [a, b, c] = run(function* () {
      return yield* join(ready(1), ready("two"), function* () {
        yield* yieldNow();
        return [3];
      });
    });
    const n: number = a;
    const s: string = b;
    expect([n, s, c]).toEqual([1, "two", [3]]);
  });

  test("join of nothing is an empty tuple; joinAll keeps input order, not completion order", () => {
    expect(run(join())).toEqual([]);
    const gates = [new Gate<number>(), new Gate<number>(), new Gate<number>()];
    const out = run(function* () {
      spawn(function* () {
        gates[2]!.open(2);
        yield* yieldNow();
        gates[0]!.open(0);
        yield* yieldNow();
        gates[1]!.open(1);
      });
      return yield* joinAll(gates);
    });
    expect(out).toEqual([0, 1, 2]);
  });

  test("only woken children are polled again", () => {
    const gates = Array.from({ length: 10 }, () => new Gate<number>());
    run(function* () {
      spawn(function* () {
        for (let i = 0; i < 10; i++) {
          gates[i]!.open(i);
          yield* yieldNow();
        }
      });
      yield* joinAll(gates);
    });
    // One first poll each, then one poll after its own wake: never 10 polls per gate.
    expect(gates.map((g) => g.polls)).toEqual(Array(10).fill(2));
  });

  test("a child woken several times between group polls is polled once", () => {
    const gates = [new Gate<number>(), new Gate<number>()];
    const j = joinAll(gates);
    let parentWakes = 0;
    const cx = { waker: { wake: () => void parentWakes++ } };
    expect(j.poll(cx)).toBe(PENDING);
    const childWaker = (gates[0] as unknown as { waker: Waker }).waker;
    for (let i = 0; i < 5; i++) childWaker.wake();
    expect(parentWakes).toBe(1);
    expect(j.poll(cx)).toBe(PENDING);
    expect(gates.map((g) => g.polls)).toEqual([2, 1]);
  });

  test("join lets every child finish when one fails, then throws; several failures give an AggregateError", () => {
    const slow = new Gate<string>();
    const err = run(function* () {
      spawn(function* () {
        yield* yieldNow();
        slow.open("done");
      });
      try {
        yield* join(slow, function* (): Generator<unknown, number> {
          throw new Error("boom");
        });
      } catch (e) {
        return e;
      }
    });
    expect((err as Error).message).toBe("boom");
    expect(slow.cancelled).toBe(false);
    expect(slow.polls).toBe(2);
    const agg = run(function* () {
      try {
        yield* joinAll([0, 1].map((i) => function* (): Generator<unknown, number> { throw new Error(`e${i}`); }));
      } catch (e) {
        return e;
      }
    });
    expect(agg).toBeInstanceOf(AggregateError);
    expect((agg as AggregateError).errors.map((e: Error) => e.message)).toEqual(["e0", "e1"]);
  });

  test("a child that wakes itself is polled on the next group poll, not in a loop", () => {
    let spins = 0;
    const busy = new (class extends BaseFuture<number> {
      poll(cx: Context): Poll<number> {
        if (++spins === 3) return 3;
        cx.waker.wake();
        return PENDING;
      }
    })();
    const slow = new Gate<number>();
    const j = join(busy, slow);
    const cx = { waker: { wake() {} } };
    expect(j.poll(cx)).toBe(PENDING);
    expect(spins).toBe(1);
    expect(j.poll(cx)).toBe(PENDING);
    expect(spins).toBe(2);
  });

  test("cancelling a join cancels every unfinished child", () => {
    const a = new Gate<number>();
    const b = new Gate<number>();
    const j = join(a, b);
    const cx = { waker: { wake() {} } };
    expect(j.poll(cx)).toBe(PENDING);
    a.open(1);
    expect(j.poll(cx)).toBe(PENDING);
    j.cancel();
    expect(a.cancelled).toBe(false); // already finished: not cancelled
    expect(b.cancelled).toBe(true);
    expect(() => j.poll(cx)).toThrow(FutureStateError);
  });
});

describe("tryJoin", () => {
  test("returns the tuple when every future succeeds", () => {
    expect(run(tryJoin(ready(1), ready(true)))).toEqual([1, true]);
    expect(run(tryJoinAll([ready(1), ready(2)]))).toEqual([1, 2]);
  });

  test("fails fast on the first error and cancels the rest", () => {
    const a = new Gate<number>();
    const b = new Gate<number>();
    const c = new Gate<number>();
    const err = run(function* () {
      spawn(function* () {
        a.open(1);
        yield* yieldNow();
        b.fail(new RangeError("bad b"));
      });
      try {
        yield* tryJoin(a, b, c);
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(RangeError);
    expect([a.cancelled, b.cancelled, c.cancelled]).toEqual([false, false, true]);
  });
});

describe("select / race", () => {
  test("select returns the winner's index and value and cancels every loser", () => {
    const gates = [new Gate<string>(), new Gate<number>(), new Gate<boolean>()] as const;
    const r = run(function* () {
      spawn(function* () { gates[1].open(42); });
      return yield* select(...gates);
    });
    expect(r).toEqual({ index: 1, value: 42 });
    expect(gates.map((g) => g.cancelled)).toEqual([true, false, true]);
  });

  test("the first argument wins a tie on the first poll", () => {
    const loser = new Gate<number>();
    const r = run(select(ready("a"), ready("b"), loser));
    expect(r).toEqual({ index: 0, value: "a" });
    expect(loser.cancelled).toBe(true);
  });

  test("an error from the first future to finish is thrown and the others are cancelled", () => {
    const other = new Gate<number>();
    const e = run(function* () {
      try {
        yield* race(other, function* (): Generator<unknown, number> {
          yield* yieldNow();
          throw new Error("first");
        });
      } catch (err) {
        return err;
      }
    });
    expect((e as Error).message).toBe("first");
    expect(other.cancelled).toBe(true);
  });

  test("race returns the winner's value; a losing generator runs its finally block", () => {
    let cleaned = false;
    const v = run(
      race(
        function* () {
          try {
            yield* new Gate<number>();
            return 0;
          } finally {
            cleaned = true;
          }
        },
        function* () {
          yield* yieldNow();
          return 7;
        },
      ),
    );
    expect(v).toBe(7);
    expect(cleaned).toBe(true);
  });

  test("select() and race() of nothing are TypeErrors; a losing oneshot recv keeps its value", () => {
    expect(() => select()).toThrow(TypeError);
    expect(() => race()).toThrow(TypeError);
    const [tx, rx] = oneshot<string>();
    const r = run(select(rx.recv(), ready("now")));
    expect(r.index).toBe(1);
    expect(rx.waiterCount).toBe(0);
    tx.send("later");
    expect(rx.tryRecv()).toBe("later");
  });
});

forEachBackend("combinators with timers and sockets", ({ run: runIo, runtime }) => {
  test("select of sleeps: the loser's timer is removed from the wheel", () => {
    const r = runIo(function* () {
      return yield* select(sleep(5_000), sleep(1), sleep(60_000));
    });
    expect(r.index).toBe(1);
    expect(runtime().driver.wheel.size).toBe(0);
  });

  test("select of a socket read and a sleep: the cancelled read's waker is never called again", () => {
    // Bound (and its port read) inside the runtime, so that under the simulator it is a simulated socket too.
    const [listener, port] = runIo(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      return [l, l.localAddr.port] as const;
    });
    const [stream, server] = runIo(function* () {
      const c = spawn(TcpStream.connect({ hostname: "127.0.0.1", port }));
      const [s] = yield* listener.accept();
      return [yield* c, s] as const;
    });
    try {
      const buf = new Uint8Array(16);
      const spy = new Spy(stream.read(buf));
      const r = runIo(function* () {
        return yield* select(spy, sleep(2));
      });
      expect(r.index).toBe(1);
      expect(spy.cancelled).toBe(true);
      expect(runtime().driver.wheel.size).toBe(0);
      const wakesAtCancel = spy.wakes;
      // Data arrives after the cancel: nothing may wake the abandoned read, and nothing was
      // consumed by it, so the next read gets the byte.
      const n = runIo(function* () {
        yield* server.writeAll(new Uint8Array([9]));
        yield* sleep(5);
        return yield* stream.read(buf);
      });
      expect(spy.wakes).toBe(wakesAtCancel);
      expect([n, buf[0]]).toEqual([1, 9]);
    } finally {
      stream.close();
      server.close();
      listener.close();
    }
  });

  test("tryJoin failing cancels a pending sleep", () => {
    const e = runIo(function* () {
      try {
        yield* tryJoin(sleep(60_000), function* () {
          yield* sleep(1);
          throw new Error("fail");
        });
      } catch (err) {
        return err;
      }
    });
    expect((e as Error).message).toBe("fail");
    expect(runtime().driver.wheel.size).toBe(0);
  });

  test("JoinSet yields results in completion order", () => {
    const order = runIo(function* () {
      using set = new JoinSet<number>();
      for (const ms of [30, 1, 15]) set.spawn(function* () { yield* sleep(ms); return ms; });
      const out: number[] = [];
      for (let v; (v = yield* set.joinNext()) !== null; ) out.push(v);
      return out;
    });
    expect(order).toEqual([1, 15, 30]);
  });
});

describe("JoinSet", () => {
  test("results come out in completion order; size counts unjoined tasks; null when empty", () => {
    const gates = [new Gate<string>(), new Gate<string>(), new Gate<string>()];
    const out = run(function* () {
      const set = new JoinSet<string>();
      for (const g of gates) set.spawn(g);
      expect(set.size).toBe(3);
      yield* yieldNow(); // let the tasks park on their gates
      gates[2]!.open("c");
      gates[0]!.open("a");
      const first = [yield* set.joinNext(), yield* set.joinNext()];
      expect(set.size).toBe(1);
      gates[1]!.open("b");
      return [...first, yield* set.joinNext(), yield* set.joinNext(), set.size];
    });
    expect(out).toEqual(["c", "a", "b", null, 0]);
  });

  test("a failed task's JoinError comes through joinNext() and is not reported as unobserved", () => {
    taskErrors.length = 0;
    const e = run(function* () {
      const set = new JoinSet<number>();
      set.spawn(function* (): Generator<unknown, number> { throw new Error("task failed"); });
      try {
        yield* set.joinNext();
      } catch (err) {
        return err;
      }
    });
    expect(e).toBeInstanceOf(JoinError);
    expect((e as JoinError).isFailed()).toBe(true);
    expect(((e as JoinError).cause as Error).message).toBe("task failed");
    expect(taskErrors).toEqual([]);
  });

  test("abortAll cancels every task's future; joinNext then reports each as cancelled", () => {
    const gates = [new Gate<number>(), new Gate<number>()];
    const kinds = run(function* () {
      const set = new JoinSet<number>();
      for (const g of gates) set.spawn(g);
      yield* yieldNow(); // let both tasks park on their gates
      set.abortAll();
      const ks: string[] = [];
      for (;;) {
        try {
          if ((yield* set.joinNext()) === null) break;
          ks.push("value");
        } catch (err) {
          ks.push((err as JoinError).isCancelled() ? "cancelled" : "failed");
        }
      }
      return ks;
    });
    expect(kinds).toEqual(["cancelled", "cancelled"]);
    expect(gates.every((g) => g.cancelled)).toBe(true);
  });

  test("disposing the set (using) aborts the tasks still running and empties it", () => {
    const gate = new Gate<number>();
    let size = -1;
    run(function* () {
      {
        using set = new JoinSet<number>();
        set.spawn(gate);
        set.spawn(ready(1));
        yield* yieldNow();
        size = set.size;
      }
    });
    expect(size).toBe(2);
    expect(gate.cancelled).toBe(true);
  });

  test("a cancelled joinNext leaves no waiter and loses no result", () => {
    const gate = new Gate<string>();
    run(function* () {
      const set = new JoinSet<string>();
      set.spawn(gate);
      const r = yield* select(set.joinNext(), yieldNow());
      expect(r.index).toBe(1);
      expect(set.waiterCount).toBe(0);
      gate.open("kept");
      expect(yield* set.joinNext()).toBe("kept");
    });
  });

  test("shutdown aborts everything and waits until every task has finished", () => {
    const gates = [new Gate<number>(), new Gate<number>()];
    run(function* () {
      const set = new JoinSet<number>();
      for (const g of gates) set.spawn(g);
      set.spawn(ready(3));
      yield* set.shutdown();
      expect(set.size).toBe(0);
      expect(set.waiterCount).toBe(0);
    });
    expect(gates.every((g) => g.cancelled)).toBe(true);
  });

  test("an AbortHandle aborts one task", () => {
    const [a, b] = [new Gate<number>(), new Gate<number>()];
    const out = run(function* () {
      const set = new JoinSet<number>();
      const ha = set.spawn(a);
      set.spawn(b);
      yield* yieldNow();
      ha.abort();
      expect(ha.isFinished).toBe(true);
      let kind = "";
      try {
        yield* set.joinNext();
      } catch (e) {
        kind = (e as JoinError).isCancelled() ? "cancelled" : "failed";
      }
      b.open(2);
      return [kind, yield* set.joinNext()];
    });
    expect(out).toEqual(["cancelled", 2]);
  });
});

// The Future contract and its adapters: gen(), map, andThen, ready, pollFn.
import { afterAll, describe, expect, test } from "bun:test";
import {
  BaseFuture,
  FutureStateError,
  PENDING,
  Runtime,
  andThen,
  gen,
  map,
  pollFn,
  ready,
  type Context,
  type Poll,
} from "../lib/index.ts";

/** A future that is pending until `open()`, and records polls and cancels. */
class Gate<T> extends BaseFuture<T> {
  polls = 0;
  cancelled = 0;
  private waker: { wake(): void } | null = null;
  private value: T | undefined;
  private isOpen = false;
  poll(cx: Context): Poll<T> {
    this.polls++;
    if (this.isOpen) return this.value as T;
    this.waker = cx.waker;
    return PENDING;
  }
  open(v: T): void {
    this.value = v;
    this.isOpen = true;
    this.waker?.wake();
  }
  override cancel(): void {
    this.cancelled++;
  }
}

const noopCx: Context = { waker: { wake() {} } };

describe("future adapters", () => {
  const rt = new Runtime();
  afterAll(() => rt.close());

  test("ready() completes on the first poll and refuses a second", () => {
    const f = ready(5);
    expect(f.poll(noopCx)).toBe(5);
    expect(() => f.poll(noopCx)).toThrow(FutureStateError);
  });

  test("map() and andThen() chain values", () => {
    expect(rt.blockOn(map(ready(20), (n) => n + 1))).toBe(21);
    expect(rt.blockOn(andThen(ready(2), (n) => ready(n * 10)))).toBe(20);
  });

  test("pollFn() is polled again after it wakes itself", () => {
    let polls = 0;
    const f = pollFn((cx) => {
      if (++polls === 3) return "done";
      cx.waker.wake();
      return PENDING;
    });
    expect(rt.blockOn(f)).toBe("done");
    expect(polls).toBe(3);
  });

  test("gen() resumes with each yielded future's value", () => {
    const out = rt.blockOn(
      gen(function* () {
        const a = yield* ready(1);
        const b = yield* map(ready(2), (x) => x * 2);
        return a + b;
      }),
    );
    expect(out).toBe(5);
  });

  test("an error thrown by a yielded future's poll is catchable at the yield*", () => {
    const boom = pollFn<number>(() => {
      throw new RangeError("boom");
    });
    const out = rt.blockOn(function* () {
      try {
        yield* boom;
        return "not reached";
      } catch (e) {
        return (e as Error).message;
      }
    });
    expect(out).toBe("boom");
  });

  test("an error thrown by the generator fails blockOn with that error", () => {
    expect(() =>
      rt.blockOn(function* () {
        yield* ready(1);
        throw new TypeError("from the generator");
      }),
    ).toThrow("from the generator");
  });

  test("yielding a non-future is a TypeError at the yield site", () => {
    const out = rt.blockOn(function* () {
      try {
        yield 42 as never;
      } catch (e) {
        return e instanceof TypeError;
      }
      return false;
    });
    expect(out).toBe(true);
  });

  test("cancel() on a gen future cancels the awaited future and runs finally blocks", () => {
    const gate = new Gate<number>();
    let finallyRan = false;
    const g = gen(function* () {
      try {
        return yield* gate;
      } finally {
        finallyRan = true;
      }
    });
    expect(g.poll(noopCx)).toBe(PENDING);
    g.cancel();
    expect(gate.cancelled).toBe(1);
    expect(finallyRan).toBe(true);
    expect(() => g.poll(noopCx)).toThrow(FutureStateError);
  });

  test("a pending gen future is polled again only after its waker fires", () => {
    const gate = new Gate<string>();
    let wakes = 0;
    const cx: Context = { waker: { wake: () => wakes++ } };
    const g = gen(function* () {
      return yield* gate;
    });
    expect(g.poll(cx)).toBe(PENDING);
    expect(wakes).toBe(0);
    gate.open("x");
    expect(wakes).toBe(1);
    expect(g.poll(cx)).toBe("x");
  });

  test("gen() rejects a non-function with a TypeError naming it", () => {
    expect(() => gen(42 as never)).toThrow(TypeError);
  });
});

// Inline polling: inside a generator adapter's resume, `yield*` polls the future at once
// (BaseFuture.next): a ready one never suspends the generator, a pending one is polled
// exactly once per step (an I/O future's syscall is not tried twice), an error surfaces at
// the `yield*`, and a future yielded from a `finally` during cancel still runs to the end.
describe("yield* polls a future inline", () => {
  test("a ready future is polled once, with the task's context, and the generator never suspends", () => {
    const seen: Context[] = [];
    class Ready extends BaseFuture<number> {
      polls = 0;
      poll(cx: Context): Poll<number> {
        this.polls++;
        seen.push(cx);
        return 7;
      }
    }
    const futs = [new Ready(), new Ready(), new Ready()];
    const g = gen(function* () {
      let sum = 0;
      for (const f of futs) sum += yield* f;
      return sum;
    });
    // One poll of the adapter completes it: every yield* was ready inside that poll.
    expect(g.poll(noopCx)).toBe(21);
    expect(futs.map((f) => f.polls)).toEqual([1, 1, 1]);
    expect(seen.every((c) => c === noopCx)).toBe(true);
  });

  test("a pending future is polled once per step, then again only after its wake", () => {
    const gate = new Gate<string>();
    let wakes = 0;
    const cx: Context = { waker: { wake: () => void wakes++ } };
    const g = gen(function* () {
      return (yield* gate) + "!";
    });
    expect(g.poll(cx)).toBe(PENDING);
    expect(gate.polls).toBe(1); // not polled again by the adapter after the inline poll
    gate.open("open");
    expect(wakes).toBe(1);
    expect(g.poll(cx)).toBe("open!");
    expect(gate.polls).toBe(2);
  });

  test("an error thrown by an inline poll is caught at the yield*", () => {
    class Boom extends BaseFuture<never> {
      poll(): Poll<never> {
        throw new Error("boom");
      }
    }
    const g = gen(function* () {
      try {
        yield* new Boom();
        return "not reached";
      } catch (e) {
        return `caught ${(e as Error).message}`;
      }
    });
    expect(g.poll(noopCx)).toBe("caught boom");
  });

  test("nested adapters: an inner gen's pending future is not re-polled by the outer one", () => {
    const gate = new Gate<number>();
    const inner = () => gen(function* () {
      return (yield* gate) * 2;
    });
    const outer = gen(function* () {
      const a = yield* inner();
      const b = yield* ready(1);
      return a + b;
    });
    expect(outer.poll(noopCx)).toBe(PENDING);
    expect(gate.polls).toBe(1);
    gate.open(20);
    expect(outer.poll(noopCx)).toBe(41);
    expect(gate.polls).toBe(2);
  });

  test("cancelled while pending: a future yielded from finally is driven by the cleanup to its end", () => {
    const gate = new Gate<void>();
    const inFinally = new Gate<void>();
    const log: string[] = [];
    const g = gen(function* () {
      try {
        yield* gate;
      } finally {
        log.push("finally");
        yield* inFinally;
        log.push("after");
      }
    });
    expect(g.poll(noopCx)).toBe(PENDING);
    const cleanup = g.cancel() as unknown as { poll(cx: Context): Poll<void> } | undefined;
    expect(cleanup).toBeDefined();
    expect(log).toEqual(["finally"]);
    expect(cleanup!.poll(noopCx)).toBe(PENDING);
    inFinally.open(undefined);
    expect(cleanup!.poll(noopCx)).toBeUndefined();
    expect(log).toEqual(["finally", "after"]);
  });
});

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

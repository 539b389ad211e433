// Streams of values (issue 11): one Stream contract (pollNext → value, PENDING, or null at
// the end), implemented by the channel receivers, interval() and FramedRead; each() for
// for…of in generator tasks, next() futures, for await in hosted mode, and combinators.
import { afterAll, describe, expect, test } from "bun:test";
import {
  FramedRead,
  LaggedError,
  LinesCodec,
  PENDING,
  Runtime,
  TimeoutError,
  asStream,
  broadcast,
  channel,
  each,
  interval,
  merge,
  run,
  sleep,
  spawn,
  timeout,
  unboundedChannel,
  watch,
  yieldNow,
  type Context,
  type Poll,
  type Stream,
} from "../lib/index.ts";
import { MockReader } from "./io_mock.ts";

describe("streams", () => {
  const rt = new Runtime();
  afterAll(() => rt.close());

  test("an mpsc receiver is a stream: each() iterates every message, then the loop ends when the senders close", () => {
    const got = rt.blockOn(function* () {
      const [tx, rx] = channel<number>(4);
      spawn(function* () {
        for (let i = 1; i <= 10; i++) yield* tx.send(i);
        tx.close();
      });
      const out: number[] = [];
      for (const v of yield* each(rx)) {
        out.push(v);
        yield* each.next();
      }
      return out;
    });
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  test("breaking out of an each() loop leaves the stream usable and loses no message", () => {
    const got = rt.blockOn(function* () {
      const [tx, rx] = unboundedChannel<number>();
      for (let i = 0; i < 5; i++) tx.send(i);
      tx.close();
      const first: number[] = [];
      for (const v of yield* each(rx)) {
        first.push(v);
        if (v === 1) break;
        yield* each.next();
      }
      const rest: number[] = [];
      for (let v; (v = yield* rx.next()) !== null; ) rest.push(v);
      return { first, rest, waiters: rx.waiterCount };
    });
    expect(got).toEqual({ first: [0, 1], rest: [2, 3, 4], waiters: 0 });
  });

  test("a task cancelled while waiting in each.next() leaves no waiter behind (cancelNext)", () => {
    rt.blockOn(function* () {
      const [tx, rx] = unboundedChannel<number>();
      tx.send(1);
      const h = spawn(function* () {
        for (const _ of yield* each(rx)) yield* each.next(); // parks for the second value
      });
      yield* sleep(1);
      expect(rx.waiterCount).toBe(1);
      h.abort();
      yield* sleep(1);
      expect(rx.waiterCount).toBe(0);
      tx.send(2); // not lost: still there for the next receive
      expect(yield* rx.next()).toBe(2);
      tx.close();
    });
  });

  test("each() loops nest, and a helper generator delegated to with yield* may run one", () => {
    const got = rt.blockOn(function* () {
      const out: string[] = [];
      function* inner(tag: string) {
        const [tx, rx] = unboundedChannel<string>();
        tx.send(`${tag}1`);
        tx.send(`${tag}2`);
        tx.close();
        for (const v of yield* each(rx)) {
          out.push(v);
          yield* each.next();
        }
      }
      const [tx, rx] = unboundedChannel<string>();
      tx.send("a");
      tx.send("b");
      tx.close();
      for (const v of yield* each(rx)) {
        yield* inner(v);
        yield* each.next();
      }
      return out;
    });
    expect(got).toEqual(["a1", "a2", "b1", "b2"]);
  });

  test("forgetting each.next(), calling it twice, or outside a loop are TypeErrors, not hangs or lost values", () => {
    rt.blockOn(function* () {
      const [tx, rx] = unboundedChannel<number>();
      tx.send(1);
      tx.send(2);
      tx.send(3);
      let err: unknown = null;
      try {
        for (const _ of yield* each(rx)) {
          // no each.next()
        }
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).message).toMatch(/each\.next\(\)/);
      err = null;
      try {
        for (const _ of yield* each(rx)) {
          yield* each.next();
          each.next();
        }
      } catch (e) {
        err = e;
      }
      expect((err as Error).message).toMatch(/twice/);
      expect(() => each.next()).toThrow(TypeError);
      expect(() => each(42 as never)).toThrow(/each\(\) expects a Stream/);
      tx.close();
    });
  });

  test("map, filter and take compose; map returning null is a TypeError (null ends a stream)", () => {
    const got = rt.blockOn(function* () {
      const [tx, rx] = unboundedChannel<number>();
      for (let i = 1; i <= 20; i++) tx.send(i);
      const s = rx.filter((n) => n % 2 === 0).map((n) => n * 10).take(3);
      const out: number[] = [];
      for (let v; (v = yield* s.next()) !== null; ) out.push(v);
      const bad = rx.map(() => null as unknown as number);
      let err: unknown = null;
      try {
        yield* bad.next();
      } catch (e) {
        err = e;
      }
      return { out, left: rx.length, err };
    });
    expect(got.out).toEqual([20, 40, 60]);
    expect(got.left).toBe(13); // 6 taken by take(3)'s filter, 1 by the failing map
    expect(got.err).toBeInstanceOf(TypeError);
  });

  test("timeout(ms) per item throws TimeoutError for a slow item and the stream stays usable", () => {
    const got = rt.blockOn(function* () {
      const [tx, rx] = unboundedChannel<string>();
      const s = rx.timeout(5);
      let err: unknown = null;
      try {
        yield* s.next();
      } catch (e) {
        err = e;
      }
      expect(rx.waiterCount).toBe(0);
      tx.send("late but fine");
      const v = yield* s.next();
      tx.close();
      return { err, v, end: yield* s.next() };
    });
    expect(got.err).toBeInstanceOf(TimeoutError);
    expect(got.v).toBe("late but fine");
    expect(got.end).toBeNull();
  });

  test("merge() takes values from every stream as they come and ends when all have ended", () => {
    const got = rt.blockOn(function* () {
      const [ta, a] = unboundedChannel<string>();
      const [tb, b] = unboundedChannel<string>();
      spawn(function* () {
        for (const v of ["a1", "a2", "a3"]) {
          ta.send(v);
          yield* yieldNow();
        }
        ta.close();
      });
      spawn(function* () {
        for (const v of ["b1", "b2"]) {
          tb.send(v);
          yield* yieldNow();
        }
        tb.close();
      });
      const out: string[] = [];
      for (const v of yield* each(merge(a, b))) {
        out.push(v);
        yield* each.next();
      }
      return out;
    });
    expect(got.filter((v) => v.startsWith("a"))).toEqual(["a1", "a2", "a3"]);
    expect(got.filter((v) => v.startsWith("b"))).toEqual(["b1", "b2"]);
  });

  test("a broadcast receiver is a stream: a lag throws LaggedError once, then the stream goes on from the oldest kept", () => {
    const got = rt.blockOn(function* () {
      const [tx, rx] = broadcast<number>(2);
      for (let i = 1; i <= 5; i++) tx.send(i);
      tx.close();
      const out: (number | string)[] = [];
      for (;;) {
        try {
          const v = yield* rx.next();
          if (v === null) break;
          out.push(v);
        } catch (e) {
          if (!(e instanceof LaggedError)) throw e;
          out.push(`lagged ${e.missed}`);
        }
      }
      return out;
    });
    expect(got).toEqual(["lagged 3", 4, 5]);
  });

  test("a watch receiver is a stream of the values it has not seen; it ends once the sender closes", () => {
    const got = rt.blockOn(function* () {
      const [tx, rx] = watch("initial");
      spawn(function* () {
        tx.send("one");
        yield* sleep(1);
        tx.send("two");
        tx.send("three"); // "two" is skipped: a watch keeps only the latest
        yield* sleep(1);
        tx.close();
      });
      const out: string[] = [];
      for (const v of yield* each(rx)) {
        out.push(v);
        yield* each.next();
      }
      return out;
    });
    expect(got).toEqual(["one", "three"]);
  });

  test("interval() is a stream of tick times; take(2) ends it; a cancelled next() removes its timer", () => {
    rt.blockOn(function* () {
      const ticks: number[] = [];
      const every = interval(20);
      for (const at of yield* each(every.take(2))) {
        ticks.push(at);
        yield* each.next();
      }
      expect(ticks.length).toBe(2);
      expect(ticks[1]! - ticks[0]!).toBe(20);
      const wheel = rt.driver.wheel.size;
      let err: unknown = null;
      try {
        yield* timeout(every.next(), 5); // the next tick is ~20 ms away
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TimeoutError);
      expect(rt.driver.wheel.size).toBe(wheel); // the tick's timer went with it
      expect(yield* every.next()).toBe(ticks[1]! + 20); // and the tick is still the next one
    });
  });

  test("a FramedRead is a stream of frames", () => {
    const got = rt.blockOn(function* () {
      const reader = new MockReader("alpha\nbeta\ngam", "ma\n");
      reader.end();
      const lines = new FramedRead(reader, new LinesCodec());
      const out: string[] = [];
      for (const line of yield* each(lines)) {
        out.push(line);
        yield* each.next();
      }
      return out;
    });
    expect(got).toEqual(["alpha", "beta", "gamma"]);
  });

  test("a Stream of your own gets next(), the combinators and each() through asStream()", () => {
    class Countdown implements Stream<number> {
      constructor(private n: number) {}
      pollNext(_cx: Context): Poll<number | null> {
        return this.n > 0 ? this.n-- : null;
      }
    }
    const got = rt.blockOn(function* () {
      const out: number[] = [];
      for (const v of yield* each(asStream(new Countdown(5)).filter((n) => n !== 3))) {
        out.push(v);
        yield* each.next();
      }
      return out;
    });
    expect(got).toEqual([5, 4, 2, 1]);
    expect(() => asStream({} as never)).toThrow(TypeError);
    void PENDING;
  });
});

describe("streams in hosted mode", () => {
  test("for await iterates a reel stream from ordinary async code", async () => {
    const rt = new Runtime();
    const [tx, rx] = unboundedChannel<number>();
    const producer = run(
      function* () {
        for (let i = 0; i < 3; i++) {
          yield* sleep(1);
          tx.send(i);
        }
        tx.close();
      },
      { runtime: rt },
    );
    const got: number[] = [];
    for await (const v of rx) got.push(v);
    await producer;
    expect(got).toEqual([0, 1, 2]);
    rt.close();
  });

  test("leaving a for await loop early cancels the pending step: nothing is lost", async () => {
    const [tx, rx] = unboundedChannel<string>();
    tx.send("x");
    for await (const v of rx) {
      expect(v).toBe("x");
      break;
    }
    tx.send("y");
    tx.close();
    const rest: string[] = [];
    for await (const v of rx) rest.push(v);
    expect(rest).toEqual(["y"]);
    expect(rx.waiterCount).toBe(0);
  });
});

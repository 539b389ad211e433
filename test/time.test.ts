// Timer futures on the driver: sleep, sleepUntil, interval, timeout — on every backend.
import { expect, test } from "bun:test";
import { BaseFuture, PENDING, gen, TimeoutError, now, sleep, sleepUntil, interval, timeout, spawn, yieldNow, type Context, type Poll } from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";

/** Never completes; records cancel(). */
class Forever extends BaseFuture<number> {
  cancelled = false;
  poll(_cx: Context): Poll<number> {
    return PENDING;
  }
  override cancel(): void {
    this.cancelled = true;
  }
}

forEachBackend("time", ({ run, runtime }) => {
  test("sleep(ms) never completes early", () => {
    const elapsed = run(function* () {
      const t0 = now();
      yield* sleep(15);
      return now() - t0;
    });
    expect(elapsed).toBeGreaterThanOrEqual(15);
  });

  test("sleep(0) completes on the next driver turn", () => {
    run(function* () {
      yield* sleep(0);
    });
  });

  test("sleepUntil() a past deadline completes", () => {
    run(function* () {
      yield* sleepUntil(now() - 100);
    });
  });

  test("many sleeps complete in deadline order", () => {
    const order = run(function* () {
      const out: number[] = [];
      const hs = [30, 10, 20, 5].map((ms) =>
        spawn(function* () {
          yield* sleep(ms);
          out.push(ms);
        }),
      );
      for (const h of hs) yield* h;
      return out;
    });
    expect(order).toEqual([5, 10, 20, 30]);
  });

  test("a cancelled sleep leaves no entry in the wheel", () => {
    run(function* () {
      const wheel = runtime().driver.wheel;
      const before = wheel.size;
      const h = spawn(sleep(10_000));
      yield* yieldNow();
      expect(wheel.size).toBe(before + 1);
      h.abort();
      expect(wheel.size).toBe(before);
    });
  });

  test("timeout() fails with TimeoutError and cancels the inner future", () => {
    const inner = new Forever();
    const err = run(function* () {
      try {
        yield* timeout(inner, 10);
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).ms).toBe(10);
    expect(inner.cancelled).toBe(true);
    expect(runtime().driver.wheel.size).toBe(0);
  });

  test("timeout() returns the inner value in time and removes its timer", () => {
    const v = run(function* () {
      return yield* timeout(
        gen(function* () {
          yield* sleep(1);
          return "fast";
        }),
        1000,
      );
    });
    expect(v).toBe("fast");
    expect(runtime().driver.wheel.size).toBe(0);
  });

  test("interval() ticks at multiples of its period, the first at once", () => {
    const ticks = run(function* () {
      const it = interval(10);
      const out: number[] = [];
      for (let i = 0; i < 4; i++) out.push(yield* it.tick());
      return out;
    });
    expect(ticks[1]! - ticks[0]!).toBe(10);
    expect(ticks[3]! - ticks[0]!).toBe(30);
  });

  test("bad durations are RangeError/TypeError naming the value", () => {
    expect(() => sleep(-1)).toThrow(RangeError);
    expect(() => sleep(Number.NaN)).toThrow(TypeError);
    expect(() => interval(0)).toThrow(RangeError);
  });
});

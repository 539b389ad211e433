// Time control on every backend (tokio's time::pause): pause() freezes the clock, an idle
// runtime jumps to the next timer instead of sleeping, advance(ms) fires what is due,
// resume() follows real time again from where the clock stood.
import { expect, test } from "bun:test";
import { RuntimeError, TcpListener, TcpStream, advance, interval, isPaused, now, pause, resume, sleep, spawn, timeout, yieldNow, Runtime } from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";

forEachBackend("time control", ({ run, backend }) => {
  test("a paused runtime sleeps an hour in no real time, and now() moves by exactly that", () => {
    const t0 = performance.now();
    const elapsed = run(function* () {
      pause();
      expect(isPaused()).toBe(true);
      const a = now();
      yield* sleep(3_600_000);
      return now() - a;
    });
    expect(elapsed).toBeGreaterThanOrEqual(3_600_000);
    expect(elapsed).toBeLessThan(3_600_002);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  test("timers fire in deadline order while paused; interval ticks land on their period", () => {
    const out = run(function* () {
      pause();
      const order: number[] = [];
      const hs = [300, 100, 200].map((ms) =>
        spawn(function* () {
          yield* sleep(ms);
          order.push(ms);
        }),
      );
      for (const h of hs) yield* h;
      const it = interval(1000);
      const ticks = [yield* it.tick(), yield* it.tick(), yield* it.tick()];
      return { order, steps: [ticks[1]! - ticks[0]!, ticks[2]! - ticks[1]!] };
    });
    expect(out.order).toEqual([100, 200, 300]);
    expect(out.steps).toEqual([1000, 1000]);
  });

  test("advance(ms) fires the timers due by then (deadlines are whole ms, rounded up), before the caller goes on", () => {
    run(function* () {
      pause();
      let fired = 0;
      const a = spawn(function* () {
        yield* sleep(1000);
        fired++;
      });
      const b = spawn(function* () {
        yield* sleep(5000);
        fired++;
      });
      yield* yieldNow();
      yield* advance(999);
      yield* yieldNow();
      expect(fired).toBe(0);
      yield* advance(2);
      yield* yieldNow();
      expect(fired).toBe(1);
      yield* advance(10_000);
      yield* a;
      yield* b;
      expect(fired).toBe(2);
    });
  });

  test("a timeout fires at once on a paused clock while I/O stays pending (tokio's auto-advance)", () => {
    const err = run(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      pause();
      try {
        yield* timeout(s.read(new Uint8Array(8)), 30_000);
        return null;
      } catch (e) {
        return e;
      } finally {
        c.close();
        s.close();
        l.close();
      }
    });
    expect((err as Error).name).toBe("TimeoutError");
  });

  test("resume() follows real time again from where the paused clock stood; the clock never goes back", () => {
    run(function* () {
      pause();
      yield* sleep(10_000);
      const frozen = now();
      if (backend === "sim") {
        expect(() => resume()).toThrow(RuntimeError);
        return;
      }
      resume();
      expect(isPaused()).toBe(false);
      const after = now();
      expect(after).toBeGreaterThanOrEqual(frozen);
      yield* sleep(2);
      expect(now()).toBeGreaterThanOrEqual(after + 2);
    });
  });
});

test("time control outside a runtime is RuntimeError ENORUNTIME; a bad advance is RangeError", () => {
  expect(() => pause()).toThrow(RuntimeError);
  expect(() => advance(-1)).toThrow(RangeError);
  expect(() => advance(Number.NaN)).toThrow(TypeError);
});

test("Runtime({ startPaused: true }) starts with its clock paused", () => {
  const rt = new Runtime({ startPaused: true });
  try {
    const t0 = performance.now();
    rt.blockOn(function* () {
      expect(isPaused()).toBe(true);
      yield* sleep(600_000);
    });
    expect(performance.now() - t0).toBeLessThan(1000);
  } finally {
    rt.close();
  }
});

test("a sleep, timeout or interval made outside any runtime counts from its first poll, on that runtime's clock", () => {
  const rt = new Runtime({ backend: "sim", seed: 1 });
  try {
    // Made before the simulation's clock exists: counted from the first poll, in virtual time.
    const s = sleep(10);
    const it = interval(20);
    const [slept, ticks] = rt.blockOn(function* () {
      yield* sleep(1000);
      const a = now();
      yield* s;
      const b = now();
      const t0 = yield* it.tick();
      const t1 = yield* it.tick();
      return [b - a, [t0 - b, t1 - t0]];
    });
    expect(slept).toBe(10);
    expect(ticks).toEqual([0, 20]);
  } finally {
    rt.close();
  }
});

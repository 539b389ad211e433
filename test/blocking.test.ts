/**
 * spawnBlocking on every backend: results and errors travel back (structured clone, error
 * name/message/code kept), async functions are awaited, the pool is bounded, a call
 * cancelled before it starts never runs, a running one learns it was cancelled, the
 * runtime thread stays free meanwhile, and hosted mode works.
 */
import { beforeAll, expect, test } from "bun:test";
import { PENDING, join, run, sleep, spawn, spawnBlocking, setBlockingPoolSize, startBlockingPool, type Context } from "../lib/index.ts";
import { ON_SIM, forEachBackend, kernelTest } from "./helpers.ts";

const FNS = new URL("./fixtures/blocking_fns.ts", import.meta.url);
const noop: Context = { waker: { wake() {} } };

beforeAll(async () => {
  if (ON_SIM) return; // the suite is skipped there: no pool, no Workers
  setBlockingPoolSize(2);
  await startBlockingPool(); // both Workers (and their fds) exist before any fd check
  // Load the fixture module in both Workers before any test measures anything.
  const { Runtime } = await import("../lib/index.ts");
  const rt = new Runtime();
  rt.blockOn(join(spawnBlocking(FNS, "add", 1, 1), spawnBlocking(FNS, "add", 1, 1)));
  rt.close();
});

function* failure(fut: import("../lib/index.ts").BaseFuture<unknown>) {
  try {
    yield* fut;
    return null;
  } catch (e) {
    return e as Error & { code?: string };
  }
}

forEachBackend("spawnBlocking", ({ run: blockOn }) => {
  test("returns the function's result; structured values survive; a second call right after the first is woken too", () => {
    const r = blockOn(function* () {
      return [yield* spawnBlocking<number>(FNS, "add", 2, 3), yield* spawnBlocking<Record<string, unknown>>(FNS, "shapes")];
    });
    expect(r[0]).toBe(5);
    expect(r[1]).toEqual({ map: new Map([["k", 1]]), bytes: new Uint8Array([1, 2, 3]), nested: [{ a: null }] });
  });

  test("an async function is awaited in its Worker", () => {
    expect(blockOn(spawnBlocking<string>(FNS, "later", "x"))).toBe("later x");
  });

  test("errors travel back with their name, message and code", () => {
    const errs = blockOn(function* () {
      return [
        yield* failure(spawnBlocking(FNS, "fails")),
        yield* failure(spawnBlocking(FNS, "rejects")),
        yield* failure(spawnBlocking(FNS, "notAFunction")),
        yield* failure(spawnBlocking(FNS, "unclonable")),
        yield* failure(spawnBlocking(new URL("./fixtures/no-such-module.ts", import.meta.url), "f")),
      ];
    });
    expect(errs[0]).toBeInstanceOf(RangeError);
    expect([errs[0]!.message, errs[0]!.code]).toEqual(["out of range", "EOUT"]);
    expect(errs[1]).toBeInstanceOf(TypeError);
    expect(errs[1]!.message).toBe("rejected");
    expect(errs[2]!.message).toContain('"notAFunction"');
    expect(errs[3]!.name).toBe("DataCloneError");
    expect(errs[4]).toBeInstanceOf(Error);
  });

  test("a large result (8 MiB) comes back whole", () => {
    const r = blockOn(spawnBlocking<Uint8Array>(FNS, "bigResult", 8 * 1024 * 1024));
    expect(r.length).toBe(8 * 1024 * 1024);
    expect(r[r.length - 1]).toBe(7);
  });

  test("the pool is bounded: 6 busy calls on a pool of 2 never run more than 2 at once", () => {
    const counter = new Int32Array(new SharedArrayBuffer(8));
    const r = blockOn(function* () {
      const calls = [0, 1, 2, 3, 4, 5].map(() => spawn(spawnBlocking<number>(FNS, "busy", counter, 20)));
      let total = 0;
      for (const c of calls) total += yield* c;
      return total;
    });
    expect(r).toBe(120);
    expect(counter[1]).toBeLessThanOrEqual(2);
    expect(counter[1]).toBeGreaterThanOrEqual(1);
  });

  test("a call cancelled while it waits for a Worker never runs", () => {
    const counter = new Int32Array(new SharedArrayBuffer(8));
    const flags = new Int32Array(new SharedArrayBuffer(8));
    blockOn(function* () {
      const a = spawnBlocking(FNS, "busy", counter, 50);
      const b = spawnBlocking(FNS, "busy", counter, 50);
      const c = spawnBlocking(FNS, "mark", flags);
      expect(a.poll(noop)).toBe(PENDING);
      expect(b.poll(noop)).toBe(PENDING);
      expect(c.poll(noop)).toBe(PENDING); // queued: both Workers are busy
      c.cancel();
      yield* join(a, b);
      yield* spawnBlocking(FNS, "add", 0, 0); // the Workers have moved past where c would have run
      yield* spawnBlocking(FNS, "add", 0, 0);
    });
    expect(flags[0]).toBe(0);
  });

  test("a running call learns it was cancelled (blockingCancelled) and its result is dropped", () => {
    const flags = new Int32Array(new SharedArrayBuffer(8));
    blockOn(function* () {
      const f = spawnBlocking(FNS, "untilCancelled", flags);
      expect(f.poll(noop)).toBe(PENDING);
      for (let i = 0; i < 5000 && Atomics.load(flags, 0) === 0; i++) yield* sleep(1);
      f.cancel();
      for (let i = 0; i < 5000 && Atomics.load(flags, 1) === 0; i++) yield* sleep(1);
      yield* spawnBlocking(FNS, "add", 0, 0); // the Worker is free again
    });
    expect([flags[0], flags[1]]).toEqual([1, 1]);
  });

  test("the runtime thread stays free: a 1 ms timer fires while a 300 ms call runs", () => {
    const counter = new Int32Array(new SharedArrayBuffer(8));
    const order = blockOn(function* () {
      const seen: string[] = [];
      const slow = spawn(function* () {
        yield* spawnBlocking(FNS, "busy", counter, 300);
        seen.push("blocking call");
      });
      yield* sleep(1);
      seen.push("timer");
      yield* slow;
      return seen;
    });
    expect(order).toEqual(["timer", "blocking call"]);
  });
}, { kernel: "the blocking pool runs on real threads" });

kernelTest(null, "the blocking pool runs on real threads")("spawnBlocking in hosted mode", async () => {
  expect(await run(spawnBlocking<number>(FNS, "add", 20, 22))).toBe(42);
});

test("bad arguments are TypeErrors naming them", () => {
  expect(() => spawnBlocking("./relative.ts", "f")).toThrow(TypeError);
  expect(() => spawnBlocking(FNS, "")).toThrow(TypeError);
  expect(() => setBlockingPoolSize(0)).toThrow(RangeError);
});

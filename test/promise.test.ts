/**
 * Promise interop (lib/interop/promise.ts): fromPromise, toPromise, and the deadlock error
 * for Promises that need Bun's loop inside blockOn.
 */
import { describe, expect, test } from "bun:test";
import {
  FutureStateError,
  Runtime,
  RuntimeError,
  TimeoutError,
  gen,
  sleep,
  spawn,
  timeout,
} from "../lib/index.ts";
import { fromPromise, toPromise } from "../lib/interop/promise.ts";
import { isHosted } from "../lib/interop/hosted.ts";

/** A Promise that only Bun's timers can settle. */
const bunTimer = <T>(ms: number, v: T) => new Promise<T>((r) => setTimeout(() => r(v), ms));

describe("fromPromise inside blockOn", () => {
  const rt = new Runtime();

  test("a Promise settled by microtasks completes (drainMicrotasks runs each tick)", () => {
    const v = rt.blockOn(function* () {
      const a = yield* fromPromise(Promise.resolve(1).then((x) => x + 1).then((x) => x * 10));
      const b = yield* fromPromise((async () => (await Promise.resolve(a)) + 1)());
      return b;
    });
    expect(v).toBe(21);
    expect(rt.pendingPromises).toBe(0);
  });

  test("a rejection is thrown from poll, as the same error object", () => {
    const boom = new RangeError("rejected");
    const caught = rt.blockOn(function* () {
      try {
        yield* fromPromise(Promise.reject(boom));
        return null;
      } catch (e) {
        return e;
      }
    });
    expect(caught).toBe(boom);
  });

  test("a Promise that needs Bun's event loop throws EDEADLK naming hosted mode, and leaves no count behind", () => {
    let err: unknown = null;
    try {
      rt.blockOn(function* () {
        return yield* fromPromise(bunTimer(5, "late"));
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe("EDEADLK");
    expect((err as Error).message).toContain("1 Promise(s) that need Bun's event loop");
    expect((err as Error).message).toContain("run() (hosted mode)");
    expect(rt.pendingPromises).toBe(0);
  });

  // Before the task tree, the spawned task outlived the failed blockOn (count 1 after it).
  // Now nothing outlives blockOn: on the deadlock its whole tree is halted.
  test("two pending Promises are both counted; on the deadlock the main one and the task it spawned are both cancelled", () => {
    const own = new Runtime();
    expect(() =>
      own.blockOn(function* () {
        const other = spawn(fromPromise(bunTimer(5, 1)));
        yield* fromPromise(bunTimer(5, 2));
        yield* other;
      }),
    ).toThrow("2 Promise(s)");
    expect(own.pendingPromises).toBe(0);
    expect(own.metrics().tasks.live).toBe(0);
    own.close();
  });

  test("a pending Promise beside a reel timer does not deadlock while the timer is pending", () => {
    const order = rt.blockOn(function* () {
      const seen: string[] = [];
      const p = Promise.resolve().then(() => seen.push("promise"));
      yield* sleep(2);
      seen.push("timer");
      yield* fromPromise(p);
      return seen;
    });
    expect(order).toEqual(["promise", "timer"]);
  });

  test("cancelling fromPromise (timeout) aborts the signal of the function form and uncounts it", () => {
    let aborted: unknown = null;
    const err = rt.blockOn(function* () {
      try {
        yield* timeout(
          fromPromise((signal) => {
            signal.addEventListener("abort", () => (aborted = signal.reason));
            return new Promise(() => {});
          }),
          5,
        );
        return null;
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(TimeoutError);
    expect((aborted as DOMException).name).toBe("AbortError");
    expect(rt.pendingPromises).toBe(0);
  });

  test("a cancelled fromPromise whose Promise later rejects raises no unhandled rejection", async () => {
    let reject!: (e: unknown) => void;
    const f = fromPromise(new Promise((_, r) => (reject = r)));
    f.cancel();
    reject(new Error("after cancel"));
    await Bun.sleep(1); // an unhandled rejection would fail this test run
    expect(() => rt.blockOn(f)).toThrow(FutureStateError);
  });

  test("polling after completion throws FutureStateError; bad arguments throw TypeError", () => {
    const f = fromPromise(Promise.resolve(3));
    expect(rt.blockOn(f)).toBe(3);
    expect(() => rt.blockOn(f)).toThrow(FutureStateError);
    expect(() => fromPromise(42 as unknown as Promise<number>)).toThrow(TypeError);
    expect(() => fromPromise(null as unknown as Promise<number>)).toThrow("got null");
  });

  test("a function that throws becomes a rejection thrown from poll", () => {
    expect(() =>
      rt.blockOn(
        fromPromise(() => {
          throw new SyntaxError("sync throw");
        }),
      ),
    ).toThrow("sync throw");
  });
});

describe("fromPromise in hosted mode", () => {
  test("a Bun timer Promise completes inside run(), and the count returns to 0", async () => {
    const rt = new Runtime();
    const v = await toPromise(function* () {
      const a = yield* fromPromise(bunTimer(2, "bun"));
      const b = yield* fromPromise(Bun.sleep(1).then(() => "sleep"));
      return `${a}+${b}`;
    }, { runtime: rt });
    expect(v).toBe("bun+sleep");
    expect(rt.pendingPromises).toBe(0);
    expect(isHosted(rt)).toBe(false);
    rt.close();
  });

  test("a fromPromise raced with a reel timer: whichever settles first wins, the other is cancelled", async () => {
    const rt = new Runtime();
    const err = await toPromise(function* () {
      try {
        return yield* timeout(fromPromise(bunTimer(200, "slow")), 5);
      } catch (e) {
        return e;
      }
    }, { runtime: rt });
    expect(err).toBeInstanceOf(TimeoutError);
    expect(rt.pendingPromises).toBe(0);
    rt.close();
  });
});

describe("toPromise", () => {
  test("inside blockOn it spawns on that runtime; the Promise settles while blockOn runs", () => {
    const rt = new Runtime();
    const v = rt.blockOn(function* () {
      const p = toPromise(gen(function* () {
        yield* sleep(1);
        return "spawned";
      }));
      return yield* fromPromise(p);
    });
    expect(v).toBe("spawned");
    rt.close();
  });

  test("outside any runtime it is a hosted run", async () => {
    const rt = new Runtime();
    const p = toPromise(sleep(1), { runtime: rt });
    expect(isHosted(rt)).toBe(true);
    await p;
    expect(isHosted(rt)).toBe(false);
    rt.close();
  });

  test("a failing future rejects the Promise with its error", async () => {
    const rt = new Runtime();
    await expect(toPromise(function* () {
      yield* sleep(1);
      throw new URIError("nope");
    }, { runtime: rt })).rejects.toThrow(URIError);
    const inside = rt.blockOn(function* () {
      try {
        yield* fromPromise(toPromise(function* () { throw new URIError("inner"); }));
        return null;
      } catch (e) {
        return (e as Error).message;
      }
    });
    expect(inside).toBe("inner");
    rt.close();
  });

  test("an AbortSignal cancels the spawned task inside blockOn and rejects with its reason", () => {
    const rt = new Runtime();
    let cancelled = false;
    const out = rt.blockOn(function* () {
      const ac = new AbortController();
      const p = toPromise(gen(function* () {
        try {
          yield* sleep(10_000);
        } finally {
          cancelled = true;
        }
      }), { signal: ac.signal });
      yield* sleep(1);
      ac.abort(new Error("aborted by signal"));
      try {
        yield* fromPromise(p);
        return "resolved";
      } catch (e) {
        return (e as Error).message;
      }
    });
    expect(out).toBe("aborted by signal");
    expect(cancelled).toBe(true);
    rt.close();
  });
});

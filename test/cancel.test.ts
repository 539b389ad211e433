/**
 * Tests for lib/cancel.ts: CancellationToken trees, cancelled() futures, AbortSignal in
 * (fromSignal, withSignal) and out (token.signal), withToken and DropGuard.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { BaseFuture, PENDING, gen, type Context, type IntoFuture, type Poll, type Waker } from "../lib/future.ts";
import { Runtime, spawn, yieldNow } from "../lib/executor.ts";
import { sleep } from "../lib/time/sleep.ts";
import { CancellationToken, CancelledError, withSignal, withToken } from "../lib/cancel.ts";
import { forEachBackend } from "./helpers.ts";

const rt = new Runtime();
afterAll(() => rt.close());
const run = <T>(f: IntoFuture<T>): T => rt.blockOn(f);

class Probe implements Waker, Context {
  readonly waker: Waker = this;
  wakes = 0;
  wake(): void {
    this.wakes++;
  }
}

/** A future that never completes on its own; records polls and cancellation. */
class Pending<T> extends BaseFuture<T> {
  polls = 0;
  cancelled = false;
  poll(_cx: Context): Poll<T> {
    this.polls++;
    return PENDING;
  }
  override cancel(): void {
    this.cancelled = true;
  }
}

/** Counts abort listeners added to and removed from a signal. */
function countListeners(signal: AbortSignal): { added: number; removed: number } {
  const c = { added: 0, removed: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...a: Parameters<typeof add>) => {
    c.added++;
    add(...a);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
    c.removed++;
    remove(...a);
  }) as typeof signal.removeEventListener;
  return c;
}

describe("CancellationToken", () => {
  test("cancel() wakes every cancelled() waiter and is idempotent; the default reason is a CancelledError", () => {
    const t = new CancellationToken();
    const n = run(function* () {
      const hs = [0, 1, 2].map(() => spawn(function* () { yield* t.cancelled(); return 1; }));
      yield* yieldNow();
      expect(t.waiterCount).toBe(3);
      t.cancel();
      t.cancel("ignored");
      let sum = 0;
      for (const h of hs) sum += yield* h;
      return sum;
    });
    expect(n).toBe(3);
    expect(t.isCancelled).toBe(true);
    expect(t.reason).toBeInstanceOf(CancelledError);
    expect(t.waiterCount).toBe(0);
    expect(() => t.throwIfCancelled()).toThrow(CancelledError);
  });

  test("children are cancelled with their parent (whole subtree), never the other way round", () => {
    const root = new CancellationToken();
    const a = root.child();
    const b = root.child();
    const a1 = a.child();
    a.cancel("a only");
    expect([root.isCancelled, a.isCancelled, a1.isCancelled, b.isCancelled]).toEqual([false, true, true, false]);
    expect(a1.reason).toBe("a only");
    root.cancel("shutdown");
    expect(b.isCancelled).toBe(true);
    expect(b.reason).toBe("shutdown");
    const late = root.child();
    expect(late.isCancelled).toBe(true);
  });

  test("a cancelled or detached child unlinks itself from its parent", () => {
    const root = new CancellationToken();
    const kids = [root.child(), root.child(), root.child()];
    kids[1]!.cancel();
    kids[2]!.detach();
    const first = (root as unknown as { firstChild: CancellationToken | null }).firstChild;
    expect(first).toBe(kids[0]!);
    expect((first as unknown as { nextSib: unknown }).nextSib).toBeNull();
    root.cancel();
    expect(kids[2]!.isCancelled).toBe(false);
  });

  test("abort listeners run after the whole subtree is marked cancelled, and re-entrant cancel() is a no-op", () => {
    const root = new CancellationToken();
    const child = root.child();
    const grandchild = child.child();
    let seen: boolean[] = [];
    let childAborts = 0;
    child.signal.addEventListener("abort", () => childAborts++);
    root.signal.addEventListener("abort", () => {
      seen = [child.isCancelled, grandchild.isCancelled];
      grandchild.cancel("again");
      child.cancel("again");
    });
    root.cancel("once");
    expect(seen).toEqual([true, true]);
    expect(childAborts).toBe(1);
    expect(grandchild.reason).toBe("once");
  });

  test("a 100 000-deep chain of children cancels without overflowing the stack", () => {
    const root = new CancellationToken();
    let t = root;
    for (let i = 0; i < 100_000; i++) t = t.child();
    root.cancel();
    expect(t.isCancelled).toBe(true);
  });

  test("a cancelled cancelled() future leaves no waiter", () => {
    const t = new CancellationToken();
    const f = t.cancelled();
    const p = new Probe();
    expect(f.poll(p)).toBe(PENDING);
    expect(t.waiterCount).toBe(1);
    f.cancel();
    expect(t.waiterCount).toBe(0);
    t.cancel();
    expect(p.wakes).toBe(0);
  });

  test("dropGuard cancels at scope exit unless disarmed", () => {
    const t = new CancellationToken();
    {
      using g = t.dropGuard();
      expect(g).toBeDefined();
      expect(t.isCancelled).toBe(false);
    }
    expect(t.isCancelled).toBe(true);
    const u = new CancellationToken();
    {
      using g = u.dropGuard();
      g.disarm();
    }
    expect(u.isCancelled).toBe(false);
  });
});

describe("AbortSignal interop", () => {
  test("token.signal is aborted with the token's reason, also when read after cancel", () => {
    const t = new CancellationToken();
    const s = t.signal;
    let fired = 0;
    s.addEventListener("abort", () => fired++);
    expect(s.aborted).toBe(false);
    t.cancel(new RangeError("stop"));
    expect(fired).toBe(1);
    expect(s.reason).toBeInstanceOf(RangeError);
    const u = new CancellationToken();
    u.cancel();
    expect(u.signal.aborted).toBe(true);
    expect(u.signal.reason).toBeInstanceOf(CancelledError);
  });

  test("fromSignal: the token is cancelled when the signal aborts, with its reason", () => {
    const ac = new AbortController();
    const t = CancellationToken.fromSignal(ac.signal);
    const child = t.child();
    ac.abort("bye");
    expect([t.isCancelled, child.isCancelled]).toEqual([true, true]);
    expect(t.reason).toBe("bye");
    const pre = CancellationToken.fromSignal(AbortSignal.abort("early"));
    expect(pre.isCancelled).toBe(true);
    expect(() => CancellationToken.fromSignal({} as AbortSignal)).toThrow(TypeError);
  });

  test("withSignal: an abort while waiting cancels the inner future and throws the signal's reason", () => {
    const ac = new AbortController();
    const counts = countListeners(ac.signal);
    const inner = new Pending<number>();
    const err = run(function* () {
      spawn(function* () {
        yield* yieldNow();
        ac.abort(new Error("aborted by user"));
      });
      try {
        yield* withSignal(inner, ac.signal);
      } catch (e) {
        return e;
      }
    });
    expect((err as Error).message).toBe("aborted by user");
    expect(inner.cancelled).toBe(true);
    expect(counts).toEqual({ added: 1, removed: 1 });
  });

  test("withSignal: an already aborted signal throws at once, without polling the inner future", () => {
    const inner = new Pending<number>();
    const f = withSignal(inner, AbortSignal.abort());
    let err: unknown;
    try {
      f.poll(new Probe());
    } catch (e) {
      err = e;
    }
    expect((err as DOMException).name).toBe("AbortError");
    expect(inner.polls).toBe(0);
    expect(inner.cancelled).toBe(true);
  });

  test("withSignal: the inner value passes through and the listener is removed", () => {
    const ac = new AbortController();
    const counts = countListeners(ac.signal);
    const v = run(function* () {
      return yield* withSignal(
        gen(function* () {
          yield* yieldNow();
          return "value";
        }),
        ac.signal,
      );
    });
    expect(v).toBe("value");
    expect(counts).toEqual({ added: 1, removed: 1 });
    expect(() => withSignal(new Pending(), {} as AbortSignal)).toThrow(TypeError);
  });

  test("withToken: cancelling the token cancels the inner future and throws the reason; cancelling it leaves no waiter", () => {
    const t = new CancellationToken();
    const inner = new Pending<number>();
    const err = run(function* () {
      spawn(function* () {
        yield* yieldNow();
        t.cancel();
      });
      try {
        yield* withToken(inner, t);
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(CancelledError);
    expect(inner.cancelled).toBe(true);
    const u = new CancellationToken();
    const w = withToken(new Pending<number>(), u);
    expect(w.poll(new Probe())).toBe(PENDING);
    expect(u.waiterCount).toBe(1);
    w.cancel();
    expect(u.waiterCount).toBe(0);
  });
});

forEachBackend("cancellation of timers", ({ run: runIo, runtime }) => {
  test("withSignal over a real sleep: the abort removes the timer", () => {
    const ac = new AbortController();
    const r = runIo(function* () {
      spawn(function* () {
        yield* sleep(1);
        ac.abort("timeout-ish");
      });
      try {
        yield* withSignal(sleep(60_000), ac.signal);
        return "slept";
      } catch (e) {
        return e;
      }
    });
    expect(r).toBe("timeout-ish");
    expect(runtime().driver.wheel.size).toBe(0);
  });

  test("withToken over a real sleep: a token cancelled via its parent removes the timer", () => {
    const root = new CancellationToken();
    const r = runIo(function* () {
      spawn(function* () {
        yield* sleep(1);
        root.cancel();
      });
      try {
        yield* withToken(sleep(60_000), root.child());
        return "slept";
      } catch (e) {
        return e instanceof CancelledError ? "cancelled" : e;
      }
    });
    expect(r).toBe("cancelled");
    expect(runtime().driver.wheel.size).toBe(0);
  });
});

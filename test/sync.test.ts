/**
 * Tests for lib/sync: wait lists, Semaphore, Mutex, RwLock, Notify, Barrier, and the
 * mpsc / oneshot / broadcast / watch channels.
 *
 * Two styles: tasks on a pure executor Runtime (no I/O, no timers: ordering comes from the
 * FIFO run queue), and hand-polled futures with a recording waker where a test must stop
 * between "granted" and "polled" (the cancel-after-grant cases).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { PENDING, type Context, type Future, type IntoFuture, type Poll, type Waker } from "../lib/future.ts";
import { Runtime, spawn, yieldNow } from "../lib/executor.ts";
import { RuntimeError } from "../lib/errors.ts";
import { resetBudget } from "../lib/task/coop.ts";
import {
  AcquireError,
  Barrier,
  LaggedError,
  Mutex,
  Notify,
  RecvError,
  RwLock,
  Semaphore,
  SendError,
  WaitList,
  Waiter,
  broadcast,
  channel,
  oneshot,
  unboundedChannel,
  watch,
} from "../lib/sync/index.ts";

const rt = new Runtime();
afterAll(() => rt.close());
const run = <T>(f: IntoFuture<T>): T => rt.blockOn(f);

/** A waker + context that counts wakes. */
class Probe implements Waker, Context {
  readonly waker: Waker = this;
  wakes = 0;
  wake(): void {
    this.wakes++;
  }
}

/** Polls once outside any task, with a fresh coop budget. */
function poll<T>(f: Future<T>, cx: Context = new Probe()): Poll<T> {
  resetBudget();
  return f.poll(cx);
}

class Node extends Waiter<void> {
  constructor(readonly id: number) {
    super();
  }
  poll(): Poll<void> {
    return PENDING;
  }
}

describe("WaitList", () => {
  test("push/shift are FIFO and remove() unlinks from the middle in O(1)", () => {
    const q = new WaitList<Node>();
    const ns = [0, 1, 2, 3].map((i) => new Node(i));
    for (const n of ns) q.push(n);
    expect(q.length).toBe(4);
    expect(q.remove(ns[2]!)).toBe(true);
    expect(q.remove(ns[2]!)).toBe(false);
    expect(ns[2]!.isQueued).toBe(false);
    expect([q.shift()!.id, q.shift()!.id, q.shift()!.id]).toEqual([0, 1, 3]);
    expect(q.shift()).toBeNull();
    expect(q.length).toBe(0);
  });

  test("wakeAll unlinks every waiter before waking it, once each", () => {
    const q = new WaitList<Node>();
    const probes = [new Probe(), new Probe()];
    const ns = probes.map((p, i) => {
      const n = new Node(i);
      n.waker = p;
      q.push(n);
      return n;
    });
    expect(q.wakeAll()).toBe(2);
    expect(q.length).toBe(0);
    expect(ns.every((n) => !n.isQueued && n.waker === null)).toBe(true);
    expect(probes.map((p) => p.wakes)).toEqual([1, 1]);
    expect(q.wakeAll()).toBe(0);
  });

  test("pushing a waiter that is already queued throws", () => {
    const q = new WaitList<Node>();
    const n = new Node(0);
    q.push(n);
    expect(() => q.push(n)).toThrow("already queued");
  });
});

describe("Semaphore", () => {
  test("acquire takes permits at once when free; release and dispose give them back", () => {
    const sem = new Semaphore(3);
    run(function* () {
      const p = yield* sem.acquire(2);
      expect(sem.availablePermits).toBe(1);
      {
        using q = yield* sem.acquire();
        expect(q.permits).toBe(1);
        expect(sem.availablePermits).toBe(0);
      }
      expect(sem.availablePermits).toBe(1);
      p.release();
      p.release(); // idempotent
      expect(sem.availablePermits).toBe(3);
    });
  });

  test("waiters are served in FIFO order", () => {
    const sem = new Semaphore(1);
    const order: number[] = [];
    run(function* () {
      const held = yield* sem.acquire();
      const hs = [0, 1, 2, 3].map((i) =>
        spawn(function* () {
          using _p = yield* sem.acquire();
          order.push(i);
          yield* yieldNow();
        }),
      );
      yield* yieldNow();
      expect(sem.waiterCount).toBe(4);
      held.release();
      for (const h of hs) yield* h;
    });
    expect(order).toEqual([0, 1, 2, 3]);
    expect(sem.availablePermits).toBe(1);
  });

  test("no barging: a small request waits behind a queued large one even when permits are free", () => {
    const sem = new Semaphore(2);
    const held = sem.tryAcquire(1)!;
    const big = sem.acquire(2);
    expect(poll(big)).toBe(PENDING);
    expect(sem.availablePermits).toBe(1);
    expect(sem.tryAcquire(1)).toBeNull();
    const small = sem.acquire(1);
    expect(poll(small)).toBe(PENDING);
    expect(sem.waiterCount).toBe(2);
    held.release();
    const bigPermit = poll(big);
    expect(bigPermit).not.toBe(PENDING);
    expect(poll(small)).toBe(PENDING);
    (bigPermit as { release(): void }).release();
    expect(poll(small)).not.toBe(PENDING);
  });

  test("cancelling a queued head waiter lets the smaller ones behind it through", () => {
    const sem = new Semaphore(1);
    const big = sem.acquire(5);
    const small = sem.acquire(1);
    const pSmall = new Probe();
    expect(poll(big)).toBe(PENDING);
    expect(poll(small, pSmall)).toBe(PENDING);
    big.cancel();
    expect(sem.waiterCount).toBe(0);
    expect(pSmall.wakes).toBe(1);
    expect(poll(small)).not.toBe(PENDING);
    expect(sem.availablePermits).toBe(0);
  });

  test("a waiter cancelled while queued leaves no entry and takes no permit", () => {
    const sem = new Semaphore(0);
    const a = sem.acquire(2);
    expect(poll(a)).toBe(PENDING);
    expect(sem.waiterCount).toBe(1);
    a.cancel();
    a.cancel(); // idempotent
    expect(sem.waiterCount).toBe(0);
    sem.addPermits(2);
    expect(sem.availablePermits).toBe(2);
  });

  test("a waiter cancelled after being granted, before its poll, passes the permits on", () => {
    const sem = new Semaphore(0);
    const a = sem.acquire(2);
    const b = sem.acquire(2);
    const pa = new Probe();
    const pb = new Probe();
    poll(a, pa);
    poll(b, pb);
    sem.addPermits(2); // granted to `a`, which is woken but not yet polled
    expect(pa.wakes).toBe(1);
    expect(sem.availablePermits).toBe(0);
    expect(sem.waiterCount).toBe(1);
    a.cancel();
    expect(pb.wakes).toBe(1);
    const permit = poll(b);
    expect(permit).not.toBe(PENDING);
    expect(sem.waiterCount).toBe(0);
    (permit as { release(): void }).release();
    expect(sem.availablePermits).toBe(2);
  });

  test("close() wakes every waiter with AcquireError; tryAcquire then throws", () => {
    const sem = new Semaphore(0);
    const hs = [0, 1].map(() =>
      rt.spawn(function* () {
        try {
          yield* sem.acquire();
          return "acquired";
        } catch (e) {
          return e instanceof AcquireError ? "closed" : "other";
        }
      }),
    );
    const results = run(function* () {
      yield* yieldNow();
      expect(sem.waiterCount).toBe(2);
      sem.close();
      return [yield* hs[0]!, yield* hs[1]!];
    });
    expect(results).toEqual(["closed", "closed"]);
    expect(sem.waiterCount).toBe(0);
    expect(() => sem.tryAcquire()).toThrow(AcquireError);
  });

  test("forget() drops permits for good; bad counts are RangeError/TypeError", () => {
    const sem = new Semaphore(2);
    sem.tryAcquire(1)!.forget();
    expect(sem.availablePermits).toBe(1);
    expect(() => new Semaphore(-1)).toThrow(RangeError);
    expect(() => sem.acquire(1.5)).toThrow(TypeError);
    expect(() => sem.addPermits(2 ** 31)).toThrow(RangeError);
  });
});

describe("Mutex", () => {
  test("the guard reads and writes the value; tryLock fails while locked; use after release throws", () => {
    const m = new Mutex({ n: 1 });
    run(function* () {
      const g = yield* m.lock();
      g.value.n++;
      expect(m.isLocked).toBe(true);
      expect(m.tryLock()).toBeNull();
      g.release();
      g.release();
      expect(() => g.value).toThrow(RuntimeError);
      using g2 = m.tryLock()!;
      g2.value = { n: g2.value.n * 10 };
    });
    expect(m.isLocked).toBe(false);
    expect(m.tryLock()!.value.n).toBe(20);
  });

  test("mutual exclusion across yields, and lock waiters are served in FIFO order", () => {
    const m = new Mutex(0);
    const order: number[] = [];
    let inside = 0;
    let maxInside = 0;
    run(function* () {
      const hs = [0, 1, 2, 3, 4].map((i) =>
        spawn(function* () {
          using g = yield* m.lock();
          inside++;
          maxInside = Math.max(maxInside, inside);
          order.push(i);
          const v = g.value;
          yield* yieldNow();
          yield* yieldNow();
          g.value = v + 1;
          inside--;
        }),
      );
      for (const h of hs) yield* h;
    });
    expect(maxInside).toBe(1);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(m.tryLock()!.value).toBe(5);
  });

  test("an uncontended lock/unlock loop still yields to other tasks (coop budget)", () => {
    const m = new Mutex(0);
    let otherRanAt = -1;
    run(function* () {
      spawn(function* () {
        using g = m.tryLock(); // free: the main task yields before it acquires, not while holding
        otherRanAt = g === null ? -2 : g.value;
      });
      for (let i = 0; i < 1000; i++) {
        const g = yield* m.lock();
        g.value++;
        g.release();
      }
    });
    expect(otherRanAt).toBeGreaterThan(0);
    expect(otherRanAt).toBeLessThan(1000);
  });

  test("a cancelled lock waiter leaves no entry; one cancelled after the hand-off passes the lock on", () => {
    const m = new Mutex("x");
    const g = m.tryLock()!;
    const a = m.lock();
    const b = m.lock();
    const c = m.lock();
    const pc = new Probe();
    poll(a);
    poll(b);
    poll(c, pc);
    expect(m.waiterCount).toBe(3);
    b.cancel();
    expect(m.waiterCount).toBe(2);
    g.release(); // handed to `a`
    a.cancel(); // before `a` was polled: must pass to `c`
    expect(pc.wakes).toBe(1);
    const gc = poll(c);
    expect(gc).not.toBe(PENDING);
    expect(m.waiterCount).toBe(0);
    (gc as { release(): void }).release();
    expect(m.isLocked).toBe(false);
  });
});

describe("RwLock", () => {
  test("readers share; a writer excludes; readers arriving after a queued writer wait behind it", () => {
    const l = new RwLock(1);
    const r1 = l.tryRead()!;
    const r2 = l.tryRead()!;
    expect(l.readers).toBe(2);
    expect(l.tryWrite()).toBeNull();
    const w = l.write();
    const pw = new Probe();
    expect(poll(w, pw)).toBe(PENDING);
    const r3 = l.read();
    expect(poll(r3)).toBe(PENDING);
    expect(l.tryRead()).toBeNull();
    r1.release();
    expect(pw.wakes).toBe(0);
    r2.release();
    expect(pw.wakes).toBe(1);
    const wg = poll(w) as { value: number; release(): void };
    expect(l.isWriteLocked).toBe(true);
    wg.value = 2;
    expect(poll(r3)).toBe(PENDING);
    wg.release();
    const rg = poll(r3) as { value: number };
    expect(rg.value).toBe(2);
    expect(l.readers).toBe(1);
  });

  test("cancelling a queued writer lets the readers behind it in", () => {
    const l = new RwLock(0);
    const r = l.tryRead()!;
    const w = l.write();
    poll(w);
    const r2 = l.read();
    const p2 = new Probe();
    expect(poll(r2, p2)).toBe(PENDING);
    w.cancel();
    expect(p2.wakes).toBe(1);
    expect(poll(r2)).not.toBe(PENDING);
    expect(l.waiterCount).toBe(0);
    expect(l.readers).toBe(2);
    r.release();
  });
});

describe("Notify", () => {
  test("notifyOne before notified() stores one permit; permits do not accumulate", () => {
    const n = new Notify();
    n.notifyOne();
    n.notifyOne();
    expect(poll(n.notified())).toBeUndefined();
    expect(poll(n.notified())).toBe(PENDING);
  });

  test("notifyOne wakes the oldest waiter only", () => {
    const n = new Notify();
    const order: number[] = [];
    run(function* () {
      const hs = [0, 1, 2].map((i) =>
        spawn(function* () {
          yield* n.notified();
          order.push(i);
        }),
      );
      yield* yieldNow();
      expect(n.waiterCount).toBe(3);
      n.notifyOne();
      yield* yieldNow();
      expect(order).toEqual([0]);
      n.notifyOne();
      n.notifyOne();
      for (const h of hs) yield* h;
    });
    expect(order).toEqual([0, 1, 2]);
  });

  test("notifyWaiters completes every future created before it, polled or not, and stores no permit", () => {
    const n = new Notify();
    const polled = n.notified();
    const unpolled = n.notified();
    expect(poll(polled)).toBe(PENDING);
    n.notifyWaiters();
    const later = n.notified();
    expect(n.waiterCount).toBe(0);
    expect(poll(polled)).toBeUndefined();
    expect(poll(unpolled)).toBeUndefined();
    expect(poll(later)).toBe(PENDING);
  });

  test("a waiter cancelled after notifyOne chose it passes the notification on", () => {
    const n = new Notify();
    const a = n.notified();
    const b = n.notified();
    const pb = new Probe();
    poll(a);
    poll(b, pb);
    n.notifyOne(); // chooses `a`
    a.cancel();
    expect(pb.wakes).toBe(1);
    expect(poll(b)).toBeUndefined();
    // With nobody left to pass it to, it becomes the permit.
    const c = n.notified();
    poll(c);
    n.notifyOne();
    c.cancel();
    expect(poll(n.notified())).toBeUndefined();
  });

  test("a cancelled queued waiter leaves no entry", () => {
    const n = new Notify();
    const a = n.notified();
    poll(a);
    a.cancel();
    expect(n.waiterCount).toBe(0);
    n.notifyOne(); // no one queued: becomes the permit, not lost on `a`
    expect(poll(n.notified())).toBeUndefined();
  });
});

describe("Barrier", () => {
  test("n tasks are released together with exactly one leader, generation after generation", () => {
    const b = new Barrier(3);
    const leaders = run(function* () {
      let total = 0;
      for (let gen = 0; gen < 2; gen++) {
        const hs = [0, 1, 2].map(() => spawn(function* () { return (yield* b.wait()).isLeader; }));
        for (const h of hs) if (yield* h) total++;
      }
      return total;
    });
    expect(leaders).toBe(2);
    expect(b.generation).toBe(2);
    expect(b.waiterCount).toBe(0);
  });

  test("a waiter cancelled before the barrier trips takes its arrival back", () => {
    const b = new Barrier(2);
    const a = b.wait();
    expect(poll(a)).toBe(PENDING);
    a.cancel();
    expect(b.waiterCount).toBe(0);
    const c = b.wait();
    expect(poll(c)).toBe(PENDING); // alone: must not trip
    const d = b.wait();
    expect((poll(d) as { isLeader: boolean }).isLeader).toBe(true);
    expect((poll(c) as { isLeader: boolean }).isLeader).toBe(false);
  });

  test("Barrier(0) and Barrier(1) never wait", () => {
    expect((poll(new Barrier(0).wait()) as { isLeader: boolean }).isLeader).toBe(true);
    expect((poll(new Barrier(1).wait()) as { isLeader: boolean }).isLeader).toBe(true);
  });
});

describe("mpsc channel", () => {
  test("messages from several producers arrive in send order; null after every sender closed", () => {
    const [tx, rx] = channel<number>(4);
    const got = run(function* () {
      const tx2 = tx.clone();
      spawn(function* () {
        for (let i = 0; i < 10; i++) yield* tx.send(i);
        tx.close();
      });
      spawn(function* () {
        for (let i = 100; i < 110; i++) yield* tx2.send(i);
        tx2.close();
      });
      const out: number[] = [];
      for (let v; (v = yield* rx.recv()) !== null; ) out.push(v);
      return out;
    });
    expect(got.filter((v) => v < 100)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(got.filter((v) => v >= 100)).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    expect(rx.isClosed).toBe(true);
  });

  test("backpressure: send waits while the channel is full; waiting senders go in FIFO order", () => {
    const [tx, rx] = channel<string>(2);
    run(function* () {
      yield* tx.send("a");
      yield* tx.send("b");
      expect(tx.capacity).toBe(0);
      expect(tx.trySend("x")).toBe(false);
      const s1 = spawn(function* () { yield* tx.send("c"); });
      const s2 = spawn(function* () { yield* tx.send("d"); });
      yield* yieldNow();
      expect(tx.waiterCount).toBe(2);
      expect(s1.isFinished).toBe(false);
      expect(yield* rx.recv()).toBe("a");
      yield* s1;
      expect(s2.isFinished).toBe(false);
      expect(yield* rx.recv()).toBe("b");
      yield* s2;
      expect([yield* rx.recv(), yield* rx.recv()]).toEqual(["c", "d"]);
      expect(tx.capacity).toBe(2);
    });
  });

  test("closing every sender wakes a parked recv with null", () => {
    const [tx, rx] = channel<number>(1);
    run(function* () {
      const h = spawn(function* () { return yield* rx.recv(); });
      yield* yieldNow();
      expect(rx.waiterCount).toBe(1);
      tx.close();
      expect(yield* h).toBeNull();
      expect(rx.waiterCount).toBe(0);
    });
  });

  test("receiver close wakes waiting senders with SendError carrying the value; queued messages stay receivable", () => {
    const [tx, rx] = channel<string>(1);
    const [outcome, left, next] = run(function* () {
      yield* tx.send("queued");
      const h = spawn(function* () {
        try {
          yield* tx.send("blocked");
          return "sent";
        } catch (e) {
          return e instanceof SendError ? `refused:${e.value}` : "other";
        }
      });
      yield* yieldNow();
      rx.close();
      return [yield* h, yield* rx.recv(), yield* rx.recv()];
    });
    expect(outcome).toBe("refused:blocked");
    expect(left).toBe("queued");
    expect(next).toBeNull();
    expect(tx.waiterCount).toBe(0);
    expect(() => tx.send("late")).toThrow(SendError);
    expect(() => tx.trySend("late")).toThrow(SendError);
  });

  test("a cancelled recv leaves no waiter and loses no message", () => {
    const [tx, rx] = channel<number>(2);
    const r = rx.recv();
    expect(poll(r)).toBe(PENDING);
    expect(rx.waiterCount).toBe(1);
    r.cancel();
    expect(rx.waiterCount).toBe(0);
    expect(tx.trySend(7)).toBe(true);
    expect(poll(rx.recv())).toBe(7);
  });

  test("a cancelled waiting send leaves no waiter and is not sent; one cancelled after the slot was handed to it passes the slot on", () => {
    const [tx, rx] = channel<string>(1);
    tx.trySend("first");
    const a = tx.send("a");
    const b = tx.send("b");
    const c = tx.send("c");
    const pc = new Probe();
    poll(a);
    poll(b);
    poll(c, pc);
    expect(tx.waiterCount).toBe(3);
    b.cancel();
    expect(tx.waiterCount).toBe(2);
    expect(rx.tryRecv()).toBe("first"); // the freed slot is handed to `a`
    a.cancel(); // before `a` pushed: the slot must go to `c`
    expect(pc.wakes).toBe(1);
    expect(poll(c)).toBeUndefined();
    expect(rx.tryRecv()).toBe("c");
    expect(rx.tryRecv()).toBeNull();
    expect(tx.capacity).toBe(1);
    expect(tx.waiterCount).toBe(0);
  });

  test("unbounded: send never waits; close semantics match the bounded channel", () => {
    const [tx, rx] = unboundedChannel<number>();
    for (let i = 0; i < 1000; i++) tx.send(i);
    expect(rx.length).toBe(1000);
    const tx2 = tx.clone();
    tx.close();
    expect(() => tx.send(1)).toThrow("this sender handle was closed");
    expect(rx.isClosed).toBe(false);
    tx2.close();
    const sum = run(function* () {
      let s = 0;
      for (let v; (v = yield* rx.recv()) !== null; ) s += v;
      return s;
    });
    expect(sum).toBe(499500);
  });

  test("a consumer draining a long queue yields to other tasks (coop budget)", () => {
    const [tx, rx] = unboundedChannel<number>();
    for (let i = 0; i < 1000; i++) tx.send(i);
    tx.close();
    let otherRanAt = -1;
    run(function* () {
      let seen = 0;
      spawn(function* () { otherRanAt = seen; });
      while ((yield* rx.recv()) !== null) seen++;
    });
    expect(otherRanAt).toBeGreaterThan(0);
    expect(otherRanAt).toBeLessThan(1000);
  });

  test("capacity must be a positive integer", () => {
    expect(() => channel(0)).toThrow(RangeError);
    expect(() => channel(1.5)).toThrow(TypeError);
  });
});

describe("oneshot", () => {
  test("a value sent before or after recv() starts is delivered once", () => {
    const [tx, rx] = oneshot<number>();
    const [tx2, rx2] = oneshot<number>();
    tx.send(1);
    const v = run(function* () {
      spawn(function* () { tx2.send(2); });
      return [yield* rx.recv(), yield* rx2.recv()];
    });
    expect(v).toEqual([1, 2]);
    expect(() => tx.send(3)).toThrow(SendError);
    expect(() => rx.tryRecv()).toThrow("already received");
  });

  test("closing the sender without sending wakes recv with RecvError", () => {
    const [tx, rx] = oneshot<number>();
    const r = run(function* () {
      const h = spawn(function* () {
        try {
          return yield* rx.recv();
        } catch (e) {
          return e instanceof RecvError ? "recv-error" : "other";
        }
      });
      yield* yieldNow();
      expect(rx.waiterCount).toBe(1);
      tx.close();
      return yield* h;
    });
    expect(r).toBe("recv-error");
    expect(rx.waiterCount).toBe(0);
  });

  test("sending to a closed receiver throws SendError carrying the value", () => {
    const [tx, rx] = oneshot<{ id: number }>();
    rx.close();
    expect(tx.isClosed).toBe(true);
    let err: unknown;
    try {
      tx.send({ id: 9 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SendError);
    expect((err as SendError<{ id: number }>).value).toEqual({ id: 9 });
  });

  test("a cancelled recv leaves no waiter and the value stays for the next recv", () => {
    const [tx, rx] = oneshot<string>();
    const r = rx.recv();
    expect(poll(r)).toBe(PENDING);
    r.cancel();
    expect(rx.waiterCount).toBe(0);
    expect(rx.tryRecv()).toBeNull();
    tx.send("kept");
    expect(poll(rx.recv())).toBe("kept");
  });
});

describe("broadcast", () => {
  test("every receiver sees every value; subscribe() sees only later ones", () => {
    const [tx, rx1] = broadcast<number>(8);
    const rx2 = tx.subscribe();
    expect(tx.send(1)).toBe(2);
    const rx3 = tx.subscribe();
    tx.send(2);
    tx.close();
    const out = run(function* () {
      const drain = function* (rx: typeof rx1) {
        const vs: number[] = [];
        for (let v; (v = yield* rx.recv()) !== null; ) vs.push(v);
        return vs;
      };
      return [yield* drain(rx1), yield* drain(rx2), yield* drain(rx3)];
    });
    expect(out).toEqual([[1, 2], [1, 2], [2]]);
  });

  test("a lagging receiver gets LaggedError with the count missed, then continues from the oldest kept", () => {
    const [tx, rx] = broadcast<number>(2);
    for (let i = 0; i < 5; i++) tx.send(i);
    let err: unknown;
    try {
      poll(rx.recv());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LaggedError);
    expect((err as LaggedError).missed).toBe(3);
    expect(poll(rx.recv())).toBe(3);
    expect(rx.tryRecv()).toBe(4);
    expect(rx.tryRecv()).toBeNull();
  });

  test("closing the sender wakes parked receivers with null; sending with no receiver throws SendError", () => {
    const [tx, rx] = broadcast<string>(4);
    const rx2 = tx.subscribe();
    const r = run(function* () {
      const hs = [rx, rx2].map((x) => spawn(function* () { return yield* x.recv(); }));
      yield* yieldNow();
      expect(rx.waiterCount).toBe(2);
      tx.close();
      return [yield* hs[0]!, yield* hs[1]!];
    });
    expect(r).toEqual([null, null]);
    expect(rx.waiterCount).toBe(0);
    const [tx2, only] = broadcast<string>(1);
    only.close();
    expect(() => tx2.send("nobody")).toThrow(SendError);
  });

  test("a cancelled recv leaves no waiter and loses no value; read values are released", () => {
    const [tx, rx] = broadcast<object>(4);
    const rx2 = tx.subscribe();
    const r = rx.recv();
    expect(poll(r)).toBe(PENDING);
    r.cancel();
    expect(rx.waiterCount).toBe(0);
    const v = { big: true };
    tx.send(v);
    expect(poll(rx.recv())).toBe(v);
    const buf = (tx as unknown as { shared: { buf: unknown[] } }).shared.buf;
    expect(buf[0]).toBe(v); // rx2 has not read it
    rx2.close(); // leaving releases its unread values
    expect(buf[0]).toBeUndefined();
  });
});

describe("watch", () => {
  test("changed() reports the latest value only; the initial value counts as seen", () => {
    const [tx, rx] = watch("a");
    expect(rx.hasChanged).toBe(false);
    const v = run(function* () {
      spawn(function* () {
        tx.send("b");
        tx.send("c");
      });
      yield* rx.changed();
      return rx.borrowAndUpdate();
    });
    expect(v).toBe("c");
    expect(rx.hasChanged).toBe(false);
    expect(poll(rx.changed())).toBe(PENDING);
  });

  test("closing the sender: the last unseen value is reported, then changed() throws RecvError", () => {
    const [tx, rx] = watch(0);
    tx.send(1);
    tx.close();
    expect(poll(rx.changed())).toBeUndefined();
    expect(rx.borrow()).toBe(1);
    expect(() => poll(rx.changed())).toThrow(RecvError);
  });

  test("a parked changed() is woken by close and a cancelled one leaves no waiter", () => {
    const [tx, rx] = watch(0);
    const c = rx.changed();
    expect(poll(c)).toBe(PENDING);
    c.cancel();
    expect(rx.waiterCount).toBe(0);
    const p = new Probe();
    const d = rx.changed();
    poll(d, p);
    tx.close();
    expect(p.wakes).toBe(1);
    expect(rx.waiterCount).toBe(0);
  });

  test("send with no receiver throws SendError; sendReplace updates anyway", () => {
    const [tx, rx] = watch(1);
    rx.close();
    expect(tx.receiverCount).toBe(0);
    expect(() => tx.send(2)).toThrow(SendError);
    expect(tx.sendReplace(3)).toBe(1);
    expect(tx.borrow()).toBe(3);
  });
});

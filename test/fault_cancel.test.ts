// Fault suite, cancellation, on every backend: every kind of waiting op (accept, read,
// write, connect — pending and fast —, sleep, channel recv, mutex lock) is cancelled at a
// random point: before its first poll, while parked, after a driver turn (io_uring: in the
// kernel), right after whatever completes it happened (completed-then-cancelled), or by a
// timeout() with a random deadline. Afterwards: no waker left in the driver's slab or a
// wait list, no timer, no io_uring op or owned buffer, no fd — and nothing lost: bytes,
// connections, messages and the lock all reach the next taker. On io_uring, released
// buffers are poisoned and checked (fault_util.ts installPoison). Seeded: REEL_SEED=n
// replays a run; the seed is in every failure message.
import { expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import {
  JoinError,
  currentRuntime,
  Mutex,
  TcpListener,
  TcpStream,
  TimeoutError,
  map,
  sleep,
  spawn,
  timeout,
  unboundedChannel,
  yieldNow,
  type BaseFuture,
  type JoinHandle,
  type MutexGuard,
  type Runtime,
  type SocketAddr,
} from "../lib/index.ts";
import { resolve } from "../lib/net/addr.ts";
import { K_PLAIN, ST_SUBMITTED, UringDriver } from "../lib/driver/uring/driver.ts";
import { fdTable, forEachBackend, opened, simSkip } from "./helpers.ts";
import { Rng, installPoison, leftovers, seedFromEnv, settleUring, smallBuffers } from "./fault_util.ts";

const ITERATIONS = Number(process.env.REEL_CANCEL_ITERATIONS ?? 40);
const SEED = seedFromEnv();
const enc = new TextEncoder();

/** Where, relative to the op's life, the cancel lands. */
const POINTS = ["unpolled", "parked", "turned", "slept", "completed", "completed+yield", "completed+turn", "completed+reaped", "timeout"] as const;
type Point = (typeof POINTS)[number];

/** One kind of waiting op: its resources, the op, what completes it, and the checks after. */
interface Kind<S, T> {
  setup(rng: Rng): Generator<unknown, S, unknown>;
  op(s: S): BaseFuture<T>;
  /** Makes the op completable, synchronously (no yield between it and the cancel). */
  trigger(s: S, rng: Rng): void;
  /** Wait lists of sync primitives: parked waiters left (0 expected). */
  waiters?(s: S): number;
  /** After the cancel: nothing was lost, the resource still works; then releases everything. */
  verify(s: S, out: { completed: boolean; value?: T; triggered: boolean }, rng: Rng): Generator<unknown, void, unknown>;
}

/** A blocking raw client socket connected to `port` (the connection waits in the accept queue). */
function rawConnect(port: number, blocking = true): number {
  const addr = resolve({ hostname: "127.0.0.1", port });
  const fd = libc.socket(SYS.AF_INET, SYS.SOCK_STREAM | SYS.SOCK_CLOEXEC | (blocking ? 0 : SYS.SOCK_NONBLOCK), 0);
  if (fd < 0) throw new Error(`socket: ${fd}`);
  const r = libc.connect(fd, addr.sockaddr, addr.length);
  if (r < 0 && blocking) throw new Error(`connect: ${r}`);
  return fd;
}

function* pair(): Generator<unknown, [TcpStream, TcpStream], unknown> {
  const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  try {
    const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
    const [s] = yield* l.accept();
    return [c, s];
  } finally {
    l.close();
  }
}

const MSG_FLAGS = SYS.MSG_NOSIGNAL | 0x40; // MSG_DONTWAIT

function drainRaw(fd: number, into: Uint8Array[]): void {
  const buf = new Uint8Array(new ArrayBuffer(65536));
  for (;;) {
    const n = libc.read(fd, buf);
    if (n <= 0) return;
    into.push(buf.slice(0, n));
  }
}

const accept: Kind<{ l: TcpListener; client: number }, [TcpStream, SocketAddr]> = {
  *setup() {
    return { l: TcpListener.bind({ hostname: "127.0.0.1", port: 0 }), client: -1 };
  },
  op: (s) => s.l.accept(),
  trigger(s) {
    s.client = rawConnect(s.l.localAddr.port);
    libc.write(s.client, enc.encode("A"));
  },
  *verify(s, out) {
    if (s.client < 0) this.trigger(s, null as never);
    // The connection was either accepted by the cancelled op, or is still queued: never dropped.
    let stream: TcpStream;
    try {
      [stream] = out.completed ? out.value! : yield* timeout(s.l.accept(), 2000);
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      throw new Error("a connection the cancelled accept had taken was lost: the next accept() never got it");
    }
    const b = new Uint8Array(1);
    yield* timeout(stream.readExact(b), 5000);
    expect(b[0]).toBe(65);
    stream.close();
    libc.close(s.client);
    s.l.close();
  },
};

const read: Kind<{ c: TcpStream; s: TcpStream; sent: number[] }, Uint8Array> = {
  *setup() {
    const [c, s] = yield* pair();
    return { c, s, sent: [] };
  },
  op(st) {
    const buf = new Uint8Array(64);
    return map(st.s.read(buf), (n) => buf.slice(0, n));
  },
  trigger(st, rng) {
    const data = new Uint8Array(new ArrayBuffer(rng.int(1, 64)));
    for (let i = 0; i < data.length; i++) data[i] = (st.sent.length + i) & 0xff;
    expect(libc.send(st.c.fd, data, MSG_FLAGS)).toBe(data.length);
    st.sent.push(...data);
  },
  *verify(st, out, rng) {
    if (st.sent.length === 0) this.trigger(st, rng);
    // Every byte sent arrives exactly once, in order: in the cancelled read's result or later.
    const got: number[] = out.completed ? [...out.value!] : [];
    const buf = new Uint8Array(64);
    while (got.length < st.sent.length) {
      const n = yield* timeout(st.s.read(buf), 5000);
      expect(n).toBeGreaterThan(0);
      got.push(...buf.subarray(0, n));
    }
    expect(got).toEqual(st.sent);
    st.c.close();
    st.s.close();
  },
};

const CHUNK = 32768;
const write: Kind<{ c: TcpStream; s: TcpStream; filled: number; peer: Uint8Array[] }, number> = {
  *setup() {
    const [c, s] = yield* pair();
    // Small, but above loopback's 64 KiB MSS: smaller windows stall on the 200 ms persist timer.
    smallBuffers(c.fd, 1 << 18);
    smallBuffers(s.fd, 1 << 18);
    // Fill both socket buffers so the next write has to wait.
    const zeros = new Uint8Array(new ArrayBuffer(65536));
    let filled = 0;
    for (let n; (n = libc.send(c.fd, zeros, MSG_FLAGS)) > 0; ) filled += n;
    return { c, s, filled, peer: [] };
  },
  op: (st) => st.c.write(new Uint8Array(CHUNK).fill(0x11)),
  trigger(st) {
    drainRaw(st.s.fd, st.peer); // room for the write now
  },
  *verify(st, out) {
    // Read everything the peer gets: the fill, then what the cancelled write sent, then the marker.
    const reader = spawn(function* () {
      const buf = new Uint8Array(65536);
      for (let n; (n = yield* st.s.read(buf)) > 0; ) st.peer.push(buf.slice(0, n));
    });
    const marker = enc.encode("MARK");
    yield* timeout(st.c.writeAll(marker), 5000);
    st.c.shutdown("write");
    yield* timeout(reader, 5000);
    const p = Buffer.concat(st.peer);
    expect(p.length).toBeGreaterThanOrEqual(st.filled + marker.length);
    expect(p.subarray(0, st.filled).every((b) => b === 0)).toBe(true);
    expect([...p.subarray(p.length - marker.length)]).toEqual([...marker]);
    const middle = p.subarray(st.filled, p.length - marker.length);
    expect(middle.every((b) => b === 0x11)).toBe(true);
    const uring = currentRuntime()!.driver.name === "uring";
    if (out.completed) expect(middle.length).toBe(out.value!);
    // A readiness write is cancel-safe: nothing is sent unless the op reported it. An
    // io_uring send cancelled too late has sent its bytes (documented: not cancel-safe).
    else if (!uring) expect(middle.length).toBe(0);
    else expect(middle.length).toBeLessThanOrEqual(CHUNK);
    st.c.close();
    st.s.close();
  },
};

function connectKind(pending: boolean): Kind<{ l: TcpListener; fillers: number[] }, TcpStream> {
  return {
    *setup() {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0, backlog: pending ? 0 : 16 });
      // A full accept queue: the kernel drops the next SYN, so connect stays pending.
      const fillers = pending ? [rawConnect(l.localAddr.port, false), rawConnect(l.localAddr.port, false)] : [];
      return { l, fillers };
    },
    op: (s) => TcpStream.connect({ hostname: "127.0.0.1", port: s.l.localAddr.port }),
    trigger() {},
    *verify(s, out) {
      if (out.completed) out.value!.close();
      for (const fd of s.fillers) libc.close(fd);
      s.l.close();
    },
  };
}

const sleepKind: Kind<{ ms: number }, void> = {
  *setup(rng) {
    return { ms: rng.int(0, 3) };
  },
  op: (s) => sleep(s.ms),
  trigger() {},
  *verify() {},
};

type Chan = ReturnType<typeof unboundedChannel<number>>;
const recv: Kind<{ tx: Chan[0]; rx: Chan[1]; sent: number[] }, number | null> = {
  *setup() {
    const [tx, rx] = unboundedChannel<number>();
    return { tx, rx, sent: [] };
  },
  op: (s) => s.rx.recv(),
  trigger(s, rng) {
    for (let i = rng.int(1, 3); i > 0; i--) {
      s.sent.push(s.sent.length);
      s.tx.send(s.sent.length - 1);
    }
  },
  waiters: (s) => s.rx.waiterCount,
  *verify(s, out, rng) {
    if (s.sent.length === 0) this.trigger(s, rng);
    // Every message is received exactly once, in order.
    const got = out.completed ? [out.value as number] : [];
    while (got.length < s.sent.length) got.push((yield* timeout(s.rx.recv(), 5000)) as number);
    expect(got).toEqual(s.sent);
    expect(s.rx.tryRecv()).toBe(null);
    s.tx.close();
    s.rx.close();
  },
};

const lock: Kind<{ m: Mutex<number>; holder: MutexGuard<number> | null; other: JoinHandle<void> | null; first: boolean }, MutexGuard<number>> = {
  *setup(rng) {
    const m = new Mutex(0);
    const holder = m.tryLock()!;
    const st = { m, holder: holder as MutexGuard<number> | null, other: null as JoinHandle<void> | null, first: rng.chance(0.5) };
    // A second waiter, queued before or after the one that is cancelled.
    if (st.first) {
      st.other = spawn(function* () {
        const g = yield* m.lock();
        g.value++;
        g.release();
      });
      yield* yieldNow();
    }
    return st;
  },
  op: (s) => s.m.lock(),
  trigger(s) {
    s.holder?.release(); // hands the lock to the head of the queue
    s.holder = null;
  },
  // The other waiter may still be queued; the cancelled one must not be.
  waiters: (s) => Math.max(0, s.m.waiterCount - (s.other !== null && !s.other.isFinished ? 1 : 0)),
  *verify(s, out) {
    if (s.other === null) {
      const m = s.m;
      s.other = spawn(function* () {
        const g = yield* m.lock();
        g.value++;
        g.release();
      });
    }
    if (out.completed) out.value!.release();
    this.trigger(s, null as never);
    // The other waiter gets the lock: a cancelled lock never swallows the hand-off.
    yield* timeout(s.other, 5000);
    expect(s.m.isLocked).toBe(false);
    expect(s.m.waiterCount).toBe(0);
    const g = s.m.tryLock();
    expect(g).not.toBe(null);
    g!.release();
  },
};

/** Moves to `point`; returns whether the op was triggered. */
function* reach<S>(rt: Runtime, point: Point, kind: Kind<S, unknown>, s: S, rng: Rng): Generator<unknown, boolean, unknown> {
  switch (point) {
    case "unpolled":
    case "timeout":
      return false;
    case "parked":
      for (let i = rng.int(1, 3); i > 0; i--) yield* yieldNow();
      return false;
    case "turned":
      yield* sleep(0);
      return false;
    case "slept":
      yield* sleep(rng.int(1, 2));
      return false;
    case "completed":
      yield* yieldNow();
      kind.trigger(s, rng);
      return true;
    case "completed+yield":
      yield* yieldNow();
      kind.trigger(s, rng);
      for (let i = rng.int(1, 3); i > 0; i--) yield* yieldNow();
      return true;
    case "completed+turn":
      yield* sleep(0);
      kind.trigger(s, rng);
      yield* sleep(0);
      return true;
    case "completed+reaped":
      // The completion is collected by the driver (the op's task is woken) but the task is
      // cancelled before it runs again: completed-then-cancelled before the re-poll.
      yield* sleep(0);
      kind.trigger(s, rng);
      for (let i = rng.int(1, 3); i > 0; i--) rt.driver.turn(1);
      return true;
  }
}

/** One cancellation at a random point, and every check after it. */
function* iteration<S, T>(rt: Runtime, kind: Kind<S, T>, rng: Rng): Generator<unknown, Point, unknown> {
  const fds = fdTable();
  const base = leftovers(rt);
  const s = yield* kind.setup(rng);
  const point = rng.pick(POINTS);
  const h = spawn(point === "timeout" ? timeout(kind.op(s), rng.int(0, 3)) : kind.op(s));
  if (point === "timeout" && rng.chance(0.5)) yield* yieldNow();
  const triggered = yield* reach(rt, point, kind as Kind<S, unknown>, s, rng);
  if (point !== "timeout") h.abort();
  const out: { completed: boolean; value?: T; triggered: boolean } = { completed: false, triggered };
  try {
    out.value = (yield* h) as T;
    out.completed = true;
  } catch (e) {
    const cancelled = (e instanceof JoinError && e.isCancelled()) || (e instanceof JoinError && e.cause instanceof TimeoutError);
    if (!cancelled) throw e;
  }
  settleUring(rt, false);
  // Nothing of the cancelled op may still be waiting: no waker, no timer, no waiter.
  const after = leftovers(rt);
  expect(after.ioWakers).toBe(0);
  expect(after.timers).toBe(base.timers);
  expect(kind.waiters?.(s) ?? 0).toBe(0);
  yield* kind.verify(s, out, rng);
  settleUring(rt);
  const end = leftovers(rt);
  expect(end).toEqual({ ioWakers: 0, timers: base.timers, uringOps: base.uringOps, uringBufs: 0 });
  expect(opened(fds, fdTable())).toEqual([]);
  return point;
}

const KINDS: [string, Kind<never, unknown>][] = [
  ["accept", accept as Kind<never, unknown>],
  ["read", read as Kind<never, unknown>],
  ["write", write as Kind<never, unknown>],
  ["connect (pending: the accept queue is full)", connectKind(true) as Kind<never, unknown>],
  ["connect (completing)", connectKind(false) as Kind<never, unknown>],
  ["sleep", sleepKind as Kind<never, unknown>],
  ["channel recv", recv as Kind<never, unknown>],
  ["mutex lock", lock as Kind<never, unknown>],
];

/** The kinds whose setup or trigger acts on sockets through libc directly. */
const RAW_PEER = new Set<Kind<never, unknown>>([
  accept as Kind<never, unknown>,
  read as Kind<never, unknown>,
  write as Kind<never, unknown>,
  KINDS[3]![1],
]);

forEachBackend("fault: cancellation", ({ run, runtime, backend }) => {
  if (backend === "uring") {
    test("the io_uring poison check itself catches a write into a released buffer and a release before the CQE", () => {
      const d = runtime().driver as UringDriver;
      const ops = d.opsInUse;
      const p = installPoison(d);
      try {
        const b = d.pool.get(100);
        d.pool.put(b);
        b.bytes[7] = 1; // what a kernel still holding the buffer would do
        const again = d.pool.get(100);
        expect(again).toBe(b);
        d.pool.put(again);
        expect(p.report.violations.length).toBe(1);
        const op = d.op(K_PLAIN, null);
        op.state = ST_SUBMITTED; // as if its SQE were in the kernel
        d.release(op);
        expect(p.report.violations.length).toBe(2);
        expect(p.report.violations[1]).toContain("before its CQE");
      } finally {
        p.uninstall();
      }
      expect(d.opsInUse).toBe(ops);
      expect(d.pool.outstanding).toBe(0);
    });
  }

  const kinds = [...KINDS];
  // Kernels before 5.19 have no multishot accept: the single-shot path must lose nothing either.
  if (backend === "uring") kinds.push(["accept (single-shot io_uring accept)", accept as Kind<never, unknown>]);
  // Without a provided buffer ring (before 5.19, or registration refused) recv is single-shot.
  if (backend === "uring") kinds.push(["read (single-shot io_uring recv)", read as Kind<never, unknown>]);
  kinds.forEach(([name, kind], k) => {
    // accept, read, write and the pending connect use a raw libc socket as the peer (or to fill
    // the buffers): not a simulated one. test/sim_fault.test.ts cancels the same ops at random
    // points with simulated peers.
    const [skip, title] = RAW_PEER.has(kind)
      ? simSkip(backend, `${name}: cancelled at ${ITERATIONS} random points leaves no waker, timer, op, buffer or fd, and loses nothing`, "its peer is a raw libc socket")
      : [false, `${name}: cancelled at ${ITERATIONS} random points leaves no waker, timer, op, buffer or fd, and loses nothing`];
    test.skipIf(skip)(title, () => {
      const rt = runtime();
      const d = rt.driver;
      const poison = d instanceof UringDriver ? installPoison(d) : null;
      const multishot = d instanceof UringDriver ? d.caps.multishotAccept : false;
      const msRecv = d instanceof UringDriver ? d.caps.multishotRecv : false;
      if (d instanceof UringDriver && name.includes("single-shot")) d.caps.multishotAccept = d.caps.multishotRecv = false;
      // Reads use pooled owned buffers only on the single-shot path (multishot reads select ring buffers).
      const pooled = name === "write" || (name.startsWith("read") && (!msRecv || name.includes("single-shot")));
      const seed = (SEED + k * 7919) >>> 0;
      const rng = new Rng(seed);
      const seen = new Set<Point>();
      let i = 0;
      try {
        run(function* () {
          for (i = 0; i < ITERATIONS; i++) seen.add(yield* iteration(rt, kind, rng));
        });
      } catch (e) {
        (e as Error).message = `[${backend}] ${name}, REEL_SEED=${SEED} (kind seed ${seed}), iteration ${i}: ${(e as Error).message}`;
        throw e;
      } finally {
        poison?.scan();
        poison?.uninstall();
        if (d instanceof UringDriver) {
          d.caps.multishotAccept = multishot;
          d.caps.multishotRecv = msRecv;
        }
      }
      expect(seen.size).toBeGreaterThan(POINTS.length / 2); // the random points did vary
      if (poison !== null) {
        expect(poison.report.violations).toEqual([]);
        if (pooled) expect(poison.report.poisoned).toBeGreaterThan(0);
      }
    }, 30_000);
  });
});

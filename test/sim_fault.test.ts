// The fault suite's invariants under seeded chaos, on the simulator: each scenario runs
// on REEL_SIM_SEEDS seeds (default 200), each seed a fresh simulation whose scheduling is
// a seeded random pick among every ready task (not the executor's FIFO), with seeded
// latency and jitter and short reads and writes drawn from the seed. The invariants are
// the fault suite's: errors are typed and the right ones (ECONNREFUSED, ECONNRESET once,
// EPIPE), no byte lost or reordered, no head-of-line blocking, a cancelled op leaves no
// waker, timer or socket behind and loses nothing, serve() halts and cleans up. After
// every seed no simulated socket is open, no waker stored, no timer left.
//
// A failure names its seed: REEL_SEED=<seed> REEL_SIM_SEEDS=1 replays exactly that run.
import { expect, test, describe } from "bun:test";
import {
  Barrier,
  JoinError,
  Mutex,
  Runtime,
  SysError,
  TcpListener,
  TcpStream,
  TimeoutError,
  gen,
  oneshot,
  select,
  sleep,
  spawn,
  timeout,
  unboundedChannel,
  yieldNow,
  type BaseFuture,
  type IntoFuture,
  type JoinHandle,
} from "../lib/index.ts";
import { serve } from "../lib/net/serve.ts";
import { SimDriver } from "../lib/driver/sim/driver.ts";
import { Rng, Tracker, echoHandler, lingerZero, pattern, seedFromEnv, smallBuffers } from "./fault_util.ts";

const SEEDS = Number(process.env.REEL_SIM_SEEDS ?? 200);
const BASE = seedFromEnv();

/** Where one scenario ran: the runtime, its driver, and a generator for the test's own choices. */
interface Ctx {
  rt: Runtime;
  rng: Rng;
  seed: number;
}

/**
 * Runs `body` on SEEDS fresh simulations (seeds BASE, BASE+1, …), each with chaos drawn
 * from its seed; after each, checks that nothing is left open, stored or armed.
 */
function chaos(name: string, body: (c: Ctx) => Generator<unknown, void, unknown>, timeoutMs = 60_000): void {
  test(`${name} (${SEEDS} seeds from ${BASE})`, () => {
    for (let i = 0; i < SEEDS; i++) {
      const seed = (BASE + i) >>> 0;
      const pick = new Rng(seed ^ 0x5eed);
      const rt = new Runtime({
        backend: "sim",
        seed,
        sim: {
          schedule: "random",
          loopback: { latency: [0, pick.int(0, 3) / 2] },
          shortIo: pick.int(0, 5) / 10,
        },
      });
      const d = rt.driver as SimDriver;
      try {
        rt.blockOn(() => body({ rt, rng: new Rng(seed), seed }));
        expect(d.net.describeOpen()).toEqual([]);
        expect(d.net.storedWakers()).toBe(0);
        expect(d.wheel.size).toBe(0);
      } catch (e) {
        const err = e as Error;
        err.message = `seed ${seed} (replay: REEL_SEED=${seed} REEL_SIM_SEEDS=1; ${d.describe()}): ${err.message}`;
        throw err;
      } finally {
        rt.close();
      }
    }
  }, timeoutMs);
}

/** The error `fut` fails with (a failed task's error is its JoinError's cause), or undefined. */
function* failure(fut: IntoFuture<unknown>): Generator<unknown, unknown, unknown> {
  try {
    yield* spawn(fut);
  } catch (e) {
    let err = e;
    while (err instanceof JoinError && err.isFailed()) err = err.cause;
    return err;
  }
  return undefined;
}

function code(e: unknown): string {
  if (!(e instanceof SysError)) throw new Error(`expected a SysError, got ${String(e)}`);
  return e.code;
}

/** A connected pair on a fresh listener: [client, server side]. */
function* pair(): Generator<unknown, [TcpStream, TcpStream], unknown> {
  const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  try {
    const c = spawn(TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port }));
    const [s] = yield* l.accept();
    return [yield* c, s];
  } finally {
    l.close();
  }
}

/** A few yields, sleeps or turns: a random point in time. */
function* somewhere(rng: Rng): Generator<unknown, void, unknown> {
  for (let k = rng.int(0, 3); k > 0; k--) {
    const r = rng.int(0, 2);
    if (r === 0) yield* yieldNow();
    else if (r === 1) yield* sleep(0);
    else yield* sleep(rng.int(1, 3));
  }
}

/** Reads `s` until EOF or an error: the bytes, and the error (undefined at EOF). */
function* drain(s: TcpStream): Generator<unknown, [Uint8Array, unknown], unknown> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(8192);
  try {
    for (let n; (n = yield* s.read(buf)) > 0; ) parts.push(buf.slice(0, n));
  } catch (e) {
    return [Buffer.concat(parts), e];
  }
  return [Buffer.concat(parts), undefined];
}

describe("simulated faults under seeded chaos", () => {
  chaos("connecting where nobody listens is ECONNREFUSED from connect, every time", function* ({ rng }) {
    const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    const port = l.localAddr.port;
    l.close();
    // Concurrent attempts, each task returning its error (so none fails before it is awaited).
    const attempts = Array.from({ length: rng.int(1, 4) }, () => spawn(() => failure(TcpStream.connect({ port }))));
    for (const a of attempts) {
      const e = yield* a;
      expect(code(e)).toBe("ECONNREFUSED");
      expect((e as SysError).syscall).toBe("connect");
      expect((e as Error).message).toContain(`127.0.0.1:${port}`);
    }
  });

  chaos("a peer reset fails a pending read with ECONNRESET once; bytes sent before it are all read first", function* ({ rng }) {
    const [c, s] = yield* pair();
    const sent = pattern(rng.int(0, 20000), rng.int(1, 1000));
    yield* c.writeAll(sent);
    const reader = spawn(() => drain(s));
    yield* somewhere(rng);
    yield* sleep(rng.int(0, 2)); // the bytes have arrived (loopback latency is at most 1.5 ms)
    yield* sleep(2);
    lingerZero(c.fd);
    c.close();
    const [got, err] = (yield* reader) as [Uint8Array, unknown];
    expect(Buffer.compare(got, sent)).toBe(0);
    expect(code(err)).toBe("ECONNRESET");
    expect(yield* s.read(new Uint8Array(8))).toBe(0);
    s.close();
  });

  chaos("a reset while a write is blocked fails it with ECONNRESET or EPIPE", function* ({ rng }) {
    const [c, s] = yield* pair();
    smallBuffers(c.fd, 4096 * rng.int(1, 4));
    const writer = spawn(s.writeAll(new Uint8Array(1 << 20)));
    yield* sleep(rng.int(1, 5));
    expect(writer.isFinished).toBe(false);
    lingerZero(c.fd);
    c.close();
    expect(["ECONNRESET", "EPIPE"]).toContain(code(yield* failure(writer)));
    s.close();
  });

  chaos("writing to a peer that closed fails with EPIPE (ECONNRESET at most once first); shutdown(write) then write is EPIPE", function* ({ rng }) {
    const [c, s] = yield* pair();
    yield* somewhere(rng);
    s.close();
    const codes: string[] = [];
    for (let i = 0; i < 200 && codes.length < 3; i++) {
      const e = yield* failure(c.writeAll(new Uint8Array(rng.int(1, 65536))));
      if (e !== undefined) codes.push(code(e));
    }
    expect(codes.length).toBe(3);
    expect(["EPIPE", "ECONNRESET"]).toContain(codes[0]!);
    expect(codes.slice(1)).toEqual(["EPIPE", "EPIPE"]);
    c.close();
    const [c2, s2] = yield* pair();
    c2.shutdown("write");
    expect(code(yield* failure(c2.write(new Uint8Array(1))))).toBe("EPIPE");
    expect(yield* s2.read(new Uint8Array(1))).toBe(0);
    c2.close();
    s2.close();
  });

  chaos("half-close in either order or both at once: each side reads the other's bytes, then EOF", function* ({ rng }) {
    const [c, s] = yield* pair();
    const a = pattern(rng.int(0, 50000), 1);
    const b = pattern(rng.int(0, 50000), 2);
    const order = rng.int(0, 2);
    const side = (me: TcpStream, out: Uint8Array, first: boolean) =>
      function* () {
        if (!first) yield* somewhere(rng);
        yield* me.writeAll(out);
        me.shutdown("write");
        return yield* drain(me);
      };
    const h1 = spawn(side(c, a, order !== 1));
    const h2 = spawn(side(s, b, order !== 0));
    const [fromS, e1] = yield* h1;
    const [fromC, e2] = yield* h2;
    expect([e1, e2]).toEqual([undefined, undefined]);
    expect(Buffer.compare(fromS, b)).toBe(0);
    expect(Buffer.compare(fromC, a)).toBe(0);
    c.close();
    s.close();
  });

  chaos("a transfer with random chunking on both ends arrives intact", function* ({ rng }) {
    const [c, s] = yield* pair();
    const data = pattern(rng.int(100_000, 400_000), rng.int(1, 1 << 20));
    const writer = spawn(function* () {
      for (let off = 0; off < data.length; ) {
        const n = Math.min(rng.int(1, 70_000), data.length - off);
        yield* c.writeAll(data.subarray(off, off + n));
        off += n;
      }
      c.shutdown("write");
    });
    const got = new Uint8Array(data.length);
    let n = 0;
    for (;;) {
      const want = Math.min(rng.int(1, 70_000), got.length - n);
      const k = want === 0 ? yield* s.read(new Uint8Array(1)) : yield* s.read(got.subarray(n, n + want));
      if (k === 0) break;
      n += k;
    }
    yield* writer;
    expect(n).toBe(data.length);
    expect(Buffer.compare(got, data)).toBe(0);
    c.close();
    s.close();
  });

  chaos("a client that never reads blocks only its own connection; the others are served", function* ({ rng }) {
    const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    smallBuffers(listener.fd, 8192);
    const conns = new Tracker();
    const errors: unknown[] = [];
    const server = spawn(serve(listener, conns.wrap(echoHandler(16384)), { onError: (e) => errors.push(e) }));
    const port = listener.localAddr.port;
    const hog = yield* TcpStream.connect({ port });
    smallBuffers(hog.fd, 8192);
    let hogSent = 0;
    const hogWriter = spawn(function* () {
      const chunk = new Uint8Array(16384);
      for (;;) {
        yield* hog.writeAll(chunk);
        hogSent += chunk.length;
      }
    });
    const others: JoinHandle<void>[] = [];
    for (let i = 0; i < rng.int(2, 8); i++) {
      others.push(
        spawn(function* () {
          const c = yield* TcpStream.connect({ port });
          for (let k = 0; k < 3; k++) {
            const msg = pattern(rng.int(1, 5000), i * 16 + k + 1);
            yield* c.writeAll(msg);
            const back = new Uint8Array(msg.length);
            yield* c.readExact(back);
            expect(Buffer.compare(back, msg)).toBe(0);
          }
          c.close();
        }),
      );
    }
    for (const h of others) yield* timeout(h, 10_000);
    expect(hogSent).toBeGreaterThan(0);
    expect(hogSent).toBeLessThan(1 << 20);
    yield* timeout(gen(() => conns.drained(1)), 10_000);
    hogWriter.abort();
    yield* failure(hogWriter);
    hog.close();
    listener.close();
    yield* server;
    yield* timeout(gen(() => conns.drained()), 10_000);
    expect(errors.length).toBeLessThanOrEqual(1);
    for (const e of errors) expect(["ECONNRESET", "EPIPE"]).toContain(code(e));
  });

  chaos("cancelling serve() halts its connections after their cleanup; a handler's error ends only its connection", function* ({ rng }) {
    const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    const port = listener.localAddr.port;
    const conns = new Tracker();
    const errors: unknown[] = [];
    let cleanedUp = 0;
    const server = spawn(
      serve(
        listener,
        conns.wrap(function* (s) {
          try {
            const b = new Uint8Array(1);
            yield* s.readExact(b);
            if (b[0] === 0) throw new Error("handler fails on purpose");
            yield* s.writeAll(b);
            yield* s.readExact(b);
          } finally {
            yield* sleep(rng.int(0, 2));
            cleanedUp++;
          }
        }),
        { onError: (e) => errors.push(e) },
      ),
    );
    const bad = yield* TcpStream.connect({ port });
    yield* bad.writeAll(new Uint8Array([0]));
    expect(yield* bad.read(new Uint8Array(1))).toBe(0);
    bad.close();
    const live: TcpStream[] = [];
    for (let i = rng.int(1, 4); i > 0; i--) {
      const c = yield* TcpStream.connect({ port });
      yield* c.writeAll(new Uint8Array([9]));
      yield* c.readExact(new Uint8Array(1));
      live.push(c);
    }
    yield* somewhere(rng);
    server.abort();
    expect((yield* failure(server)) instanceof JoinError).toBe(true);
    expect(cleanedUp).toBe(1 + live.length);
    expect(conns.live).toBe(0);
    for (const c of live) {
      expect(yield* c.read(new Uint8Array(1))).toBe(0);
      c.close();
    }
    listener.close();
    expect(errors.length).toBe(1);
    expect((errors[0] as Error).message).toBe("handler fails on purpose");
  });

  /** One kind of op cancelled at a random point; `verify` proves nothing was lost. */
  interface Kind {
    name: string;
    run(rng: Rng): Generator<unknown, void, unknown>;
  }

  /** Spawns `op`, goes to a random point (maybe completing it with `trigger`), cancels; returns what the op got. */
  function* cancelAt<T>(rng: Rng, op: BaseFuture<T>, trigger: () => Generator<unknown, void, unknown>): Generator<unknown, { done: boolean; value?: T }, unknown> {
    const useTimeout = rng.chance(0.25);
    const limited = useTimeout ? timeout(op, rng.int(0, 3)) : op;
    // The task turns a timeout into "not done", so it never fails before anyone awaits it.
    const h = spawn(function* () {
      try {
        return { done: true, value: (yield* limited) as T };
      } catch (e) {
        if (e instanceof TimeoutError) return { done: false };
        throw e;
      }
    });
    yield* somewhere(rng);
    if (rng.chance(0.5)) {
      yield* trigger();
      yield* somewhere(rng);
    }
    if (!useTimeout) h.abort();
    try {
      return yield* h;
    } catch (e) {
      if (!(e instanceof JoinError && e.isCancelled())) throw e;
      return { done: false };
    }
  }

  const kinds: Kind[] = [
    {
      name: "accept",
      *run(rng) {
        const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
        let client: JoinHandle<TcpStream> | null = null;
        const out = yield* cancelAt(rng, l.accept(), function* () {
          client = spawn(TcpStream.connect({ port: l.localAddr.port }));
          yield* yieldNow();
        });
        client ??= spawn(TcpStream.connect({ port: l.localAddr.port }));
        // The connection was taken by the cancelled accept, or is still queued: never lost.
        const [s] = out.done ? out.value! : yield* timeout(l.accept(), 5000);
        const c = yield* client;
        yield* c.writeAll(new Uint8Array([65]));
        const b = new Uint8Array(1);
        yield* s.readExact(b);
        expect(b[0]).toBe(65);
        c.close();
        s.close();
        l.close();
      },
    },
    {
      name: "read",
      *run(rng) {
        const [c, s] = yield* pair();
        const sent: number[] = [];
        const buf = new Uint8Array(64);
        const send = function* () {
          const data = pattern(rng.int(1, 64), sent.length + 1);
          yield* c.writeAll(data);
          sent.push(...data);
        };
        const out = yield* cancelAt(rng, s.read(buf), send);
        if (sent.length === 0) yield* send();
        // Every byte sent arrives exactly once, in order: in the cancelled read's result or later.
        const got: number[] = out.done ? [...buf.subarray(0, out.value!)] : [];
        while (got.length < sent.length) {
          const n = yield* timeout(s.read(buf), 5000);
          expect(n).toBeGreaterThan(0);
          got.push(...buf.subarray(0, n));
        }
        expect(got).toEqual(sent);
        c.close();
        s.close();
      },
    },
    {
      name: "write (blocked on a full peer)",
      *run(rng) {
        const [c, s] = yield* pair();
        smallBuffers(c.fd, 4096);
        smallBuffers(s.fd, 4096);
        // Fill what the buffers hold, so the next write waits.
        let filled = 0;
        for (;;) {
          const r = yield* select(c.write(new Uint8Array(8192)), sleep(5));
          if (r.index === 1) break;
          filled += r.value as number;
        }
        const reader = { got: [] as Uint8Array[] };
        const startReading = function* () {
          spawn(function* () {
            const b = new Uint8Array(65536);
            for (let n; (n = yield* s.read(b)) > 0; ) reader.got.push(b.slice(0, n));
          });
          yield* yieldNow();
        };
        let reading = false;
        const out = yield* cancelAt(rng, c.write(new Uint8Array(3000).fill(0x11)), function* () {
          reading = true;
          yield* startReading();
        });
        if (!reading) yield* startReading();
        yield* c.writeAll(new TextEncoder().encode("MARK"));
        c.shutdown("write");
        for (let i = 0; i < 1000 && Buffer.concat(reader.got).length < filled + 4 + (out.done ? out.value! : 0); i++) yield* sleep(1);
        yield* sleep(5);
        const p = Buffer.concat(reader.got);
        // Nothing is sent unless the write reported it (the simulator's writes are cancel-safe, as readiness ones).
        expect(p.length).toBe(filled + (out.done ? out.value! : 0) + 4);
        expect(p.subarray(0, filled).every((x) => x === 0)).toBe(true);
        expect(p.subarray(filled, p.length - 4).every((x) => x === 0x11)).toBe(true);
        expect(new TextDecoder().decode(p.subarray(p.length - 4))).toBe("MARK");
        c.close();
        s.close();
      },
    },
    {
      name: "connect (pending behind a full accept queue)",
      *run(rng) {
        const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0, backlog: 0 });
        const filler = yield* TcpStream.connect({ port: l.localAddr.port });
        const out = yield* cancelAt(rng, TcpStream.connect({ port: l.localAddr.port }), function* () {
          yield* sleep(rng.int(0, 1500)); // a retransmitted SYN may get in if the queue has room
        });
        if (out.done) out.value!.close();
        filler.close();
        l.close();
      },
    },
    {
      name: "sleep",
      *run(rng) {
        yield* cancelAt(rng, sleep(rng.int(0, 3)), function* () {});
      },
    },
    {
      name: "channel recv",
      *run(rng) {
        const [tx, rx] = unboundedChannel<number>();
        const sent: number[] = [];
        const send = function* () {
          for (let i = rng.int(1, 3); i > 0; i--) {
            tx.send(sent.length);
            sent.push(sent.length);
          }
        };
        const out = yield* cancelAt(rng, rx.recv(), send);
        if (sent.length === 0) yield* send();
        expect(rx.waiterCount).toBe(0);
        const got = out.done ? [out.value as number] : [];
        while (got.length < sent.length) got.push((yield* timeout(rx.recv(), 5000)) as number);
        expect(got).toEqual(sent);
        tx.close();
        rx.close();
      },
    },
    {
      name: "mutex lock",
      *run(rng) {
        const m = new Mutex(0);
        let holder: { release(): void } | null = m.tryLock();
        const other = spawn(function* () {
          const g = yield* m.lock();
          g.value++;
          g.release();
        });
        const out = yield* cancelAt(rng, m.lock(), function* () {
          holder?.release();
          holder = null;
        });
        if (out.done) out.value!.release();
        holder?.release();
        // The other waiter gets the lock: a cancelled lock never swallows the hand-off.
        yield* timeout(other, 5000);
        expect(m.isLocked).toBe(false);
        expect(m.waiterCount).toBe(0);
      },
    },
  ];

  for (const k of kinds) {
    chaos(`${k.name}: cancelled at a random point leaves no waker, timer or socket, and loses nothing`, function* ({ rng }) {
      for (let i = 0; i < 3; i++) yield* k.run(rng);
    });
  }

  test(`10,000 concurrent connections on one serve() echo server, all open at once, every byte verified (seed ${BASE})`, () => {
    const rt = new Runtime({ backend: "sim", seed: BASE, sim: { schedule: "random", shortIo: 0.2 } });
    const d = rt.driver as SimDriver;
    const CONNS = 10_000;
    try {
      const bytes = rt.blockOn(function* () {
        const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0, backlog: 4096 });
        const conns = new Tracker();
        const server = spawn(serve(listener, conns.wrap(echoHandler(4096))));
        const port = listener.localAddr.port;
        const [go, allIn] = oneshot<void>();
        // Every connection is open before any sends. (Not a sleep: 10,000 tasks cost virtual
        // CPU time — busyTurnMs — so a short timer can fire before the last one connects.)
        const allOpen = new Barrier(CONNS);
        let opened = 0;
        let total = 0;
        const clients: JoinHandle<void>[] = [];
        for (let i = 0; i < CONNS; i++) {
          clients.push(
            spawn(function* () {
              const c = yield* TcpStream.connect({ port });
              if (++opened === CONNS) go.send();
              const msg = pattern(64 + (i % 200), i + 1);
              yield* allOpen.wait();
              yield* c.writeAll(msg);
              const back = new Uint8Array(msg.length);
              yield* c.readExact(back);
              expect(Buffer.compare(back, msg)).toBe(0);
              total += msg.length;
              c.close();
            }),
          );
        }
        yield* allIn.recv();
        yield* timeout(gen(() => conns.accepted(CONNS)), 60_000);
        expect(conns.peak).toBeGreaterThan(CONNS / 2);
        for (const c of clients) yield* c;
        listener.close();
        yield* server;
        return total;
      });
      expect(bytes).toBeGreaterThan(CONNS * 64);
      expect(d.net.describeOpen()).toEqual([]);
    } catch (e) {
      (e as Error).message = `seed ${BASE} (replay: REEL_SEED=${BASE}): ${(e as Error).message}`;
      throw e;
    } finally {
      rt.close();
    }
  }, 60_000);
});

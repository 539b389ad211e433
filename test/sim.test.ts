// The simulation backend itself: determinism (same seed, same trace), virtual time,
// what it keeps out (real time, Math.random, real fds, files), TCP's semantics on the
// simulated network (refused, reset, EPIPE, half-close, backpressure, backlog, bind
// rules, IPv6, latency and bandwidth), faults (partition, hold, crash, restart, reset),
// the Sim API's failures and the REEL_SIM_CHECK divergence report. Runs on the simulator
// whatever REEL_BACKEND says.
import { expect, test, describe } from "bun:test";
import {
  PENDING,
  POLLS_PER_TICK,
  Runtime,
  Sim,
  SimulationError,
  RuntimeError,
  SysError,
  TcpListener,
  TcpStream,
  TimeoutError,
  fs,
  now,
  pollFn,
  run,
  sleep,
  spawn,
  timeout,
  yieldNow,
  type IntoFuture,
  type SimOptions,
} from "../lib/index.ts";
import { SimDriver } from "../lib/driver/sim/driver.ts";
import { SimTrace, firstDivergence, EV_POLL } from "../lib/driver/sim/trace.ts";
import { SimRng } from "../lib/driver/sim/rng.ts";
import { lingerZero, pattern, smallBuffers } from "./fault_util.ts";
import { failure, fdTable, opened } from "./helpers.ts";

/** Runs `body` on a fresh simulation; returns its value, the trace hash and the virtual time. */
function sim<T>(seed: number, body: IntoFuture<T>, options: SimOptions = {}): { value: T; hash: string; t: number; driver: SimDriver } {
  const rt = new Runtime({ backend: "sim", seed, sim: options });
  const driver = rt.driver as SimDriver;
  try {
    const value = rt.blockOn(body);
    expect(driver.net.describeOpen()).toEqual([]);
    return { value, hash: driver.trace.hash(), t: driver.clock.now(), driver };
  } finally {
    rt.close();
  }
}

/** An echo exchange of `n` messages of random sizes through a server, checked byte for byte. */
function* echoExchange(n: number): Generator<unknown, number, unknown> {
  const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  const srv = spawn(function* () {
    const [s] = yield* l.accept();
    const buf = new Uint8Array(4096);
    for (let k; (k = yield* s.read(buf)) > 0; ) yield* s.writeAll(buf.subarray(0, k));
    s.close();
  });
  const c = yield* TcpStream.connect({ port: l.localAddr.port });
  let total = 0;
  for (let i = 0; i < n; i++) {
    const msg = pattern(1 + Math.floor(Math.random() * 3000), i + 1);
    yield* c.writeAll(msg);
    const back = new Uint8Array(msg.length);
    yield* c.readExact(back);
    expect(Buffer.compare(back, msg)).toBe(0);
    total += msg.length;
  }
  c.close();
  yield* srv;
  l.close();
  return total;
}

describe("simulator: determinism", () => {
  test("the same seed gives the same trace, values and virtual time; another seed another trace", () => {
    const opts: SimOptions = { schedule: "random", link: { latency: [0.1, 3] }, loopback: { latency: [0, 2] }, shortIo: 0.3 };
    const a = sim(42, () => echoExchange(50), opts);
    const b = sim(42, () => echoExchange(50), opts);
    const c = sim(43, () => echoExchange(50), opts);
    expect(b.hash).toBe(a.hash);
    expect(b.value).toBe(a.value);
    expect(b.t).toBe(a.t);
    expect(c.hash).not.toBe(a.hash);
    expect(a.driver.trace.count).toBeGreaterThan(100);
  });

  test("a trace records events; firstDivergence names the first one that differs", () => {
    const x = new SimTrace(true);
    const y = new SimTrace(true);
    for (let i = 0; i < 10; i++) {
      x.ev(i, EV_POLL, i, 0, 0);
      y.ev(i, EV_POLL, i === 7 ? 99 : i, 0, 0);
    }
    const d = firstDivergence(x, y);
    expect(d?.index).toBe(7);
    expect(d?.message).toContain("#7 at 7.000 ms: poll task 7");
    expect(d?.message).toContain("poll task 99");
    expect(firstDivergence(x, x)).toBeNull();
    expect(x.hash()).not.toBe(y.hash());
  });

  test("the seeded generator is reproducible, and forks are independent of draws made before", () => {
    const a = new SimRng(7);
    const b = new SimRng(7);
    const xs = Array.from({ length: 5 }, () => a.u32());
    expect(Array.from({ length: 5 }, () => b.u32())).toEqual(xs);
    const f1 = new SimRng(7).fork("net");
    const r = new SimRng(7);
    r.u32();
    r.u32();
    expect(r.fork("net").u32()).toBe(f1.u32());
    for (let i = 0; i < 1000; i++) {
      const v = a.below(6);
      expect(v >= 0 && v < 6 && Number.isInteger(v)).toBe(true);
    }
  });

  test("schedule \"random\" runs ready tasks in a seeded order; \"fifo\" in the executor's", () => {
    const order = (seed: number, schedule: "random" | "fifo") =>
      sim(
        seed,
        function* () {
          const out: number[] = [];
          const hs = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => spawn(function* () { out.push(i); }));
          for (const h of hs) yield* h;
          return out.join("");
        },
        { schedule },
      ).value;
    expect(order(1, "fifo")).toBe("01234567");
    expect(order(2, "fifo")).toBe("01234567");
    const seen = new Set([1, 2, 3, 4, 5, 6].map((s) => order(s, "random")));
    expect(seen.size).toBeGreaterThan(1);
    expect(order(5, "random")).toBe(order(5, "random"));
  });
});

describe("simulator: virtual time", () => {
  test("sleep(1 hour) costs no real time; now() moves by exactly the virtual time", () => {
    const t0 = performance.now();
    const { value, t } = sim(1, function* () {
      const a = now();
      yield* sleep(3_600_000);
      yield* sleep(86_400_000);
      return now() - a;
    });
    expect(value).toBeGreaterThanOrEqual(3_600_000 + 86_400_000);
    expect(value).toBeLessThan(3_600_000 + 86_400_000 + 2);
    expect(t).toBe(value);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  test("busy tasks cost virtual CPU time: busyTurnMs per batch of polls after which tasks are still ready", () => {
    const yields = 1000;
    const { value } = sim(1, function* () {
      const a = now();
      for (let i = 0; i < yields; i++) yield* yieldNow();
      const busy = now() - a;
      yield* sleep(5);
      return [busy, now() - a];
    }, { busyTurnMs: 0.25 });
    // One task re-waking itself: a batch ends after POLLS_PER_TICK polls with it still ready.
    const batches = Math.floor(yields / POLLS_PER_TICK);
    expect(value[0]).toBeGreaterThanOrEqual(0.25 * batches);
    expect(value[0]).toBeLessThanOrEqual(0.25 * (batches + 1));
    expect(value[1]).toBeGreaterThanOrEqual(value[0]! + 5);
  });

  test("with busyTurnMs: 0 the clock moves only when every task is idle (tokio's paused time)", () => {
    const { value } = sim(1, function* () {
      const a = now();
      for (let i = 0; i < 1000; i++) yield* yieldNow();
      const busy = now() - a;
      yield* sleep(5);
      return [busy, now() - a];
    }, { busyTurnMs: 0 });
    expect(value[0]).toBe(0);
    expect(value[1]).toBeGreaterThanOrEqual(5);
  });

  test("a timer fires under tasks that always re-wake themselves, at its virtual deadline (the clock moves by busy turns)", () => {
    let polls = 0;
    const { value } = sim(2, function* () {
      const busy = [0, 1, 2, 3].map(() =>
        spawn(pollFn<void>((cx) => {
          polls++;
          cx.waker.wake();
          return PENDING;
        })),
      );
      const a = now();
      yield* sleep(5);
      const took = now() - a;
      for (const b of busy) b.abort();
      return took;
    });
    expect(value).toBeGreaterThanOrEqual(5);
    expect(value).toBeLessThan(6 + 0.05);
    // 5 ms at 0.05 ms per batch: about 100 batches of busy polls ran, no more.
    expect(polls).toBeGreaterThan(50 * 4);
    expect(polls).toBeLessThan(200 * POLLS_PER_TICK);
  });

  test("a timeout on a read nobody answers fires at its virtual deadline", () => {
    const { value } = sim(3, function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      const a = now();
      const e = yield* failure(timeout(s.read(new Uint8Array(4)), 250));
      const took = now() - a;
      c.close();
      s.close();
      l.close();
      return [e instanceof TimeoutError, took];
    });
    expect(value[0]).toBe(true);
    expect(value[1]).toBeGreaterThanOrEqual(250);
    expect(value[1]).toBeLessThan(252);
  });

  test("a simulation where every task waits on something no event will deliver is EDEADLK, naming the seed", () => {
    const rt = new Runtime({ backend: "sim", seed: 77 });
    try {
      let err: unknown;
      try {
        rt.blockOn(function* () {
          const l = TcpListener.bind({ port: 0 });
          try {
            yield* l.accept(); // nobody will ever connect: nothing outside the simulation exists
          } finally {
            l.close();
          }
        });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).code).toBe("EDEADLK");
      expect((err as Error).message).toContain("Simulation seed 77");
    } finally {
      rt.close();
    }
  });
});

describe("simulator: hosted mode", () => {
  test("run() drives a simulation from Bun's loop: virtual time jumps between slices, the Promise settles", async () => {
    const rt = new Runtime({ backend: "sim", seed: 5 });
    try {
      const t0 = performance.now();
      const v = await run(
        function* () {
          const l = TcpListener.bind({ port: 0 });
          const h = spawn(function* () {
            const [s] = yield* l.accept();
            const b = new Uint8Array(3);
            yield* s.readExact(b);
            s.close();
            return [...b];
          });
          const c = yield* TcpStream.connect({ port: l.localAddr.port });
          yield* c.writeAll(new Uint8Array([1, 2, 3]));
          yield* sleep(60_000);
          c.close();
          l.close();
          return [yield* h, now()];
        },
        { runtime: rt },
      );
      expect(v[0]).toEqual([1, 2, 3]);
      expect(v[1]).toBeGreaterThanOrEqual(60_000);
      expect(performance.now() - t0).toBeLessThan(2000);
    } finally {
      rt.close();
    }
  });
});

describe("simulator: what it keeps out", () => {
  test("Math.random, Date.now, new Date(), performance.now, Bun.nanoseconds, process.hrtime and crypto answer from the seed inside, and are the real ones outside", () => {
    const realRandom = Math.random;
    const realDate = Date;
    const realPerf = performance.now;
    const realGrv = crypto.getRandomValues;
    const realNanos = Bun.nanoseconds;
    const realHrtime = process.hrtime;
    const body = function* () {
      yield* sleep(1500);
      const b = new Uint8Array(4);
      crypto.getRandomValues(b);
      return [Math.random(), Date.now(), new Date().toISOString(), performance.now(), [...b].join(","), crypto.randomUUID(), Bun.nanoseconds(), process.hrtime()];
    };
    const a = sim(9, body);
    const b = sim(9, body);
    expect(b.value).toEqual(a.value);
    expect(a.value[1]).toBe(946684800000 + 1500);
    expect(a.value[2]).toBe("2000-01-01T00:00:01.500Z");
    expect(a.value[3]).toBe(1500);
    expect(a.value[6]).toBe(1500 * 1e6);
    expect(a.value[7]).toEqual([1, 500_000_000]);
    expect(a.driver.intercept.report()).toContain("Math.random ×1");
    expect(Math.random).toBe(realRandom);
    expect(Date).toBe(realDate);
    expect(performance.now).toBe(realPerf);
    expect(crypto.getRandomValues).toBe(realGrv);
    expect(Bun.nanoseconds).toBe(realNanos);
    expect(process.hrtime).toBe(realHrtime);
    expect(new Date(0).getTime()).toBe(0);
    expect(Date.now()).toBeGreaterThan(1_600_000_000_000);
  });

  test("strict mode (intercept: \"throw\") fails the call with RuntimeError ESIM, and still restores the globals", () => {
    const realRandom = Math.random;
    let err: unknown;
    try {
      sim(1, function* () {
        Math.random();
      }, { intercept: "throw" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe("ESIM");
    expect((err as Error).message).toContain("Math.random() was called inside the simulation (seed 1)");
    expect(Math.random).toBe(realRandom);
  });

  test("a real socket handed to a simulation, and any file call, are refused by name", () => {
    const real = TcpListener.bind({ hostname: "127.0.0.1", port: 0 }); // outside any runtime: the kernel's
    const fds = fdTable();
    try {
      const rt = new Runtime({ backend: "sim", seed: 1 });
      try {
        const e1 = rt.blockOn(() => failure(real.accept()));
        expect(e1).toBeInstanceOf(RuntimeError);
        expect((e1 as RuntimeError).code).toBe("EFOREIGN");
        expect((e1 as Error).message).toContain("is a real descriptor");
        const e2 = rt.blockOn(() => failure(fs.readFile("/etc/hostname")));
        expect(e2).toBeInstanceOf(RuntimeError);
        expect((e2 as RuntimeError).code).toBe("ESIM");
      } finally {
        rt.close();
      }
    } finally {
      real.close();
    }
    expect(opened(fds, fdTable())).toEqual([]);
  });

  test("a socket of one simulation used in another fails with EFOREIGN; simulated fds are never valid kernel fds", () => {
    const a = new Runtime({ backend: "sim", seed: 1 });
    const b = new Runtime({ backend: "sim", seed: 1 });
    try {
      const [c, s, l] = a.blockOn(function* () {
        const l = TcpListener.bind({ port: 0 });
        const c = yield* TcpStream.connect({ port: l.localAddr.port });
        const [s] = yield* l.accept();
        yield* s.write(new Uint8Array(1));
        yield* c.read(new Uint8Array(1));
        return [c, s, l] as const;
      });
      expect(c.fd).toBeGreaterThanOrEqual(2 ** 30);
      const e = b.blockOn(() => failure(c.read(new Uint8Array(1))));
      expect((e as RuntimeError).code).toBe("EFOREIGN");
      a.blockOn(function* () {
        c.close();
        s.close();
        l.close();
      });
    } finally {
      a.close();
      b.close();
    }
  });
});

describe("simulator: TCP semantics", () => {
  test("a simulated socket never polled, closed outside any runtime, is closed in its simulation (not by the kernel's close())", () => {
    const rt = new Runtime({ backend: "sim", seed: 5 });
    const d = rt.driver as SimDriver;
    try {
      const [c, s, l] = rt.blockOn(function* () {
        const l = TcpListener.bind({ port: 0 });
        const c = yield* TcpStream.connect({ port: l.localAddr.port });
        const [s] = yield* l.accept();
        return [c, s, l] as const;
      });
      expect(d.net.describeOpen().length).toBe(3);
      expect(() => s.close()).not.toThrow(); // never polled: no driver holds it yet
      expect(d.net.describeOpen().length).toBe(2);
      rt.blockOn(function* () {
        expect(yield* c.read(new Uint8Array(4))).toBe(0); // the peer sees the FIN
        c.close();
        l.close();
      });
      expect(d.net.describeOpen()).toEqual([]);
    } finally {
      rt.close();
    }
  });

  test("connect to a port nobody listens on is ECONNREFUSED (syscall connect, address in the message)", () => {
    const { value } = sim(5, function* () {
      const l = TcpListener.bind({ port: 0 });
      const port = l.localAddr.port;
      l.close();
      const e = yield* failure(TcpStream.connect({ port }));
      return [e instanceof SysError, (e as SysError).code, (e as SysError).syscall, (e as Error).message.includes(`127.0.0.1:${port}`)];
    });
    expect(value).toEqual([true, "ECONNREFUSED", "connect", true]);
  });

  test("connect to an address no host has times out after the SYN retries (ETIMEDOUT, ~127 s of virtual time)", () => {
    const { value } = sim(5, function* () {
      const a = now();
      const e = yield* failure(TcpStream.connect({ hostname: "10.9.9.9", port: 80 }));
      return [(e as SysError).code, now() - a];
    });
    expect(value[0]).toBe("ETIMEDOUT");
    expect(value[1]).toBeGreaterThanOrEqual(127_000);
    expect(value[1]).toBeLessThan(128_000);
  });

  test("bytes that arrived before a reset are read first, then ECONNRESET once, then EOF; writes then fail EPIPE", () => {
    const { value } = sim(6, function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      const sent = pattern(5000, 1);
      yield* c.writeAll(sent);
      yield* sleep(1);
      lingerZero(c.fd);
      c.close();
      const got = new Uint8Array(5000);
      const buf = new Uint8Array(1024);
      let n = 0;
      let err: unknown;
      try {
        for (let k; (k = yield* s.read(buf)) > 0; n += k) got.set(buf.subarray(0, k), n);
      } catch (e) {
        err = e;
      }
      const after = yield* s.read(new Uint8Array(4));
      const w = yield* failure(s.write(new Uint8Array(1)));
      s.close();
      l.close();
      return [n, Buffer.compare(got, sent), (err as SysError).code, after, (w as SysError).code];
    });
    expect(value).toEqual([5000, 0, "ECONNRESET", 0, "EPIPE"]);
  });

  test("closing with unread data resets the peer; writing to a closed peer is EPIPE/ECONNRESET once, then EPIPE", () => {
    const { value } = sim(7, function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      s.close();
      const codes: string[] = [];
      for (let i = 0; i < 100 && codes.length < 3; i++) {
        const e = yield* failure(c.writeAll(new Uint8Array(65536)));
        if (e !== undefined) codes.push((e as SysError).code);
      }
      c.close();
      // Unread data at close: the peer gets a reset, not EOF.
      const c2 = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s2] = yield* l.accept();
      yield* c2.writeAll(new Uint8Array(10));
      yield* sleep(5);
      s2.close();
      const e2 = yield* failure(c2.read(new Uint8Array(4)));
      c2.close();
      l.close();
      return { codes, reset: (e2 as SysError).code };
    });
    expect(["EPIPE", "ECONNRESET"]).toContain(value.codes[0]!);
    expect(value.codes.slice(1)).toEqual(["EPIPE", "EPIPE"]);
    expect(value.reset).toBe("ECONNRESET");
  });

  test("half-close both ways: each side reads the other's bytes then EOF; write after shutdown(write) is EPIPE", () => {
    const { value } = sim(8, function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      yield* c.writeAll(new TextEncoder().encode("ping"));
      c.shutdown("write");
      const e = yield* failure(c.write(new Uint8Array(1)));
      const buf = new Uint8Array(16);
      let got = "";
      for (let n; (n = yield* s.read(buf)) > 0; ) got += new TextDecoder().decode(buf.subarray(0, n));
      yield* s.writeAll(new TextEncoder().encode("pong"));
      s.shutdown("write");
      let back = "";
      for (let n; (n = yield* c.read(buf)) > 0; ) back += new TextDecoder().decode(buf.subarray(0, n));
      c.close();
      s.close();
      l.close();
      return [got, back, (e as SysError).code];
    });
    expect(value).toEqual(["ping", "pong", "EPIPE"]);
  });

  test("backpressure: a writer stops after send + receive buffer bytes, and goes on as the reader reads", () => {
    const { value } = sim(9, function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      smallBuffers(c.fd, 16384);
      smallBuffers(s.fd, 16384);
      const big = pattern(1 << 20, 3);
      let written = 0;
      const w = spawn(function* () {
        for (let off = 0; off < big.length; ) {
          const n = yield* c.write(big.subarray(off, off + 65536));
          off += n;
          written = off;
        }
        c.shutdown("write");
      });
      yield* sleep(100);
      const stalled = written;
      const got = new Uint8Array(big.length);
      let n = 0;
      for (let k; (k = yield* s.read(got.subarray(n))) > 0; ) n += k;
      yield* w;
      c.close();
      s.close();
      l.close();
      return [stalled, n, Buffer.compare(got, big)];
    });
    expect(value[0]).toBe(4 * 16384); // SO_SNDBUF + SO_RCVBUF, each doubled as Linux does
    expect(value[1]).toBe(1 << 20);
    expect(value[2]).toBe(0);
  });

  test("a full accept queue holds a connect back until accept makes room; closing a listener resets what it queued", () => {
    const { value } = sim(10, function* () {
      const l = TcpListener.bind({ port: 0, backlog: 0 });
      const port = l.localAddr.port;
      const first = yield* TcpStream.connect({ port }); // backlog 0 holds one (as Linux: backlog + 1)
      const second = spawn(TcpStream.connect({ port }));
      yield* sleep(500);
      const pendingWhileFull = !second.isFinished;
      const [a] = yield* l.accept();
      const c2 = yield* second; // the SYN retransmitted after 1 s got in
      l.close(); // c2's connection is queued, unaccepted: reset
      const e = yield* failure(c2.read(new Uint8Array(1)));
      for (const x of [first, a, c2]) x.close();
      return [pendingWhileFull, (e as SysError).code];
    });
    expect(value).toEqual([true, "ECONNRESET"]);
  });

  test("bind: EADDRINUSE for a taken port (SO_REUSEPORT on both shares it), EADDRNOTAVAIL for another host's address", () => {
    const { value } = sim(11, function* () {
      const a = TcpListener.bind({ port: 0 });
      const port = a.localAddr.port;
      const e1 = (() => { try { TcpListener.bind({ port }); } catch (e) { return e; } })();
      const e2 = (() => { try { TcpListener.bind({ hostname: "10.0.0.9", port: 0 }); } catch (e) { return e; } })();
      const r1 = TcpListener.bind({ port: 0, reusePort: true });
      const r2 = TcpListener.bind({ port: r1.localAddr.port, reusePort: true });
      const shared = r1.localAddr.port === r2.localAddr.port;
      for (const x of [a, r1, r2]) x.close();
      return [(e1 as SysError).code, (e2 as SysError).code, shared];
    });
    expect(value).toEqual(["EADDRINUSE", "EADDRNOTAVAIL", true]);
  });

  test("IPv6 loopback, and a dual-stack [::] listener taking an IPv4 client (its peer shown v4-mapped)", () => {
    const { value } = sim(12, function* () {
      const l6 = TcpListener.bind({ hostname: "::1", port: 0 });
      const c6 = yield* TcpStream.connect({ hostname: "::1", port: l6.localAddr.port });
      const [s6, p6] = yield* l6.accept();
      const any = TcpListener.bind({ hostname: "::", port: 0 });
      const c4 = yield* TcpStream.connect({ hostname: "127.0.0.1", port: any.localAddr.port });
      const [s4, p4] = yield* any.accept();
      for (const x of [c6, s6, l6, c4, s4, any]) x.close();
      return [p6.address, p4.address];
    });
    expect(value).toEqual(["::1", "::ffff:127.0.0.1"]);
  });

  test("latency and bandwidth: a 100 KB transfer over a 1000 B/ms, 20 ms link takes ~120 ms of virtual time", () => {
    const s = new Sim({ seed: 13, link: { latency: 20, bandwidth: 1000 }, shortIo: 0 });
    s.host("server", (ctx) => function* () {
      const l = TcpListener.bind({ hostname: ctx.ip, port: 9 });
      const [c] = yield* l.accept();
      const buf = new Uint8Array(65536);
      let n = 0;
      for (let k; (k = yield* c.read(buf)) > 0; ) n += k;
      yield* c.writeAll(new Uint8Array([n >> 16, (n >> 8) & 255, n & 255]));
      c.close();
      l.close();
    });
    s.client("client", () => function* () {
      const c = yield* TcpStream.connect({ hostname: s.ip("server"), port: 9 });
      const t0 = s.now();
      yield* c.writeAll(new Uint8Array(100_000));
      c.shutdown("write");
      const b = new Uint8Array(3);
      yield* c.readExact(b);
      c.close();
      return [(b[0]! << 16) | (b[1]! << 8) | b[2]!, s.now() - t0];
    });
    const [n, ms] = s.run().clients.get("client") as [number, number];
    expect(n).toBe(100_000);
    expect(ms).toBeGreaterThanOrEqual(100 + 40); // serialisation + the reply's round trip
    expect(ms).toBeLessThan(200);
  });
});

describe("simulator: faults", () => {
  test("a short partition delays the bytes (retransmitted after repair), a long one fails the connection with ETIMEDOUT", () => {
    let out: unknown[] = [];
    const s1 = new Sim({ seed: 1, link: { latency: 1 } });
    s1.host("server", () => function* () {
      const l = TcpListener.bind({ hostname: "0.0.0.0", port: 80 });
      const [c] = yield* l.accept();
      const b = new Uint8Array(4);
      yield* c.readExact(b);
      yield* c.writeAll(b);
      c.close();
      l.close();
    });
    s1.client("client", () => function* () {
      const c = yield* TcpStream.connect({ hostname: s1.ip("server"), port: 80 });
      s1.partition("client", "server");
      const t0 = s1.now();
      yield* c.writeAll(new Uint8Array([1, 2, 3, 4]));
      const h = spawn(function* () {
        yield* sleep(2000);
        s1.repair();
      });
      const b = new Uint8Array(4);
      yield* c.readExact(b);
      yield* h;
      out = [[...b], s1.now() - t0 >= 2000];
      c.close();
    });
    s1.run();
    expect(out).toEqual([[1, 2, 3, 4], true]);

    const s2 = new Sim({ seed: 2, link: { latency: 1 }, tcpRetries: 3 });
    s2.host("server", () => function* () {
      const l = TcpListener.bind({ hostname: "0.0.0.0", port: 80 });
      const [c] = yield* l.accept();
      yield* sleep(1_000_000);
      c.close();
      l.close();
    });
    s2.client("client", () => function* () {
      const c = yield* TcpStream.connect({ hostname: s2.ip("server"), port: 80 });
      s2.partition("client", "server");
      const e = yield* failure(function* () {
        yield* c.writeAll(new Uint8Array(10));
        yield* c.read(new Uint8Array(1));
      });
      c.close();
      return (e as SysError).code;
    });
    expect(s2.run().clients.get("client")).toBe("ETIMEDOUT");
  });

  test("hold keeps segments until release, then they arrive in order", () => {
    const s = new Sim({ seed: 3, link: { latency: 2 }, shortIo: 0.5 });
    s.host("server", () => function* () {
      const l = TcpListener.bind({ hostname: "0.0.0.0", port: 80 });
      const [c] = yield* l.accept();
      const got = new Uint8Array(30000);
      yield* c.readExact(got);
      yield* c.writeAll(new Uint8Array([Buffer.compare(got, pattern(30000, 5)) === 0 ? 1 : 0]));
      c.close();
      l.close();
    });
    s.client("client", () => function* () {
      const c = yield* TcpStream.connect({ hostname: s.ip("server"), port: 80 });
      s.hold("client", "server");
      const t0 = s.now();
      yield* c.writeAll(pattern(30000, 5));
      spawn(function* () {
        yield* sleep(5000);
        s.release("client", "server");
      });
      const b = new Uint8Array(1);
      yield* c.readExact(b);
      c.close();
      return [b[0], s.now() - t0 >= 5000];
    });
    expect(s.run().clients.get("client")).toEqual([1, true]);
  });

  test("a crashed host answers nothing; after restart its old connections are reset and new ones served (disk survives)", () => {
    const s = new Sim({ seed: 4, link: { latency: 1 } });
    s.host("server", (ctx) => function* () {
      ctx.disk.set("boots", ((ctx.disk.get("boots") as number | undefined) ?? 0) + 1);
      const l = TcpListener.bind({ hostname: "0.0.0.0", port: 80 });
      for (;;) {
        const [c] = yield* l.accept();
        yield* c.writeAll(new Uint8Array([ctx.disk.get("boots") as number, ctx.restarts]));
        spawn(function* () {
          try {
            yield* c.read(new Uint8Array(1));
          } finally {
            c.close();
          }
        });
      }
    });
    s.client("client", () => function* () {
      const c = yield* TcpStream.connect({ hostname: s.ip("server"), port: 80 });
      const b = new Uint8Array(2);
      yield* c.readExact(b);
      s.crash("server");
      const down = yield* failure(timeout(TcpStream.connect({ hostname: s.ip("server"), port: 80 }), 3000));
      s.restart("server");
      yield* sleep(10);
      const old = yield* failure(function* () {
        yield* c.writeAll(new Uint8Array(1));
        yield* c.read(new Uint8Array(1));
      });
      c.close();
      const c2 = yield* TcpStream.connect({ hostname: s.ip("server"), port: 80 });
      const b2 = new Uint8Array(2);
      yield* c2.readExact(b2);
      c2.close();
      return [[...b], down instanceof TimeoutError, (old as SysError).code, [...b2]];
    });
    expect(s.run().clients.get("client")).toEqual([[1, 0], true, "ECONNRESET", [2, 1]]);
  });

  test("resetConnections: both ends of each of the host's connections see ECONNRESET", () => {
    const s = new Sim({ seed: 5 });
    let serverSaw: unknown = null;
    s.host("server", () => function* () {
      const l = TcpListener.bind({ hostname: "0.0.0.0", port: 80 });
      const [c] = yield* l.accept();
      serverSaw = yield* failure(c.read(new Uint8Array(1)));
      c.close();
      l.close();
    });
    s.client("client", () => function* () {
      const c = yield* TcpStream.connect({ hostname: s.ip("server"), port: 80 });
      yield* sleep(10);
      s.resetConnections("server");
      const e = yield* failure(c.read(new Uint8Array(1)));
      c.close();
      yield* sleep(10);
      return (e as SysError).code;
    });
    expect(s.run().clients.get("client")).toBe("ECONNRESET");
    expect((serverSaw as SysError).code).toBe("ECONNRESET");
  });
});

describe("Sim: runs and failures", () => {
  test("a failing client is a SimulationError naming the seed and how to replay it", () => {
    const s = new Sim({ seed: 31337 });
    s.client("c", () => function* () {
      yield* sleep(10);
      throw new Error("invariant broken");
    });
    let err: unknown;
    try {
      s.run();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SimulationError);
    expect((err as SimulationError).seed).toBe(31337);
    expect((err as Error).message).toContain('host "c" failed');
    expect((err as Error).message).toContain("replay: the same program with seed 31337");
    expect(((err as SimulationError).cause as Error).message).toBe("invariant broken");
  });

  test("a deadlocked run and one past its virtual time limit fail with the cause", () => {
    const dead = new Sim({ seed: 1 });
    dead.client("c", () => function* () {
      const l = TcpListener.bind({ port: 1 });
      try {
        yield* l.accept();
      } finally {
        l.close();
      }
    });
    expect(() => dead.run()).toThrow(/Deadlock/);
    const slow = new Sim({ seed: 1 });
    slow.client("c", () => function* () {
      yield* sleep(10_000);
    });
    expect(() => slow.run({ limitMs: 1000 })).toThrow(/did not finish within 1000 ms of virtual time/);
  });

  test("chaos: random faults from the seed, the same ones for the same seed", () => {
    const build = (seed: number) => {
      const s = new Sim({ seed });
      s.host("server", () => function* () {
        const l = TcpListener.bind({ hostname: "0.0.0.0", port: 80 });
        for (;;) {
          const [c] = yield* l.accept();
          spawn(function* () {
            try {
              const b = new Uint8Array(1);
              yield* c.readExact(b);
              yield* c.writeAll(b);
            } catch {
              // faults
            } finally {
              c.close();
            }
          });
        }
      });
      s.client("client", () => function* () {
        let ok = 0;
        for (let i = 0; i < 40; i++) {
          try {
            const c = yield* timeout(TcpStream.connect({ hostname: s.ip("server"), port: 80 }), 500);
            try {
              yield* c.writeAll(new Uint8Array([i]));
              const b = new Uint8Array(1);
              yield* timeout(c.readExact(b), 500);
              if (b[0] === i) ok++;
            } finally {
              c.close();
            }
          } catch {
            // a fault got in the way
          }
          yield* sleep(50);
        }
        return ok;
      });
      return s.run({ chaos: { interval: [50, 200], heal: [50, 200] } });
    };
    const a = build(8);
    const b = build(8);
    expect(a.faults).toBeGreaterThan(3);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.clients.get("client")).toBe(a.clients.get("client"));
  });

  test("REEL_SIM_CHECK=1 runs twice and fails at the first event where a hidden nondeterminism shows", () => {
    let runs = 0;
    const s = new Sim({ seed: 2 });
    s.client("c", () => function* () {
      runs++;
      yield* sleep(runs === 1 ? 10 : 20); // state kept outside the simulation between runs
    });
    const prev = process.env.REEL_SIM_CHECK;
    process.env.REEL_SIM_CHECK = "1";
    let err: unknown;
    try {
      s.run();
    } catch (e) {
      err = e;
    } finally {
      if (prev === undefined) delete process.env.REEL_SIM_CHECK;
      else process.env.REEL_SIM_CHECK = prev;
    }
    expect(err).toBeInstanceOf(SimulationError);
    expect((err as Error).message).toContain("not deterministic: the runs diverge at event #");
    expect((err as Error).message).toContain("clock jump");
  });
});

/**
 * Names: lookup() on the resolver pool, and TcpStream.connect to a host name (Happy
 * Eyeballs), on every backend. Offline: names come from /etc/hosts and "localhost"; a
 * name that cannot exist is one under .invalid (answered without the resolver, RFC 6761)
 * or one whose label is longer than DNS allows (glibc refuses it without a query). The
 * pool is made busy on purpose with "hold" jobs (one per Worker), which is how a lookup
 * is kept queued deterministically.
 */
import { beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { lookup as nodeLookup } from "node:dns/promises";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import { LookupError, PENDING, Runtime, SysError, TcpListener, TcpStream, select, sleep, spawn, type Context } from "../lib/index.ts";
import { JOB_STATES, RESOLVER_WORKERS, startResolver, type Job, type ResolverClient } from "../lib/driver/resolver.ts";
import type { Driver } from "../lib/driver/driver.ts";
import { lookup } from "../lib/net/lookup.ts";

const resolverFor = (d: Driver): ResolverClient => d.resolver;
import { HappyConnect, interleave } from "../lib/net/happy.ts";
import { forEachBackend, simSkip } from "./helpers.ts";

const noop: Context = { waker: { wake() {} } };
/** A name glibc rejects without asking DNS: a label of 64 characters (the limit is 63). */
const BAD_LABEL = `${"x".repeat(64)}.example`;

beforeAll(async () => {
  await startResolver(); // Worker start-up is not counted against a test's fd check
});

/** /etc/hosts as [address, name] pairs (comments and blank lines skipped). */
function hostsEntries(): [string, string][] {
  let text = "";
  try {
    text = readFileSync("/etc/hosts", "utf8");
  } catch {
    return [];
  }
  const out: [string, string][] = [];
  for (const line of text.split("\n")) {
    const [addr, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
    if (addr === undefined || addr === "" || addr.includes("%")) continue;
    for (const n of names) out.push([addr, n]);
  }
  return out;
}

/** Occupies every resolver Worker with a hold job (returns once each is running). */
function holdAll(client: ResolverClient): { jobs: Job[]; release(): void } {
  const holds = Array.from({ length: RESOLVER_WORKERS }, () => client.hold());
  for (const h of holds) {
    for (let i = 0; i < 50 && Atomics.load(h.job.state, 0) !== JOB_STATES.RUNNING; i++) Atomics.wait(h.job.state, 0, Atomics.load(h.job.state, 0), 100);
    expect(Atomics.load(h.job.state, 0)).toBe(JOB_STATES.RUNNING);
  }
  return { jobs: holds.map((h) => h.job), release: () => holds.forEach((h) => h.release()) };
}

/** Releases hold jobs and waits (bounded) until each is settled, then leaves them. */
function* releaseAll(client: ResolverClient, held: { jobs: Job[]; release(): void }): Generator<unknown, void, unknown> {
  held.release();
  for (let i = 0; i < 2000 && held.jobs.some((j) => !j.settled); i++) yield* sleep(1);
  expect(held.jobs.every((j) => j.settled)).toBe(true);
  for (const j of held.jobs) client.leave(j, null);
}

/** Why the resolver pool's own tests do not run on the simulator. */
const RESOLVER_POOL = "a simulation answers lookups from its own hosts at once: no resolver pool, no system names (test/sim_net.test.ts covers its names)";

forEachBackend("dns: lookup", ({ run, runtime, backend }) => {
  test.skipIf(backend === "sim")(simSkip(backend, "lookup('localhost') returns what the system's getaddrinfo does, for each family", RESOLVER_POOL)[1], async () => {
    const oracle = async (family: 0 | 4 | 6) => {
      try {
        return (await nodeLookup("localhost", { all: true, family, verbatim: true })).map((a) => a.address).sort();
      } catch {
        return null; // no address of that family here
      }
    };
    const expected = { 0: await oracle(0), 4: await oracle(4), 6: await oracle(6) };
    for (const family of [0, 4, 6] as const) {
      const got = run(function* () {
        try {
          return (yield* lookup("localhost", { family })).map((a) => a.address).sort();
        } catch (e) {
          expect(e).toBeInstanceOf(LookupError);
          expect((e as LookupError).code).toBe("ENOTFOUND");
          return null;
        }
      });
      expect(got).toEqual(expected[family]);
    }
    expect(expected[4]).toContain("127.0.0.1");
  });

  test.skipIf(backend === "sim")(simSkip(backend, "every name in /etc/hosts resolves to (at least) its listed address, with the right family", RESOLVER_POOL)[1], () => {
    const entries = hostsEntries().slice(0, 40);
    if (entries.length === 0) return console.warn("dns test: /etc/hosts is empty or unreadable; nothing to check");
    const results = run(function* () {
      const hs = entries.map(([, name]) => spawn(lookup(name)));
      const out = [];
      for (const h of hs) out.push(yield* h);
      return out;
    });
    entries.forEach(([addr, name], i) => {
      const want = addr.includes(":") ? "IPv6" : "IPv4";
      const r = results[i]!;
      const hit = r.find((a) => a.family === want && (a.address === addr || (want === "IPv6" && a.address === lookupCanon(addr))));
      if (hit === undefined) throw new Error(`${name}: ${addr} not among ${JSON.stringify(r)}`);
    });
  });

  test("IP literals answer at once, without the resolver; the other family is ENOTFOUND", () => {
    const client = resolverFor(runtime().driver);
    run(function* () {
      expect(yield* lookup("127.0.0.1")).toEqual([{ address: "127.0.0.1", family: "IPv4" }]);
      expect(yield* lookup("[::1]")).toEqual([{ address: "::1", family: "IPv6" }]);
      expect(client.inFlight).toBe(0);
      try {
        yield* lookup("::1", { family: 4 });
        throw new Error("expected ENOTFOUND");
      } catch (e) {
        expect((e as LookupError).code).toBe("ENOTFOUND");
      }
    });
  });

  test("a name that does not exist is LookupError ENOTFOUND naming it (.invalid at once; a bad label from getaddrinfo)", () => {
    for (const name of ["no-such-host.invalid", BAD_LABEL]) {
      const e = run(function* () {
        try {
          yield* lookup(name);
        } catch (err) {
          return err as LookupError;
        }
        throw new Error(`${name} resolved`);
      });
      expect(e).toBeInstanceOf(LookupError);
      expect(e.code).toBe("ENOTFOUND");
      expect(e.hostname).toBe(name);
      expect(e.syscall).toBe("getaddrinfo");
      expect(e.message).toContain(name.slice(0, 20));
    }
  });

  test("bad arguments are TypeError / RangeError naming the value", () => {
    expect(() => lookup(42 as never)).toThrow(TypeError);
    expect(() => lookup("")).toThrow(/empty/);
    expect(() => lookup("a\0b")).toThrow(/NUL/);
    expect(() => lookup("a".repeat(254))).toThrow(RangeError);
    expect(() => lookup("localhost", { family: 5 as never })).toThrow(/family 5/);
    expect(() => lookup("localhost", { signal: {} as never })).toThrow(/AbortSignal/);
  });

  test.skipIf(backend === "sim")(simSkip(backend, "concurrent lookups of one name share one resolution", RESOLVER_POOL)[1], () => {
    const client = resolverFor(runtime().driver);
    run(function* () {
      const held = holdAll(client);
      const futs = Array.from({ length: 50 }, () => lookup("LocalHost"));
      for (const f of futs) expect(f.poll(noop)).toBe(PENDING);
      expect(client.inFlight).toBe(RESOLVER_WORKERS + 1); // the holds, and one job for all 50
      yield* releaseAll(client, held);
      const hs = futs.map((f) => spawn(f));
      for (const h of hs) expect((yield* h).map((a) => a.address)).toContain("127.0.0.1");
      expect(client.inFlight).toBe(0);
    });
  });

  test.skipIf(backend === "sim")(simSkip(backend, "cancelling a queued lookup abandons its job: it never runs, and the eventfd is closed", RESOLVER_POOL)[1], () => {
    const client = resolverFor(runtime().driver);
    run(function* () {
      const held = holdAll(client);
      const f = lookup("localhost");
      expect(f.poll(noop)).toBe(PENDING);
      const job = [...(client as unknown as { jobs: Map<string, Job> }).jobs.values()].find((j) => j.hostname === "localhost")!;
      f.cancel();
      expect(Atomics.load(job.state, 0)).toBe(JOB_STATES.ABANDONED);
      expect(client.inFlight).toBe(RESOLVER_WORKERS);
      yield* releaseAll(client, held);
      expect(Atomics.load(job.state, 0)).toBe(JOB_STATES.ABANDONED); // no Worker took it
      expect(client.inFlight).toBe(0);
    });
  });

  test.skipIf(backend === "sim")(simSkip(backend, "lookup_detached_job_never_writes_the_next_owner: a running job cancelled, its eventfd number reused, stays silent", RESOLVER_POOL)[1], () => {
    const client = resolverFor(runtime().driver);
    run(function* () {
      // A hold job stands for a getaddrinfo that is running (a Worker is inside it).
      const [h] = [client.hold()];
      for (let i = 0; i < 50 && Atomics.load(h!.job.state, 0) !== JOB_STATES.RUNNING; i++) Atomics.wait(h!.job.state, 0, JOB_STATES.QUEUED, 100);
      expect(Atomics.load(h!.job.state, 0)).toBe(JOB_STATES.RUNNING);
      const efd = (client as unknown as { efd: number }).efd;
      client.leave(h!.job, null); // its only waiter is gone: detached, eventfd closed at once
      expect(Atomics.load(h!.job.state, 0)).toBe(JOB_STATES.DETACHED);
      expect(client.inFlight).toBe(0);
      const p = new Int32Array(2);
      expect(libc.pipe2(p, SYS.O_NONBLOCK | SYS.O_CLOEXEC)).toBe(0);
      expect([p[0], p[1]]).toContain(efd); // the next owner of the eventfd's number
      h!.release();
      // The Worker finishes and stores its result, but writes nothing anywhere.
      for (let i = 0; i < 200 && Atomics.load(h!.job.state, 1) !== 0; i++) yield* sleep(1);
      yield* sleep(5);
      expect(Atomics.load(h!.job.state, 0)).toBe(JOB_STATES.DETACHED);
      const buf = new Uint8Array(64);
      expect(libc.read(p[0]!, buf)).toBeLessThan(0); // EAGAIN: nothing arrived
      libc.close(p[0]!);
      libc.close(p[1]!);
    });
  });

  test.skipIf(backend === "sim")(simSkip(backend, "an AbortSignal cancels a pending lookup, which throws the signal's reason", RESOLVER_POOL)[1], () => {
    const client = resolverFor(runtime().driver);
    run(function* () {
      const held = holdAll(client);
      const ac = new AbortController();
      const h = spawn(lookup("localhost", { signal: ac.signal }));
      yield* sleep(1);
      ac.abort(new Error("stop"));
      let err: unknown;
      try {
        yield* h;
      } catch (e) {
        err = e;
      }
      expect(String((err as { cause?: unknown }).cause ?? err)).toContain("stop");
      expect(client.inFlight).toBe(RESOLVER_WORKERS);
      yield* releaseAll(client, held);
    });
  });

  test.skipIf(backend === "sim")(simSkip(backend, "a runtime closed with a lookup in flight gives it up: its eventfd is released, the lookup fails ECANCELED", RESOLVER_POOL)[1], () => {
    const rt = new Runtime({ backend });
    const client = rt.driver.resolver;
    let held: { jobs: Job[]; release(): void } | null = null;
    const f = rt.blockOn(function* () {
      held = holdAll(client);
      const f = lookup("localhost");
      expect(f.poll(noop)).toBe(PENDING); // queued behind the holds, never cancelled
      return f;
    });
    rt.close(); // the driver gives every job up and closes the eventfd (the fd check sees a leak)
    expect(client.inFlight).toBe(0);
    held!.release(); // the Workers finish their holds and write nothing
    let err: unknown;
    try {
      f.poll(noop);
    } catch (e) {
      err = e;
    }
    expect((err as LookupError).code).toBe("ECANCELED");
  });

  test("many concurrent lookups (300: shared and distinct names, found and not) all settle correctly", () => {
    const client = resolverFor(runtime().driver);
    const out = run(function* () {
      const hs = Array.from({ length: 300 }, (_, i) =>
        spawn(function* () {
          const name = i % 3 === 0 ? "localhost" : i % 3 === 1 ? `${"y".repeat(64)}.n${i}.example` : "127.0.0.1";
          try {
            return (yield* lookup(name))[0]!.address;
          } catch (e) {
            return (e as LookupError).code;
          }
        }),
      );
      const r: string[] = [];
      for (const h of hs) r.push(yield* h);
      return r;
    });
    out.forEach((v, i) => expect(v).toBe(i % 3 === 1 ? "ENOTFOUND" : "127.0.0.1"));
    expect(client.inFlight).toBe(0);
  });

  test.skipIf(backend === "sim")(simSkip(backend, "a lookup raced against a timer loses cleanly: nothing left in flight", RESOLVER_POOL)[1], () => {
    const client = resolverFor(runtime().driver);
    run(function* () {
      const held = holdAll(client);
      const r = yield* select(lookup("localhost"), sleep(5));
      expect(r.index).toBe(1);
      expect(client.inFlight).toBe(RESOLVER_WORKERS);
      yield* releaseAll(client, held);
      expect(client.inFlight).toBe(0);
    });
  });
});

/** The canonical text of an IPv6 literal (as reel formats it). */
function lookupCanon(addr: string): string {
  return addr.toLowerCase().replace(/(^|:)0+([0-9a-f])/g, "$1$2");
}

/**
 * A listener on [::1]:P (with `backlog`) and one on 127.0.0.1:P — one port number for
 * both families — or null where this machine has no IPv6 loopback.
 */
function dualListeners(backlog6 = 1024): [TcpListener, TcpListener] | null {
  for (let i = 0; i < 20; i++) {
    let l6: TcpListener;
    try {
      l6 = TcpListener.bind({ hostname: "::1", port: 0, backlog: backlog6 });
    } catch (e) {
      if (e instanceof SysError && (e.code === "EADDRNOTAVAIL" || e.code === "EAFNOSUPPORT")) return null;
      throw e;
    }
    try {
      return [l6, TcpListener.bind({ hostname: "127.0.0.1", port: l6.localAddr.port })];
    } catch (e) {
      l6.close();
      if (!(e instanceof SysError && e.code === "EADDRINUSE")) throw e;
    }
  }
  throw new Error("no port number free on both ::1 and 127.0.0.1 after 20 tries");
}

const V6 = { address: "::1", family: "IPv6" as const };
const V4 = { address: "127.0.0.1", family: "IPv4" as const };

forEachBackend("dns: Happy Eyeballs connect", ({ run, runtime }) => {
  test("interleave() alternates families, IPv6 first (RFC 8305 §4)", () => {
    const a = (x: string) => ({ address: x, family: (x.includes(":") ? "IPv6" : "IPv4") as "IPv4" | "IPv6" });
    expect(interleave([a("1.1.1.1"), a("2.2.2.2"), a("::1"), a("3.3.3.3"), a("::2")]).map((x) => x.address)).toEqual(["::1", "1.1.1.1", "::2", "2.2.2.2", "3.3.3.3"]);
  });

  test("TcpStream.connect({ hostname: 'localhost' }) resolves and connects", () => {
    run(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const s = yield* TcpStream.connect({ hostname: "localhost", port: l.localAddr.port });
      const [peer] = yield* l.accept();
      expect(s.peerAddr.port).toBe(l.localAddr.port);
      s.close();
      peer.close();
      l.close();
    });
  });

  test("a name that does not resolve fails connect with LookupError and leaves nothing open", () => {
    run(function* () {
      try {
        yield* TcpStream.connect({ hostname: BAD_LABEL, port: 80 });
        throw new Error("connected");
      } catch (e) {
        expect(e).toBeInstanceOf(LookupError);
        expect((e as LookupError).code).toBe("ENOTFOUND");
      }
    });
  });

  test("when both families listen, IPv6 (tried first) wins at once and IPv4 is never tried", () => {
    run(function* () {
      // Made inside the run: on the simulator a socket belongs to the simulation that made it.
      const ls = dualListeners();
      if (ls === null) return console.warn("no IPv6 loopback here: skipped");
      const [l6, l4] = ls;
      const t0 = performance.now();
      const src = yield* new HappyConnect("dual", l6.localAddr.port, [V4, V6]);
      expect(performance.now() - t0).toBeLessThan(200);
      const s = new TcpStream(src);
      expect(s.peerAddr.family).toBe("IPv6");
      const [p] = yield* l6.accept();
      expect(l4.accept().poll(noop)).toBe(PENDING); // nothing reached IPv4
      p.close();
      s.close();
      l6.close();
      l4.close();
    });
  });

  test("a refused IPv6 attempt starts IPv4 at once (no 250 ms wait)", () => {
    run(function* () {
      // Made inside the run: on the simulator a socket belongs to the simulation that made it.
      const ls = dualListeners();
      if (ls === null) return console.warn("no IPv6 loopback here: skipped");
      const [l6, l4] = ls;
      l6.close(); // [::1]:port refuses now
      const t0 = performance.now();
      const src = yield* new HappyConnect("refused6", l4.localAddr.port, [V6, V4]);
      expect(performance.now() - t0).toBeLessThan(200);
      const s = new TcpStream(src);
      expect(s.peerAddr.family).toBe("IPv4");
      s.close();
      l4.close();
    });
  });

  test("an IPv6 attempt that hangs is raced: IPv4 starts after 250 ms and wins; the IPv6 socket is closed", () => {
    run(function* () {
      // Made inside the run: on the simulator a socket belongs to the simulation that made it.
      const ls = dualListeners(0);
      if (ls === null) return console.warn("no IPv6 loopback here: skipped");
      const [l6, l4] = ls;
      const port = l6.localAddr.port;
      // Fill the backlog-0 queue: the kernel drops further SYNs, so a connect there hangs.
      const filler = yield* TcpStream.connect({ hostname: "::1", port });
      const before = runtime().driver.registrations;
      const t0 = performance.now();
      const src = yield* new HappyConnect("hang6", port, [V6, V4]);
      const ms = performance.now() - t0;
      expect(ms).toBeGreaterThanOrEqual(240);
      expect(ms).toBeLessThan(1000);
      const s = new TcpStream(src);
      expect(s.peerAddr.family).toBe("IPv4");
      // The losing IPv6 socket is gone: only the winner was added.
      expect(runtime().driver.registrations).toBeLessThanOrEqual(before + 1);
      s.close();
      filler.close();
      l6.close();
      l4.close();
    });
  });

  test("when every address fails, the error names each address and its code", () => {
    run(function* () {
      // Made inside the run: on the simulator a socket belongs to the simulation that made it.
      const ls = dualListeners();
      if (ls === null) return console.warn("no IPv6 loopback here: skipped");
      const [l6, l4] = ls;
      const port = l6.localAddr.port;
      l6.close();
      l4.close();
      try {
        yield* new HappyConnect("nobody", port, [V4, V6]);
        throw new Error("connected");
      } catch (e) {
        expect(e).toBeInstanceOf(SysError);
        expect((e as SysError).code).toBe("ECONNREFUSED");
        expect((e as SysError).message).toContain(`[::1]:${port} ECONNREFUSED`);
        expect((e as SysError).message).toContain(`127.0.0.1:${port} ECONNREFUSED`);
      }
    });
  });

  test("cancelling a race closes every attempt's socket", () => {
    run(function* () {
      // Made inside the run: on the simulator a socket belongs to the simulation that made it.
      const ls = dualListeners(0);
      if (ls === null) return console.warn("no IPv6 loopback here: skipped");
      const [l6, l4] = ls;
      const port = l6.localAddr.port;
      const filler = yield* TcpStream.connect({ hostname: "::1", port });
      const r = yield* select(new HappyConnect("cancel", port, [V6, { address: "::1", family: "IPv6" }]), sleep(50));
      expect(r.index).toBe(1); // both attempts hang; the race lost, its sockets closed (fd check)
      filler.close();
      l6.close();
      l4.close();
    });
  });
});

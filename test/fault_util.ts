/**
 * Shared pieces of the fault suite (test/fault_*.test.ts, test/soak.ts, test/fixtures/):
 * a seeded PRNG, deterministic payloads, RLIMIT_NOFILE handling, child processes, an echo
 * handler for serve(), and the leftover checks run after cancellation (wakers still stored
 * in the driver's slab, timers, io_uring ops, owned buffers) — including the io_uring
 * buffer poisoning debug mode.
 *
 * Not a test file, and free of bun:test so fixtures and the soak can import it. Sizes come from {@link LONG} (REEL_LONG=1 runs the
 * full-size variants the issue names; the default keeps CI under its time budget).
 */
import { fdCount, fdTable } from "./helpers.ts";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import { Notify, SysError, type Runtime, type TcpStream } from "../lib/index.ts";
import type { Registry } from "../lib/driver/registry.ts";
import { SimDriver } from "../lib/driver/sim/driver.ts";
import { sockets } from "../lib/net/socket.ts";
import { UringDriver, ST_DONE, ST_FREE } from "../lib/driver/uring/driver.ts";
import type { OwnedBuf } from "../lib/driver/uring/buf.ts";

/** True when REEL_LONG=1: the full-size load (10,000 connections) and 64 MB transfers. */
export const LONG = process.env.REEL_LONG === "1";

/** A seed from REEL_SEED, or a fresh one; printed by the tests so a failure can be replayed. */
export function seedFromEnv(): number {
  const s = process.env.REEL_SEED;
  if (s !== undefined && s !== "") {
    const n = Number(s);
    if (!Number.isInteger(n)) throw new TypeError(`REEL_SEED must be an integer, got "${s}"`);
    return n >>> 0;
  }
  return (Math.random() * 0x1_0000_0000) >>> 0;
}

/** A small seeded PRNG (mulberry32): reproducible from its seed. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + (this.u32() % (hi - lo + 1));
  }
  /** true with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.u32() % xs.length]!;
  }
}

/** Fills `b` with a deterministic byte stream; `state` carries on across calls. */
export function fillPattern(b: Uint8Array, state: { x: number }): void {
  let x = state.x >>> 0 || 1;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  state.x = x;
}

/** `len` deterministic bytes for `seed`. */
export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  fillPattern(b, { x: seed });
  return b;
}

/** Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force. */
export function raiseNofile(): number {
  const cur = libc.getrlimit(SYS.RLIMIT_NOFILE);
  if (typeof cur === "number") throw new SysError(-cur, "getrlimit");
  const [soft, hard] = cur;
  if (soft < hard) {
    const r = libc.setrlimit(SYS.RLIMIT_NOFILE, hard, hard);
    if (r < 0) throw new SysError(-r, "setrlimit");
    return hard;
  }
  return soft;
}

/**
 * Sets SO_LINGER {on, 0}: close() then sends RST instead of FIN (the peer reads ECONNRESET).
 * Through the current runtime's socket calls (the kernel's, or the simulator's).
 */
export function lingerZero(fd: number): void {
  const linger = new Uint8Array(new ArrayBuffer(8));
  const v = new Int32Array(linger.buffer);
  v[0] = 1; // l_onoff
  v[1] = 0; // l_linger
  const r = sockets().setsockopt(fd, SYS.SOL_SOCKET, SYS.SO_LINGER, linger);
  if (r < 0) throw new SysError(-r, "setsockopt", undefined, "SO_LINGER");
}

/** Sets a small SO_SNDBUF/SO_RCVBUF so a few hundred KB fill the socket (through the current runtime's socket calls). */
export function smallBuffers(fd: number, bytes = 16384): void {
  for (const opt of [SYS.SO_SNDBUF, SYS.SO_RCVBUF]) {
    const r = sockets().setsockoptInt(fd, SYS.SOL_SOCKET, opt, bytes);
    if (r < 0) throw new SysError(-r, "setsockopt");
  }
}

/**
 * The echo handler the fault suite serves: reads into a buffer of `size`, writes it all
 * back. TCP_NODELAY as in examples/echo-server.ts: without it, echoing a message in
 * pieces meets Nagle's algorithm and the peer's delayed ACK (tens of ms per round trip).
 */
export function echoHandler(size = 16384) {
  return function* (stream: TcpStream): Generator<unknown, void, unknown> {
    stream.setNoDelay(true);
    const buf = new Uint8Array(size);
    for (let n; (n = yield* stream.read(buf)) > 0; ) yield* stream.writeAll(buf.subarray(0, n));
  };
}

/** Counts live connections of a server; `drained()` waits until none is left. */
export class Tracker {
  live = 0;
  peak = 0;
  total = 0;
  private readonly idle = new Notify();

  enter(): void {
    this.total++;
    if (++this.live > this.peak) this.peak = this.live;
    this.idle.notifyWaiters();
  }

  leave(): void {
    this.live--;
    this.idle.notifyWaiters();
  }

  /** Completes once at most `n` connections are live (default: none). */
  *drained(n = 0): Generator<unknown, void, unknown> {
    while (this.live > n) {
      const w = this.idle.notified();
      if (this.live <= n) {
        w.cancel();
        return;
      }
      yield* w;
    }
  }

  /** Completes once at least `n` connections have been accepted in all. */
  *accepted(n: number): Generator<unknown, void, unknown> {
    while (this.total < n) {
      const w = this.idle.notified();
      if (this.total >= n) {
        w.cancel();
        return;
      }
      yield* w;
    }
  }

  /** `handler` wrapped so it is counted. */
  wrap(handler: (s: TcpStream) => Generator<unknown, void, unknown>) {
    const self = this;
    return function* (s: TcpStream): Generator<unknown, void, unknown> {
      self.enter();
      try {
        yield* handler(s);
      } finally {
        self.leave();
      }
    };
  }
}

/** Reads one "\n"-terminated line from `stream` (byte by byte: the rest stays unread). */
export function* readLine(stream: TcpStream, max = 4096): Generator<unknown, string, unknown> {
  const one = new Uint8Array(1);
  const out: number[] = [];
  while (out.length < max) {
    if ((yield* stream.read(one)) === 0) break;
    if (one[0] === 10) break;
    out.push(one[0]!);
  }
  return new TextDecoder().decode(Uint8Array.from(out));
}

/** Reads `stream` to EOF; returns the text. */
export function* readText(stream: TcpStream, max = 1 << 20): Generator<unknown, string, unknown> {
  const buf = new Uint8Array(max);
  let total = 0;
  for (let n; total < max && (n = yield* stream.read(buf.subarray(total))) > 0; ) total += n;
  return new TextDecoder().decode(buf.subarray(0, total));
}

/** Counts of what may still wake a task once every future of a test has been cancelled. */
export interface Leftovers {
  /** Wakers still stored in the readiness slab (registrations of open fds). */
  ioWakers: number;
  /** Entries in the timer wheel. */
  timers: number;
  /** io_uring ops not yet freed (0 on readiness backends). */
  uringOps: number;
  /** io_uring owned buffers handed out and not returned. */
  uringBufs: number;
}

/** What the driver of `rt` still holds for waiting tasks. */
export function leftovers(rt: Runtime): Leftovers {
  const d = rt.driver;
  // The simulator keeps its wakers in its sockets.
  if (d instanceof SimDriver) return { ioWakers: d.net.storedWakers(), timers: d.wheel.size, uringOps: 0, uringBufs: 0 };
  // Both backends keep their readiness registrations in a Registry; the fault suite reads
  // it to prove cancel hooks ran.
  const reg = (d as unknown as { registry?: Registry }).registry;
  if (reg === undefined) throw new Error("fault_util: the driver has no registry any more; update leftovers()");
  const ioWakers = reg.storedWakers();
  const u = d instanceof UringDriver ? d : null;
  return { ioWakers, timers: d.wheel.size, uringOps: u?.opsInUse ?? 0, uringBufs: u?.pool.outstanding ?? 0 };
}

/**
 * Turns the driver until every io_uring op has its final CQE (bounded: 200 × ≤ 10 ms).
 * With `idle` false it only gives in-flight cancellations a few turns, for checks made
 * while sockets are still open (an open listener keeps its multishot accept armed).
 */
export function settleUring(rt: Runtime, idle = true): void {
  const d = rt.driver;
  if (!(d instanceof UringDriver)) return;
  if (!idle) {
    for (let i = 0; i < 3; i++) d.turn(0);
    return;
  }
  for (let i = 0; i < 200 && d.inflight > 0; i++) d.turn(10);
  if (d.inflight !== 0) {
    const ops = (d as unknown as { ops: { state: number; tag: number; multishot: boolean; background: boolean; kind: number }[] }).ops;
    const live = ops.filter((o) => o.state !== ST_FREE).map((o) => `{state ${o.state}, kind ${o.kind}, tag ${o.tag}${o.multishot ? ", multishot" : ""}${o.background ? ", background" : ""}}`);
    throw new Error(`io_uring: ${d.inflight} op(s) still without their CQE after 2 s; ops in use: ${live.join(" ")}`);
  }
}

const POISON = 0xa5;

/** What the io_uring poison mode found: each entry names one violation. */
export interface PoisonReport {
  violations: string[];
  poisoned: number;
  checked: number;
}

/**
 * The io_uring buffer debug mode: every owned buffer returned to the pool is filled with
 * 0xA5, and checked to be still all 0xA5 when handed out again (and by {@link scanPoison}):
 * a buffer the kernel wrote into after it was released (freed before its CQE) shows up as
 * broken poison; one it still read from puts 0xA5 bytes on the wire, which the echo checks
 * catch. `release()` is also checked to run only for an op whose CQE has arrived (DONE, or
 * from inside the CQE handler). Returns the live report, `scan` (checks every idle
 * poisoned buffer now) and `uninstall`.
 */
export function installPoison(d: UringDriver): { report: PoisonReport; scan: () => void; uninstall: () => void } {
  const report: PoisonReport = { violations: [], poisoned: 0, checked: 0 };
  const pool = d.pool;
  const origPut = pool.put.bind(pool);
  const origGet = pool.get.bind(pool);
  const poisoned = new WeakSet<OwnedBuf>();
  pool.put = (b: OwnedBuf) => {
    b.bytes.fill(POISON);
    poisoned.add(b);
    report.poisoned++;
    origPut(b);
  };
  pool.get = (size: number) => {
    const b = origGet(size);
    if (poisoned.has(b)) {
      report.checked++;
      const at = firstNotPoison(b.bytes);
      if (at >= 0) report.violations.push(`buffer of ${b.bytes.length} B written at offset ${at} after it was released`);
      poisoned.delete(b);
    }
    return b;
  };
  const dd = d as unknown as { complete: (ud: number, res: number, flags: number) => void; release: (op: { state: number; buf: unknown }) => void };
  const origComplete = dd.complete;
  const origRelease = dd.release;
  let inCqe = 0;
  dd.complete = function (this: unknown, ud: number, res: number, flags: number) {
    inCqe++;
    try {
      origComplete.call(this, ud, res, flags);
    } finally {
      inCqe--;
    }
  };
  dd.release = function (this: unknown, op: { state: number; buf: unknown }) {
    if (inCqe === 0 && op.state !== ST_DONE && op.state !== ST_FREE) report.violations.push(`op released in state ${op.state} before its CQE`);
    origRelease.call(this, op);
  };
  const uninstall = () => {
    pool.put = origPut;
    pool.get = origGet;
    dd.complete = origComplete;
    dd.release = origRelease;
  };
  const scan = () => {
    const free = (pool as unknown as { free: OwnedBuf[][] }).free;
    for (const list of free) {
      for (const b of list) {
        if (!poisoned.has(b)) continue;
        report.checked++;
        const at = firstNotPoison(b.bytes);
        if (at >= 0) report.violations.push(`idle buffer of ${b.bytes.length} B written at offset ${at} after it was released`);
      }
    }
  };
  return { report, scan, uninstall };
}

function firstNotPoison(b: Uint8Array): number {
  for (let i = 0; i < b.length; i++) if (b[i] !== POISON) return i;
  return -1;
}

/** Open fds of this process (test/helpers.ts's fdCount). */
export const openFds = fdCount;

/** How a fixture ended. */
export interface ChildEnd {
  exit: number;
  signal: string | null;
  stderr: string;
  /** stdout not consumed by line(). */
  stdout: string;
}

/** A child `bun` process running a fixture, with its stdout read line by line. */
export interface Child {
  proc: ReturnType<typeof Bun.spawn>;
  /** The next line of stdout (rejects if the child exits first). */
  line(): Promise<string>;
  /**
   * Waits for the exit, drains both pipes, and waits (bounded) until Bun has closed the
   * pipe fds, so the fd checks around each test see none of them.
   */
  finish(): Promise<ChildEnd>;
}

/** What each open fd refers to ("pipe:[123]", "socket:[456]", …), by fd number. */
const fdTargets = fdTable;

/** Spawns `bun test/fixtures/<name> ...args` with `env` added. */
export function spawnFixture(name: string, args: string[], env: Record<string, string> = {}): Child {
  const before = fdTargets();
  const proc = Bun.spawn([process.execPath, `${import.meta.dir}/fixtures/${name}`, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    // The fixtures' stderr must stay empty (the tests assert it). On a loaded machine a GC
    // pause or a descheduled thread can hold one poll past the slow-poll detector's 50 ms,
    // and its report would land there: the children run without the detector.
    env: { REEL_SLOW_POLL_MS: "0", ...process.env, ...env },
  });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  let pending = "";
  const errText = new Response(proc.stderr as ReadableStream<Uint8Array>).text();
  // The fds Bun opened for this child (its pipes), by what they refer to.
  const mine = new Set<string>();
  for (const [fd, target] of fdTargets()) if (before.get(fd) !== target) mine.add(target);
  const stillOpen = () => [...fdTargets().values()].some((t) => mine.has(t));
  return {
    proc,
    async line() {
      for (;;) {
        const nl = pending.indexOf("\n");
        if (nl >= 0) {
          const l = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          return l;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error(`fixture ${name} exited before printing a line (exit ${await proc.exited}): ${await errText}`);
        pending += dec.decode(value, { stream: true });
      }
    },
    async finish() {
      const exit = await proc.exited;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += dec.decode(value, { stream: true });
      }
      const stderr = await errText;
      // Bun closes the pipe fds a tick after EOF.
      for (let i = 0; i < 500 && stillOpen(); i++) await Bun.sleep(1);
      return { exit, signal: proc.signalCode === null || proc.signalCode === undefined ? null : String(proc.signalCode), stderr, stdout: pending };
    },
  };
}

/** Reads newline-terminated lines from a stream (bounded line length). */
export class LineReader {
  private buf = new Uint8Array(4096);
  private len = 0;
  private eof = false;
  constructor(private readonly stream: TcpStream) {}

  /** The next line without its "\n", or null at EOF. */
  *line(): Generator<unknown, string | null, unknown> {
    for (;;) {
      const nl = this.buf.subarray(0, this.len).indexOf(10);
      if (nl >= 0) {
        const l = new TextDecoder().decode(this.buf.subarray(0, nl));
        this.buf.copyWithin(0, nl + 1, this.len);
        this.len -= nl + 1;
        return l;
      }
      if (this.eof || this.len === this.buf.length) return null;
      const n = yield* this.stream.read(this.buf.subarray(this.len));
      if (n === 0) this.eof = true;
      this.len += n;
    }
  }
}

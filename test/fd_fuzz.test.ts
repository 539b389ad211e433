/**
 * The fd-reuse fuzz suite: random interleavings of starting, cancelling and closing every
 * kind of op reel has on a descriptor — TCP read/write/accept/connect, listen() servers
 * (handler style: a connection closed from inside data() with a send in flight), file
 * read/write/linked writes/stat, Unix stream read/write and fd passing (sendFds /
 * recvFds), UDP and Unix datagram send/recv and their batches, AsyncFd readiness waits —
 * with the closed number reused at once by a fresh
 * socketpair, pipe or file (a "victim": the next owner). After each run everything is
 * settled and the suite asserts that no byte reached or left the wrong descriptor:
 *
 * - every byte a stream reads carries its peer's tag (each stream writes only its own tag);
 *   so does every datagram; a datagram is whole or reported truncated (EMSGSIZE);
 * - every fd received with SCM_RIGHTS is the pipe end that was sent (a byte written through
 *   it arrives at the pipe's other end), and is closed by the test or by its stream;
 * - a file holds only its own tag (or zeros where it was never written);
 * - a victim still holds exactly what the test put in it, and its other end received
 *   nothing; a victim file is unchanged;
 * - a Unix listener's socket file is gone once it closed;
 * - ops fail only with the errors a close or a peer's close explains (EBADF, ECONNRESET,
 *   EPIPE, ECANCELED, ECONNREFUSED, ECONNABORTED; ENOTCONN for a datagram whose peer is
 *   gone; EMSGSIZE for a datagram larger than its buffer; ENOENT for a Unix connect whose
 *   listener closed, and so removed its file, before the connect was issued); the fd table returns to where
 *   it started (helpers.ts).
 *
 * fast-check generates the command lists (model-based: shrinking to the smallest failing
 * list, replay by seed). Runs on every backend (and, in CI, both io_uring ring paths).
 * REEL_SEED replays; REEL_FUZZ_RUNS=N sets the number of runs (default 30 per backend;
 * the long variant is `REEL_FUZZ_RUNS=500 bun test test/fd_fuzz.test.ts`).
 *
 * Every new fd type joins this suite: add its ops as commands and its victim kind. So far,
 * besides sockets and files: pipe() ends (read, write, close), child processes (`cat`
 * with piped stdin/stdout: its pipes, kill, wait — its pidfd is the driver's), shared
 * (inherited) fds over a blocking pipe (driver.inherited(): a Worker lane on the
 * readiness backends, ring ops on io_uring), and signal streams (the signal pump's
 * duplicate of the wake-up pipe, closed with the last stream).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fc from "fast-check";
import { dlopen } from "bun:ffi";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import { POLLIN, PollFds, pollFds } from "../ffi/poll.ts";
import { AsyncFd, Command, PENDING, SysError, TcpListener, listen, spawn, timeout, type TcpConn, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream, currentRuntime, pipe, pollFn, signal, sleep, type BaseFuture, type Child, type Context, type PipeReader, type PipeWriter, type Runtime, type SignalStream } from "../lib/index.ts";
import { NO_BUFS, OP_READ, OP_WRITE, DIR_READ, DIR_WRITE, type IoFd } from "../lib/driver/fd.ts";
import { laneState, startLanes } from "../lib/driver/readiness/shared.ts";
import { hubState, pumpFd, startSignals } from "../lib/signal/hub.ts";
import * as proc from "../ffi/process.ts";
import { SIGNALS } from "../ffi/signal.ts";
import * as fs from "../lib/fs/index.ts";
import { forEachBackend } from "./helpers.ts";
import { seedFromEnv } from "./fault_util.ts";

const RUNS = Number(process.env.REEL_FUZZ_RUNS ?? 30);
const O_RDWR = 2;

// mkfifo(3), for FIFOs that keep pool workers (or io_uring's) blocked on purpose.
const cfifo = dlopen("libc.so.6", { mkfifo: { args: ["ptr", "u32"], returns: "i32" } }).symbols;
function mkfifo(path: string): void {
  if (cfifo.mkfifo(new TextEncoder().encode(`${path}\0`), 0o600) !== 0) throw new Error(`mkfifo ${path} failed`);
}
const SEED = seedFromEnv();
const ALLOWED = new Set(["EBADF", "ECONNRESET", "EPIPE", "ECANCELED", "ECONNREFUSED", "ECONNABORTED", "ENOTCONN", "EMSGSIZE", "ENOENT"]);
/** Lane Workers started before the runs (shared fds on the readiness backends). */
const LANES = 6;

let dir = "";
beforeAll(async () => {
  await fs.startFsPool();
  await startLanes(LANES); // the shared fds' Workers exist before the fd table is compared
  startSignals(); // the process-wide signal wake-up pipe, likewise
  Bun.spawnSync(["true"]); // Bun's own subprocess fds, likewise
  dir = mkdtempSync(join(tmpdir(), "reel-fuzz-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A waker that only records that it fired. */
class Flag {
  fired = false;
  readonly cx: Context = { waker: { wake: () => void (this.fired = true) } };
}

interface Stream {
  kind: "stream";
  s: TcpStream | UnixStream;
  tag: number;
  /** The tag of the stream at the other end. */
  peerTag: number;
  closed: boolean;
}
interface Listener {
  kind: "listener";
  l: TcpListener | UnixListener;
  /** TCP: its port; Unix: -1 (connect to `path`). */
  port: number;
  path: string;
  closed: boolean;
}
interface File {
  kind: "file";
  f: fs.File;
  path: string;
  tag: number;
  closed: boolean;
  /** A FIFO opened read-write: the test's own fd on it (fills and drains it), else -1. */
  side: number;
}
/** A pipe's read end (pipe(), or a child's stdout): reads must carry its writer's tag. */
interface PReader {
  kind: "preader";
  r: PipeReader;
  peerTag: number;
  closed: boolean;
}
/** A pipe's write end (pipe(), or a child's stdin): writes only its own tag. */
interface PWriter {
  kind: "pwriter";
  w: PipeWriter;
  tag: number;
  closed: boolean;
}
/** A shared fd (driver.inherited) on a blocking pipe: the read end. */
interface SReader {
  kind: "sreader";
  io: IoFd;
  peerTag: number;
  closed: boolean;
}
/** A shared fd on a blocking pipe: the write end. */
interface SWriter {
  kind: "swriter";
  io: IoFd;
  tag: number;
  closed: boolean;
}
/** A running `cat`: closing it kills it. */
interface ChildObj {
  kind: "child";
  c: Child;
  closed: boolean;
}
/** A SIGUSR2 stream. */
interface Sig {
  kind: "signal";
  s: SignalStream;
  closed: boolean;
}
/** One end of a connected datagram pair (UDP or Unix). */
interface Dgram {
  kind: "dgram";
  d: UdpSocket | UnixDatagram;
  tag: number;
  peerTag: number;
  closed: boolean;
}
/** An AsyncFd over a pipe's read end; the test keeps the write end (`w`). */
interface Afd {
  kind: "afd";
  a: AsyncFd;
  w: number;
  closed: boolean;
}
type Obj = Stream | Listener | File | Dgram | Afd | PReader | PWriter | SReader | SWriter | ChildObj | Sig;

interface Pending {
  fut: BaseFuture<unknown>;
  flag: Flag;
  what: string;
  /** Called with the value when the op completes. */
  done: (v: unknown) => void;
}

interface Victim {
  kind: "pair" | "pipe" | "file";
  /** The reused number (the end a stray op would hit). */
  mine: number;
  /** The other end (pair, pipe) or -1. */
  other: number;
  /** What the test put in: bytes readable on `mine` (pair: written on `other`), or the file's content. */
  fed: number[];
  path: string;
}

/** One fuzz run's state: reel objects, pending ops, victims, and what went wrong. */
class World {
  objs: Obj[] = [];
  pending: Pending[] = [];
  victims: Victim[] = [];
  problems: string[] = [];
  received = new Map<Stream | Dgram, number[]>();
  /** Pipes whose write end was sent with sendFds: read end → what arrived through received copies. */
  sentPipes = new Map<number, { w: number }>();
  /** What each pipe or shared read end read, and the tag its writer writes. */
  pipeSeen = new Map<object, { tag: number; bytes: number[] }>();
  /** The test's own copies of the shared pipes' ends: closed (writer) and drained (reader) at the end. */
  sharedRaw: { r: number; w: number }[] = [];
  children: Child[] = [];
  /** FIFOs whose open() (a pool or kernel worker) blocks until a writer comes. */
  blocked: string[] = [];
  /** Writer fds that unblocked them, and the sides of FIFO files: closed at the end. */
  rawFds: number[] = [];
  private nextTag = 1;
  private files = 0;

  constructor(readonly rt: Runtime, readonly prefix: string) {}

  tag(): number {
    const t = this.nextTag;
    this.nextTag = (this.nextTag % 200) + 1;
    return t;
  }

  live<K extends Obj["kind"]>(kind: K): Extract<Obj, { kind: K }>[] {
    return this.objs.filter((o) => o.kind === kind && !o.closed) as Extract<Obj, { kind: K }>[];
  }

  pick<T>(xs: T[], i: number): T | undefined {
    return xs.length === 0 ? undefined : xs[i % xs.length];
  }

  filePath(): string {
    return `${this.prefix}-f${this.files++}`;
  }

  /**
   * Opens the oldest blocked FIFO read-write (which never blocks): a writer now exists, so
   * its open() goes on, whether a worker is inside it already or takes it later.
   */
  unblock(): void {
    const fifo = this.blocked.shift();
    if (fifo !== undefined) this.rawFds.push(openSync(fifo, O_RDWR | SYS.O_NONBLOCK));
  }

  /**
   * Drains every FIFO file's pipe, then puts a little in: a call waiting to write into it
   * gets room, one waiting to read gets bytes (zeros, which any reader may see).
   */
  drainFifos(): void {
    for (const o of this.objs) {
      if (o.kind !== "file" || o.side < 0) continue;
      drain(o.side);
      libc.write(o.side, new Uint8Array(4096));
    }
  }

  /** Polls a fresh op once; keeps it pending, or records its outcome. */
  start(fut: BaseFuture<unknown>, what: string, done: (v: unknown) => void): void {
    const p: Pending = { fut, flag: new Flag(), what, done };
    if (!this.pollOne(p)) this.pending.push(p);
  }

  /** Polls `p`; true when it finished (value or error). */
  pollOne(p: Pending): boolean {
    let v: unknown;
    try {
      v = p.fut.poll(p.flag.cx);
    } catch (e) {
      this.error(p.what, e);
      return true;
    }
    if (v === PENDING) return false;
    p.done(v);
    return true;
  }

  /** Turns (≤ `max` times, 1 ms each) until a turn completes no pending op. */
  *settle(max: number): Generator<unknown, void, unknown> {
    for (let i = 0; i < max; i++) {
      yield* sleep(1);
      const before = this.pending.length;
      this.repoll();
      if (this.pending.length === before && i > 1) return;
    }
  }

  /** Re-polls every pending op whose waker fired. */
  repoll(): void {
    const keep: Pending[] = [];
    for (const p of this.pending) {
      if (!p.flag.fired) {
        keep.push(p);
        continue;
      }
      p.flag.fired = false;
      if (!this.pollOne(p)) keep.push(p);
    }
    this.pending = keep;
  }

  /** Records `n` bytes a stream or datagram end received into `buf`. */
  got(o: Stream | Dgram, buf: Uint8Array, n: number): void {
    const seen = this.received.get(o) ?? [];
    for (let j = 0; j < n; j++) seen.push(buf[j]!);
    this.received.set(o, seen);
  }

  error(what: string, e: unknown): void {
    const code = e instanceof SysError ? e.code : e instanceof Error ? e.name : String(e);
    if (!ALLOWED.has(code)) this.problems.push(`${what} failed unexpectedly: ${e instanceof Error ? e.message : String(e)}`);
  }

  /**
   * A fresh next owner for `number`, just released by a close: made, then moved onto the
   * number itself when the number is free (reel may have pinned it: then it is not free,
   * and the victim lives elsewhere — which is the rule working).
   */
  victim(kind: Victim["kind"], number: number): void {
    this.makeVictim(kind);
    const v = this.victims.at(-1)!;
    if (kind === "pair" && v.other === number) [v.mine, v.other] = [v.other, v.mine]; // symmetric ends
    if (number >= 0 && v.mine !== number && v.other !== number && libc.fcntl(number, SYS.F_GETFD, 0) < 0) {
      if (libc.dupCloexec(v.mine, number) >= 0) {
        libc.close(v.mine);
        v.mine = number;
      }
    }
    this.feed(v, 64); // bytes a stray read would take at once
  }

  private makeVictim(kind: Victim["kind"]): void {
    if (kind === "file") {
      const path = `${this.prefix}-v${this.victims.length}`;
      const content = [0x56, 0x49, 0x43, 0x54, 0x49, 0x4d]; // "VICTIM"
      writeFileSync(path, Uint8Array.from(content));
      this.victims.push({ kind, mine: openSync(path, "r+"), other: -1, fed: content, path });
      return;
    }
    const fds = new Int32Array(new ArrayBuffer(8));
    const r = kind === "pair"
      ? libc.socketpair(SYS.AF_UNIX, SYS.SOCK_STREAM | SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC, 0, fds)
      : libc.pipe2(fds, SYS.O_NONBLOCK | SYS.O_CLOEXEC);
    if (r < 0) throw new SysError(-r, kind === "pair" ? "socketpair" : "pipe2");
    // A pipe's read end (fds[0]) gets the lowest number: it is the end a stray recv would hit.
    this.victims.push({ kind, mine: fds[0]!, other: fds[1]!, fed: [], path: "" });
  }

  /** Puts bytes where a stray read on the victim would take them. */
  feed(v: Victim, n: number): void {
    if (v.kind === "file") return;
    const bytes = new Uint8Array(n).fill(0xee);
    const w = libc.write(v.other, bytes);
    if (w > 0) for (let i = 0; i < w; i++) v.fed.push(0xee);
  }
}

/** Bytes readable on a non-blocking fd right now (drains it). */
function drain(fd: number): number {
  const buf = new Uint8Array(65536);
  let total = 0;
  for (let i = 0; i < 100; i++) {
    const n = libc.read(fd, buf);
    if (n <= 0) break;
    total += n;
  }
  return total;
}

/** Writes into a non-blocking pipe fd until not one more byte fits. */
function fillPipe(fd: number): void {
  for (const size of [65536, 4096, 1]) {
    const chunk = new Uint8Array(size);
    for (let i = 0; i < 100_000; i++) if (libc.write(fd, chunk) < 0) break;
  }
}

/** Every byte `got` must be `tag`. */
function checkTagged(w: World, what: string, got: Iterable<number>, tag: number): void {
  for (const b of got) {
    if (b !== tag) {
      w.problems.push(`${what} saw byte ${b}, expected only its peer's tag ${tag}`);
      return;
    }
  }
}

/** The commands, as fast-check arbitraries. Each acts on the live objects it picks by index. */
function commands(): fc.Arbitrary<fc.Command<object, World>>[] {
  const idx = fc.nat({ max: 15 });
  const vk = fc.constantFrom<Victim["kind"]>("pair", "pipe", "file");
  const newFile = fc.constant(new NewFile());
  const block = fc.constant(new Block());
  const read = fc.tuple(idx, fc.integer({ min: 1, max: 2048 })).map(([i, n]) => new StreamRead(i, n));
  const write = fc.tuple(idx, fc.integer({ min: 1, max: 4096 })).map(([i, n]) => new StreamWrite(i, n));
  const fileWrite = fc.tuple(idx, fc.integer({ min: 1, max: 8192 }), fc.nat({ max: 65536 })).map(([i, n, at]) => new FileWrite(i, n, at));
  const close = fc.tuple(idx, vk).map(([i, k]) => new Close(i, k));
  const turn = fc.nat({ max: 2 }).map((n) => new Turn(n));
  const dread = fc.tuple(idx, fc.integer({ min: 1, max: 2048 })).map(([i, n]) => new DgramRead(i, n));
  const dwrite = fc.tuple(idx, fc.integer({ min: 1, max: 1500 })).map(([i, n]) => new DgramWrite(i, n));
  // Repeated entries weigh the draw toward what makes trouble: closes, a busy pool, writes.
  return [
    fc.constant(new NewPair()),
    fc.constant(new NewUnixPair()),
    fc.constant(new NewDgramPair("udp")),
    fc.constant(new NewDgramPair("unix")),
    fc.constant(new NewAfd()),
    fc.constant(new NewListener()),
    fc.constant(new NewUnixListener()),
    newFile,
    newFile,
    fc.constant(new NewFifoFile()),
    block,
    block,
    block,
    fc.constant(new Unblock()),
    read,
    read,
    write,
    write,
    idx.map((i) => new Accept(i)),
    idx.map((i) => new SendFds(i)),
    idx.map((i) => new RecvFds(i)),
    dread,
    dwrite,
    idx.map((i) => new DgramReadMany(i)),
    fc.tuple(idx, fc.integer({ min: 1, max: 8 })).map(([i, k]) => new DgramWriteMany(i, k)),
    idx.map((i) => new AfdWait(i)),
    fc.tuple(idx, fc.integer({ min: 1, max: 64 })).map(([i, n]) => new AfdFeed(i, n)),
    idx.map((i) => new Connect(i)),
    fc.tuple(idx, fc.integer({ min: 1, max: 8192 }), fc.nat({ max: 65536 })).map(([i, n, at]) => new FileRead(i, n, at)),
    fileWrite,
    fileWrite,
    fc.tuple(idx, fc.nat({ max: 65536 })).map(([i, at]) => new FileLinked(i, at)),
    idx.map((i) => new FileStat(i)),
    idx.map((i) => new Cancel(i)),
    close,
    close,
    close,
    fc.tuple(idx, fc.integer({ min: 1, max: 512 })).map(([i, n]) => new Feed(i, n)),
    turn,
    turn,
    fc.constant(new Settle()),
    fc.constant(new Settle()),
    fc.constant(new NewPipe()),
    fc.constant(new NewCat()),
    fc.constant(new NewShared()),
    fc.constant(new NewSignal()),
    fc.tuple(idx, fc.integer({ min: 1, max: 8192 })).map(([i, n]) => new PipeRead(i, n)),
    fc.tuple(idx, fc.integer({ min: 1, max: 70_000 })).map(([i, n]) => new PipeWrite(i, n)),
    fc.tuple(idx, fc.integer({ min: 1, max: 8192 })).map(([i, n]) => new SharedRead(i, n)),
    fc.tuple(idx, fc.integer({ min: 1, max: 70_000 })).map(([i, n]) => new SharedWrite(i, n)),
    idx.map((i) => new WaitChild(i)),
    idx.map((i) => new SignalRecv(i)),
    fc.constant(new Raise()),
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.nat({ max: 15 }), fc.integer({ min: 1, max: 3000 }), vk, fc.boolean()).map(([k, c, n, v, u]) => new HandlerServer(k, c, n, v, u)),
  ];
}

abstract class Cmd implements fc.Command<object, World> {
  check(): boolean {
    return true;
  }
  run(_m: object, w: World): void {
    w.rt.blockOn(this.step(w));
  }
  /** The command's work, inside the world's runtime. */
  protected abstract step(w: World): () => Generator<unknown, void, unknown>;
  abstract toString(): string;
}

class NewPair extends Cmd {
  protected step(w: World) {
    return function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
      const [s] = yield* l.accept();
      l.close();
      const tc = w.tag();
      const ts = w.tag();
      w.objs.push({ kind: "stream", s: c, tag: tc, peerTag: ts, closed: false }, { kind: "stream", s, tag: ts, peerTag: tc, closed: false });
    };
  }
  toString() {
    return "NewPair";
  }
}

class NewListener extends Cmd {
  protected step(w: World) {
    return function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      w.objs.push({ kind: "listener", l, port: l.localAddr.port, path: "", closed: false });
    };
  }
  toString() {
    return "NewListener";
  }
}

/** A Unix listener on a socket file (removed when it closes). */
class NewUnixListener extends Cmd {
  protected step(w: World) {
    return function* () {
      const path = `${w.filePath()}.sock`;
      const l = UnixListener.bind(path);
      w.objs.push({ kind: "listener", l, port: -1, path, closed: false });
    };
  }
  toString() {
    return "NewUnixListener";
  }
}

class NewFile extends Cmd {
  protected step(w: World) {
    return function* () {
      const path = w.filePath();
      // Pending like every op (the pool may be blocked on purpose: Block), given a few
      // turns to complete.
      w.start(fs.open(path, "w+"), `open of ${path}`, (f) => w.objs.push({ kind: "file", f: f as fs.File, path, tag: w.tag(), closed: false, side: -1 }));
      yield* w.settle(10);
    };
  }
  toString() {
    return "NewFile";
  }
}

/** A FIFO opened read-write as a file, its pipe full: a write to it blocks its worker. */
class NewFifoFile extends Cmd {
  protected step(w: World) {
    return function* () {
      const path = w.filePath();
      mkfifo(path);
      const side = openSync(path, O_RDWR | SYS.O_NONBLOCK);
      w.rawFds.push(side);
      fillPipe(side);
      w.start(fs.open(path, "r+"), `open of FIFO ${path}`, (f) => w.objs.push({ kind: "file", f: f as fs.File, path, tag: w.tag(), closed: false, side }));
      yield* w.settle(10);
    };
  }
  toString() {
    return "NewFifoFile";
  }
}

/**
 * Keeps the pool busy: one open() of a FIFO with no writer yet per worker (the pool has
 * two), so every job after it waits in a queue until Unblock.
 */
class Block extends Cmd {
  protected step(w: World) {
    return function* () {
      for (let k = 0; k < 2; k++) {
        const path = w.filePath();
        mkfifo(path);
        w.blocked.push(path);
        w.start(fs.open(path, "r"), `blocking open of ${path}`, (f) => (f as fs.File).close());
      }
    };
  }
  toString() {
    return "Block";
  }
}

class Unblock extends Cmd {
  protected step(w: World) {
    return function* () {
      w.unblock();
      w.unblock();
      w.drainFifos();
    };
  }
  toString() {
    return "Unblock";
  }
}

class StreamRead extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const st = w.pick(w.live("stream"), i);
      if (st === undefined) return;
      const buf = new Uint8Array(n);
      w.start(st.s.read(buf), `read of stream ${st.tag}`, (got) => w.got(st, buf, got as number));
    };
  }
  toString() {
    return `StreamRead(${this.i}, ${this.n})`;
  }
}

class StreamWrite extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const st = w.pick(w.live("stream"), i);
      if (st === undefined) return;
      w.start(st.s.write(new Uint8Array(n).fill(st.tag)), `write of stream ${st.tag}`, () => {});
    };
  }
  toString() {
    return `StreamWrite(${this.i}, ${this.n})`;
  }
}

class Accept extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const l = w.pick(w.live("listener"), i);
      if (l === undefined) return;
      w.start(l.l.accept(), `accept on ${l.port >= 0 ? l.port : l.path}`, (v) => (v as [TcpStream | UnixStream, unknown])[0].close());
    };
  }
  toString() {
    return `Accept(${this.i})`;
  }
}

class Connect extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const l = w.pick(w.live("listener"), i);
      if (l === undefined) return;
      const conn = l.port >= 0 ? TcpStream.connect({ hostname: "127.0.0.1", port: l.port }) : UnixStream.connect(l.path);
      w.start(conn, `connect to ${l.port >= 0 ? l.port : l.path}`, (v) => (v as TcpStream | UnixStream).close());
    };
  }
  toString() {
    return `Connect(${this.i})`;
  }
}

class FileRead extends Cmd {
  constructor(readonly i: number, readonly n: number, readonly at: number) {
    super();
  }
  protected step(w: World) {
    const { i, n, at } = this;
    return function* () {
      const f = w.pick(w.live("file"), i);
      if (f === undefined) return;
      const buf = new Uint8Array(n);
      // A FIFO has no offsets: its ops use the current position (-1).
      w.start(f.f.read(buf, f.side >= 0 ? -1 : at), `read of file ${f.tag}`, (k) => {
        for (let j = 0; j < (k as number); j++) if (buf[j] !== 0 && buf[j] !== f.tag) w.problems.push(`file ${f.tag} read byte ${buf[j]} at ${at + j}`);
      });
    };
  }
  toString() {
    return `FileRead(${this.i}, ${this.n}, ${this.at})`;
  }
}

class FileWrite extends Cmd {
  constructor(readonly i: number, readonly n: number, readonly at: number) {
    super();
  }
  protected step(w: World) {
    const { i, n, at } = this;
    return function* () {
      const f = w.pick(w.live("file"), i);
      if (f === undefined) return;
      w.start(f.f.write(new Uint8Array(n).fill(f.tag), f.side >= 0 ? -1 : at), `write of file ${f.tag}`, () => {});
    };
  }
  toString() {
    return `FileWrite(${this.i}, ${this.n}, ${this.at})`;
  }
}

class FileLinked extends Cmd {
  constructor(readonly i: number, readonly at: number) {
    super();
  }
  protected step(w: World) {
    const { i, at } = this;
    return function* () {
      const f = w.pick(w.live("file"), i);
      if (f === undefined) return;
      const part = new Uint8Array(1024).fill(f.tag);
      const parts = [0, 1, 2].map((k) => ({ data: part, position: f.side >= 0 ? -1 : at + k * 1024 }));
      w.start(f.f.writeLinked(parts), `linked writes of file ${f.tag}`, () => {});
    };
  }
  toString() {
    return `FileLinked(${this.i}, ${this.at})`;
  }
}

class FileStat extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const f = w.pick(w.live("file"), i);
      if (f === undefined) return;
      w.start(f.f.stat(), `stat of file ${f.tag}`, (s) => {
        // The stat must be this file's: a regular file, or a FIFO for a FIFO file.
        const fifo = ((s as fs.Stats).mode & 0o170000) === 0o010000;
        if (f.side >= 0 ? !fifo : !(s as fs.Stats).isFile()) w.problems.push(`stat of file ${f.tag} is another file's (mode ${(s as fs.Stats).mode.toString(8)})`);
      });
    };
  }
  toString() {
    return `FileStat(${this.i})`;
  }
}

class NewUnixPair extends Cmd {
  protected step(w: World) {
    return function* () {
      const [a, b] = UnixStream.pair();
      const ta = w.tag();
      const tb = w.tag();
      w.objs.push({ kind: "stream", s: a, tag: ta, peerTag: tb, closed: false }, { kind: "stream", s: b, tag: tb, peerTag: ta, closed: false });
    };
  }
  toString() {
    return "NewUnixPair";
  }
}

/** Two connected datagram ends: UDP on loopback, or a Unix datagram socketpair. */
class NewDgramPair extends Cmd {
  constructor(readonly type: "udp" | "unix") {
    super();
  }
  protected step(w: World) {
    const { type } = this;
    return function* () {
      let a: UdpSocket | UnixDatagram;
      let b: UdpSocket | UnixDatagram;
      if (type === "udp") {
        const x = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
        const y = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
        yield* x.connect(y.localAddr);
        yield* y.connect(x.localAddr);
        [a, b] = [x, y];
      } else [a, b] = UnixDatagram.pair();
      const ta = w.tag();
      const tb = w.tag();
      w.objs.push({ kind: "dgram", d: a, tag: ta, peerTag: tb, closed: false }, { kind: "dgram", d: b, tag: tb, peerTag: ta, closed: false });
    };
  }
  toString() {
    return `NewDgramPair(${this.type})`;
  }
}

/** An AsyncFd over a fresh pipe's read end. */
class NewAfd extends Cmd {
  protected step(w: World) {
    return function* () {
      const p = new Int32Array(2);
      if (libc.pipe2(p, SYS.O_NONBLOCK | SYS.O_CLOEXEC) < 0) throw new Error("pipe2 failed");
      w.objs.push({ kind: "afd", a: new AsyncFd(p[0]!), w: p[1]!, closed: false });
    };
  }
  toString() {
    return "NewAfd";
  }
}

/** Sends one tag byte with a fresh pipe's write end attached, on a Unix stream. */
class SendFds extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const st = w.pick(w.live("stream").filter((x) => x.s instanceof UnixStream), i);
      if (st === undefined) return;
      const p = new Int32Array(2);
      if (libc.pipe2(p, SYS.O_NONBLOCK | SYS.O_CLOEXEC) < 0) throw new Error("pipe2 failed");
      w.sentPipes.set(p[0]!, { w: p[1]! });
      w.start((st.s as UnixStream).sendFds(Uint8Array.of(st.tag), [p[1]!]), `sendFds of stream ${st.tag}`, () => {});
    };
  }
  toString() {
    return `SendFds(${this.i})`;
  }
}

/** Receives bytes and fds on a Unix stream; each fd must be a sent pipe's write end. */
class RecvFds extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const st = w.pick(w.live("stream").filter((x) => x.s instanceof UnixStream), i);
      if (st === undefined) return;
      const buf = new Uint8Array(64);
      w.start((st.s as UnixStream).recvFds(buf), `recvFds of stream ${st.tag}`, (v) => {
        const [n, fds] = v as [number, number[]];
        w.got(st, buf, n);
        for (const fd of fds) {
          // A write end of one of the pipes sent: a byte through it reaches a kept read end.
          const ok = libc.write(fd, Uint8Array.of(0x5a)) === 1;
          let found = false;
          for (const [r] of w.sentPipes) if (drain(r) > 0) found = true;
          if (!ok || !found) w.problems.push(`recvFds of stream ${st.tag}: fd ${fd} is not a sent pipe end`);
          libc.close(fd);
        }
      });
    };
  }
  toString() {
    return `RecvFds(${this.i})`;
  }
}

class DgramRead extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const d = w.pick(w.live("dgram"), i);
      if (d === undefined) return;
      const buf = new Uint8Array(n);
      w.start(d.d.recvFrom(buf), `recv of datagram end ${d.tag}`, (v) => w.got(d, buf, (v as [number, unknown])[0]));
    };
  }
  toString() {
    return `DgramRead(${this.i}, ${this.n})`;
  }
}

class DgramWrite extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const d = w.pick(w.live("dgram"), i);
      if (d === undefined) return;
      w.start(d.d.send(new Uint8Array(n).fill(d.tag)), `send of datagram end ${d.tag}`, () => {});
    };
  }
  toString() {
    return `DgramWrite(${this.i}, ${this.n})`;
  }
}

class DgramReadMany extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const d = w.pick(w.live("dgram").filter((x) => x.d instanceof UdpSocket), i);
      if (d === undefined) return;
      const bufs = [64, 512, 2048, 16].map((k) => new Uint8Array(k));
      w.start((d.d as UdpSocket).recvMany(bufs), `recvMany of datagram end ${d.tag}`, (v) => {
        (v as { length: number }[]).forEach((m, j) => w.got(d, bufs[j]!, m.length));
      });
    };
  }
  toString() {
    return `DgramReadMany(${this.i})`;
  }
}

class DgramWriteMany extends Cmd {
  constructor(readonly i: number, readonly k: number) {
    super();
  }
  protected step(w: World) {
    const { i, k } = this;
    return function* () {
      const d = w.pick(w.live("dgram").filter((x) => x.d instanceof UdpSocket), i);
      if (d === undefined) return;
      const msgs = Array.from({ length: k }, (_, j) => ({ data: new Uint8Array(100 + j * 50).fill(d.tag) }));
      w.start((d.d as UdpSocket).sendMany(msgs), `sendMany of datagram end ${d.tag}`, () => {});
    };
  }
  toString() {
    return `DgramWriteMany(${this.i}, ${this.k})`;
  }
}

/** Waits for an AsyncFd's readability; when ready, drains its pipe through tryIo. */
class AfdWait extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const a = w.pick(w.live("afd"), i);
      if (a === undefined) return;
      w.start(a.a.readable(), `readable() of an AsyncFd`, (g) => {
        const buf = new Uint8Array(4096);
        try {
          for (let k = 0; k < 100; k++) if ((g as { tryIo(f: (fd: number) => number): number | null }).tryIo((fd) => libc.read(fd, buf)) === null) break;
        } catch (e) {
          w.error("tryIo of an AsyncFd", e);
        }
      });
    };
  }
  toString() {
    return `AfdWait(${this.i})`;
  }
}

class AfdFeed extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const a = w.pick(w.live("afd"), i);
      if (a !== undefined) libc.write(a.w, new Uint8Array(n));
    };
  }
  toString() {
    return `AfdFeed(${this.i}, ${this.n})`;
  }
}

class Cancel extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      if (w.pending.length === 0) return;
      const k = i % w.pending.length;
      const [p] = w.pending.splice(k, 1);
      p!.fut.cancel();
    };
  }
  toString() {
    return `Cancel(${this.i})`;
  }
}

/**
 * A listen() server (handler style; on a Unix socket when `unix`) with `k` clients, each
 * sending `n` bytes of its tag;
 * the server answers every byte with one of its own tag. The connections picked by the
 * bits of `closing` are closed by the server from inside data() — right after a write()
 * that may still be in flight — and their numbers reused at once by a victim; the others
 * go on. Then stop(true), and the listener's number reused too. Every byte the server
 * reads must carry its client's tag, every byte a client reads the server's.
 */
class HandlerServer extends Cmd {
  constructor(readonly k: number, readonly closing: number, readonly n: number, readonly victim: Victim["kind"], readonly unix: boolean) {
    super();
  }
  protected step(w: World) {
    const { k, closing, n, victim, unix } = this;
    return function* () {
      const serverTag = w.tag();
      const reply = new Uint8Array(4096).fill(serverTag);
      const path = unix ? `${w.filePath()}.sock` : "";
      const server = listen<number>({
        ...(unix ? { unix: path } : { port: 0 }),
        socket: {
          data(conn: TcpConn<number>, bytes: Uint8Array) {
            if (conn.data === undefined) conn.data = bytes[0]!;
            for (const b of bytes) if (b !== conn.data) w.problems.push(`listen(): read byte ${b}, not its client's tag ${conn.data}`);
            conn.write(reply.subarray(0, Math.min(bytes.length, reply.length)));
            if ((closing >> (conn.data % 4)) & 1) {
              const number = conn.fd;
              conn.close();
              w.victim(victim, number); // reused at once, while a send may be in flight
            }
          },
          error: (_c: TcpConn<number>, e: Error) => w.error("listen() connection", e),
        },
      });
      const clients = [];
      for (let i = 0; i < k; i++) {
        const tag = w.tag();
        clients.push(
          spawn(function* () {
            const s = unix ? yield* UnixStream.connect(path) : yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
            try {
              yield* s.writeAll(new Uint8Array(n).fill(tag));
              const buf = new Uint8Array(4096);
              for (let got = 0, r; got < n && (r = yield* timeout(s.read(buf), 2000)) > 0; got += r) {
                for (let j = 0; j < r; j++) if (buf[j] !== serverTag) w.problems.push(`listen() client read byte ${buf[j]}, not the server's tag ${serverTag}`);
              }
            } catch (e) {
              w.error("listen() client", e);
            } finally {
              s.close();
            }
          }),
        );
      }
      for (const c of clients) yield* c;
      const number = server.fd;
      server.stop(true);
      w.victim(victim, number);
      yield* server.closed();
    };
  }
  toString() {
    return `HandlerServer(${this.k}, ${this.closing}, ${this.n}, ${this.victim}, ${this.unix})`;
  }
}

class Close extends Cmd {
  constructor(readonly i: number, readonly victim: Victim["kind"]) {
    super();
  }
  protected step(w: World) {
    const { i, victim } = this;
    return function* () {
      const live = w.objs.filter((o) => !o.closed);
      const o = w.pick(live, i);
      if (o === undefined) return;
      o.closed = true;
      const number = closeObj(o);
      w.victim(victim, number); // in the same tick: the number is reused at once
    };
  }
  toString() {
    return `Close(${this.i}, ${this.victim})`;
  }
}

class Feed extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const v = w.pick(w.victims, i);
      if (v !== undefined) w.feed(v, n);
    };
  }
  toString() {
    return `Feed(${this.i}, ${this.n})`;
  }
}

class Turn extends Cmd {
  constructor(readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { n } = this;
    return function* () {
      yield* sleep(n);
      w.repoll();
    };
  }
  toString() {
    return `Turn(${this.n})`;
  }
}

/** Turns until every op that can complete has (bounded): blocked opens and full pipes stay. */
class Settle extends Cmd {
  protected step(w: World) {
    return function* () {
      yield* w.settle(50);
    };
  }
  toString() {
    return "Settle";
  }
}

/** Closes any object; returns the fd number it released (for a victim), or -1. */
function closeObj(o: Obj): number {
  switch (o.kind) {
    case "stream": {
      const n = o.s.fd;
      o.s.close();
      return n;
    }
    case "listener": {
      const n = o.l.fd;
      o.l.close();
      return n;
    }
    case "file": {
      const n = o.f.fd;
      o.f.close();
      return n;
    }
    case "preader": {
      const n = o.r.fd;
      o.r.close();
      return n;
    }
    case "pwriter": {
      const n = o.w.fd;
      o.w.close();
      return n;
    }
    case "sreader":
    case "swriter": {
      const n = o.io.fd;
      o.io.close();
      return n;
    }
    case "dgram": {
      const n = o.d.fd;
      o.d.close();
      return n;
    }
    case "afd": {
      // An AsyncFd's pipe write end (the test's) closes with it.
      const n = o.a.fd;
      o.a.close();
      libc.close(o.w);
      return n;
    }
    case "child":
      o.c.kill();
      return -1;
    case "signal": {
      // The last stream of the signal unbinds the pump: its number is the one released.
      const before = pumpFd();
      o.s.close();
      return before >= 0 && pumpFd() !== before ? before : -1;
    }
  }
}

/** Reads a blocking pipe end without blocking (one poll first). */
function drainBlocking(fd: number): void {
  const fds = new PollFds(1);
  const buf = new Uint8Array(65536);
  for (let i = 0; i < 100; i++) {
    fds.length = 0;
    fds.push(fd, POLLIN);
    if (pollFds(fds, 0) <= 0 || (fds.revents(0) & POLLIN) === 0) return;
    if (libc.read(fd, buf) <= 0) return;
  }
}

/** An IoFd op as a cancellable future (cancel drops its waker, as a stream's future does). */
function ioOp(io: IoFd, op: typeof OP_READ | typeof OP_WRITE, buf: Uint8Array): BaseFuture<number> {
  let waker: { wake(): void } | null = null;
  return pollFn(
    (cx) => {
      const r = io.pollOp(cx, op, buf, NO_BUFS);
      waker = r === PENDING ? cx.waker : null;
      return r;
    },
    () => {
      if (waker !== null) io.dropWaker(op === OP_READ ? DIR_READ : DIR_WRITE, waker);
      waker = null;
    },
  );
}

/** Records what a pipe or shared reader read into `buf`. */
function seen(w: World, key: object, tag: number, buf: Uint8Array, n: number): void {
  const s = w.pipeSeen.get(key) ?? { tag, bytes: [] };
  for (let j = 0; j < n; j++) s.bytes.push(buf[j]!);
  w.pipeSeen.set(key, s);
}

class NewPipe extends Cmd {
  protected step(w: World) {
    return function* () {
      const [r, wr] = pipe();
      const tag = w.tag();
      w.objs.push({ kind: "preader", r, peerTag: tag, closed: false }, { kind: "pwriter", w: wr, tag, closed: false });
    };
  }
  toString() {
    return "NewPipe";
  }
}

/** `cat` with piped stdin and stdout: what goes in with a tag comes back with it. */
class NewCat extends Cmd {
  protected step(w: World) {
    return function* () {
      const c = new Command("cat").stdin("pipe").stdout("pipe").stderr("null").spawn();
      const tag = w.tag();
      w.children.push(c);
      w.objs.push(
        { kind: "pwriter", w: c.stdin!, tag, closed: false },
        { kind: "preader", r: c.stdout!, peerTag: tag, closed: false },
        { kind: "child", c, closed: false },
      );
    };
  }
  toString() {
    return "NewCat";
  }
}

/** A blocking pipe bound as shared fds at both ends (a Worker lane each on readiness backends). */
class NewShared extends Cmd {
  protected step(w: World) {
    return function* () {
      const d = currentRuntime()!.driver;
      // Only the lanes started before the run: wait (bounded) for one whose detached call ended.
      if (d.name !== "uring") {
        for (let i = 0; i < 500 && laneState().free < 2; i++) yield* sleep(1);
        if (laneState().free < 2) return;
      }
      const fds = new Int32Array(new ArrayBuffer(8));
      if (libc.pipe2(fds, SYS.O_CLOEXEC) < 0) throw new Error("pipe2 failed");
      const raw = { r: libc.dup(fds[0]!), w: libc.dup(fds[1]!) };
      w.sharedRaw.push(raw);
      const tag = w.tag();
      w.objs.push({ kind: "sreader", io: d.inherited(fds[0]!), peerTag: tag, closed: false }, { kind: "swriter", io: d.inherited(fds[1]!), tag, closed: false });
    };
  }
  toString() {
    return "NewShared";
  }
}

class NewSignal extends Cmd {
  protected step(w: World) {
    return function* () {
      w.objs.push({ kind: "signal", s: signal("SIGUSR2"), closed: false });
    };
  }
  toString() {
    return "NewSignal";
  }
}

class PipeRead extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const o = w.pick(w.live("preader"), i);
      if (o === undefined) return;
      const buf = new Uint8Array(n);
      w.start(o.r.read(buf), `read of pipe ${o.peerTag}`, (k) => seen(w, o, o.peerTag, buf, k as number));
    };
  }
  toString() {
    return `PipeRead(${this.i}, ${this.n})`;
  }
}

class PipeWrite extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const o = w.pick(w.live("pwriter"), i);
      if (o === undefined) return;
      w.start(o.w.write(new Uint8Array(n).fill(o.tag)), `write of pipe ${o.tag}`, () => {});
    };
  }
  toString() {
    return `PipeWrite(${this.i}, ${this.n})`;
  }
}

class SharedRead extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const o = w.pick(w.live("sreader"), i);
      if (o === undefined) return;
      const buf = new Uint8Array(n);
      w.start(ioOp(o.io, OP_READ, buf), `read of shared ${o.peerTag}`, (k) => seen(w, o, o.peerTag, buf, k as number));
    };
  }
  toString() {
    return `SharedRead(${this.i}, ${this.n})`;
  }
}

class SharedWrite extends Cmd {
  constructor(readonly i: number, readonly n: number) {
    super();
  }
  protected step(w: World) {
    const { i, n } = this;
    return function* () {
      const o = w.pick(w.live("swriter"), i);
      if (o === undefined) return;
      w.start(ioOp(o.io, OP_WRITE, new Uint8Array(n).fill(o.tag)), `write of shared ${o.tag}`, () => {});
    };
  }
  toString() {
    return `SharedWrite(${this.i}, ${this.n})`;
  }
}

class WaitChild extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const o = w.pick(w.objs.filter((x): x is ChildObj => x.kind === "child"), i);
      if (o === undefined) return;
      // wait() closes the child's stdin: mark its writer closed (its number is released).
      for (const x of w.objs) if (x.kind === "pwriter" && x.w === o.c.stdin) x.closed = true;
      w.start(o.c.wait(), `wait of a child`, () => {});
    };
  }
  toString() {
    return `WaitChild(${this.i})`;
  }
}

class SignalRecv extends Cmd {
  constructor(readonly i: number) {
    super();
  }
  protected step(w: World) {
    const { i } = this;
    return function* () {
      const o = w.pick(w.live("signal"), i);
      if (o === undefined) return;
      w.start(o.s.recv(), `recv of a signal stream`, () => {});
    };
  }
  toString() {
    return `SignalRecv(${this.i})`;
  }
}

/** Sends SIGUSR2 to this process — only while reel's handler is installed for it. */
class Raise extends Cmd {
  protected step(w: World) {
    return function* () {
      if (hubState().native.includes("SIGUSR2")) proc.kill(process.pid, SIGNALS.SIGUSR2!);
    };
  }
  toString() {
    return "Raise";
  }
}

/** Cancels and closes everything, settles the driver, then checks every victim and stream. */
function finish(w: World): void {
  w.rt.blockOn(function* () {
    while (w.blocked.length > 0) w.unblock();
    for (const p of w.pending) p.fut.cancel();
    w.pending = [];
    // Streams still open: drain what their peers sent (bounded), then close.
    for (let round = 0; round < 3; round++) {
      for (const st of w.live("stream")) {
        const buf = new Uint8Array(65536);
        const r = st.s.read(buf);
        const flag = new Flag();
        try {
          const v = r.poll(flag.cx);
          if (v !== PENDING) {
            const seen = w.received.get(st) ?? [];
            for (let j = 0; j < v; j++) seen.push(buf[j]!);
            w.received.set(st, seen);
          } else r.cancel();
        } catch (e) {
          w.error(`final read of stream ${st.tag}`, e);
        }
      }
      yield* sleep(1);
    }
    // Datagram ends still open: take what is queued (bounded), checking each datagram's tag.
    for (const d of w.live("dgram")) {
      for (let k = 0; k < 100; k++) {
        const buf = new Uint8Array(2048);
        const r = d.d.recvFrom(buf);
        const flag = new Flag();
        try {
          const v = r.poll(flag.cx);
          if (v === PENDING) {
            r.cancel();
            break;
          }
          w.got(d, buf, (v as [number, unknown])[0]);
        } catch (e) {
          w.error(`final recv of datagram end ${d.tag}`, e);
        }
      }
    }
    for (const o of w.objs) {
      if (o.closed) continue;
      o.closed = true;
      closeObj(o);
    }
    // Shared pipes: the test's writer copy closes (a read still blocked gets EOF), its reader
    // copy drains (a write still blocked completes); children exit and are reaped.
    for (const p of w.sharedRaw) libc.close(p.w);
    for (let i = 0; i < 1000; i++) {
      for (const p of w.sharedRaw) drainBlocking(p.r);
      const lanes = laneState().detachedRunning;
      const kids = w.children.filter((c) => c.exitStatus === null).length;
      if (lanes === 0 && kids === 0 && currentRuntime()!.driver.pendingWork === 0) break;
      yield* sleep(1);
    }
    for (const p of w.sharedRaw) libc.close(p.r);
    if (w.children.some((c) => c.exitStatus === null)) w.problems.push("a child was not reaped after 1000 turns");
    if (laneState().detachedRunning > 0) w.problems.push("a detached call on a shared fd did not end");
    // Let pool calls and kernel ops that outlived their close end; pinned numbers go.
    for (let i = 0; i < 500 && currentRuntime()!.driver.pendingWork > 0; i++) {
      w.drainFifos();
      yield* sleep(1);
    }
    if (currentRuntime()!.driver.pendingWork > 0) w.problems.push("the driver still has pending work after 500 turns");
  });
  for (const o of w.objs) if (o.kind === "listener" && o.path !== "" && existsSync(o.path)) w.problems.push(`Unix listener ${o.path}: its socket file is still there after close`);
  for (const fd of w.rawFds) closeSync(fd);
  for (const [r, { w: wr }] of w.sentPipes) {
    libc.close(r);
    libc.close(wr);
  }
  for (const [st, got] of w.received) checkTagged(w, `stream ${st.tag}`, got, st.peerTag);
  for (const [, seen] of w.pipeSeen) checkTagged(w, `pipe reader of tag ${seen.tag}`, seen.bytes, seen.tag);
  for (const o of w.objs) {
    if (o.kind !== "file" || o.side >= 0) continue;
    const bytes = readFileSync(o.path);
    checkTagged(w, `file ${o.tag}`, [...bytes].filter((b) => b !== 0), o.tag);
  }
  for (const v of w.victims) {
    if (v.kind === "file") {
      closeSync(v.mine);
      const now = [...readFileSync(v.path)];
      if (now.join() !== v.fed.join()) w.problems.push(`victim file ${v.path} changed: ${JSON.stringify(now.slice(0, 16))}`);
      continue;
    }
    // Everything fed must still be there, in order; and the other end got nothing from reel.
    const got: number[] = [];
    const buf = new Uint8Array(65536);
    for (let k = 0; k < 1000; k++) {
      const n = libc.read(v.mine, buf);
      if (n <= 0) break;
      for (let j = 0; j < n; j++) got.push(buf[j]!);
    }
    if (got.length !== v.fed.length) w.problems.push(`victim ${v.kind} ${v.mine}: fed ${v.fed.length} bytes, ${got.length} left (a stray read took some)`);
    if (v.kind === "pair") {
      const n = libc.read(v.other, buf);
      if (n > 0) w.problems.push(`victim pair ${v.mine}: its other end received ${n} byte(s) (a stray write)`);
    }
    libc.close(v.mine);
    libc.close(v.other);
  }
}

forEachBackend("fd-reuse fuzz", ({ backend, runtime }) => {
  test(`random submit/cancel/close with immediate reuse: no byte reaches or leaves the wrong descriptor (${RUNS} runs, REEL_SEED=${SEED})`, () => {
    let run = 0;
    fc.assert(
      fc.property(fc.commands(commands(), { maxCommands: 40, size: "large" }), (cmds) => {
        const w = new World(runtime(), join(dir, `${backend}-${run++}`));
        try {
          fc.modelRun(() => ({ model: {}, real: w }), cmds);
        } finally {
          finish(w);
        }
        if (w.problems.length > 0) {
          const msg = `${w.problems.length} problem(s):\n${w.problems.join("\n")}`;
          console.error(`fd-reuse fuzz [${backend}]: ${msg}`); // fast-check's report keeps only the commands
          throw new Error(msg);
        }
      }),
      { numRuns: RUNS, seed: SEED, verbose: 1 },
    );
  }, 120_000);
}, { kernel: "kernel fd numbers, reused at once by raw files, pipes and sockets" });


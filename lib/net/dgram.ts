/**
 * What UDP and Unix datagram sockets share: the datagram futures (send to an address, to
 * the connected peer, batches; receive with the source address, batches) over the
 * per-fd message interface (IoSource.pollMsg → the driver's IoFd.pollMsg), an address
 * cache, and {@link TruncatedError}.
 *
 * A datagram larger than the receive buffer is never cut silently: a single receive
 * fails with TruncatedError (its first bytes are in the buffer, the datagram is consumed);
 * a batch receive marks that message `truncated`.
 *
 * Hot path: a send takes a {@link Msg} from the socket's free list (returned when it
 * completes or is cancelled), a receive uses the socket's own Msg (its result is copied
 * out in the poll that completes it). Recent sources are decoded once (a 64-slot table
 * keyed by their bytes) and the same SocketAddr is returned while they keep sending; a
 * send to a SocketAddr this socket decoded copies its bytes as they came — an echo server
 * that answers `recvFrom`'s address neither formats nor parses an address per datagram.
 *
 * Receive-ahead (UDP): once a socket's receives keep finding a datagram at once (a
 * backlog) and the caller's buffer can hold any UDP datagram (64 KiB), a receive asks
 * for up to 8 in one recvmmsg (one RECVMSG each on io_uring) — the caller's buffer and
 * seven internal 64 KiB ones — and the next receives take the rest from those, in order,
 * with the same truncation rule. The internal buffers go back after 256 receives in a
 * row that read nothing ahead. A quiet socket, or one read with small buffers, never has
 * them. (On io_uring the receives a batch armed — 64 KiB each — stay armed until they
 * complete or the socket closes, as recvMany's do.)
 *
 * The probe slot (UDP, a caller's buffer of 64 KiB or more, no backlog yet): a receive asks
 * for two datagrams, the caller's and one internal 64 KiB slot. One that comes back with
 * one datagram proves the queue drained, so the readiness backends clear the socket's
 * readiness without the recvmsg that would only have found EAGAIN (the "batch cut short"
 * rule of readiness/fd.ts): one syscall fewer per datagram on a request-response socket.
 * A second datagram in the slot is kept for the next receive, as a read-ahead one.
 *
 * Cancel safety: receives are cancel-safe on every backend (a datagram that arrives for a
 * cancelled receive is kept for the next one); sends are on the readiness backends; on
 * io_uring a send cancelled too late has gone out (the count is lost).
 *
 * Must never: block, hold a caller's buffer past the poll that used it, or report a cut
 * datagram as a whole one.
 */
import { NET, SYS } from "../../ffi/constants.ts";
import { EMSGSIZE } from "../../ffi/errno.ts";
import { SOCKADDR_MAX, SocketAddr, decodeSockaddr } from "../../ffi/sockaddr.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { DIR_READ, DIR_WRITE, MSG_MAX_BATCH, Msg, OP_RECVMSG, OP_SENDMSG } from "../driver/fd.ts";
import { SysError, checkBuffer } from "../errors.ts";
import type { IoSource } from "../io/source.ts";

/** recv flags for datagrams: the full length of a cut datagram (Linux reports it with MSG_TRUNC). */
const DGRAM_RECV_FLAGS = SYS.platform === "linux" ? NET.MSG_TRUNC : 0;

/**
 * A datagram (or the fds that came with a message) did not fit what the receive offered.
 * `.code` is "EMSGSIZE"; `.received` bytes are in the buffer; `.size` is the datagram's
 * full length where the platform reports it (Linux), else -1; `.peer` its source.
 *
 * @example
 * ```ts
 * import { TruncatedError } from "reel";
 * try { yield* sock.recvFrom(new Uint8Array(512)); }
 * catch (e) { if (e instanceof TruncatedError) console.log(`dropped a ${e.size}-byte datagram from ${e.peer}`); }
 * ```
 */
export class TruncatedError extends SysError {
  override name = "TruncatedError";
  constructor(
    /** Bytes placed in the buffer. */
    readonly received: number,
    /** The datagram's full length, or -1 where the platform does not say. */
    readonly size: number,
    /** The datagram's source, when known. */
    readonly peer: SocketAddr | null,
    what = "datagram",
    syscall = "recvmsg",
  ) {
    super(EMSGSIZE, syscall, "EMSGSIZE", `${what} truncated: ${size >= 0 ? `${size} bytes` : "it was larger than the buffer"}, ${received} kept${peer !== null ? ` (from ${peer.toString() || "an unnamed socket"})` : ""}`);
  }
}

/**
 * One received datagram of a batch (`recvMany`).
 *
 * @example
 * ```ts
 * const bufs = Array.from({ length: 16 }, () => new Uint8Array(2048));
 * for (const [i, d] of (yield* sock.recvMany(bufs)).entries()) {
 *   if (!d.truncated) handle(bufs[i]!.subarray(0, d.length), d.addr);
 * }
 * ```
 */
export interface Datagram {
  /** Bytes placed in its buffer (bufs[i]). */
  readonly length: number;
  /** Its source address. */
  readonly addr: SocketAddr;
  /** True when it did not fit its buffer: only `length` bytes were kept. */
  readonly truncated: boolean;
}

/**
 * A message for `sendMany`: the bytes and, on an unconnected socket, where to.
 *
 * @example
 * ```ts
 * const sent = yield* sock.sendMany([{ data: a, addr: peer }, { data: b, addr: peer }]); // 1 or 2
 * ```
 */
export interface OutDatagram<A> {
  data: Uint8Array;
  addr?: A;
}

/** Receive-ahead: messages per batch, each ahead buffer's size, and when to start and stop. */
const AHEAD = 8;
const AHEAD_ROOM = 65536;
const HOT = 4;
const COLD = 256;

/** Slots of a socket's recent-source table (a power of two). */
const FROM_SLOTS = 64;

/** A decoded source: its raw sockaddr and the SocketAddr made for it. */
interface FromEntry {
  readonly raw: Uint8Array;
  readonly len: number;
  readonly addr: SocketAddr;
}

/** A Msg with its own one-element array (the key of its send on io_uring). */
class SendMsg extends Msg {
  readonly one: readonly Msg[] = [this];
}

/**
 * The datagram machinery of one socket: its fd's source, Msg pools and address caches.
 * UdpSocket and UnixDatagram each hold one and add their address type.
 *
 * @example
 * ```ts
 * const core = new DgramCore(new IoSource(fd, FD_DATAGRAM));
 * const [n, from] = yield* core.recvFrom(buf);
 * ```
 */
export class DgramCore {
  private readonly free: SendMsg[] = [];
  /** The receive message (results copied out in the poll that completes). */
  private readonly rx = new Msg();
  private readonly rxOne: readonly Msg[] = [this.rx];
  private readonly rxMulti: Msg[] = [];
  // The last source decoded (its raw bytes and object) and the last destination encoded.
  /** Recent sources: raw sockaddr → the SocketAddr made for it (a small hashed table). */
  private readonly fromCache: (FromEntry | undefined)[] = new Array(FROM_SLOTS);
  /** The raw sockaddr of each SocketAddr this socket decoded: a send back to it copies the bytes. */
  private readonly rawOf = new WeakMap<SocketAddr, FromEntry>();
  private to: unknown = null;
  private readonly scratch = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
  /** The last destination encoded, exactly its length (copied out whole, no view per send). */
  private toRaw = EMPTY;

  // Receive-ahead (see the module header): internal 64 KiB messages, and the datagrams the
  // last batch left in them (ahead[stashHead … stashHead + stashCount)).
  private ahead: Msg[] | null = null;
  private aheadArr: Msg[] | null = null;
  private stashHead = 0;
  private stashCount = 0;
  /** The probe slot (see the module header) and its batch; `probeHeld`: it holds a datagram. */
  private probe: Msg | null = null;
  private probeArr: Msg[] | null = null;
  private probeHeld = false;
  /** Receives in a row that found a datagram at once (a backlog), and batches in a row that brought one. */
  private hot = 0;
  private cold = 0;

  constructor(
    readonly src: IoSource,
    /** Encodes a destination into `out`; returns its length. Throws TypeError/RangeError for a bad one. */
    private readonly encode: (addr: unknown, out: Uint8Array) => number,
    /** May read ahead (UDP: no datagram is larger than the 64 KiB an ahead buffer holds). */
    private readonly readAhead = false,
  ) {}

  /** Datagrams a batch left for the next receives. */
  get stashed(): number {
    return this.probeHeld ? this.stashCount + 1 : this.stashCount;
  }

  /** The oldest stashed datagram (its Msg: data in its own buffer); the caller copies it out. */
  takeStashed(): Msg {
    if (this.probeHeld) {
      // Only a two-message batch fills the probe, and it leaves no ahead stash beside it.
      this.probeHeld = false;
      return this.probe!;
    }
    const m = this.ahead![this.stashHead++]!;
    this.stashCount--;
    return m;
  }

  /**
   * The messages for the next receive into `buf` and how many: [the caller's] alone, or —
   * once a backlog was seen and the buffer can hold any UDP datagram — the caller's and
   * AHEAD−1 internal ones, so one recvmmsg takes what is queued.
   */
  rxBatch(buf: Uint8Array): number {
    this.rx.buf = buf;
    if (!this.readAhead || buf.byteLength < AHEAD_ROOM) return 1;
    if (this.hot < HOT) {
      if (this.probe === null) {
        const p = (this.probe = new Msg());
        p.buf = new Uint8Array(new ArrayBuffer(AHEAD_ROOM));
        this.probeArr = [this.rx, p];
      }
      return 2;
    }
    if (this.ahead === null) {
      this.ahead = Array.from({ length: AHEAD - 1 }, () => {
        const m = new Msg();
        m.buf = new Uint8Array(new ArrayBuffer(AHEAD_ROOM));
        return m;
      });
      this.aheadArr = [this.rx, ...this.ahead];
    }
    return AHEAD;
  }

  /** The array rxBatch's count refers to. */
  rxBatchArray(k: number): readonly Msg[] {
    return k === 1 ? this.rxOne : k === 2 ? this.probeArr! : this.aheadArr!;
  }

  /** A receive of `k` messages brought `r` (≥ 1), or went pending (r = 0): stash the rest, adapt. */
  afterBatch(k: number, r: number): void {
    if (r === 0) this.hot = 0;
    else if (k <= 2) {
      if (this.hot < HOT) this.hot++;
      if (r === 2) this.probeHeld = true; // a second datagram was queued: the next receive's
    } else {
      this.stashHead = 0;
      this.stashCount = r - 1;
    }
    if (this.ahead === null) return;
    // Receives that read nothing ahead count toward giving the ahead buffers back.
    this.cold = k > 1 && r > 1 ? 0 : this.cold + 1;
    if (this.cold >= COLD && this.stashCount === 0) {
      this.hot = this.cold = 0;
      this.ahead = this.aheadArr = null;
    }
  }

  /** A send Msg from the free list, filled with `buf` and (unless null) the encoded `addr`. */
  takeMsg(buf: Uint8Array, addr: unknown): SendMsg {
    const m = this.free.pop() ?? new SendMsg();
    m.buf = buf;
    m.control = null;
    m.controlLen = 0;
    m.addrLen = addr === null ? 0 : this.encodeTo(addr, m.addr);
    return m;
  }

  giveMsg(m: SendMsg): void {
    m.buf = EMPTY;
    m.control = null;
    if (this.free.length < 16) this.free.push(m);
  }

  private encodeTo(addr: unknown, out: Uint8Array): number {
    if (addr instanceof SocketAddr) {
      const e = this.rawOf.get(addr); // a source this socket decoded: its bytes as they came
      if (e !== undefined) {
        out.set(e.raw); // exactly e.len bytes
        return e.len;
      }
    }
    if (addr !== this.to || typeof addr !== "object") {
      const len = this.encode(addr, this.scratch);
      this.toRaw = this.scratch.slice(0, len);
      this.to = typeof addr === "object" ? addr : null;
    }
    out.set(this.toRaw);
    return this.toRaw.byteLength;
  }

  /** The source of `m`, decoded (the same object again while a recent source's bytes match). */
  decodeFrom(m: Msg): SocketAddr {
    const len = m.addrLen;
    const a = m.addr;
    const slot = len < 4 ? 0 : (a[3]! ^ (a[2]! << 1) ^ (a[len > 8 ? 7 : 3]! << 2) ^ (a[len - 1]! << 3) ^ (a[len >> 1]! << 4)) & (FROM_SLOTS - 1);
    const e = this.fromCache[slot];
    if (e !== undefined && e.len === len) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (a[i] !== e.raw[i]) {
          same = false;
          break;
        }
      }
      if (same) return e.addr;
    }
    const addr = decodeSockaddr(a, len) ?? new SocketAddr("unix", "", 0);
    const entry: FromEntry = { raw: a.slice(0, len), len, addr };
    this.fromCache[slot] = entry;
    this.rawOf.set(addr, entry);
    return addr;
  }

  /** The socket's receive Msg, pointed at `buf`. */
  rxFor(buf: Uint8Array): Msg {
    this.rx.buf = buf;
    return this.rx;
  }

  get rxArray(): readonly Msg[] {
    return this.rxOne;
  }

  /** `n` receive Msgs pointed at bufs[0..n). */
  rxMany(bufs: readonly Uint8Array[], n: number): readonly Msg[] {
    while (this.rxMulti.length < n) this.rxMulti.push(new Msg());
    for (let i = 0; i < n; i++) this.rxMulti[i]!.buf = bufs[i]!;
    return this.rxMulti;
  }

  /** Drops the caller's buffers from the receive Msgs (they are not kept past a poll). */
  rxDone(n: number): void {
    this.rx.buf = EMPTY;
    for (let i = 0; i < n && i < this.rxMulti.length; i++) this.rxMulti[i]!.buf = EMPTY;
  }

  sendTo(buf: Uint8Array, addr: unknown): BaseFuture<number> {
    return new SendFut(this, buf, addr, "sendTo()");
  }

  recvFrom(buf: Uint8Array): BaseFuture<[number, SocketAddr]> {
    return new RecvFut(this, buf, true) as BaseFuture<[number, SocketAddr]>;
  }

  recv(buf: Uint8Array): BaseFuture<number> {
    return new RecvFut(this, buf, false) as BaseFuture<number>;
  }

  sendMany(msgs: readonly OutDatagram<unknown>[], connected: boolean): BaseFuture<number> {
    return new SendManyFut(this, msgs, connected);
  }

  recvMany(bufs: readonly Uint8Array[]): BaseFuture<Datagram[]> {
    return new RecvManyFut(this, bufs);
  }
}

const EMPTY = new Uint8Array(0);

/** The fast check of a buffer argument (checkBuffer builds the error message when it fails). */
function usable(b: unknown): b is Uint8Array {
  // A detached array has length 0: only then is `.buffer` (a slow getter) worth asking.
  return b instanceof Uint8Array && (b.byteLength > 0 || !(b.buffer as ArrayBuffer).detached);
}

/** A send of one datagram: to `addr`, or to the connected peer when addr is null. */
class SendFut extends BaseFuture<number> {
  private m: SendMsg | null = null;
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly core: DgramCore,
    private readonly buf: Uint8Array,
    private readonly addr: unknown,
    private readonly what: string,
  ) {
    super();
  }

  poll(cx: Context): Poll<number> {
    if (this.done) throw new FutureStateError(`${this.what} future polled after completion`);
    try {
      if (this.m === null) {
        if (!usable(this.buf)) checkBuffer(this.buf, `The buffer for ${this.what}`);
        this.m = this.core.takeMsg(this.buf, this.addr);
      }
      const r = this.core.src.pollMsg(cx, OP_SENDMSG, this.m.one, 1, 0);
      if (r === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      const n = this.m.len;
      this.finish();
      return n;
    } catch (e) {
      this.finish();
      throw e;
    }
  }

  private finish(): void {
    this.done = true;
    this.waker = null;
    if (this.m !== null) this.core.giveMsg(this.m);
    this.m = null;
  }

  override cancel(): void {
    if (this.done) return;
    if (this.m !== null) this.core.src.dropWaker(DIR_WRITE, this.waker, this.m.one);
    this.finish();
  }
}

/** A receive of one datagram: `[n, from]` (recvFrom) or n (recv). */
class RecvFut extends BaseFuture<[number, SocketAddr] | number> {
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly core: DgramCore,
    private readonly buf: Uint8Array,
    private readonly withAddr: boolean,
  ) {
    super();
  }

  poll(cx: Context): Poll<[number, SocketAddr] | number> {
    if (this.done) throw new FutureStateError(`${this.withAddr ? "recvFrom" : "recv"}() future polled after completion`);
    if (!usable(this.buf)) checkBuffer(this.buf, `The buffer for ${this.withAddr ? "recvFrom" : "recv"}()`);
    const core = this.core;
    if (core.stashed > 0) return this.fromStash(core.takeStashed());
    const k = core.rxBatch(this.buf);
    const msgs = core.rxBatchArray(k);
    let r: Poll<number>;
    try {
      r = core.src.pollMsg(cx, OP_RECVMSG, msgs, k, DGRAM_RECV_FLAGS);
    } catch (e) {
      this.done = true;
      core.rxDone(1);
      throw e;
    }
    core.rxDone(1);
    if (r === PENDING) {
      core.afterBatch(k, 0);
      this.waker = cx.waker;
      return PENDING;
    }
    core.afterBatch(k, r);
    this.done = true;
    this.waker = null;
    const m = msgs[0]!;
    const cut = (m.flags & NET.MSG_TRUNC) !== 0 || m.size > m.len;
    if (cut) throw new TruncatedError(m.len, m.size > m.len ? m.size : -1, core.decodeFrom(m));
    return this.withAddr ? [m.len, core.decodeFrom(m)] : m.len;
  }

  /** A datagram an earlier batch read ahead: copied into this receive's buffer. */
  private fromStash(m: Msg): [number, SocketAddr] | number {
    this.done = true;
    const cap = this.buf.byteLength;
    const n = m.len < cap ? m.len : cap;
    this.buf.set(n === m.buf.byteLength ? m.buf : m.buf.subarray(0, n));
    const cut = (m.flags & NET.MSG_TRUNC) !== 0 || m.size > n;
    if (cut) throw new TruncatedError(n, m.size > n ? m.size : -1, this.core.decodeFrom(m));
    return this.withAddr ? [n, this.core.decodeFrom(m)] : n;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.core.src.dropWaker(DIR_READ, this.waker);
    this.waker = null;
  }
}

/** A batch send: the number of datagrams sent (a prefix of `msgs`, ≥ 1). */
class SendManyFut extends BaseFuture<number> {
  private ms: SendMsg[] | null = null;
  private arr: Msg[] | null = null;
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly core: DgramCore,
    private readonly msgs: readonly OutDatagram<unknown>[],
    private readonly connected: boolean,
  ) {
    super();
  }

  poll(cx: Context): Poll<number> {
    if (this.done) throw new FutureStateError("sendMany() future polled after completion");
    try {
      if (this.arr === null) this.prepare();
      const n = this.arr!.length;
      if (n === 0) {
        this.finish();
        return 0;
      }
      const r = this.core.src.pollMsg(cx, OP_SENDMSG, this.arr!, n, 0);
      if (r === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      this.finish();
      return r;
    } catch (e) {
      this.finish();
      throw e;
    }
  }

  private prepare(): void {
    if (!Array.isArray(this.msgs)) throw new TypeError("sendMany() takes an array of { data, addr } messages");
    const n = Math.min(this.msgs.length, MSG_MAX_BATCH);
    this.ms = [];
    this.arr = this.ms;
    for (let i = 0; i < n; i++) {
      const d = this.msgs[i]!;
      checkBuffer(d?.data, `sendMany() message ${i}'s data`);
      const addr = d.addr ?? null;
      if (addr === null && !this.connected) throw new TypeError(`sendMany() message ${i} has no addr and the socket is not connected`);
      this.ms.push(this.core.takeMsg(d.data, addr));
    }
  }

  private finish(): void {
    this.done = true;
    this.waker = null;
    if (this.ms !== null) for (const m of this.ms) this.core.giveMsg(m);
    this.ms = null;
  }

  override cancel(): void {
    if (this.done) return;
    if (this.arr !== null) this.core.src.dropWaker(DIR_WRITE, this.waker, this.arr);
    this.finish();
  }
}

/** A batch receive into bufs: the datagrams received (≥ 1). */
class RecvManyFut extends BaseFuture<Datagram[]> {
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly core: DgramCore,
    private readonly bufs: readonly Uint8Array[],
  ) {
    super();
  }

  poll(cx: Context): Poll<Datagram[]> {
    if (this.done) throw new FutureStateError("recvMany() future polled after completion");
    if (!Array.isArray(this.bufs) || this.bufs.length === 0) throw new TypeError("recvMany() takes a non-empty array of Uint8Array buffers");
    const n = Math.min(this.bufs.length, MSG_MAX_BATCH);
    for (let i = 0; i < n; i++) if (!usable(this.bufs[i])) checkBuffer(this.bufs[i], `recvMany() buffer ${i}`);
    const core = this.core;
    if (core.stashed > 0) return this.fromStash(n);
    const msgs = core.rxMany(this.bufs, n);
    let r: Poll<number>;
    try {
      r = core.src.pollMsg(cx, OP_RECVMSG, msgs, n, DGRAM_RECV_FLAGS);
    } catch (e) {
      this.done = true;
      core.rxDone(n);
      throw e;
    }
    if (r === PENDING) {
      core.rxDone(n);
      this.waker = cx.waker;
      return PENDING;
    }
    this.done = true;
    this.waker = null;
    const out: Datagram[] = [];
    for (let i = 0; i < r; i++) {
      const m = msgs[i]!;
      out.push({ length: m.len, addr: core.decodeFrom(m), truncated: (m.flags & NET.MSG_TRUNC) !== 0 || m.size > m.len });
    }
    core.rxDone(n);
    return out;
  }

  /** Datagrams an earlier receive read ahead come first, in order. */
  private fromStash(n: number): Datagram[] {
    this.done = true;
    const out: Datagram[] = [];
    for (let i = 0; i < n && this.core.stashed > 0; i++) {
      const m = this.core.takeStashed();
      const buf = this.bufs[i]!;
      const len = m.len < buf.byteLength ? m.len : buf.byteLength;
      buf.set(m.buf.subarray(0, len));
      out.push({ length: len, addr: this.core.decodeFrom(m), truncated: (m.flags & NET.MSG_TRUNC) !== 0 || m.size > len });
    }
    return out;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.core.src.dropWaker(DIR_READ, this.waker);
    this.waker = null;
  }
}

/**
 * connect(2) of a datagram socket (immediate for UDP and Unix datagrams; through the
 * per-fd interface's connect so every backend does it the same way). `encode` writes the
 * destination's sockaddr on the first poll (an encoding error is thrown from it);
 * `onConnected` runs once it is done.
 *
 * @example
 * ```ts
 * const f = new DatagramConnect(src, (out) => encodePath(path, out, "connect()"), path, () => (connected = true));
 * yield* f;
 * ```
 */
export class DatagramConnect extends BaseFuture<void> {
  private readonly sa = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
  private len = -1;
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly src: IoSource,
    private readonly encode: (out: Uint8Array) => number,
    private readonly detail: string,
    private readonly onConnected: () => void,
  ) {
    super();
  }

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("connect() future polled after completion");
    try {
      if (this.len < 0) this.len = this.encode(this.sa);
      if (this.src.pollConnect(cx, this.sa, this.len, this.detail) === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      this.done = true;
      this.onConnected();
      return undefined;
    } catch (e) {
      this.done = true;
      throw e;
    }
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.src.dropWaker(DIR_WRITE, this.waker);
  }
}

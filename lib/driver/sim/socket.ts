/**
 * A simulated socket and the wire between two of them. A {@link SimSocket} is one
 * endpoint — TCP, UDP, a Unix stream or a Unix datagram socket ({@link K_TCP} …): its
 * addresses and options, its state (new, listening, connecting, open, failed), its receive
 * buffer (bytes that arrived and are not read yet; datagrams, whole, for the datagram
 * kinds), its send queue (bytes written that the peer's window has no room for yet) and
 * the errors it reports once. A Unix stream is a TCP-like pair of flows over its host's
 * loopback; its names are the host's (net.ts). A {@link Flow} is one direction of a connection on the wire: segments (data, FIN,
 * reset, SYN, SYN-ACK) in sending order, delivered one at a time in that order, each at
 * its arrival time — so a connection's bytes never overtake each other while different
 * connections interleave as the seed decides.
 *
 * Flow control is TCP's: a write is accepted while the sender's unacknowledged bytes
 * (queued + on the wire) stay under its send buffer; segments go on the wire while the
 * receiver's buffer has room (its window); reading opens the window. So a peer that never
 * reads stops its writer after send buffer + receive buffer bytes, as on a real kernel.
 *
 * Invariants: `recvBytes` is the sum of the unread chunks; `sndBytes` the sum of the queued
 * ones; a socket reports a pending error (`err`) once, then behaves as closed by the peer.
 *
 * Must never: deliver a segment out of its flow's order, or hold a waker it was asked to drop.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import type { Waker } from "../../future.ts";
import { SimEvent } from "./events.ts";
import type { Link, SimHost } from "./host.ts";
import type { SimRng } from "./rng.ts";

/** Socket kinds. */
export const K_TCP = 0;
export const K_UDP = 1;
export const K_UNIX_STREAM = 2;
export const K_UNIX_DGRAM = 3;

/** A datagram waiting in a receive queue: its bytes and its source, an encoded sockaddr of exactly its length. */
export interface SimDatagram {
  readonly data: Uint8Array;
  readonly src: Uint8Array;
}

/** Created (maybe bound), not yet listening or connecting. */
export const ST_NEW = 0;
/** listen() was called. */
export const ST_LISTEN = 1;
/** connect() started: a SYN is out. */
export const ST_CONNECTING = 2;
/** Connected (its directions may be shut down, or the connection reset: see flags). */
export const ST_OPEN = 3;
/** The connect failed (`connErr`); the socket can only be closed. */
export const ST_FAILED = 4;

/** Segment kinds. */
export const SEG_DATA = 0;
export const SEG_FIN = 1;
export const SEG_RST = 2;
export const SEG_SYN = 3;
export const SEG_SYNACK = 4;

/**
 * One segment on the wire.
 *
 * @example
 * ```ts
 * const seg = new Segment(now + 1.5, SEG_DATA, bytes);
 * ```
 */
export class Segment {
  constructor(
    public at: number,
    readonly kind: number,
    readonly data: Uint8Array | null,
  ) {}
  get bytes(): number {
    return this.data === null ? 0 : this.data.byteLength;
  }
}

/**
 * One direction of a connection on the wire: its segments in sending order. The flow is
 * the queued event for its first segment only.
 *
 * @example
 * ```ts
 * flow.send(now, SEG_DATA, bytes, rng); // then the network schedules the flow
 * ```
 */
export class Flow extends SimEvent {
  readonly segs: Segment[] = [];
  head = 0;
  /** Arrival time of the last segment sent, so later ones never arrive earlier. */
  lastArrival = 0;
  /** Retransmissions of the head segment so far (a cut link, a crashed host). */
  retries = 0;
  /** Set while it waits on a held link. */
  held = false;

  constructor(
    readonly from: SimSocket,
    /** The receiving endpoint; null while a SYN looks for a listener. */
    public to: SimSocket | null,
    public link: Link,
    private readonly deliver: (f: Flow) => void,
  ) {
    super();
  }

  get first(): Segment | undefined {
    return this.segs[this.head];
  }

  get empty(): boolean {
    return this.head >= this.segs.length;
  }

  /** Virtual time the last segment was handed to the link (-1: none yet). */
  private lastSent = -1;

  /**
   * Appends a segment of `kind` sent now: it arrives after the link's latency, never before
   * the previous one — and with it when both were sent at the same instant (back-to-back
   * on the wire: one draw of jitter per burst, not per segment).
   */
  send(now: number, kind: number, data: Uint8Array | null, rng: SimRng): Segment {
    const bytes = data === null ? 0 : data.byteLength;
    let at: number;
    if (now === this.lastSent && this.link.cfg.bandwidth === 0) at = this.lastArrival;
    else {
      at = this.link.arrival(now, bytes, rng);
      if (at < this.lastArrival) at = this.lastArrival;
    }
    this.lastSent = now;
    this.lastArrival = at;
    const s = new Segment(at, kind, data);
    this.segs.push(s);
    return s;
  }

  /** Takes the first segment off. */
  shift(): Segment | undefined {
    const s = this.segs[this.head];
    if (s === undefined) return undefined;
    this.segs[this.head++] = undefined as unknown as Segment;
    if (this.head === this.segs.length) {
      this.segs.length = 0;
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.segs.length) {
      this.segs.splice(0, this.head);
      this.head = 0;
    }
    return s;
  }

  /** Drops every segment still to come (the connection is gone). */
  clear(): void {
    this.segs.length = 0;
    this.head = 0;
  }

  fire(): void {
    this.deliver(this);
  }
}

/**
 * One end of a simulated TCP connection, or a listener.
 *
 * @example
 * ```ts
 * const s = new SimSocket(net.nextId(), host, false, 131072, 131072);
 * ```
 */
export class SimSocket {
  /** The fd its owner holds, or -1 (not yet accepted, or closed). */
  fd = -1;
  /** K_TCP, K_UDP, K_UNIX_STREAM or K_UNIX_DGRAM. */
  kind = K_TCP;
  state = ST_NEW;
  /** The host incarnation it was made in (a crash makes it gone). */
  readonly incarnation: number;

  localIp = "";
  localPort = 0;
  /** In the host's port table. */
  bound = false;
  remoteIp = "";
  remotePort = 0;
  /** The host a connect went to (null: an address no host has). */
  remoteHost: SimHost | null = null;

  reuseAddr = false;
  reusePort = false;
  /** IPV6_V6ONLY: a v6 wildcard listener that does not take IPv4 connections. */
  v6only = false;
  noDelay = false;
  keepAlive = false;
  /** SO_LINGER {on, 0}: close() resets instead of sending FIN. */
  lingerZero = false;
  lingerOn = 0;
  lingerSecs = 0;

  // Listener.
  backlog = 0;
  acceptQ: SimSocket[] | null = null;
  /** The listener whose accept queue holds it (until accepted). */
  listener: SimSocket | null = null;

  // Connection.
  peer: SimSocket | null = null;
  /** Its direction on the wire (self → peer); the SYN's flow on the client. */
  out: Flow | null = null;
  /** The connect's failure (errno), reported by pollConnect. */
  connErr = 0;

  // Receiving.
  private readonly rq: Uint8Array[] = [];
  private rqHead = 0;
  private rqOff = 0;
  recvBytes = 0;
  /** The peer's FIN arrived (after all its data). */
  rcvEof = false;
  /** shutdown(SHUT_RD): reads end at what is buffered. */
  rdShut = false;

  // Sending.
  private readonly sq: Uint8Array[] = [];
  private sqHead = 0;
  sndBytes = 0;
  /** Bytes on the wire toward the peer, not delivered yet. */
  inflight = 0;
  /** Our FIN is queued (shutdown(SHUT_WR) or close). */
  wrShut = false;
  finSent = false;

  /** The connection is over (reset, timed out, host gone): nothing more is sent. */
  dead = false;
  /** An error to report once (positive errno), 0 if none. */
  err = 0;
  /** The owner closed its fd. */
  closed = false;

  readWaker: Waker | null = null;
  writeWaker: Waker | null = null;

  // Datagrams (UDP, Unix datagram): what arrived, whole, in arrival order.
  private readonly dq: SimDatagram[] = [];
  private dqHead = 0;
  /** Bytes of the queued datagrams. */
  dqBytes = 0;
  /** Unix: the name it is bound to ("" unnamed), and its peer's. */
  path = "";
  peerPath = "";
  /** Unix datagram: the socket connect() or socketpair() made its peer. */
  dgPeer: SimSocket | null = null;
  /** Unix datagram: wakers of senders waiting for room in this socket's queue. */
  senders: Set<Waker> | null = null;
  /** Unix datagram: the receiver whose full queue this socket's send waits on. */
  waitingOn: SimSocket | null = null;
  /** Options only stored and read back (UDP TTLs, broadcast, multicast TTL/loop), by level << 16 | name. */
  opts: Map<number, number> | null = null;

  constructor(
    /** Its number in this simulation (traces name sockets by it). */
    readonly id: number,
    readonly host: SimHost,
    readonly v6: boolean,
    public sndCap: number,
    public rcvCap: number,
  ) {
    this.incarnation = host.incarnation;
  }

  /** True once its host crashed after it was made. */
  get gone(): boolean {
    return this.incarnation !== this.host.incarnation;
  }

  /** Room in the send buffer for a write. */
  get sendSpace(): number {
    const n = this.sndCap - this.sndBytes - this.inflight;
    return n > 0 ? n : 0;
  }

  /** Datagrams queued. */
  get dgrams(): number {
    return this.dq.length - this.dqHead;
  }

  /** Queues an arrived datagram. */
  pushDgram(d: SimDatagram): void {
    this.dq.push(d);
    this.dqBytes += d.data.byteLength;
  }

  /** Takes the oldest datagram, or undefined. */
  shiftDgram(): SimDatagram | undefined {
    const d = this.dq[this.dqHead];
    if (d === undefined) return undefined;
    this.dq[this.dqHead++] = undefined as unknown as SimDatagram;
    if (this.dqHead === this.dq.length) {
      this.dq.length = 0;
      this.dqHead = 0;
    }
    this.dqBytes -= d.data.byteLength;
    return d;
  }

  /** Drops every queued datagram (close, crash). */
  dropDgrams(): void {
    this.dq.length = 0;
    this.dqHead = 0;
    this.dqBytes = 0;
  }

  /** Appends arrived bytes to the receive buffer. */
  pushRecv(b: Uint8Array): void {
    this.rq.push(b);
    this.recvBytes += b.byteLength;
  }

  /**
   * Copies up to `max` received bytes into `dst` (max ≤ dst.length); returns the count.
   * Small copies go byte by byte: a typed-array view per copy costs more than the copy.
   */
  takeRecv(dst: Uint8Array, max: number): number {
    let n = 0;
    while (n < max && this.rqHead < this.rq.length) {
      const c = this.rq[this.rqHead]!;
      const off = this.rqOff;
      const avail = c.byteLength - off;
      const k = avail < max - n ? avail : max - n;
      if (off === 0 && k === c.byteLength) dst.set(c, n);
      else if (k <= 64) {
        for (let i = 0; i < k; i++) dst[n + i] = c[off + i]!;
      } else dst.set(c.subarray(off, off + k), n);
      n += k;
      this.rqOff = off + k;
      if (this.rqOff === c.byteLength) {
        this.rq[this.rqHead++] = undefined as unknown as Uint8Array;
        this.rqOff = 0;
      }
    }
    if (this.rqHead === this.rq.length) {
      this.rq.length = 0;
      this.rqHead = 0;
    } else if (this.rqHead > 64 && this.rqHead * 2 > this.rq.length) {
      this.rq.splice(0, this.rqHead);
      this.rqHead = 0;
    }
    this.recvBytes -= n;
    return n;
  }

  /** Queues written bytes (already copied) for sending. */
  pushSend(b: Uint8Array): void {
    this.sq.push(b);
    this.sndBytes += b.byteLength;
  }

  /** Takes up to `max` queued bytes (a chunk or part of one), or null when none. */
  takeSend(max: number): Uint8Array | null {
    if (max <= 0 || this.sqHead >= this.sq.length) return null;
    const c = this.sq[this.sqHead]!;
    let out: Uint8Array;
    if (c.byteLength <= max) {
      out = c;
      this.sq[this.sqHead++] = undefined as unknown as Uint8Array;
      if (this.sqHead === this.sq.length) {
        this.sq.length = 0;
        this.sqHead = 0;
      }
    } else {
      out = c.subarray(0, max);
      this.sq[this.sqHead] = c.subarray(max);
    }
    this.sndBytes -= out.byteLength;
    return out;
  }

  /** Drops what is queued and not sent (a reset, a crash). */
  dropSend(): void {
    this.sq.length = 0;
    this.sqHead = 0;
    this.sndBytes = 0;
  }

  /** Stores the waker of a pending read (a different one already there is woken: it re-polls). */
  parkRead(w: Waker): void {
    const old = this.readWaker;
    if (old !== null && old !== w) old.wake();
    this.readWaker = w;
  }

  /** Stores the waker of a pending write or connect. */
  parkWrite(w: Waker): void {
    const old = this.writeWaker;
    if (old !== null && old !== w) old.wake();
    this.writeWaker = w;
  }

  wakeRead(): void {
    const w = this.readWaker;
    if (w !== null) {
      this.readWaker = null;
      w.wake();
    }
  }

  wakeWrite(): void {
    const w = this.writeWaker;
    if (w !== null) {
      this.writeWaker = null;
      w.wake();
    }
  }

  /** Wakes both directions (a state change every waiter must see). */
  wakeAll(): void {
    this.wakeRead();
    this.wakeWrite();
  }
}

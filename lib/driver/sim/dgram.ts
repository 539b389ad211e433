/**
 * Datagrams in the simulator: UDP between hosts, Unix datagram sockets within one.
 *
 * - UDP: a send copies the datagram and sends it as a one-off event over the link to the
 *   destination host, after the link's latency and jitter — never before the datagram
 *   sent on that link before it (one path does not reorder) — lost with the link's `loss`
 *   probability, sent twice with `duplicate`, held back by one more latency with
 *   `reorder` (later ones overtake it). A cut link or a crashed
 *   host loses it; a held link keeps it until released. On arrival it goes to the socket
 *   bound to its port (an exact address before a wildcard; a connected socket only takes
 *   its peer's), or is dropped when that socket's queue is over its SO_RCVBUF. Nobody
 *   bound there: the sender learns it by ICMP only if it is connected — ECONNREFUSED
 *   once, on a later call (Linux's rule). A send never blocks; an unbound socket is bound
 *   to an ephemeral port by its first send or connect.
 * - Unix datagrams: queued at the receiver at once (as Linux does, no wire); a receiver
 *   whose queue holds `MAX_DGRAM_QLEN` datagrams (net.unix.max_dgram_qlen) makes the
 *   sender wait for room; a name with no socket is ENOENT, a stale one ECONNREFUSED, a
 *   receiver connected to another socket EPERM.
 *
 * A receive takes whole datagrams, at most what fits the buffer (MSG_TRUNC set when cut;
 * the full size reported when asked with MSG_TRUNC), several for a batch. Ancillary data
 * (fd passing) and multicast are not simulated: RuntimeError ESIM.
 *
 * Must never: block, deliver part of a datagram as a whole one, or keep a waker it was
 * asked to drop.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { SysError } from "../../errors.ts";
import { NET } from "../../../ffi/constants.ts";
import { decodeSockaddr } from "../../../ffi/sockaddr.ts";
import type { Msg } from "../fd.ts";
import { ERROR, READABLE, WRITABLE } from "../events.ts";
import {
  EAFNOSUPPORT, ECONNREFUSED, EDESTADDRREQ, EISCONN, EMSGSIZE, ENOENT, ENOTCONN, EPERM,
} from "./errno.ts";
import { SimEvent } from "./events.ts";
import { ANY4, ANY6, isLoopback, type Link, type SimHost } from "./host.ts";
import type { SimNet } from "./net.ts";
import type { SimRng } from "./rng.ts";
import { K_UDP, K_UNIX_DGRAM, ST_OPEN, type SimDatagram, type SimSocket } from "./socket.ts";
import { encodeAddr } from "./tcp.ts";
import { encodeUnixName } from "./unix.ts";
import { notSimulated } from "./unsupported.ts";
import { EV_DGRAM, DGRAM_DELIVERED, DGRAM_DROPPED, DGRAM_DUPLICATED, DGRAM_LOST, DGRAM_UNREACHED } from "./trace.ts";

/** Linux's net.unix.max_dgram_qlen default: datagrams a Unix receiver queues before senders wait. */
export const MAX_DGRAM_QLEN = 10;
/** The largest UDP payload over IPv4 and over IPv6. */
const UDP_MAX4 = 65507;
const UDP_MAX6 = 65527;

const wild = (ip: string) => ip === ANY4 || ip === ANY6;

/** "::ffff:a.b.c.d" → "a.b.c.d" (the IPv4 packet a dual-stack socket sends), else null. */
function unmapped(ip: string): string | null {
  return ip.startsWith("::ffff:") && ip.indexOf(".") > 0 ? ip.slice(7) : null;
}

/** A UDP datagram on its way. */
export class DgramEvent extends SimEvent {
  constructor(
    private readonly dgram: Dgram,
    readonly from: SimSocket,
    readonly data: Uint8Array,
    readonly srcIp: string,
    readonly srcPort: number,
    readonly dst: SimHost,
    readonly dstIp: string,
    readonly dstPort: number,
    /** The packet is IPv6 (else IPv4, maybe sent by a dual-stack socket). */
    readonly v6: boolean,
    readonly link: Link,
  ) {
    super();
  }
  fire(): void {
    this.dgram.arrive(this);
  }
}

/**
 * The datagrams on one link, in sending order: one event for its first, so datagrams on
 * a path never overtake each other — even when they arrive at the same instant (events
 * due together otherwise go in a seeded order). Those sent in one instant travel together
 * (one draw of jitter per burst), as TCP's segments do.
 */
export class DgramQueue extends SimEvent {
  private readonly q: DgramEvent[] = [];
  private head = 0;
  private lastSent = -1;
  private lastAt = 0;
  /** Waiting on a held link. */
  held = false;

  constructor(
    private readonly dgram: Dgram,
    readonly link: Link,
  ) {
    super();
  }

  get first(): DgramEvent | undefined {
    return this.q[this.head];
  }

  /** Appends `e` sent at `now`: it arrives after the link's latency, never before the one before it. */
  add(e: DgramEvent, now: number, rng: SimRng): void {
    let at: number;
    if (now === this.lastSent && this.link.cfg.bandwidth === 0) at = this.lastAt;
    else {
      at = this.link.arrival(now, e.data.byteLength, rng);
      if (at < this.lastAt) at = this.lastAt;
    }
    this.lastSent = now;
    this.lastAt = at;
    e.at = at;
    this.q.push(e);
  }

  shift(): DgramEvent | undefined {
    const e = this.q[this.head];
    if (e === undefined) return undefined;
    this.q[this.head++] = undefined as unknown as DgramEvent;
    if (this.head === this.q.length) {
      this.q.length = 0;
      this.head = 0;
    }
    return e;
  }

  fire(): void {
    this.dgram.flush(this);
  }
}

/** The answer an unreachable port sends back to a connected UDP sender. */
class IcmpEvent extends SimEvent {
  constructor(readonly to: SimSocket) {
    super();
  }
  fire(): void {
    const s = this.to;
    if (s.closed || s.gone || s.state !== ST_OPEN) return;
    s.err = ECONNREFUSED;
    s.wakeAll();
  }
}

/**
 * The datagram side of one simulated network.
 *
 * @example
 * ```ts
 * const n = net.dgram.recv(sock, cx, msgs, 1, 0); // datagrams taken, or PENDING
 * ```
 */
export class Dgram {
  /** Each link's datagrams in order. */
  private readonly queues = new Map<Link, DgramQueue>();

  constructor(private readonly net: SimNet) {}

  // ---- sending ----

  /** pollMsg(OP_SENDMSG): datagrams sent (≥ 1), or PENDING (a Unix receiver is full). */
  send(s: SimSocket, cx: Context, msgs: readonly Msg[], count: number): Poll<number> {
    let n = 0;
    for (; n < count; n++) {
      const m = msgs[n]!;
      let r: Poll<number>;
      try {
        r = this.sendOne(s, cx, m);
      } catch (e) {
        if (n === 0) throw e;
        break; // reported by the next call, as the kernel's sendmmsg does
      }
      if (r === PENDING) return n > 0 ? n : PENDING;
      m.len = r;
    }
    return n;
  }

  /** write(2) on a datagram socket: one datagram to the connected peer. */
  write(s: SimSocket, cx: Context, buf: Uint8Array): Poll<number> {
    return this.sendTo(s, cx, buf, null, 0);
  }

  private sendOne(s: SimSocket, cx: Context, m: Msg): Poll<number> {
    if (m.control !== null && m.controlLen > 0) {
      throw notSimulated("Ancillary data (SCM_RIGHTS fd passing) is", "a simulated socket cannot carry real fds");
    }
    return this.sendTo(s, cx, m.buf, m.addrLen > 0 ? m.addr : null, m.addrLen);
  }

  private sendTo(s: SimSocket, cx: Context, buf: Uint8Array, addr: Uint8Array | null, len: number): Poll<number> {
    this.net.checkAlive(s, "sendmsg");
    if (s.kind !== K_UDP) return this.sendUnix(s, cx, buf, addr, len);
    if (s.err !== 0) throw this.net.tcp.takeError(s, "sendmsg");
    let ip: string;
    let port: number;
    if (addr !== null) {
      const a = decodeSockaddr(addr, len);
      if (a === null || a.family === "unix" || (a.family === "IPv6" && !s.v6)) throw new SysError(EAFNOSUPPORT, "sendmsg");
      ip = a.address;
      port = a.port;
    } else if (s.state === ST_OPEN) {
      ip = s.remoteIp;
      port = s.remotePort;
    } else throw new SysError(EDESTADDRREQ, "sendmsg");
    const v4 = s.v6 ? unmapped(ip) : ip;
    const v6 = v4 === null && ip.includes(":");
    const dstIp = v4 ?? ip;
    if (isMulticast(dstIp, v6)) throw notSimulated("Multicast is", "send to a host's address");
    if (buf.byteLength > (v6 ? UDP_MAX6 : UDP_MAX4)) throw new SysError(EMSGSIZE, "sendmsg");
    if (!s.bound && !this.autobind(s)) throw new SysError(EAFNOSUPPORT, "sendmsg");
    this.post(s, buf.slice(), dstIp, port, v6);
    return buf.byteLength;
  }

  /** Binds an unbound UDP socket to the wildcard and an ephemeral port (its first send or connect). */
  autobind(s: SimSocket): boolean {
    const net = this.net;
    const ip = s.v6 ? ANY6 : ANY4;
    const p = net.ephemeralPort(s, ip);
    if (p === 0) return false;
    net.bindPort(s, ip, p);
    return true;
  }

  /** The source address of a packet from `s` to `dstIp` on `dst` (null: nobody has it). */
  private source(s: SimSocket, dst: SimHost | null, dstIp: string, v6: boolean): string {
    const local = s.localIp;
    if (!wild(local) && (unmapped(local) ?? local).includes(":") === v6) return unmapped(local) ?? local;
    if (dst === s.host) return isLoopback(dstIp, v6) || wild(dstIp) ? (v6 ? "::1" : "127.0.0.1") : dstIp;
    return s.host.address(v6);
  }

  /** Puts one datagram on the wire: lost, once, or twice, each with its own arrival time. */
  private post(s: SimSocket, data: Uint8Array, dstIp: string, port: number, v6: boolean): void {
    const net = this.net;
    const dst = net.destination(s.host, dstIp, v6);
    const target = wild(dstIp) ? (v6 ? "::1" : "127.0.0.1") : dstIp;
    if (dst === null) {
      net.ev(EV_DGRAM, s.id, data.byteLength, DGRAM_UNREACHED);
      return;
    }
    const link = net.link(s.host, dst);
    const c = link.cfg;
    const rng = net.rng;
    if (c.loss > 0 && rng.chance(c.loss)) {
      net.ev(EV_DGRAM, s.id, data.byteLength, DGRAM_LOST);
      return;
    }
    const src = this.source(s, dst, target, v6);
    const copies = c.duplicate > 0 && rng.chance(c.duplicate) ? 2 : 1;
    if (copies === 2) net.ev(EV_DGRAM, s.id, data.byteLength, DGRAM_DUPLICATED);
    for (let i = 0; i < copies; i++) {
      const e = new DgramEvent(this, s, data, src, s.localPort, dst, target, port, v6, link);
      if (c.reorder > 0 && rng.chance(c.reorder)) {
        // Held back one more latency, on its own: later ones overtake it.
        net.schedule(e, link.arrival(net.now, data.byteLength, rng) + link.latency(rng) + c.latencyMax);
        continue;
      }
      let q = this.queues.get(link);
      if (q === undefined) this.queues.set(link, (q = new DgramQueue(this, link)));
      q.add(e, net.now, rng);
      if (q.pos < 0 && !q.held) net.schedule(q, q.first!.at);
    }
  }

  /** The next datagram of a link's queue is due: delivered (or held with the link); the queue waits for the one after. */
  flush(q: DgramQueue): void {
    const link = q.link;
    if (link.held) {
      q.held = true;
      link.waiting.push(q);
      return;
    }
    q.held = false;
    const e = q.shift();
    if (e !== undefined) this.arrive(e);
    const next = q.first;
    if (next !== undefined && q.pos < 0) this.net.schedule(q, next.at);
  }

  /** A UDP datagram is due at its host: to the socket bound to its port, or dropped. */
  arrive(e: DgramEvent): void {
    const net = this.net;
    const link = e.link;
    if (link.held) {
      link.waiting.push(e);
      return;
    }
    const bytes = e.data.byteLength;
    if (link.cut || !e.dst.up) {
      net.ev(EV_DGRAM, e.from.id, bytes, DGRAM_LOST);
      return;
    }
    const r = this.receiver(e);
    if (r === null) {
      net.ev(EV_DGRAM, e.from.id, bytes, DGRAM_UNREACHED);
      // ICMP port unreachable: only a connected sender hears of it (ECONNREFUSED once).
      const f = e.from;
      if (f.state === ST_OPEN && !f.closed && !f.gone) net.schedule(new IcmpEvent(f), net.now + net.link(e.dst, f.host).latency(net.rng));
      return;
    }
    if (r.dqBytes + bytes > r.rcvCap) {
      net.ev(EV_DGRAM, r.id, bytes, DGRAM_DROPPED);
      return;
    }
    const src = new Uint8Array(r.v6 ? 28 : 16);
    const ip = r.v6 && !e.v6 ? `::ffff:${e.srcIp}` : e.srcIp;
    encodeAddr(src, ip, e.srcPort, r.v6);
    r.pushDgram({ data: e.data, src });
    net.ev(EV_DGRAM, r.id, bytes, DGRAM_DELIVERED);
    r.wakeRead();
  }

  /** The socket a datagram reaches: bound to its port and address (exact before wildcard), accepting its source. */
  private receiver(e: DgramEvent): SimSocket | null {
    const list = e.dst.udpPorts.get(e.dstPort);
    if (list === undefined) return null;
    let exact: SimSocket | null = null;
    let any: SimSocket | null = null;
    for (const r of list) {
      if (r.closed || r.gone) continue;
      // A dual-stack socket (IPv6, not IPV6_V6ONLY) takes IPv4 too.
      if (r.v6 !== e.v6 && !(r.v6 && !r.v6only)) continue;
      const exactly = !wild(r.localIp);
      if (exactly && (unmapped(r.localIp) ?? r.localIp) !== e.dstIp) continue;
      if (r.state === ST_OPEN) {
        const from = r.v6 && !e.v6 ? `::ffff:${e.srcIp}` : e.srcIp;
        if (r.remoteIp !== from || r.remotePort !== e.srcPort) continue;
      }
      // The last bound wins among sockets sharing a port (SO_REUSEADDR), as Linux's unicast delivery.
      if (exactly) exact = r;
      else any = r;
    }
    return exact ?? any;
  }

  // ---- Unix datagrams ----

  private sendUnix(s: SimSocket, cx: Context, buf: Uint8Array, addr: Uint8Array | null, len: number): Poll<number> {
    let r: SimSocket;
    if (addr !== null) {
      if (s.dgPeer !== null) throw new SysError(EISCONN, "sendmsg");
      const a = decodeSockaddr(addr, len);
      if (a === null || a.family !== "unix") throw new SysError(EAFNOSUPPORT, "sendmsg");
      r = this.named(s.host, a.address, "sendmsg");
    } else {
      if (s.dgPeer === null) throw new SysError(ENOTCONN, "sendmsg");
      r = s.dgPeer;
      if (r.closed || r.gone) throw new SysError(ECONNREFUSED, "sendmsg");
    }
    if (r.dgPeer !== null && r.dgPeer !== s) throw new SysError(EPERM, "sendmsg");
    if (buf.byteLength > s.sndCap) throw new SysError(EMSGSIZE, "sendmsg");
    if (r.dgrams >= MAX_DGRAM_QLEN || r.dqBytes + buf.byteLength > r.rcvCap) {
      // Full: wait for the receiver to take one (it wakes every waiting sender).
      (r.senders ??= new Set()).add(cx.waker);
      s.waitingOn = r;
      return PENDING;
    }
    s.waitingOn = null;
    const src = new Uint8Array(110);
    const n = encodeUnixName(src, s.path);
    r.pushDgram({ data: buf.slice(), src: src.slice(0, n) });
    this.net.ev(EV_DGRAM, r.id, buf.byteLength, DGRAM_DELIVERED);
    r.wakeRead();
    return buf.byteLength;
  }

  /** The Unix datagram socket bound at `path` on `host`: ENOENT (no such name), ECONNREFUSED (stale, or not a datagram socket). */
  named(host: SimHost, path: string, syscall: string): SimSocket {
    const e = host.unixNames.get(path);
    if (e === undefined) throw new SysError(ENOENT, syscall, undefined, path);
    const r = e.sock;
    if (r === null || r.closed || r.kind !== K_UNIX_DGRAM) throw new SysError(ECONNREFUSED, syscall, undefined, path);
    return r;
  }

  /** Wakes the senders waiting for room at `r` (it took a datagram, closed or crashed). */
  wakeSenders(r: SimSocket): void {
    const set = r.senders;
    if (set === null || set.size === 0) return;
    const ws = [...set];
    set.clear();
    for (const w of ws) w.wake();
  }

  /** A sender's wait for room was abandoned: forget its waker. */
  dropSender(s: SimSocket, waker: Waker): void {
    s.waitingOn?.senders?.delete(waker);
  }

  // ---- receiving ----

  /** pollMsg(OP_RECVMSG): datagrams taken (≥ 1) into msgs[0..count), or PENDING. */
  recv(s: SimSocket, cx: Context, msgs: readonly Msg[], count: number, flags: number): Poll<number> {
    this.net.checkAlive(s, "recvmsg");
    let n = 0;
    while (n < count) {
      const d = s.shiftDgram();
      if (d === undefined) break;
      fill(msgs[n]!, d, flags);
      n++;
    }
    if (n > 0) {
      this.wakeSenders(s);
      return n;
    }
    if (s.err !== 0) throw this.net.tcp.takeError(s, "recvmsg");
    s.parkRead(cx.waker);
    return PENDING;
  }

  /** read(2) on a datagram socket: one datagram, cut to the buffer. */
  read(s: SimSocket, cx: Context, buf: Uint8Array): Poll<number> {
    this.net.checkAlive(s, "read");
    const d = s.shiftDgram();
    if (d !== undefined) {
      this.wakeSenders(s);
      const k = d.data.byteLength < buf.byteLength ? d.data.byteLength : buf.byteLength;
      buf.set(d.data.subarray(0, k));
      return k;
    }
    if (s.err !== 0) throw this.net.tcp.takeError(s, "read");
    s.parkRead(cx.waker);
    return PENDING;
  }

  /** Readiness: readable with a datagram queued (or an error), writable unless a connected Unix peer is full. */
  ready(s: SimSocket, cx: Context, read: boolean): Poll<number> {
    let bits = 0;
    if (s.gone) bits = READABLE | WRITABLE | ERROR;
    else if (read) {
      if (s.dgrams > 0) bits |= READABLE;
      if (s.err !== 0) bits |= READABLE | ERROR;
    } else {
      const p = s.dgPeer;
      if (p === null || p.closed || p.dgrams < MAX_DGRAM_QLEN) bits = WRITABLE;
      if (s.err !== 0) bits |= WRITABLE | ERROR;
    }
    if (bits !== 0) return bits;
    if (read) s.parkRead(cx.waker);
    else if (s.dgPeer !== null) {
      (s.dgPeer.senders ??= new Set()).add(cx.waker);
      s.waitingOn = s.dgPeer;
    }
    return PENDING;
  }

  /** The owner closes a datagram socket: its queue goes, its name stays stale (or goes, abstract), waiters wake. */
  close(s: SimSocket): void {
    if (s.closed) return;
    this.net.releaseSocket(s);
    s.dropDgrams();
    // Its own wait for room goes (the others waiting there re-poll: a spurious wake is harmless).
    if (s.waitingOn !== null) this.wakeSenders(s.waitingOn);
    s.waitingOn = null;
    s.dgPeer = null;
    this.wakeSenders(s);
    s.wakeAll();
  }
}

/** Copies datagram `d` into `m`: whole, or cut to the buffer with MSG_TRUNC (its full size when `flags` ask). */
function fill(m: Msg, d: SimDatagram, flags: number): void {
  const size = d.data.byteLength;
  const cap = m.buf.byteLength;
  const k = size < cap ? size : cap;
  if (k > 0) m.buf.set(k === size ? d.data : d.data.subarray(0, k));
  m.len = k;
  m.size = (flags & NET.MSG_TRUNC) !== 0 ? size : k;
  m.flags = size > k ? NET.MSG_TRUNC : 0;
  m.addr.set(d.src);
  m.addrLen = d.src.byteLength;
  m.controlLen = 0;
}

/** True for a multicast group address (224.0.0.0/4, ff00::/8). */
function isMulticast(ip: string, v6: boolean): boolean {
  if (v6) return ip.startsWith("ff");
  const first = Number(ip.slice(0, ip.indexOf(".")));
  return first >= 224 && first <= 239;
}

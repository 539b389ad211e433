/**
 * TCP in the simulator, as the real kernels behave where reel can see it:
 *
 * - connect: a SYN travels to the destination host; a listener with room in its accept
 *   queue (backlog + 1, as Linux) makes the server end at once and answers SYN-ACK; no
 *   listener answers with a reset (ECONNREFUSED); a full queue, a crashed or partitioned
 *   host or an address nobody has lose the SYN, retransmitted after 1, 2, 4 … s until
 *   `synRetries` (ETIMEDOUT). The client may write as soon as the SYN-ACK arrives, before
 *   the server accepts.
 * - data: a write is accepted up to the free send buffer and copied; segments go on the
 *   wire while the receiver's buffer has room (flow control), arrive after the link's
 *   latency in order, and a read takes what has arrived. Reads and writes may move fewer
 *   bytes than they could, drawn from the simulation's random number generator (`shortIo`).
 * - close: sends FIN after queued data — or a reset when unread data is left or SO_LINGER
 *   is {on, 0}; data arriving at a closed socket is answered with a reset. A listener's
 *   unaccepted connections are reset when it closes.
 * - errors, reported once (then reads return 0, writes EPIPE): ECONNRESET when a reset
 *   arrives, EPIPE instead if the peer's FIN had arrived first (Linux's CLOSE_WAIT rule),
 *   ETIMEDOUT when a segment was retransmitted `tcpRetries` times without getting through.
 *   Bytes that arrived before a reset are read first. shutdown(write) then write is EPIPE.
 *
 * This module is the calls a socket makes (connect, read, write, accept, readiness,
 * shutdown, close) and what puts segments on the wire (pump, resets); wire.ts is what
 * happens to them there (delivery, loss and retransmission, arrival at the other end).
 *
 * Must never: lose a byte a write reported as written on a connection that is not reset,
 * or wake a task from inside a poll that stored its waker (wakes only enqueue).
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { PENDING, type Context, type Poll } from "../../future.ts";
import { SysError } from "../../errors.ts";
import { EAFNOSUPPORT, EADDRNOTAVAIL, EALREADY, ECONNRESET, EINVAL, EISCONN, ENOTCONN, EPIPE } from "./errno.ts";
import { SYS } from "../../../ffi/constants.ts";
import { encodeIPv4, encodeIPv6, parseIPv4, parseIPv6 } from "../../../ffi/sockaddr.ts";
import { acceptAddr, acceptAddrLen } from "../fd.ts";
import { ERROR, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED } from "../events.ts";
import { Wire } from "./wire.ts";
import { ANY4, ANY6 } from "./host.ts";
import { encodeUnixName } from "./unix.ts";
import { Flow, K_TCP, SEG_DATA, SEG_FIN, SEG_RST, SEG_SYN, ST_CONNECTING, ST_FAILED, ST_LISTEN, ST_NEW, ST_OPEN, type SimSocket } from "./socket.ts";
import { EV_ACCEPT, EV_CLOSE, EV_CONNECT, EV_ERROR, EV_READ, EV_SHUTDOWN, EV_WRITE } from "./trace.ts";
import type { SimNet } from "./net.ts";

const wild = (ip: string) => ip === ANY4 || ip === ANY6;

/**
 * The TCP state machine over one simulated network.
 *
 * @example
 * ```ts
 * const n = net.tcp.read(sock, cx, buf, "read"); // bytes, 0 at EOF, or PENDING
 * ```
 */
export class Tcp {
  /** Segments arriving, lost, retransmitted: the other half of TCP (wire.ts). */
  readonly wire: Wire;

  constructor(private readonly net: SimNet) {
    this.wire = new Wire(net);
  }

  // ---- the calls a socket makes ----

  /** Starts a connect to ip:port (canonical text); 0 or −errno. */
  connect(s: SimSocket, ip: string, port: number, v6: boolean): number {
    const net = this.net;
    if (s.state === ST_OPEN || s.state === ST_LISTEN) return -EISCONN;
    if (s.state === ST_CONNECTING) return -EALREADY;
    if (v6 !== s.v6) return -EAFNOSUPPORT;
    s.state = ST_NEW;
    s.connErr = 0;
    const host = s.host;
    const dst = net.destination(host, ip, v6);
    const target = wild(ip) ? (v6 ? "::1" : "127.0.0.1") : ip;
    // The source address: loopback to loopback, the host's own address otherwise.
    const src = dst === host ? target : host.address(v6);
    if (!s.bound) {
      const p = net.ephemeralPort(s, src);
      if (p === 0) return -EADDRNOTAVAIL;
      net.bindPort(s, src, p);
    } else if (wild(s.localIp)) s.localIp = src;
    s.remoteIp = target;
    s.remotePort = port;
    s.remoteHost = dst;
    s.state = ST_CONNECTING;
    const f = new Flow(s, null, net.link(host, dst ?? host), this.wire.deliverFn);
    s.out = f;
    f.send(net.now, SEG_SYN, null, net.rng);
    net.schedule(f, f.first!.at);
    net.ev(EV_CONNECT, s.id, dst === null ? -1 : dst.index, port);
    return 0;
  }

  /** pollConnect: undefined once connected, PENDING meanwhile; throws SysError("connect"). */
  pollConnect(s: SimSocket, cx: Context, ip: string, port: number, v6: boolean, detail: string): Poll<void> {
    this.net.checkAlive(s, "connect");
    switch (s.state) {
      case ST_OPEN:
        return undefined;
      case ST_FAILED:
        throw new SysError(s.connErr, "connect", undefined, detail);
      case ST_CONNECTING:
        s.parkWrite(cx.waker);
        return PENDING;
      case ST_LISTEN:
        throw new SysError(EISCONN, "connect", undefined, detail);
    }
    const r = this.connect(s, ip, port, v6);
    if (r < 0) throw new SysError(-r, "connect", undefined, detail);
    s.parkWrite(cx.waker);
    return PENDING;
  }

  /** A read: bytes (≥ 1), 0 at EOF, PENDING with the waker stored; throws the pending error once. */
  read(s: SimSocket, cx: Context, buf: Uint8Array, syscall: string): Poll<number> {
    const net = this.net;
    if (s.incarnation !== s.host.incarnation) net.checkAlive(s, syscall);
    if (s.state === ST_CONNECTING) {
      s.parkRead(cx.waker);
      return PENDING;
    }
    if (s.state !== ST_OPEN) throw new SysError(ENOTCONN, syscall);
    const avail = s.recvBytes;
    if (avail > 0) {
      let k = buf.byteLength < avail ? buf.byteLength : avail;
      if (k > 1 && net.cfg.shortIo > 0 && net.ioRng.chance(net.cfg.shortIo)) k = 1 + net.ioRng.below(k - 1);
      const n = s.takeRecv(buf, k);
      net.ev(EV_READ, s.id, n, 0);
      // The window opened: the peer's queued bytes may go on the wire now.
      const p = s.peer;
      if (p !== null && p.sndBytes > 0) this.pump(p);
      return n;
    }
    if (s.err !== 0) throw this.takeError(s, syscall);
    if (s.rcvEof || s.rdShut || s.dead) return 0;
    s.parkRead(cx.waker);
    return PENDING;
  }

  /** A write: bytes accepted (≥ 1), PENDING while the send buffer is full; throws EPIPE etc. */
  write(s: SimSocket, cx: Context, buf: Uint8Array, syscall: string): Poll<number> {
    const net = this.net;
    if (s.incarnation !== s.host.incarnation) net.checkAlive(s, syscall);
    if (s.err !== 0) throw this.takeError(s, syscall);
    if (s.state === ST_CONNECTING) {
      s.parkWrite(cx.waker);
      return PENDING;
    }
    if (s.state !== ST_OPEN || s.wrShut || s.dead) throw new SysError(EPIPE, syscall);
    const space = s.sendSpace;
    if (space === 0) {
      s.parkWrite(cx.waker);
      return PENDING;
    }
    let k = buf.byteLength < space ? buf.byteLength : space;
    if (k > 1 && net.cfg.shortIo > 0 && net.ioRng.chance(net.cfg.shortIo)) k = 1 + net.ioRng.below(k - 1);
    // The copy the kernel would make, into a plain new array (no ArrayBuffer object is made
    // for a small one); a short write's prefix byte by byte when small (a view costs more).
    const copy = new Uint8Array(k);
    if (k === buf.byteLength) copy.set(buf);
    else if (k <= 64) for (let i = 0; i < k; i++) copy[i] = buf[i]!;
    else copy.set(buf.subarray(0, k));
    s.pushSend(copy);
    net.ev(EV_WRITE, s.id, k, 0);
    this.pump(s);
    return k;
  }

  /** accept: the new socket's fd (its peer's address in acceptAddr), or PENDING. */
  accept(l: SimSocket, cx: Context): Poll<number> {
    const net = this.net;
    net.checkAlive(l, "accept4");
    if (l.state !== ST_LISTEN) throw new SysError(EINVAL, "accept4");
    const q = l.acceptQ!;
    const s = q.shift();
    if (s === undefined) {
      l.parkRead(cx.waker);
      return PENDING;
    }
    s.listener = null;
    const fd = net.giveFd(s);
    acceptAddrLen[0] = s.kind === K_TCP ? encodeAddr(acceptAddr, s.remoteIp, s.remotePort, s.v6) : encodeUnixName(acceptAddr, s.peerPath);
    net.ev(EV_ACCEPT, l.id, s.id, 0);
    return fd;
  }

  /** Readiness of one direction: the ready bits, or PENDING with the waker stored. */
  ready(s: SimSocket, cx: Context, read: boolean): Poll<number> {
    let bits = 0;
    if (s.gone) bits = READABLE | WRITABLE | ERROR;
    else if (read) {
      if (s.state === ST_LISTEN) bits = s.acceptQ!.length > 0 ? READABLE : 0;
      else if (s.state === ST_OPEN) {
        if (s.recvBytes > 0) bits |= READABLE;
        if (s.err !== 0) bits |= READABLE | ERROR;
        if (s.rcvEof || s.rdShut || s.dead) bits |= READABLE | READ_CLOSED;
      } else if (s.state !== ST_CONNECTING) bits = READABLE | READ_CLOSED;
    } else if (s.state === ST_OPEN) {
      if (s.err !== 0) bits |= WRITABLE | ERROR;
      if (s.wrShut || s.dead) bits |= WRITABLE | WRITE_CLOSED;
      else if (s.sendSpace > 0) bits |= WRITABLE;
    } else if (s.state === ST_FAILED) bits = WRITABLE | ERROR;
    else if (s.state !== ST_CONNECTING) bits = WRITABLE | WRITE_CLOSED;
    if (bits !== 0) return bits;
    if (read) s.parkRead(cx.waker);
    else s.parkWrite(cx.waker);
    return PENDING;
  }

  /** shutdown(how): 0 or −ENOTCONN. */
  shutdown(s: SimSocket, how: number): number {
    if (s.state !== ST_OPEN || s.dead) return -ENOTCONN;
    if (how === SYS.SHUT_RD || how === SYS.SHUT_RDWR) {
      s.rdShut = true;
      s.wakeRead();
    }
    if (how === SYS.SHUT_WR || how === SYS.SHUT_RDWR) {
      if (!s.wrShut) {
        s.wrShut = true;
        this.pump(s);
      }
      s.wakeWrite();
    }
    this.net.ev(EV_SHUTDOWN, s.id, how, 0);
    return 0;
  }

  /** The owner closes its fd (see the module header for FIN vs reset). Idempotent. */
  close(s: SimSocket): void {
    if (s.closed) return;
    const net = this.net;
    net.releaseSocket(s);
    let rst = 0;
    if (s.state === ST_LISTEN) {
      const q = s.acceptQ!;
      s.acceptQ = [];
      for (const c of q) {
        c.listener = null;
        c.closed = true;
        c.host.sockets.delete(c);
        this.sendReset(c);
      }
    } else if (s.state === ST_OPEN && !s.dead && !s.gone) {
      if (s.lingerZero || s.recvBytes > 0) {
        this.sendReset(s);
        rst = 1;
      } else if (!s.wrShut) {
        s.wrShut = true;
        this.pump(s);
      }
    }
    net.ev(EV_CLOSE, s.id, rst, 0);
    s.wakeAll();
  }

  /** Resets an open connection from this side (resetConnections): both ends see ECONNRESET. */
  abort(s: SimSocket): void {
    if (s.state !== ST_OPEN || s.dead || s.gone) return;
    this.sendReset(s);
    if (!s.closed) this.wire.fail(s, ECONNRESET);
  }

  // ---- the wire ----

  /** Puts what the peer's window allows on the wire, then the FIN once everything went. */
  pump(s: SimSocket): void {
    const f = s.out;
    const p = s.peer;
    if (f === null || p === null || s.dead || s.state !== ST_OPEN) return;
    const net = this.net;
    const now = net.now;
    while (s.sndBytes > 0) {
      const win = p.closed || p.gone || p.dead ? s.sndBytes : p.rcvCap - p.recvBytes - s.inflight;
      if (win <= 0) break;
      const chunk = s.takeSend(win)!;
      s.inflight += chunk.byteLength;
      f.send(now, SEG_DATA, chunk, net.rng);
    }
    if (s.wrShut && !s.finSent && s.sndBytes === 0) {
      s.finSent = true;
      f.send(now, SEG_FIN, null, net.rng);
    }
    if (f.pos < 0 && !f.held && !f.empty) net.schedule(f, f.first!.at);
  }

  /** Drops what `s` has queued and sends a reset behind what is already on the wire. */
  sendReset(s: SimSocket): void {
    s.dropSend();
    s.dead = true;
    const f = s.out;
    if (f === null) return;
    const net = this.net;
    f.send(net.now, SEG_RST, null, net.rng);
    if (f.pos < 0 && !f.held) net.schedule(f, f.first!.at);
  }

  /** The pending error of `s` (reported once: cleared), traced, as a SysError naming `syscall`. */
  takeError(s: SimSocket, syscall: string): SysError {
    const e = s.err;
    s.err = 0;
    this.net.ev(EV_ERROR, s.id, e, 0);
    return new SysError(e, syscall);
  }
}

/**
 * Encodes ip:port (canonical text) as a sockaddr into `out`; returns its length.
 *
 * @example
 * ```ts
 * acceptAddrLen[0] = encodeAddr(acceptAddr, "10.0.0.2", 40000, false);
 * ```
 */
export function encodeAddr(out: Uint8Array, ip: string, port: number, v6: boolean): number {
  if (v6) return encodeIPv6(out, parseIPv6(ip)!.bytes, port);
  return encodeIPv4(out, parseIPv4(ip)!, port);
}


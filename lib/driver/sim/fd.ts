/**
 * The per-fd interface (lib/driver/fd.ts) of a simulated socket: what `driver.socket(fd)`
 * hands out under the simulator, so IoSource and everything in net/ — TcpListener,
 * TcpStream, UdpSocket, UnixListener, UnixStream, UnixDatagram — run unchanged. Stream
 * sockets (TCP, Unix streams) go to the TCP state machine (tcp.ts; a Unix connect to
 * unix.ts), datagram sockets (UDP, Unix datagrams) to dgram.ts; message ops on a stream
 * are its reads and writes (no address, no ancillary data). Readiness is computed from
 * the socket's state, not cached, so there is nothing to clear.
 *
 * Ownership: as on every backend, `close()` takes effect at once — pending ops are woken
 * and fail with EBADF (IoSource sees the fd gone), the peer sees FIN or a reset.
 *
 * Must never: call into the kernel, or keep a waker it was asked to drop.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { SysError } from "../../errors.ts";
import { decodeSockaddr } from "../../../ffi/sockaddr.ts";
import { EADDRNOTAVAIL, EAFNOSUPPORT, EOPNOTSUPP } from "./errno.ts";
import {
  DIR_READ, OP_ACCEPT, OP_READ, OP_READV, OP_RECVMSG, OP_WRITE, SYSCALL, closedError,
  type Direction, type IoFd, type IoOp, type Msg, type MsgOp,
} from "../fd.ts";
import type { Driver } from "../driver.ts";
import type { SimNet } from "./net.ts";
import { K_TCP, K_UDP, K_UNIX_DGRAM, K_UNIX_STREAM, ST_OPEN, type SimSocket } from "./socket.ts";
import { unixConnect } from "./unix.ts";
import { notSimulated } from "./unsupported.ts";

/**
 * A simulated socket bound to the simulation driver.
 *
 * @example
 * ```ts
 * const io = simDriver.socket(fd);            // only fds the simulation handed out
 * const n = io.pollOp(cx, OP_READ, buf, []);  // bytes, or PENDING
 * ```
 */
export class SimFd implements IoFd {
  /** A datagram socket (UDP, Unix datagram). */
  private readonly dgram: boolean;

  constructor(
    readonly driver: Driver,
    /** The simulated fd number while open; -1 once closed. */
    public fd: number,
    private readonly sock: SimSocket,
    private readonly net: SimNet,
  ) {
    this.dgram = sock.kind === K_UDP || sock.kind === K_UNIX_DGRAM;
  }

  pollOp(cx: Context, op: IoOp, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
    if (this.dgram) {
      if (op === OP_READ) return this.net.dgram.read(this.sock, cx, buf!);
      if (op === OP_WRITE) return this.net.dgram.write(this.sock, cx, buf!);
      throw new SysError(EOPNOTSUPP, SYSCALL[op]!);
    }
    const tcp = this.net.tcp;
    switch (op) {
      case OP_READ:
        return tcp.read(this.sock, cx, buf!, "read");
      case OP_WRITE:
        return tcp.write(this.sock, cx, buf!, "write");
      case OP_ACCEPT:
        return tcp.accept(this.sock, cx);
      case OP_READV:
        return this.vectored(cx, bufs, true);
      default:
        return this.vectored(cx, bufs, false);
    }
  }

  /** readv/writev: buffer after buffer, stopping at the first short one (as the kernel does). */
  private vectored(cx: Context, bufs: readonly Uint8Array[], reading: boolean): Poll<number> {
    const s = this.sock;
    const tcp = this.net.tcp;
    let total = 0;
    for (const b of bufs) {
      if (b.byteLength === 0) continue;
      if (total > 0 && (reading ? s.recvBytes === 0 : s.sendSpace === 0)) break;
      const r = reading ? tcp.read(s, cx, b, "readv") : tcp.write(s, cx, b, "writev");
      if (r === PENDING) return total > 0 ? total : PENDING;
      total += r;
      if (r < b.byteLength) break;
    }
    return total;
  }

  pollMsg(cx: Context, op: MsgOp, msgs: readonly Msg[], count: number, flags: number): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
    const s = this.sock;
    const recv = op === OP_RECVMSG;
    if (this.dgram) return recv ? this.net.dgram.recv(s, cx, msgs, count, flags) : this.net.dgram.send(s, cx, msgs, count);
    // A stream: each message is a read or a write (a receive of 0 bytes is the end of the stream).
    const tcp = this.net.tcp;
    for (let i = 0; i < count; i++) {
      const m = msgs[i]!;
      if (!recv && m.control !== null && m.controlLen > 0) {
        throw notSimulated("Ancillary data (SCM_RIGHTS fd passing) is", "a simulated socket cannot carry real fds");
      }
      let r: Poll<number>;
      try {
        r = recv ? tcp.read(s, cx, m.buf, "recvmsg") : tcp.write(s, cx, m.buf, "sendmsg");
      } catch (e) {
        if (i === 0) throw e;
        return i;
      }
      if (r === PENDING) return i > 0 ? i : PENDING;
      m.len = m.size = r;
      if (recv) m.addrLen = m.controlLen = m.flags = 0;
      if (r < m.buf.byteLength) return i + 1;
    }
    return count;
  }

  pollConnect(cx: Context, sockaddr: Uint8Array, len: number, detail: string): Poll<void> {
    if (this.fd < 0) throw closedError("connect");
    const s = this.sock;
    const a = decodeSockaddr(sockaddr, len);
    const unix = a !== null && a.family === "unix";
    if (a === null || unix !== (s.kind === K_UNIX_STREAM || s.kind === K_UNIX_DGRAM) || (a.family === "IPv6" && !s.v6)) {
      throw new SysError(EAFNOSUPPORT, "connect", undefined, detail);
    }
    const net = this.net;
    switch (s.kind) {
      case K_TCP:
        return net.tcp.pollConnect(s, cx, a.address, a.port, a.family === "IPv6", detail);
      case K_UNIX_STREAM:
        if (s.state !== ST_OPEN) unixConnect(net, s, a.address, detail);
        return undefined;
      case K_UNIX_DGRAM: {
        const r = net.dgram.named(s.host, a.address, "connect");
        s.dgPeer = r;
        s.peerPath = r.path;
        return undefined;
      }
    }
    // UDP: sets the peer (and binds an unbound socket); nothing is sent.
    net.checkAlive(s, "connect");
    if (!s.bound && !net.dgram.autobind(s)) throw new SysError(EADDRNOTAVAIL, "connect", undefined, detail);
    s.remoteIp = s.v6 && a.family === "IPv4" ? `::ffff:${a.address}` : a.address;
    s.remotePort = a.port;
    s.state = ST_OPEN;
    return undefined;
  }

  pollReady(cx: Context, dir: Direction): Poll<number> {
    if (this.fd < 0) throw closedError("poll");
    if (this.dgram) return this.net.dgram.ready(this.sock, cx, dir === DIR_READ);
    return this.net.tcp.ready(this.sock, cx, dir === DIR_READ);
  }

  clearReady(_dir: Direction): void {
    // Readiness is computed from the socket's state at each poll: nothing is cached.
  }

  dropWaker(dir: Direction, waker: Waker | null): void {
    if (waker === null) return;
    const s = this.sock;
    if (dir === DIR_READ) {
      if (s.readWaker === waker) s.readWaker = null;
    } else {
      if (s.writeWaker === waker) s.writeWaker = null;
      if (this.dgram) this.net.dgram.dropSender(s, waker);
    }
  }

  close(): void {
    if (this.fd < 0) return;
    this.fd = -1;
    if (this.dgram) this.net.dgram.close(this.sock);
    else this.net.tcp.close(this.sock);
  }

  /** A simulated socket has no real fd to give back (AsyncFd.intoInner): refused. */
  detach(): number {
    throw notSimulated("Detaching a simulated socket's fd (AsyncFd.intoInner) is", "a simulated socket is not a kernel fd");
  }
}

/**
 * The per-fd interface (lib/driver/fd.ts) of a simulated socket: what `driver.socket(fd)`
 * hands out under the simulator, so IoSource, TcpListener and TcpStream run unchanged.
 * Every op goes to the TCP state machine (tcp.ts); readiness is computed from the socket's
 * state, not cached, so there is nothing to clear.
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
import { EAFNOSUPPORT } from "./errno.ts";
import {
  DIR_READ, OP_ACCEPT, OP_READ, OP_READV, OP_WRITE, SYSCALL, closedError, type Direction, type IoFd, type IoOp, type Msg, type MsgOp,
} from "../fd.ts";
import type { Driver } from "../driver.ts";
import type { SimNet } from "./net.ts";
import type { SimSocket } from "./socket.ts";
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
  constructor(
    readonly driver: Driver,
    /** The simulated fd number while open; -1 once closed. */
    public fd: number,
    private readonly sock: SimSocket,
    private readonly net: SimNet,
  ) {}

  pollOp(cx: Context, op: IoOp, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
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

  pollConnect(cx: Context, sockaddr: Uint8Array, len: number, detail: string): Poll<void> {
    if (this.fd < 0) throw closedError("connect");
    const a = decodeSockaddr(sockaddr, len);
    if (a === null || a.family === "unix") throw new SysError(EAFNOSUPPORT, "connect", undefined, detail);
    return this.net.tcp.pollConnect(this.sock, cx, a.address, a.port, a.family === "IPv6", detail);
  }

  pollReady(cx: Context, dir: Direction): Poll<number> {
    if (this.fd < 0) throw closedError("poll");
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
    } else if (s.writeWaker === waker) s.writeWaker = null;
  }

  pollMsg(_cx: Context, op: MsgOp, _msgs: readonly Msg[], _count: number, _flags: number): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
    throw new SysError(EAFNOSUPPORT, SYSCALL[op]!, undefined, "message operations are not simulated yet");
  }

  /** A simulated socket has no real fd to give back (AsyncFd.intoInner): refused. */
  detach(): number {
    throw notSimulated("Detaching a simulated socket's fd (AsyncFd.intoInner) is", "a simulated socket is not a kernel fd");
  }

  close(): void {
    if (this.fd < 0) return;
    this.fd = -1;
    this.net.tcp.close(this.sock);
  }
}


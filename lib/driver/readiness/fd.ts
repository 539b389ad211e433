/**
 * A socket (or pipe) on a readiness backend: the per-fd interface (lib/driver/fd.ts) over
 * the registry, and the one retry loop every non-blocking operation goes through
 * (async-io's pattern, tokio's PollEvented):
 *
 *     loop: wait until ready → try the syscall → EAGAIN? clear readiness (if no newer
 *           event), retry → otherwise return the result or throw SysError
 *
 * The operation is named by a small integer, not a closure, so a poll allocates nothing.
 * A short read or write also clears readiness (the socket was drained or filled), saving
 * the EAGAIN round trip on the next call, as tokio does.
 *
 * A socket error the backend reported with an event (kqueue's EV_EOF fflags) stands in for
 * one the syscall can no longer see: a connect whose SO_ERROR reads 0 fails with it, and a
 * read that finds EOF fails with it once — so a refused connect or a reset is never
 * reported as success or as a plain EOF, even where the emulation (libkqueue) consumed
 * the socket's own error. Where the syscall reports the error itself, that is the one.
 *
 * Messages (pollMsg): one sendmsg/recvmsg, or one sendmmsg/recvmmsg for a batch (a loop
 * of single calls where those do not exist). A batch that stops early on an error after
 * at least one message keeps that error for the next call, as the kernel's recvmmsg
 * does, so a one-shot socket error (an ICMP-reported ECONNREFUSED) is never dropped.
 * On a datagram socket (FD_DATAGRAM) an error is not final: the kernel reports it once
 * and the socket goes on. So there EAGAIN clears the error and closed bits with the
 * ready bit (a stream keeps them, as the registry does), else a poll would see
 * "ready" forever and spin on EAGAIN; and an error an event carried that the syscall no
 * longer sees (libkqueue consumes SO_ERROR) is reported once, in place of that EAGAIN.
 *
 * Closing: nothing of a readiness op outlives its poll (each is one synchronous syscall),
 * so close() deregisters (unless the driver already closed: its poller is gone, and its
 * fd's number may belong to someone else now) and closes the fd at once. detach() does
 * the same without the close.
 *
 * Must never: block, retry anything but EAGAIN and EINTR, or hide an error.
 */
import * as libc from "../../../ffi/libc.ts";
import { SYS } from "../../../ffi/constants.ts";
import { EAGAIN, EALREADY, EINPROGRESS, EINTR, EISCONN } from "../../../ffi/errno.ts";
import { SOCKADDR_MAX } from "../../../ffi/sockaddr.ts";
import { PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { SysError } from "../../errors.ts";
import { READ_READY, WRITE_READY, type ScheduledIo } from "../registry.ts";
import { ERROR, READABLE, READ_CLOSED, READ_WRITE, WRITABLE, WRITE_CLOSED } from "./poller.ts";
import {
  DIR_READ, FD_DATAGRAM, OP_ACCEPT, OP_READ, OP_READV, OP_RECVMSG, OP_WRITE, SYSCALL, acceptAddr, acceptAddrLen, closedError,
  type Direction, type IoFd, type IoOp, type Msg, type MsgOp,
} from "../fd.ts";
import type { ReadinessDriver } from "./driver.ts";
import { attemptMsgs } from "../msgcall.ts";

/** Flags for send(): no SIGPIPE where the platform has MSG_NOSIGNAL (Darwin uses SO_NOSIGPIPE). */
const SEND_FLAGS = SYS.MSG_NOSIGNAL > 0 ? SYS.MSG_NOSIGNAL : 0;
const ACCEPT_FLAGS = SYS.SOCK_NONBLOCK > 0 ? SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC : 0;

/** Runs one non-blocking syscall; returns its result or −errno. */
function attempt(op: IoOp, fd: number, buf: Uint8Array | null, bufs: readonly Uint8Array[]): number {
  switch (op) {
    case OP_READ:
      return libc.read(fd, buf!);
    case OP_WRITE:
      return SEND_FLAGS !== 0 ? libc.send(fd, buf!, SEND_FLAGS) : libc.write(fd, buf!);
    case OP_ACCEPT:
      acceptAddrLen[0] = SOCKADDR_MAX;
      return libc.accept4(fd, acceptAddr, acceptAddrLen, ACCEPT_FLAGS);
    case OP_READV:
      return libc.readv(fd, bufs);
    default:
      return libc.writev(fd, bufs);
  }
}

/** The bytes an op asked for, for the short-transfer check (accept: none). */
function wanted(op: IoOp, buf: Uint8Array | null, bufs: readonly Uint8Array[]): number {
  if (op === OP_READ || op === OP_WRITE) return buf!.byteLength;
  if (op === OP_ACCEPT) return -1;
  let n = 0;
  const k = bufs.length < libc.IOV_BATCH ? bufs.length : libc.IOV_BATCH;
  for (let i = 0; i < k; i++) n += bufs[i]!.byteLength;
  return n;
}

/**
 * A registered non-blocking fd.
 *
 * @example
 * ```ts
 * const io = driver.socket(fd);               // a ReadinessFd on epoll/poll/kqueue
 * const n = io.pollOp(cx, OP_READ, buf, []);  // bytes, or PENDING
 * io.close();
 * ```
 */
export class ReadinessFd implements IoFd {
  private readonly io: ScheduledIo;
  /** 1 while a connect is in progress (EINPROGRESS seen, waiting for writability). */
  private connecting = 0;
  /** The ticks pollReady last observed, for clearReady. */
  private readTick = 0;
  private writeTick = 0;
  /** The socket's error was reported to a caller already (by a syscall or from io.error). */
  private errorTaken = false;
  /** An error that ended a message batch early (−errno), thrown by the next pollMsg. */
  private readonly msgErr = new Int32Array(1);

  constructor(
    readonly driver: ReadinessDriver,
    /** A valid non-blocking fd owned by this object, or -1 once closed. */
    public fd: number,
    /** FD_DATAGRAM or 0 (lib/driver/fd.ts): a datagram has no EOF (an empty one is data). */
    private readonly flags = 0,
  ) {
    this.io = driver.registry.register(fd, READ_WRITE);
  }

  pollOp(cx: Context, op: IoOp, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    const io = this.io;
    const reg = this.driver.registry;
    const mask = op === OP_READ || op === OP_ACCEPT || op === OP_READV ? READ_READY : WRITE_READY;
    const bit = mask === READ_READY ? READABLE : WRITABLE;
    for (;;) {
      if (reg.pollReady(io, mask, cx) === PENDING) return PENDING;
      if (io.closed || this.fd < 0) throw closedError(SYSCALL[op]!);
      const tick = io.tick;
      const r = attempt(op, this.fd, buf, bufs);
      if (r >= 0) {
        // EOF where the event said the socket failed: that error, once (see the header).
        if (r === 0 && io.error !== 0 && !this.errorTaken && op !== OP_ACCEPT && bit === READABLE) {
          this.errorTaken = true;
          throw new SysError(io.error, SYSCALL[op]!);
        }
        // A short transfer drained (or filled) the socket: skip the next EAGAIN round trip.
        if (r < wanted(op, buf, bufs)) reg.clearReadiness(io, bit, tick);
        return r;
      }
      if (r === -EAGAIN) {
        reg.clearReadiness(io, bit, tick);
        continue;
      }
      if (r === -EINTR) continue;
      this.errorTaken = true;
      throw new SysError(-r, SYSCALL[op]!);
    }
  }

  pollConnect(cx: Context, sockaddr: Uint8Array, len: number, detail: string): Poll<void> {
    if (this.fd < 0) throw closedError("connect");
    if (this.connecting === 0) {
      let r = libc.connect(this.fd, sockaddr, len);
      // An interrupted connect goes on in the background: EALREADY/EISCONN say how far.
      while (r === -EINTR) r = libc.connect(this.fd, sockaddr, len);
      if (r === 0 || r === -EISCONN) return undefined;
      if (r !== -EINPROGRESS && r !== -EALREADY) throw new SysError(-r, "connect", undefined, detail);
      this.connecting = 1;
    }
    // Writable (or error/hang-up): SO_ERROR says whether the handshake succeeded.
    if (this.driver.registry.pollReady(this.io, WRITE_READY, cx) === PENDING) return PENDING;
    this.connecting = 0;
    if (this.io.closed || this.fd < 0) throw closedError("connect");
    let err = libc.getsockoptInt(this.fd, SYS.SOL_SOCKET, SYS.SO_ERROR);
    if (err < 0) throw new SysError(-err, "getsockopt", undefined, "SO_ERROR");
    if (err === 0) err = this.io.error; // consumed before us (see the header), if at all
    if (err !== 0) {
      this.errorTaken = true;
      throw new SysError(err, "connect", undefined, detail);
    }
    return undefined;
  }

  pollMsg(cx: Context, op: MsgOp, msgs: readonly Msg[], count: number, flags: number): Poll<number> {
    const recv = op === OP_RECVMSG;
    const syscall = recv ? "recvmsg" : "sendmsg";
    if (this.fd < 0) throw closedError(syscall);
    const held = this.msgErr[0]!;
    if (held !== 0) {
      this.msgErr[0] = 0;
      throw new SysError(-held, syscall);
    }
    const io = this.io;
    const reg = this.driver.registry;
    const mask = recv ? READ_READY : WRITE_READY;
    const bit = recv ? READABLE : WRITABLE;
    const f = recv ? flags : flags | SEND_FLAGS;
    for (;;) {
      if (reg.pollReady(io, mask, cx) === PENDING) return PENDING;
      if (io.closed || this.fd < 0) throw closedError(syscall);
      const tick = io.tick;
      const r = attemptMsgs(this.fd, recv, msgs, count, f, this.msgErr);
      if (r >= 0) {
        // A stream's EOF where the event said the socket failed: that error, once.
        if (recv && (this.flags & FD_DATAGRAM) === 0 && msgs[0]!.size === 0 && io.error !== 0 && !this.errorTaken) {
          this.errorTaken = true;
          throw new SysError(io.error, syscall);
        }
        // A batch cut short drained (or filled) the socket: skip the next EAGAIN round trip.
        if (count > 1 && r < count) reg.clearReadiness(io, bit, tick);
        return r;
      }
      if (r === -EAGAIN) {
        if ((this.flags & FD_DATAGRAM) === 0) {
          reg.clearReadiness(io, bit, tick);
          continue;
        }
        reg.clearReadiness(io, bit | ERROR | (recv ? READ_CLOSED : WRITE_CLOSED), tick);
        if (io.error !== 0 && !this.errorTaken) {
          this.errorTaken = true;
          throw new SysError(io.error, syscall);
        }
        continue;
      }
      if (r === -EINTR) continue;
      this.errorTaken = true;
      throw new SysError(-r, syscall);
    }
  }

  pollReady(cx: Context, dir: Direction): Poll<number> {
    if (this.fd < 0) throw closedError("poll");
    const r = this.driver.registry.pollReady(this.io, dir === DIR_READ ? READ_READY : WRITE_READY, cx);
    if (dir === DIR_READ) this.readTick = this.io.tick;
    else this.writeTick = this.io.tick;
    return r;
  }

  clearReady(dir: Direction): void {
    if (dir === DIR_READ) this.driver.registry.clearReadiness(this.io, READABLE, this.readTick);
    else this.driver.registry.clearReadiness(this.io, WRITABLE, this.writeTick);
  }

  dropWaker(dir: Direction, waker: Waker | null): void {
    if (waker !== null) this.driver.registry.dropWaker(this.io, dir === DIR_READ ? READ_READY : WRITE_READY, waker);
  }

  detach(): number {
    const fd = this.fd;
    if (fd < 0) return -1;
    this.fd = -1;
    this.driver.registry.deregister(this.io); // a no-op once the driver closed
    return fd;
  }

  close(): void {
    const fd = this.fd;
    if (fd < 0) return;
    this.fd = -1;
    try {
      this.driver.registry.deregister(this.io); // a no-op once the driver closed (registry.closeAll)
    } finally {
      const r = libc.close(fd);
      // EINTR on close still releases the fd on Linux and the BSDs: do not retry.
      if (r < 0 && r !== -EINTR) throw new SysError(-r, "close");
    }
  }
}

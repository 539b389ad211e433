/**
 * A socket (or pipe) on the io_uring backend: the per-fd interface (lib/driver/fd.ts) as
 * ring ops. Instead of "wait for readiness, retry the syscall", each op is submitted once
 * and its CQE is the result.
 *
 * Receive: where the driver registered a provided buffer ring (caps.multishotRecv), a
 * socket's reads are served by one armed multishot recv whose CQEs queue ring buffers
 * (recv.ts: a cancelled read loses nothing, the bytes stay queued). The
 * single-shot recv below remains the fallback: no ring, a pipe, the kernel refusing
 * multishot on this fd (EINVAL), or the shared ring momentarily empty.
 *
 * Buffer ownership: recv lands in a driver-owned {@link OwnedBuf} and is copied into the
 * caller's Uint8Array in the poll that completes it; send copies the caller's bytes into
 * an owned buffer before submitting. The copy is the price of safety: the caller's array
 * may be a small TypedArray whose storage the GC can move, and after a cancel the caller
 * may reuse it while the kernel still holds the op (one memcpy per op, cheap next to the
 * kernel crossing; a provided-buffer ring would remove it, see the report).
 *
 * One op per direction is in flight at a time (`readOp`, `writeOp`); a re-poll with the
 * same buffer picks up the result. Cancellation semantics, per op:
 * - read: the recv is cancelled. If it completed anyway (completed-then-cancelled, in
 *   flight or before the re-poll), its bytes are kept in `stash` and returned first by
 *   the next read: no data is lost silently. (After close() they are dropped.)
 * - write: the send is cancelled; if it completed anyway, its bytes were sent and the
 *   count is lost to the caller (so write is NOT cancel-safe on this backend).
 * - accept (single-shot): a connection accepted after its future was cancelled is closed.
 *   Multishot accept belongs to the listener, not to a future: cancelled accept futures
 *   leave queued connections for the next accept(); close() closes them.
 * - connect: cancelled; the socket is closed by the caller.
 *
 * Closing (the fd rule, uring/owner.ts): close() abandons this socket's ops, then the
 * owner rewrites any SQE still naming the fd into a NOP, cancels the rest in the kernel
 * by fd and reaps them at once, and closes the fd — or pins its number until the last
 * op's final CQE. A peer sees FIN, a listener's port is free, before close() returns.
 *
 * Accepted peers: multishot accept reports no address, so it is read with getpeername.
 * A peer that reset before that call has none left (ENOTCONN): the connection is still
 * handed out (its reads then fail with ECONNRESET, as on epoll) with the unspecified
 * address of the listener's family (0.0.0.0:0, [::]:0) — never another client's.
 *
 * Must never: pass the caller's buffer to the kernel, leak an fd or an owned buffer, or
 * complete an op twice.
 */
import { ptr } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import { SYS } from "../../../ffi/constants.ts";
import { EAGAIN, EINTR, EINVAL, ENOTSOCK } from "../../../ffi/errno.ts";
import { SOCKADDR_MAX } from "../../../ffi/sockaddr.ts";
import { PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { MultishotRecv } from "./recv.ts";
import { gather, scatter, wantedLen } from "./iovec.ts";
import { K_FD, K_PLAIN, ST_DONE, ST_FREE, type OpSink, type UringOp } from "./op.ts";
import type { UringDriver } from "./driver.ts";
import type { OwnedBuf } from "./buf.ts";
import { UringFdOwner } from "./owner.ts";
import { UringMsg } from "./msg.ts";
import { SysError } from "../../errors.ts";
import { READ_READY, WRITE_READY, type ScheduledIo } from "../registry.ts";
import { READABLE, WRITABLE } from "../events.ts";
import {
  DIR_READ, FD_DATAGRAM, OP_ACCEPT, OP_READ, OP_READV, OP_RECVMSG, OP_WRITE, SYSCALL, acceptAddr, acceptAddrLen, closedError,
  type Direction, type IoFd, type IoOp, type Msg, type MsgOp,
} from "../fd.ts";

/** Largest recv / send one op makes. */
const RECV_MAX = 64 * 1024;
const SEND_MAX = 256 * 1024;
const ACCEPT_FLAGS = SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC;

/** op.tag values: what an orphaned result is. */
const T_RECV = 1;
const T_ACCEPT = 2;

/**
 * A socket bound to a UringDriver.
 *
 * @example
 * ```ts
 * const s = driver.socket(fd);                 // a UringFd on the uring backend
 * const n = s.pollOp(cx, OP_READ, buf, []);    // bytes, or PENDING
 * s.close();
 * ```
 */
export class UringFd extends UringFdOwner implements IoFd, OpSink {
  private readOp: UringOp | null = null;
  private writeOp: UringOp | null = null;
  /** The waker of the future that owns readOp / writeOp (matched on cancel). */
  private readWaker: Waker | null = null;
  private writeWaker: Waker | null = null;
  /** Multishot accept: the armed op, connections it delivered, its terminal error. */
  private acceptOp: UringOp | null = null;
  private readonly acceptQ: number[] = [];
  private acceptErr = 0;
  /** Bytes a cancelled-but-completed recv delivered, returned by the next read. */
  private stash: OwnedBuf | null = null;
  private stashOff = 0;
  private stashEnd = 0;
  /** Multishot recv (io/uring_recv.ts), made on the first read when caps allow. */
  private ms: MultishotRecv | null = null;
  /** The kernel refused multishot recv on this fd (EINVAL): single-shot from now on. */
  private noMultishot = false;
  /** A cancelled single-shot recv that may still complete into the stash, and its token. */
  private lateRecv: UringOp | null = null;
  private lateToken = 0;
  /** recv/send failed with ENOTSOCK: this fd is a pipe or file; use read/write. */
  private plainFile = false;
  private closed = false;
  /** The readiness registration, made by the first pollReady (through the poll bridge). */
  private io: ScheduledIo | null = null;
  private readTick = 0;
  private writeTick = 0;
  /** The message ops (msg.ts), made by the first pollMsg. */
  private msg: UringMsg | null = null;

  constructor(
    driver: UringDriver,
    fd: number,
    /** FD_DATAGRAM or 0 (lib/driver/fd.ts). */
    private readonly flags = 0,
  ) {
    super(driver, fd);
  }

  /** sendmsg / recvmsg, one SQE per message (msg.ts). */
  pollMsg(cx: Context, op: MsgOp, msgs: readonly Msg[], count: number, flags: number): Poll<number> {
    if (this.closed) throw closedError(op === OP_RECVMSG ? "recvmsg" : "sendmsg");
    const m = this.msg ?? (this.msg = new UringMsg(this.driver, this, (this.flags & FD_DATAGRAM) !== 0));
    return op === OP_RECVMSG ? m.pollRecv(cx, this.fd, msgs, count, flags) : m.pollSend(cx, this.fd, msgs, count, flags);
  }

  /** One op: its result, or PENDING with the waker stored on the op. */
  pollOp(cx: Context, op: IoOp, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    if (this.closed) throw closedError(SYSCALL[op]!);
    if (op === OP_ACCEPT) return this.pollAccept(cx, acceptAddr);
    if (op === OP_READ || op === OP_READV) return this.pollRecv(cx, buf, bufs);
    return this.pollSend(cx, op === OP_WRITE ? buf : null, bufs);
  }

  private pollRecv(cx: Context, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    if (this.stash !== null) return this.takeStash(buf, bufs);
    if (this.readOp === null && this.multishotOk()) return this.pollMultishot(cx, buf, bufs);
    const op = this.readOp;
    if (op === null) return this.startRecv(cx, wantedLen(buf, bufs));
    if (op.state !== ST_DONE) return this.waitOn(op, cx, true);
    const res = op.res;
    this.readOp = null;
    this.readWaker = null;
    if (res < 0) {
      this.driver.release(op);
      if (res === -ENOTSOCK && !this.plainFile) this.plainFile = true;
      else if (res !== -EINTR && res !== -EAGAIN) throw new SysError(-res, this.plainFile ? "read" : "recv");
      return this.startRecv(cx, wantedLen(buf, bufs));
    }
    const ob = op.buf!;
    const n = scatter(ob.bytes, 0, res, buf, bufs);
    if (n < res) {
      // A different, smaller buffer polled for this result: keep the rest for the next read.
      op.buf = null;
      this.setStash(ob, n, res);
    }
    this.driver.release(op);
    return n;
  }

  /**
   * Multishot recv may serve this read: allowed by caps, a socket, and no cancelled
   * single-shot recv still in flight (its bytes must reach the stash first).
   */
  private multishotOk(): boolean {
    if (this.ms === null) {
      const d = this.driver;
      if (!d.caps.multishotRecv || d.pbuf === null || this.plainFile || this.noMultishot || this.closed) return false;
      this.ms = new MultishotRecv(d, d.pbuf, this.fd, this);
    }
    const late = this.lateRecv;
    if (late !== null && late.token === this.lateToken && late.state !== ST_FREE) return false;
    this.lateRecv = null;
    return !this.plainFile && !this.noMultishot;
  }

  /** A read served from the multishot queue; EOF and errors come after the queued bytes. */
  private pollMultishot(cx: Context, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    const mr = this.ms!;
    const want = wantedLen(buf, bufs);
    if (want === 0) return 0;
    if (mr.queued > 0) {
      if (mr.waker !== null) mr.unwait();
      return mr.take(buf, bufs);
    }
    if (mr.eof) return 0;
    if (mr.err !== 0) {
      const e = mr.err;
      mr.err = 0;
      if (e === -ENOTSOCK) this.plainFile = true;
      else if (e === -EINVAL) this.noMultishot = true; // this kernel/fd refuses it: single-shot
      else if (e !== -EINTR && e !== -EAGAIN) throw new SysError(-e, "recv");
      if (mr.op === null && (this.plainFile || this.noMultishot)) return this.startRecv(cx, want);
    }
    if (mr.op === null) {
      // The ring is dry: this read goes single-shot; a later read re-arms (no byte waits on it).
      if (!mr.canArm()) return this.startRecv(cx, want);
      mr.arm();
    }
    mr.wait(cx.waker);
    this.readWaker = cx.waker;
    return PENDING;
  }

  private startRecv(cx: Context, want: number): Poll<number> {
    if (want === 0) return 0;
    const d = this.driver;
    const op = d.op(K_PLAIN, this, this);
    op.tag = T_RECV;
    const len = want < RECV_MAX ? want : RECV_MAX;
    const ob = d.pool.get(len);
    // SAFETY: `ob` is owned by the op (op.buf) and so referenced from the driver's op
    // table until the final CQE, even if this read is cancelled.
    op.buf = ob;
    if (this.plainFile) d.sqe(op, U.OP_READ, this.fd, ob.addr, len, -1);
    else d.sqe(op, U.OP_RECV, this.fd, ob.addr, len, 0);
    this.readOp = op;
    return this.waitOn(op, cx, true);
  }

  private pollSend(cx: Context, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    const op = this.writeOp;
    if (op === null) return this.startSend(cx, buf, bufs);
    if (op.state !== ST_DONE) return this.waitOn(op, cx, false);
    const res = op.res;
    this.writeOp = null;
    this.writeWaker = null;
    this.driver.release(op);
    if (res < 0) {
      if (res === -ENOTSOCK && !this.plainFile) this.plainFile = true;
      else if (res !== -EINTR && res !== -EAGAIN) throw new SysError(-res, this.plainFile ? "write" : "send");
      return this.startSend(cx, buf, bufs);
    }
    return res;
  }

  private startSend(cx: Context, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    const want = wantedLen(buf, bufs);
    if (want === 0) return 0;
    const d = this.driver;
    const len = want < SEND_MAX ? want : SEND_MAX;
    const ob = d.pool.get(len);
    gather(ob.bytes, len, buf, bufs);
    const op = d.op(K_PLAIN, this, this);
    // SAFETY: the copy in `ob` is owned by the op until its final CQE (see startRecv).
    op.buf = ob;
    if (this.plainFile) d.sqe(op, U.OP_WRITE, this.fd, ob.addr, len, -1);
    else d.ring.setOpFlags(d.sqe(op, U.OP_SEND, this.fd, ob.addr, len, 0), SYS.MSG_NOSIGNAL);
    this.writeOp = op;
    return this.waitOn(op, cx, false);
  }

  private waitOn(op: UringOp, cx: Context, read: boolean): Poll<number> {
    op.waker = cx.waker;
    if (read) this.readWaker = cx.waker;
    else this.writeWaker = cx.waker;
    return PENDING;
  }

  /**
   * Connect: the first poll submits IORING_OP_CONNECT (the sockaddr is held by the op),
   * later polls return 0 on success or throw SysError("connect").
   */
  pollConnect(cx: Context, sockaddr: Uint8Array, len: number, detail: string): Poll<void> {
    if (this.closed) throw closedError("connect");
    const op = this.writeOp;
    if (op === null) {
      const d = this.driver;
      const c = d.op(K_PLAIN, this, this);
      // SAFETY: `sockaddr` is ArrayBuffer-backed (net/addr.ts) and held by the op (aux)
      // until its final CQE.
      c.aux = sockaddr;
      d.sqe(c, U.OP_CONNECT, this.fd, addrOf(sockaddr), 0, len);
      this.writeOp = c;
      this.waitOn(c, cx, false);
      return PENDING;
    }
    if (op.state !== ST_DONE) {
      this.waitOn(op, cx, false);
      return PENDING;
    }
    const res = op.res;
    this.writeOp = null;
    this.writeWaker = null;
    this.driver.release(op);
    if (res < 0) throw new SysError(-res, "connect", undefined, detail);
    return undefined;
  }

  private pollAccept(cx: Context, addrOut: Uint8Array): Poll<number> {
    if (this.acceptQ.length > 0) return this.handOut(this.acceptQ.shift()!, addrOut);
    if (this.acceptErr !== 0) {
      const e = this.acceptErr;
      this.acceptErr = 0;
      throw new SysError(-e, "accept4");
    }
    if (this.driver.caps.multishotAccept) {
      if (this.acceptOp === null) this.armAccept(true);
      this.readWaker = cx.waker;
      return PENDING;
    }
    return this.pollAcceptOnce(cx, addrOut);
  }

  /** Single-shot accept (kernels before 5.19, or multishot turned off). */
  private pollAcceptOnce(cx: Context, addrOut: Uint8Array): Poll<number> {
    const op = this.acceptOp;
    if (op === null) {
      this.armAccept(false);
      return this.waitOn(this.acceptOp!, cx, true);
    }
    if (op.state !== ST_DONE) return this.waitOn(op, cx, true);
    const res = op.res;
    this.acceptOp = null;
    this.readWaker = null;
    addrOut.set(op.buf!.bytes.subarray(0, SOCKADDR_MAX));
    acceptAddrLen[0] = new Uint32Array(op.buf!.bytes.buffer, SOCKADDR_MAX, 1)[0]!;
    this.driver.release(op);
    if (res < 0) throw new SysError(-res, "accept4");
    return res;
  }

  private armAccept(multishot: boolean): void {
    const d = this.driver;
    const op = d.op(K_FD, this, this);
    op.tag = T_ACCEPT;
    op.multishot = multishot;
    let w: number;
    if (multishot) {
      w = d.sqe(op, U.OP_ACCEPT, this.fd, 0, 0, 0);
      d.ring.setIoprio(w, U.ACCEPT_MULTISHOT);
    } else {
      const ob = d.pool.get(SOCKADDR_MAX + 4);
      // SAFETY: the sockaddr and its length live in `ob`, owned by the op until its CQE.
      op.buf = ob;
      new Uint32Array(ob.bytes.buffer, SOCKADDR_MAX, 1)[0] = SOCKADDR_MAX;
      w = d.sqe(op, U.OP_ACCEPT, this.fd, ob.addr, 0, 0);
      d.ring.setAddr2(w, ob.addr + SOCKADDR_MAX);
    }
    d.ring.setOpFlags(w, ACCEPT_FLAGS);
    this.acceptOp = op;
  }

  /** Multishot accept CQEs: queue the connection (or the error) and wake the acceptor. */
  onCqe(op: UringOp, res: number, _flags: number, final: boolean): void {
    if (res >= 0) this.acceptQ.push(res);
    else this.acceptErr = res;
    if (final) {
      this.acceptOp = null;
      this.driver.release(op);
    }
    const w = this.readWaker;
    this.readWaker = null;
    w?.wake();
  }

  /** A result for an op whose future was cancelled (see the module header). */
  orphan(op: UringOp, res: number, _flags: number): void {
    if (op.tag === T_ACCEPT) {
      // The connection is the listener's, not the cancelled future's: queue it for the next
      // accept() (as the kernel's backlog would have kept it under epoll); close() closes
      // whatever is still queued, so nothing leaks.
      if (this.closed) libc.close(res);
      else this.acceptQ.push(res);
    } else if (op.tag === T_RECV && res > 0 && !this.closed && this.stash === null) {
      this.setStash(op.buf!, 0, res);
      op.buf = null; // the stash owns it now
    }
  }

  /**
   * Fills addrOut with the peer of an accepted fd (multishot accept has no address); a
   * peer that already reset has none: the unspecified address (see the module header).
   */
  private handOut(fd: number, addrOut: Uint8Array): number {
    acceptAddrLen[0] = SOCKADDR_MAX;
    if (libc.getpeername(fd, addrOut, acceptAddrLen) >= 0) return fd;
    acceptAddrLen[0] = SOCKADDR_MAX;
    const r = libc.getsockname(this.fd, addrOut, acceptAddrLen);
    // Keep the family (the first two bytes, in either layout); zero the port and address.
    addrOut.fill(0, r >= 0 ? 2 : 0);
    return fd;
  }

  private setStash(ob: OwnedBuf, off: number, end: number): void {
    this.stash = ob;
    this.stashOff = off;
    this.stashEnd = end;
  }

  private takeStash(buf: Uint8Array | null, bufs: readonly Uint8Array[]): number {
    const ob = this.stash!;
    const n = scatter(ob.bytes, this.stashOff, this.stashEnd - this.stashOff, buf, bufs);
    this.stashOff += n;
    if (this.stashOff === this.stashEnd) {
      this.stash = null;
      this.driver.pool.put(ob);
    }
    return n;
  }

  /**
   * Cancels the op a cancelled future owned (matched by its waker): see the module header
   * for what happens to a result that arrives anyway.
   */
  dropWaker(dir: Direction, w: Waker | null, msgs?: readonly Msg[]): void {
    if (w === null) return;
    if (this.io !== null) this.driver.registry.dropWaker(this.io, dir === DIR_READ ? READ_READY : WRITE_READY, w);
    this.msg?.dropWaker(dir === DIR_READ, w, msgs);
    if (dir === DIR_READ) {
      if (this.readWaker !== w) return;
      this.readWaker = null;
      if (this.ms !== null && this.ms.waker === w) this.ms.unwait(); // its bytes stay queued
      if (this.readOp !== null) {
        this.lateRecv = this.readOp;
        this.lateToken = this.readOp.token;
        this.driver.cancel(this.readOp);
      }
      this.readOp = null;
      if (this.acceptOp !== null && !this.acceptOp.multishot) {
        this.driver.cancel(this.acceptOp);
        this.acceptOp = null;
      }
    } else if (this.writeWaker === w) {
      this.writeWaker = null;
      if (this.writeOp !== null) this.driver.cancel(this.writeOp);
      this.writeOp = null;
    }
  }

  /** Readiness alone, through the poll bridge (registered on first use). */
  pollReady(cx: Context, dir: Direction): Poll<number> {
    if (this.closed) throw closedError("poll");
    const reg = this.driver.registry;
    const io = this.io ?? (this.io = this.driver.bridgeRegister(this, this.fd));
    const r = reg.pollReady(io, dir === DIR_READ ? READ_READY : WRITE_READY, cx);
    if (dir === DIR_READ) this.readTick = io.tick;
    else this.writeTick = io.tick;
    return r;
  }

  clearReady(dir: Direction): void {
    if (this.io === null) return;
    if (dir === DIR_READ) this.driver.registry.clearReadiness(this.io, READABLE, this.readTick);
    else this.driver.registry.clearReadiness(this.io, WRITABLE, this.writeTick);
  }

  /**
   * Closes (the fd rule in uring/owner.ts): this socket's ops are abandoned, its waiters
   * woken (they fail with EBADF), queued connections and stashed bytes dropped, then the
   * fd is released. Idempotent.
   */
  close(): void {
    if (this.abandon()) this.release();
  }

  /**
   * Stops using the fd without closing it (AsyncFd.intoInner): this socket's ops are
   * abandoned as by close(), every op still naming the fd is cancelled (uring/owner.ts),
   * and the number is returned to the caller, open. -1 once closed.
   */
  detach(): number {
    return this.abandon() ? this.releaseOpen() : -1;
  }

  /** Close's first half: abandons every op and waiter; false when already closed. */
  private abandon(): boolean {
    if (this.closed) return false;
    this.closed = true;
    const d = this.driver;
    this.msg?.close();
    if (!d.isClosed) {
      for (const op of [this.readOp, this.writeOp, this.acceptOp]) if (op !== null) d.cancel(op);
      this.ms?.close();
      if (this.io !== null) d.registry.deregister(this.io);
    }
    this.readOp = this.writeOp = this.acceptOp = null;
    this.io = null;
    const r = this.readWaker;
    const w = this.writeWaker;
    this.readWaker = this.writeWaker = null;
    r?.wake();
    w?.wake();
    for (const fd of this.acceptQ) libc.close(fd);
    this.acceptQ.length = 0;
    if (this.stash !== null) d.pool.put(this.stash);
    this.stash = null;
    return true;
  }
}

function addrOf(b: Uint8Array): number {
  // SAFETY: only called on ArrayBuffer-backed arrays that the op keeps referenced.
  return ptr(b) as number;
}

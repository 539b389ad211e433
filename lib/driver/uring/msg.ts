/**
 * Messages on io_uring: the per-fd `pollMsg` (lib/driver/fd.ts) as IORING_OP_SENDMSG and
 * IORING_OP_RECVMSG, one SQE per message, a batch's SQEs written back to back and so
 * submitted together in the driver's next enter.
 *
 * Memory: every op owns one {@link OwnedBuf} laid out as
 *
 *     [0 msghdr 56][64 iovec 16][80 sockaddr 128][208 control …][data …]
 *
 * The kernel reads the msghdr, iovec, address and (send) control and data, and writes
 * (recv) the address, control, data and the msghdr's out-fields (msg_namelen,
 * msg_controllen, msg_flags). The caller's `Msg` is copied in when a send is built and
 * out when a receive is taken: the kernel never sees the caller's memory.
 *
 * Send: a batch is one IOSQE_IO_LINK chain, so its results are a clean prefix (a failed
 * message cancels the ones after it: no message is sent out of order or behind a failure
 * the caller was told about). An error after ≥ 1 sent message is kept for the next send.
 * A cancelled send is cancelled in the kernel; if it went out anyway its count is lost
 * (sends are not cancel-safe here, as for TCP writes on this backend).
 *
 * Receive: the armed ops belong to the socket, not to a future. A receive takes
 * completed messages from `ready` (in CQE order); if none is there it arms ops — up to the
 * batch size for a datagram socket (each with room for a whole UDP datagram, 64 KiB, or
 * the caller's buffer if larger), one for a stream socket — and waits. A cancelled
 * receive only forgets its waker: a message that arrives later waits in `ready` for the
 * next receive, so a receive is cancel-safe and keeps arrival order. Armed ops are
 * background ops (a quiet socket may hold them forever); a waiting reader counts as
 * driver work (startWaiting) while it waits. On a stream socket a message larger than the
 * caller's buffer is taken in parts; its fds come with the first part.
 *
 * Closing (called by the socket before its fd is released, uring/owner.ts): armed and
 * send ops are cancelled; fds in queued or late messages are closed; buffers go back.
 *
 * Must never: hand the kernel the caller's memory, deliver a message twice or out of CQE
 * order, leak a received fd, or free an op before its final CQE.
 */
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import { NET, SYS } from "../../../ffi/constants.ts";
import { ECANCELED } from "../../../ffi/errno.ts";
import { SOCKADDR_MAX } from "../../../ffi/sockaddr.ts";
import { decodeRights } from "../../../ffi/cmsg.ts";
import { PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { SysError } from "../../errors.ts";
import { closedError, type Msg } from "../fd.ts";
import { K_PLAIN, ST_DONE, type FdOwnerCount, type OpSink, type UringOp } from "./op.ts";
import type { UringDriver } from "./driver.ts";
import type { OwnedBuf } from "./buf.ts";

/** IORING_OP_SENDMSG / IORING_OP_RECVMSG (5.3). */
export const OP_SENDMSG = 9;
export const OP_RECVMSG = 10;

// The owned buffer's layout (byte offsets; see the module header).
const IOV = 64;
const NAME = 80;
const CTRL = NAME + SOCKADDR_MAX;
/** Room a datagram receive gets at least: the largest UDP payload. */
const DGRAM_ROOM = 65536;
/** Largest single message one op carries (larger sends are cut: a stream send returns a short count). */
const MAX_DATA = 256 * 1024;

/** op.tag: what kind of message op this is. */
const T_RECV = 1;
const T_SEND = 2;

const TWO32 = 0x1_0000_0000;

/** One send batch: its ops (a linked chain, in order) and the waker of the future that owns it. */
interface SendBatch {
  readonly msgs: readonly Msg[];
  readonly ops: UringOp[];
  waker: Waker | null;
}

function putPtr(u32: Uint32Array, word: number, p: number): void {
  u32[word] = p >>> 0;
  u32[word + 1] = Math.floor(p / TWO32);
}

/** Where an op's data starts in its buffer (read back from the iovec's base pointer). */
function dataOff(ob: OwnedBuf): number {
  const u = ob.u32;
  return u[IOV >> 2]! + u[(IOV >> 2) + 1]! * TWO32 - ob.addr;
}

/**
 * Writes the msghdr + iovec of `ob` for a message of `nameLen` address bytes, `ctrl`
 * control bytes and `dataLen` data bytes; returns the data offset.
 */
function layout(ob: OwnedBuf, nameLen: number, ctrl: number, dataLen: number): number {
  const u = ob.u32;
  const off = (CTRL + ctrl + 7) & ~7;
  u.fill(0, 0, CTRL >> 2);
  putPtr(u, 0, nameLen === 0 ? 0 : ob.addr + NAME);
  u[NET.MSG_NAMELEN_OFF >> 2] = nameLen;
  putPtr(u, NET.MSG_IOV_OFF >> 2, ob.addr + IOV);
  u[NET.MSG_IOVLEN_OFF >> 2] = 1;
  putPtr(u, NET.MSG_CONTROL_OFF >> 2, ctrl === 0 ? 0 : ob.addr + CTRL);
  u[NET.MSG_CONTROLLEN_OFF >> 2] = ctrl;
  putPtr(u, IOV >> 2, ob.addr + off);
  u[(IOV >> 2) + 2] = dataLen;
  return off;
}

/** Closes every fd an SCM_RIGHTS message left in `ob` (a message nobody will take). */
function closeFdsIn(ob: OwnedBuf): void {
  const clen = ob.u32[NET.MSG_CONTROLLEN_OFF >> 2]!;
  if (clen === 0) return;
  const fds: number[] = [];
  decodeRights(ob.bytes.subarray(CTRL), clen, fds);
  for (const fd of fds) libc.close(fd);
}

/**
 * The message side of one io_uring socket.
 *
 * @example
 * ```ts
 * const m = new UringMsg(driver, owner, true);     // owner: the UringFd whose fd ops name
 * const k = m.pollRecv(cx, fd, msgs, 8, 0);        // messages taken, or PENDING
 * m.close();
 * ```
 */
export class UringMsg implements OpSink {
  /** Receive ops in the kernel, oldest first (background ops). */
  private readonly armed: UringOp[] = [];
  /** Completed receives in CQE order, not yet taken (DONE; res in op.res). */
  private readonly ready: UringOp[] = [];
  /** Stream sockets: bytes of ready[0] already taken. */
  private readyOff = 0;
  private recvWaker: Waker | null = null;
  /** startWaiting() is in effect for recvWaker. */
  private waiting = false;
  /** Send batches in flight, each one linked chain, keyed by the `msgs` array it was polled with. */
  private readonly sends: SendBatch[] = [];
  /** A send error that ended a batch after ≥ 1 message (−errno), thrown by the next send. */
  private sendErr = 0;
  private closed = false;

  constructor(
    private readonly driver: UringDriver,
    /** The socket whose fd the ops name (counted by it, uring/owner.ts). */
    private readonly owner: FdOwnerCount,
    /** A datagram socket (one message per receive, truncation reported) or a stream. */
    private readonly datagram: boolean,
  ) {}

  /** Receives up to `count` messages into `msgs` (see the module header). */
  pollRecv(cx: Context, fd: number, msgs: readonly Msg[], count: number, flags: number): Poll<number> {
    if (this.closed || fd < 0) throw closedError("recvmsg");
    if (this.ready.length > 0) {
      this.unwait();
      return this.take(msgs, count);
    }
    const want = this.datagram ? count : 1;
    for (let i = this.armed.length; i < want; i++) this.arm(fd, msgs[i] ?? msgs[0]!, flags);
    const prev = this.recvWaker;
    this.recvWaker = cx.waker;
    if (prev !== null && prev !== cx.waker) prev.wake(); // a second reader: the first re-polls (as the registry does)
    if (!this.waiting) {
      this.waiting = true;
      this.driver.startWaiting();
    }
    return PENDING;
  }

  private arm(fd: number, m: Msg, flags: number): void {
    const d = this.driver;
    const want = m.buf.byteLength;
    const data = this.datagram ? (want > DGRAM_ROOM ? Math.min(want, MAX_DATA) : DGRAM_ROOM) : Math.max(1, Math.min(want, DGRAM_ROOM));
    const ctrl = m.control === null ? 0 : m.control.byteLength;
    const ob = d.pool.get(CTRL + ctrl + 8 + data);
    layout(ob, SOCKADDR_MAX, ctrl, data);
    const op = d.op(K_PLAIN, this, this.owner);
    op.tag = T_RECV;
    // Delivered through onCqe (in CQE order), not through a future's waker.
    op.multishot = true;
    op.background = true;
    // SAFETY: `ob` (msghdr, iovec, address, control and data) is owned by the op until its
    // final CQE, even once cancelled: the driver's op table references it.
    op.buf = ob;
    const w = d.sqe(op, OP_RECVMSG, fd, ob.addr, 1, 0);
    d.ring.setOpFlags(w, flags);
    this.armed.push(op);
  }

  /** Copies completed receives into msgs; a stream takes one message (or part of one). */
  private take(msgs: readonly Msg[], count: number): number {
    let k = 0;
    while (k < count && this.ready.length > 0) {
      const op = this.ready[0]!;
      const res = op.res;
      if (res < 0) {
        if (k > 0) break; // delivered after the messages before it
        this.ready.shift();
        this.driver.release(op);
        throw new SysError(-res, "recvmsg");
      }
      const m = msgs[k]!;
      const ob = op.buf!;
      const u = ob.u32;
      const off = dataOff(ob);
      const inBuf = Math.min(res, u[(IOV >> 2) + 2]!);
      const first = this.readyOff === 0;
      const nameLen = first ? u[NET.MSG_NAMELEN_OFF >> 2]! : 0;
      m.addrLen = nameLen;
      if (nameLen > 0) m.addr.set(ob.bytes.subarray(NAME, NAME + Math.min(nameLen, SOCKADDR_MAX)));
      m.flags = first ? u[NET.MSG_FLAGS_OFF >> 2]! | 0 : 0;
      this.takeControl(m, ob, first);
      const cap = m.buf.byteLength;
      k++;
      if (this.datagram) {
        const n = inBuf < cap ? inBuf : cap;
        m.buf.set(ob.bytes.subarray(off, off + n));
        m.len = n;
        m.size = res;
        if (res > cap) m.flags |= NET.MSG_TRUNC;
        this.consume();
        continue;
      }
      const left = inBuf - this.readyOff;
      const n = left < cap ? left : cap;
      m.buf.set(ob.bytes.subarray(off + this.readyOff, off + this.readyOff + n));
      m.len = m.size = n;
      this.readyOff += n;
      if (this.readyOff >= inBuf) this.consume();
      break; // a stream receive is one message: bytes do not merge across them
    }
    return k;
  }

  /** Hands a message's ancillary data to `m` (only with its first part); what `m` has no room for is closed. */
  private takeControl(m: Msg, ob: OwnedBuf, first: boolean): void {
    const word = NET.MSG_CONTROLLEN_OFF >> 2;
    const clen = first ? ob.u32[word]! : 0;
    m.controlLen = 0;
    if (clen === 0) return;
    if (m.control === null || clen > m.control.byteLength) {
      closeFdsIn(ob);
      m.flags |= NET.MSG_CTRUNC;
    } else {
      m.control.set(ob.bytes.subarray(CTRL, CTRL + clen));
      m.controlLen = clen;
    }
    ob.u32[word] = 0; // handed out (or closed): a later close must not close them again
  }

  private consume(): void {
    const op = this.ready.shift()!;
    this.readyOff = 0;
    this.driver.release(op);
  }

  /** Sends `count` messages as one linked chain; then the prefix that went out. */
  pollSend(cx: Context, fd: number, msgs: readonly Msg[], count: number, flags: number): Poll<number> {
    if (this.closed || fd < 0) throw closedError("sendmsg");
    let b: SendBatch | undefined;
    for (const x of this.sends) if (x.msgs === msgs) b = x;
    if (b === undefined) {
      if (this.sendErr !== 0) {
        const e = this.sendErr;
        this.sendErr = 0;
        throw new SysError(-e, "sendmsg");
      }
      b = { msgs, ops: this.startSends(fd, msgs, count, flags | SYS.MSG_NOSIGNAL), waker: null };
      this.sends.push(b);
    }
    const ops = b.ops;
    for (let i = 0; i < ops.length; i++) {
      if (ops[i]!.state !== ST_DONE) {
        for (let j = i; j < ops.length; j++) ops[j]!.waker = cx.waker;
        b.waker = cx.waker;
        return PENDING;
      }
    }
    this.sends.splice(this.sends.indexOf(b), 1);
    let k = 0;
    while (k < ops.length && ops[k]!.res >= 0) {
      msgs[k]!.len = msgs[k]!.size = ops[k]!.res;
      k++;
    }
    const err = k < ops.length ? ops[k]!.res : 0;
    for (const op of ops) this.driver.release(op);
    if (k === 0) throw new SysError(-err, "sendmsg");
    if (err !== 0 && err !== -ECANCELED) this.sendErr = err;
    return k;
  }

  private startSends(fd: number, msgs: readonly Msg[], count: number, flags: number): UringOp[] {
    const d = this.driver;
    const ops: UringOp[] = [];
    d.reserve(count);
    for (let i = 0; i < count; i++) {
      const m = msgs[i]!;
      const len = Math.min(m.buf.byteLength, MAX_DATA);
      const ctrl = m.control === null ? 0 : m.controlLen;
      const ob = d.pool.get(CTRL + ctrl + 8 + len);
      const off = layout(ob, m.addrLen, ctrl, len);
      if (m.addrLen > 0) ob.bytes.set(m.addr.subarray(0, m.addrLen), NAME);
      if (ctrl > 0) ob.bytes.set(m.control!.subarray(0, ctrl), CTRL);
      ob.bytes.set(len === m.buf.byteLength ? m.buf : m.buf.subarray(0, len), off);
      const op = d.op(K_PLAIN, this, this.owner);
      op.tag = T_SEND;
      // SAFETY: the copy in `ob` is owned by the op until its final CQE (see arm()).
      op.buf = ob;
      const w = d.sqe(op, OP_SENDMSG, fd, ob.addr, 1, 0);
      d.ring.setOpFlags(w, flags);
      if (i < count - 1) d.ring.setSqeFlags(w, U.IOSQE_IO_LINK);
      ops.push(op);
    }
    return ops;
  }

  /** A receive op completed (it is DONE): queue it in CQE order and wake the reader. */
  onCqe(op: UringOp, res: number, _flags: number, _final: boolean): void {
    op.res = res;
    const i = this.armed.indexOf(op);
    if (i >= 0) this.armed.splice(i, 1);
    if (this.closed) {
      if (res >= 0) closeFdsIn(op.buf!);
      this.driver.release(op);
      return;
    }
    this.ready.push(op);
    const w = this.recvWaker;
    this.recvWaker = null;
    this.unwait();
    w?.wake();
  }

  /** A receive that completed after close() cancelled it: its fds are closed (the buffer goes with the op). */
  orphan(op: UringOp, res: number, _flags: number): void {
    if (op.tag === T_RECV && res >= 0 && op.buf !== null) closeFdsIn(op.buf);
  }

  private unwait(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.driver.stopWaiting();
  }

  /** A pending receive or send of the future that owned `w` (polled with `msgs`) was abandoned. */
  dropWaker(read: boolean, w: Waker, msgs?: readonly Msg[]): void {
    if (read) {
      if (this.recvWaker !== w) return;
      this.recvWaker = null;
      this.unwait(); // the armed ops stay: what they receive waits for the next receive
      return;
    }
    for (let i = 0; i < this.sends.length; i++) {
      const b = this.sends[i]!;
      if (msgs !== undefined ? b.msgs !== msgs : b.waker !== w) continue;
      this.sends.splice(i, 1);
      this.dropSends(b.ops);
      return;
    }
  }

  private dropSends(ops: readonly UringOp[]): void {
    const d = this.driver;
    for (const op of ops) {
      if (op.state === ST_DONE) d.release(op);
      else if (!d.isClosed) d.cancel(op);
    }
  }

  /** Cancels every op, closes the fds of queued messages, wakes waiters (see the module header). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const d = this.driver;
    for (const op of this.armed) if (!d.isClosed) d.cancel(op);
    this.armed.length = 0;
    for (const op of this.ready) {
      if (op.res >= 0) closeFdsIn(op.buf!);
      d.release(op);
    }
    this.ready.length = 0;
    const sends = this.sends.splice(0);
    for (const b of sends) this.dropSends(b.ops);
    this.unwait();
    const r = this.recvWaker;
    this.recvWaker = null;
    r?.wake();
    for (const b of sends) b.waker?.wake();
  }
}

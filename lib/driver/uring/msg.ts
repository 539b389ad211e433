/**
 * Messages on io_uring: the per-fd `pollMsg` (lib/driver/fd.ts) as IORING_OP_SENDMSG and
 * IORING_OP_RECVMSG, one SQE per message, a batch's SQEs written back to back and so
 * submitted together in the driver's next enter.
 *
 * Memory: every op holds a {@link Header} (msghdr 56, iovec 16 at 64, sockaddr 128 at 80,
 * control from 208; this socket's, reused) and an {@link OwnedBuf} for the data. The
 * kernel reads the msghdr, iovec, address and (send) control and data, and writes (recv)
 * the address, control, data and the msghdr's out-fields (msg_namelen, msg_controllen,
 * msg_flags). The caller's `Msg` is copied in when a send is built and out when a
 * receive is taken: the kernel never sees the caller's memory.
 *
 * Datagram sockets first try the syscall (msgcall.ts, MSG_DONTWAIT) when nothing of
 * theirs is in the ring — no receive armed, no send in flight, so order holds: a datagram
 * socket's send completes at once unless its buffer is full, and a receive with data
 * waiting needs no trip through the ring. Only EAGAIN goes to the ring.
 *
 * Send (ring path): a batch is one IOSQE_IO_LINK chain, so its results are a clean
 * prefix (a failed message cancels the ones after it). An error after ≥ 1 sent message is
 * kept for the next send. A batch belongs to the `msgs` array it was polled with. A
 * cancelled send is cancelled in the kernel; if it went out anyway its count is lost
 * (ring sends are not cancel-safe, as TCP writes on this backend).
 *
 * Receive (ring path): the armed op belongs to the socket, not to a future. A receive
 * takes completed messages from `ready` (in CQE order); if none is there it arms one op
 * (never more: every op armed on a socket is woken by each datagram, and the losers end
 * with EAGAIN) — with room for the larger of a whole UDP datagram, 64 KiB, and the
 * caller's buffer on a datagram socket — and waits; a datagram socket's batches come from
 * the direct recvmmsg, tried whenever nothing is armed. A
 * cancelled receive only forgets its waker: a message that arrives later waits in
 * `ready` for the next receive (cancel-safe, arrival order kept). Armed ops are
 * background ops (a quiet socket may hold one forever); a waiting reader counts as
 * driver work while it waits. An armed op that ends with EAGAIN carries no message: it
 * is dropped and the reader re-arms. On a stream socket a message larger than the caller's
 * buffer is taken in parts; its fds come with the first part. A datagram larger than an
 * armed op's room (only a Unix datagram over 64 KiB, armed for a smaller buffer) is
 * reported truncated, with its real size.
 *
 * Closing (called by the socket before its fd is released, uring/owner.ts): armed and
 * send ops are cancelled; fds in queued or late messages are closed; buffers go back.
 *
 * Must never: hand the kernel the caller's memory, deliver a message twice or out of CQE
 * order, leak a received fd, or free an op's memory before its final CQE.
 */
import { ptr } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import { NET, SYS } from "../../../ffi/constants.ts";
import { EAGAIN, ECANCELED, EINTR } from "../../../ffi/errno.ts";
import { SOCKADDR_MAX } from "../../../ffi/sockaddr.ts";
import { decodeRights } from "../../../ffi/cmsg.ts";
import { PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { SysError } from "../../errors.ts";
import { closedError, type Msg } from "../fd.ts";
import { attemptMsgs } from "../msgcall.ts";
import { K_PLAIN, ST_DONE, type FdOwnerCount, type OpSink, type UringOp } from "./op.ts";
import type { UringDriver } from "./driver.ts";

/** IORING_OP_SENDMSG / IORING_OP_RECVMSG (5.3). */
export const OP_SENDMSG = 9;
export const OP_RECVMSG = 10;

// A header's layout (byte offsets; see the module header).
const IOV = 64;
const NAME = 80;
const CTRL = NAME + SOCKADDR_MAX;
const HEADER_SIZE = 2048;
/** The most ancillary data one message carries here (253 fds fit with room to spare). */
const MAX_CONTROL = HEADER_SIZE - CTRL;
/** Room a datagram receive gets at least: a whole UDP datagram (one 64 KiB pool buffer). */
const DGRAM_ROOM = 65536;
/** Largest single message one op carries (a larger stream send returns a short count). */
const MAX_DATA = 4 * 1024 * 1024;

/** op.tag: what kind of message op this is. */
const T_RECV = 1;
const T_SEND = 2;

const TWO32 = 0x1_0000_0000;

/**
 * The memory of one message op that is not data: msghdr, iovec, address, control.
 * ArrayBuffer-backed, its address taken once; reused by its socket once the op is over.
 */
class Header {
  readonly bytes = new Uint8Array(new ArrayBuffer(HEADER_SIZE));
  readonly u32 = new Uint32Array(this.bytes.buffer);
  // SAFETY: the bytes view their own ArrayBuffer (never inline storage), kept alive by
  // this object, which an op references (op.aux) from its SQE to its final CQE.
  readonly addr = ptr(this.bytes) as number;

  private putPtr(word: number, p: number): void {
    this.u32[word] = p >>> 0;
    this.u32[word + 1] = Math.floor(p / TWO32);
  }

  /** Writes msghdr + iovec for `nameLen` address bytes, `ctrl` control bytes and `len` bytes at `data`. */
  layout(nameLen: number, ctrl: number, data: number, len: number): void {
    const u = this.u32;
    u.fill(0, 0, CTRL >> 2);
    this.putPtr(0, nameLen === 0 ? 0 : this.addr + NAME);
    u[NET.MSG_NAMELEN_OFF >> 2] = nameLen;
    this.putPtr(NET.MSG_IOV_OFF >> 2, this.addr + IOV);
    u[NET.MSG_IOVLEN_OFF >> 2] = 1;
    this.putPtr(NET.MSG_CONTROL_OFF >> 2, ctrl === 0 ? 0 : this.addr + CTRL);
    u[NET.MSG_CONTROLLEN_OFF >> 2] = ctrl;
    this.putPtr(IOV >> 2, data);
    u[(IOV >> 2) + 2] = len;
  }

  /** The iovec's length: the data room this op had. */
  get room(): number {
    return this.u32[(IOV >> 2) + 2]!;
  }

  /** Closes every fd an SCM_RIGHTS message left here (one nobody will take); forgets them. */
  closeFds(): void {
    const word = NET.MSG_CONTROLLEN_OFF >> 2;
    const clen = this.u32[word]!;
    if (clen === 0) return;
    const fds: number[] = [];
    decodeRights(this.bytes.subarray(CTRL), clen, fds);
    for (const fd of fds) libc.close(fd);
    this.u32[word] = 0;
  }
}

/** One send batch: its ops (a linked chain, in order) and the waker of the future that owns it. */
interface SendBatch {
  readonly msgs: readonly Msg[];
  readonly ops: UringOp[];
  waker: Waker | null;
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
  /** Send batches in flight, each one linked chain. */
  private readonly sends: SendBatch[] = [];
  /** An error that ended a batch after ≥ 1 message (−errno), thrown by the next call of that direction. */
  private sendErr = 0;
  private readonly recvErr = new Int32Array(1);
  private readonly held = new Int32Array(1);
  private readonly headers: Header[] = [];
  private closed = false;

  constructor(
    private readonly driver: UringDriver,
    /** The socket whose fd the ops name (counted by it, uring/owner.ts). */
    private readonly owner: FdOwnerCount,
    /** A datagram socket (one message per receive, truncation reported) or a stream. */
    private readonly datagram: boolean,
  ) {}

  private header(): Header {
    return this.headers.pop() ?? new Header();
  }

  /** Frees an op this socket is done with; its header goes back to the socket. */
  private free(op: UringOp): void {
    const h = op.aux as Header | null;
    if (h !== null && this.headers.length < 64) this.headers.push(h);
    this.driver.release(op);
  }

  /** Receives up to `count` messages into `msgs` (see the module header). */
  pollRecv(cx: Context, fd: number, msgs: readonly Msg[], count: number, flags: number): Poll<number> {
    if (this.closed || fd < 0) throw closedError("recvmsg");
    if (this.ready.length > 0) {
      this.unwait();
      return this.take(msgs, count);
    }
    if (this.recvErr[0] !== 0) {
      const e = this.recvErr[0]!;
      this.recvErr[0] = 0;
      throw new SysError(-e, "recvmsg");
    }
    if (this.datagram && this.armed.length === 0) {
      const r = attemptMsgs(fd, true, msgs, count, flags | SYS.MSG_DONTWAIT, this.recvErr);
      if (r > 0) return r;
      if (r !== -EAGAIN && r !== -EINTR) throw new SysError(-r, "recvmsg");
    }
    // One receive armed at a time: several armed on one socket are all woken by each
    // datagram and the losers end with EAGAIN (a thundering herd that cost an SQE per
    // loser per datagram). A datagram socket's batches come from the direct recvmmsg.
    if (this.armed.length === 0) this.arm(fd, msgs[0]!, flags);
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
    const room = this.datagram ? Math.min(Math.max(want, DGRAM_ROOM), MAX_DATA) : Math.max(1, Math.min(want, DGRAM_ROOM));
    const ctrl = m.control === null ? 0 : Math.min(m.control.byteLength, MAX_CONTROL);
    const h = this.header();
    const ob = d.pool.get(room);
    h.layout(SOCKADDR_MAX, ctrl, ob.addr, room);
    const op = d.op(K_PLAIN, this, this.owner);
    op.tag = T_RECV;
    // Delivered through onCqe (in CQE order), not through a future's waker.
    op.multishot = true;
    op.background = true;
    // SAFETY: the header (msghdr, iovec, address, control) and `ob` (the data) are held by
    // the op until its final CQE, even once cancelled: the driver's op table references it.
    op.buf = ob;
    op.aux = h;
    const w = d.sqe(op, OP_RECVMSG, fd, h.addr, 1, 0);
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
        this.free(op);
        throw new SysError(-res, "recvmsg");
      }
      const m = msgs[k]!;
      const h = op.aux as Header;
      const data = op.buf!.bytes;
      const inBuf = Math.min(res, h.room);
      const first = this.readyOff === 0;
      const nameLen = first ? h.u32[NET.MSG_NAMELEN_OFF >> 2]! : 0;
      m.addrLen = nameLen;
      if (nameLen > 0) m.addr.set(h.bytes.subarray(NAME, NAME + Math.min(nameLen, SOCKADDR_MAX)));
      m.flags = first ? h.u32[NET.MSG_FLAGS_OFF >> 2]! | 0 : 0;
      this.takeControl(m, h, first);
      const cap = m.buf.byteLength;
      k++;
      if (this.datagram) {
        const n = inBuf < cap ? inBuf : cap;
        m.buf.set(n === data.byteLength ? data : data.subarray(0, n));
        m.len = n;
        m.size = res;
        if (res > cap) m.flags |= NET.MSG_TRUNC;
        this.consume();
        continue;
      }
      const left = inBuf - this.readyOff;
      const n = left < cap ? left : cap;
      m.buf.set(data.subarray(this.readyOff, this.readyOff + n));
      m.len = m.size = n;
      this.readyOff += n;
      if (this.readyOff >= inBuf) this.consume();
      break; // a stream receive is one message: bytes do not merge across them
    }
    return k;
  }

  /** Hands a message's ancillary data to `m` (with its first part); what `m` has no room for is closed. */
  private takeControl(m: Msg, h: Header, first: boolean): void {
    const word = NET.MSG_CONTROLLEN_OFF >> 2;
    const clen = first ? h.u32[word]! : 0;
    m.controlLen = 0;
    if (clen === 0) return;
    if (m.control === null || clen > m.control.byteLength) {
      h.closeFds();
      m.flags |= NET.MSG_CTRUNC;
      return;
    }
    m.control.set(h.bytes.subarray(CTRL, CTRL + clen));
    m.controlLen = clen;
    h.u32[word] = 0; // handed out: a later close must not close them again
  }

  private consume(): void {
    const op = this.ready.shift()!;
    this.readyOff = 0;
    this.free(op);
  }

  /** Sends `count` messages: directly when it can (datagrams), else as one linked chain; the prefix that went out. */
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
      if (this.datagram && this.sends.length === 0) {
        this.held[0] = 0;
        const r = attemptMsgs(fd, false, msgs, count, flags | SYS.MSG_DONTWAIT | SYS.MSG_NOSIGNAL, this.held);
        if (this.held[0] !== 0) this.sendErr = this.held[0]!;
        if (r > 0) return r;
        if (r !== -EAGAIN && r !== -EINTR) throw new SysError(-r, "sendmsg");
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
    for (const op of ops) this.free(op);
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
      if (ctrl > MAX_CONTROL) throw new RangeError(`Ancillary data of ${ctrl} bytes: one message carries at most ${MAX_CONTROL} here`);
      const h = this.header();
      const ob = d.pool.get(len);
      h.layout(m.addrLen, ctrl, ob.addr, len);
      if (m.addrLen > 0) h.bytes.set(m.addr.subarray(0, m.addrLen), NAME);
      if (ctrl > 0) h.bytes.set(m.control!.subarray(0, ctrl), CTRL);
      if (len > 0) ob.bytes.set(len === m.buf.byteLength ? m.buf : m.buf.subarray(0, len));
      const op = d.op(K_PLAIN, this, this.owner);
      op.tag = T_SEND;
      // SAFETY: the copies in the header and `ob` are held by the op until its final CQE (see arm()).
      op.buf = ob;
      op.aux = h;
      const w = d.sqe(op, OP_SENDMSG, fd, h.addr, 1, 0);
      d.ring.setOpFlags(w, flags);
      if (i < count - 1) d.ring.setSqeFlags(w, U.IOSQE_IO_LINK);
      ops.push(op);
    }
    return ops;
  }

  /**
   * A receive op completed (it is DONE): queue it in CQE order and wake the reader. EAGAIN
   * and EINTR are no message (several ops armed on one socket race for each datagram, and
   * the kernel may give a loser EAGAIN): the op is freed and the reader re-polls.
   */
  onCqe(op: UringOp, res: number, _flags: number, _final: boolean): void {
    op.res = res;
    const i = this.armed.indexOf(op);
    if (i >= 0) this.armed.splice(i, 1);
    if (this.closed) {
      if (res >= 0) (op.aux as Header).closeFds();
      this.driver.release(op);
      return;
    }
    if (res === -EAGAIN || res === -EINTR) this.free(op);
    else this.ready.push(op);
    const w = this.recvWaker;
    this.recvWaker = null;
    this.unwait();
    w?.wake();
  }

  /** A receive that completed after close() cancelled it: its fds are closed (its memory goes with the op). */
  orphan(op: UringOp, res: number, _flags: number): void {
    if (op.tag === T_RECV && res >= 0 && op.aux !== null) (op.aux as Header).closeFds();
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
      if (op.state === ST_DONE) this.free(op);
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
      if (op.res >= 0) (op.aux as Header).closeFds();
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

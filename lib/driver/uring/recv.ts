/**
 * Multishot recv for one socket on the io_uring backend: one IORING_OP_RECV with
 * IORING_RECV_MULTISHOT and IOSQE_BUFFER_SELECT over the driver's provided buffer ring
 * (pbuf.ts) stays armed while data keeps coming; every CQE names a buffer the
 * kernel filled, and that buffer id is queued here (no copy) until reads have consumed
 * it, then recycled into the ring. Reads copy from the queue into the caller's array.
 *
 * Order: the queue holds bytes in arrival order; EOF (res 0) and an error are recorded
 * behind it and delivered only once the queue is empty.
 *
 * Cancellation: the armed op belongs to the socket, not to a read future. A cancelled
 * read only forgets its waker; bytes that arrive stay queued for the next read, so no
 * byte is lost. close() recycles the queued buffers and cancels the op with an
 * ASYNC_CANCEL of its own (the op stays SUBMITTED, so every later CQE still reaches
 * {@link MultishotRecv.onCqe}, which recycles its buffer; the final CQE frees the op).
 *
 * Re-arming: a CQE without IORING_CQE_F_MORE ends the op (the kernel's choice, ENOBUFS
 * when the ring ran dry, our own cancel). Nothing is re-armed from the CQ: the next read
 * that finds the queue empty arms again, if the ring has a free buffer; otherwise
 * ({@link MultishotRecv.canArm} false) the socket uses its single-shot recv for that
 * read, so a starved ring delays no reader and loses nothing (the bytes wait in the
 * kernel's socket buffer).
 *
 * Backpressure: a socket whose queue reaches QUEUE_MAX buffers (nobody reads it) cancels
 * its op, so one idle reader cannot drain the shared ring or the peer's flow control.
 *
 * Accounting: the armed op is a background op (it may sit idle forever on a quiet
 * connection); a read waiting on it counts as driver work (startWaiting) while it waits.
 *
 * Must never: recycle a buffer id before its CQE named it or twice, deliver EOF or an
 * error ahead of queued bytes, or have two recv ops of one socket in flight.
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import * as U from "../../../ffi/uring.ts";
import { copyFromAddress } from "../../../ffi/libc.ts";
import { ECANCELED, ENOBUFS } from "../../../ffi/errno.ts";
import type { Waker } from "../../future.ts";
import { K_PLAIN, ST_DETACHED, type FdOwnerCount, type OpSink, type UringOp } from "./op.ts";
import type { UringDriver } from "./driver.ts";
import type { BufRing } from "./pbuf.ts";

/** Buffers one socket may hold before its multishot recv is stopped. */
const QUEUE_MAX = 8;

/**
 * The multishot receive side of a UringSocket.
 *
 * @example
 * ```ts
 * const mr = new MultishotRecv(driver, driver.pbuf!, fd, owner);
 * if (mr.queued === 0 && !mr.ended && mr.canArm()) mr.arm();
 * const n = mr.take(buf, bufs); // after a CQE woke mr.waker
 * mr.close();
 * ```
 */
export class MultishotRecv implements OpSink {
  /** The armed op, or null. */
  op: UringOp | null = null;
  /** The reader to wake when a CQE arrives. */
  waker: Waker | null = null;
  /** Recorded behind the queue: EOF, or an error (−errno) for the next read. */
  eof = false;
  err = 0;
  // Queue of (buffer id, start, end) triples, FIFO; `head` is the oldest.
  private readonly q: number[] = [];
  private head = 0;
  private stopping = false;
  private closed = false;
  private counted = false;

  constructor(
    private readonly driver: UringDriver,
    private readonly ring: BufRing,
    private readonly fd: number,
    /** The socket that owns `fd`: the armed op is counted as naming it (owner.ts). */
    private readonly owner: FdOwnerCount,
  ) {}

  /** Buffers queued and not yet fully read. */
  get queued(): number {
    return (this.q.length - this.head) / 3;
  }

  /** Whether EOF or an error waits for the next read. */
  get ended(): boolean {
    return this.eof || this.err !== 0;
  }

  /** True when a fresh op could get a buffer (else the caller reads single-shot). */
  canArm(): boolean {
    return this.op === null && this.ring.available > 0;
  }

  /** Submits the multishot recv. */
  arm(): void {
    const d = this.driver;
    const op = d.op(K_PLAIN, this, this.owner);
    op.multishot = true;
    op.background = true;
    this.stopping = false;
    // SAFETY: no memory of ours is named: the kernel picks buffers from the registered
    // ring, each ours again only once a CQE names it.
    const w = d.sqe(op, U.OP_RECV, this.fd, 0, 0, 0);
    d.ring.setIoprio(w, U.RECV_MULTISHOT);
    d.ring.setSqeFlags(w, U.IOSQE_BUFFER_SELECT);
    d.ring.setBufGroup(w, this.ring.bgid);
    this.op = op;
  }

  /** Stores the reader's waker; counts it as driver work while it waits. */
  wait(w: Waker): void {
    this.waker = w;
    if (!this.counted) {
      this.counted = true;
      this.driver.startWaiting();
    }
  }

  /** Forgets the reader (woken, cancelled, or closed). */
  unwait(): Waker | null {
    const w = this.waker;
    this.waker = null;
    if (this.counted) {
      this.counted = false;
      this.driver.stopWaiting();
    }
    return w;
  }

  /** Every CQE of the armed op (see the module header). */
  onCqe(op: UringOp, res: number, flags: number, final: boolean): void {
    if ((flags & U.CQE_F_BUFFER) !== 0) {
      const bid = flags >>> 16;
      this.ring.take();
      if (res > 0 && !this.closed) this.q.push(bid, 0, res);
      else this.ring.recycle(bid);
    }
    if (res === 0) this.eof = true;
    else if (res < 0 && res !== -ENOBUFS && res !== -ECANCELED) this.err = res;
    if (final) {
      this.op = null;
      this.driver.release(op);
    } else if (this.queued >= QUEUE_MAX && !this.stopping) {
      this.stop(op);
    }
    this.unwait()?.wake();
  }

  /** Asks the kernel to end the op; its remaining CQEs still come to onCqe. */
  private stop(op: UringOp): void {
    this.stopping = true;
    const c = this.driver.op(K_PLAIN, null);
    c.state = ST_DETACHED;
    this.driver.sqe(c, U.OP_ASYNC_CANCEL, -1, op.token, 0, 0);
  }

  /** Copies queued bytes into buf (or across bufs, in order), recycling emptied buffers. */
  take(buf: Uint8Array | null, bufs: readonly Uint8Array[]): number {
    if (buf !== null) return this.fill(buf, 0);
    let done = 0;
    for (let i = 0; i < bufs.length && this.head < this.q.length; i++) {
      const b = bufs[i]!;
      const n = this.fill(b, 0);
      done += n;
      if (n < b.byteLength) break;
    }
    return done;
  }

  /** Copies from the queue's head into dst[off…] until dst is full or the queue empty. */
  private fill(dst: Uint8Array, off: number): number {
    const q = this.q;
    const ring = this.ring;
    let at = off;
    while (this.head < q.length && at < dst.byteLength) {
      const h = this.head;
      const bid = q[h]!;
      const start = q[h + 1]!;
      const end = q[h + 2]!;
      const room = dst.byteLength - at;
      const k = end - start < room ? end - start : room;
      // SAFETY: buffer `bid` is ours (taken from a CQE, not yet recycled) and the ring is
      // mapped until close(); a memcpy, as a view per copy would cost more than the copy.
      copyFromAddress(dst, at, ring.address(bid) + start, k);
      at += k;
      if (start + k === end) this.pop(bid);
      else q[h + 1] = start + k;
    }
    return at - off;
  }

  private pop(bid: number): void {
    this.head += 3;
    if (this.head === this.q.length) this.q.length = this.head = 0;
    this.ring.recycle(bid);
  }

  /** Recycles the queue and cancels the op; later CQEs recycle their own buffers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (let i = this.head; i < this.q.length; i += 3) this.ring.recycle(this.q[i]!);
    this.q.length = this.head = 0;
    if (this.op !== null && !this.stopping) this.stop(this.op);
    this.unwait()?.wake();
  }
}

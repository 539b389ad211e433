/**
 * The io_uring driver: completion-based I/O behind the same Driver the executor turns.
 * It keeps Driver's timer wheel, clock and currentDriver plumbing; its turn() hands every
 * SQE written during the tick to the kernel and waits for completions in one
 * io_uring_enter (bounded by the next timer), then settles the ops their CQEs name.
 *
 * The op table: every SQE belongs to a {@link UringOp} in a slab, named in user_data by
 * index | gen << 20. An op moves through
 *
 *     FREE → SUBMITTED (waiting: its waker) → DONE (res stored, waker woken) → FREE
 *                     ↘ CANCELLING (its future is gone) → FREE at the final CQE
 *
 * Cancellation (seed 004's race) is decided in one place, {@link UringDriver.complete},
 * when the CQE arrives: a non-negative result on a CANCELLING op is a completion nobody
 * will see, handed to `orphan` (an accepted or opened fd is closed; received bytes go to
 * the socket's stash, see io/uring_socket.ts); anything else means it was cancelled. An
 * op cancelled before its SQE reached the kernel is rewritten into a NOP (its CQE still
 * arrives, so the rule stays "decided at the CQE"); one already in the kernel gets an
 * ASYNC_CANCEL.
 *
 * The provided buffer ring (`pbuf`, driver/uring_pbuf.ts) is registered at setup when the
 * kernel accepts it (else `caps.multishotRecv` is false and recv stays single-shot); it is
 * unregistered in close(), after every op's final CQE.
 *
 * Invariants:
 * - An op's owned memory (`buf`, `aux`) stays referenced from this table until the op's
 *   final CQE, even after its future was cancelled: the kernel may write into it.
 * - `inflight` counts ops whose final CQE has not arrived (background ops excluded), so
 *   the executor's deadlock check sees them as work.
 *
 * Must never: free an op before its final CQE, wake while iterating the CQ (wakers only
 * enqueue), or block when asked for a zero wait.
 */
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import { UringPoller } from "./poll.ts";
import { K_PLAIN, K_FD, ST_CANCELLING, ST_DETACHED, ST_DONE, ST_FREE, ST_SUBMITTED, UringOp, type OpSink, type UringCaps } from "./op.ts";
import { Driver } from "../driver.ts";
import { now } from "../../time/clock.ts";
import { Ring, type RingOptions, type RingPath } from "./ring.ts";
import { BufferPool } from "./buf.ts";
import { BufRing, PBUF_COUNT } from "./pbuf.ts";

export { K_PLAIN, K_FD, ST_CANCELLING, ST_DETACHED, ST_DONE, ST_FREE, ST_SUBMITTED, UringOp, type OpSink, type UringCaps } from "./op.ts";

const INDEX_BITS = 20;
const INDEX_MASK = (1 << INDEX_BITS) - 1;
const GEN_MASK = 0x7ff;
import { SysError } from "../../errors.ts";

/**
 * A Driver over io_uring.
 *
 * @example
 * ```ts
 * const d = new UringDriver({ path: "raw" });
 * const op = d.op(K_PLAIN, null);
 * d.sqe(op, OP_NOP, -1, 0, 0, 0);
 * while (op.state !== ST_DONE) d.turn(-1);
 * d.release(op);
 * d.close();
 * ```
 */
export class UringDriver extends Driver {
  readonly ring: Ring;
  readonly pool = new BufferPool();
  readonly caps: UringCaps;
  /** The provided buffer ring multishot recv selects from (null: registration refused). */
  readonly pbuf: BufRing | null;
  /** Ops whose final CQE is still to come (background ops excluded). */
  inflight = 0;
  private readonly ops: UringOp[] = [];
  private readonly opGens: number[] = [];
  private readonly freeOps: number[] = [];
  private readonly bridge: UringPoller;
  private dead = false;

  /** Hands readiness events the poll bridge collected to the Driver's dispatch. */
  flushBridge(): void {
    const ev = this.bridge.take();
    if (ev > 0) this.dispatch(ev);
  }

  constructor(opts: RingOptions = {}) {
    const ring = Ring.open(opts);
    const bridge = new UringPoller();
    super(bridge);
    this.ring = ring;
    this.bridge = bridge;
    const probe = ring.probe();
    // REEL_URING_PBUF=N sizes the provided buffer ring (a power of two); 0 turns it off.
    const count = Number(process.env.REEL_URING_PBUF ?? PBUF_COUNT);
    const pb = count === 0 ? -1 : BufRing.open(ring, 0, count);
    this.pbuf = typeof pb === "number" ? null : pb;
    this.caps = {
      // Multishot accept came with 5.19, as did ASYNC_CANCEL_ANY; no probe bit says so.
      multishotAccept: probe[U.OP_SOCKET] === 1,
      // Provided buffer rings came with 5.19, multishot recv with 6.0: a registered ring
      // and the probe's OP_SOCKET bit (5.19) are the evidence; EINVAL at the first CQE
      // would still fall back, op by op (io/uring_recv.ts).
      multishotRecv: this.pbuf !== null && probe[U.OP_SOCKET] === 1,
      deferTaskrun: (ring.flags & U.SETUP_DEFER_TASKRUN) !== 0,
      probe,
    };
    try {
      bridge.attach(this);
      ring.submit(); // the notify poll goes in now: a fresh driver has nothing pending
    } catch (err) {
      this.pbuf?.close(true);
      ring.close();
      throw err;
    }
  }

  get path(): RingPath {
    return this.ring.path;
  }

  /** Takes a free op slot. */
  op(kind: number, sink: OpSink | null): UringOp {
    let op: UringOp;
    if (this.freeOps.length > 0) op = this.ops[this.freeOps.pop()!]!;
    else {
      if (this.ops.length > INDEX_MASK) throw new RangeError(`Too many io_uring ops in flight: ${this.ops.length}`);
      op = new UringOp(this.ops.length);
      this.ops.push(op);
      this.opGens.push(0);
    }
    op.token = op.index | (this.opGens[op.index]! << INDEX_BITS);
    op.kind = kind;
    op.sink = sink;
    return op;
  }

  /** Makes room for `n` SQEs written back to back (a linked chain must not be split). */
  reserve(n: number): void {
    if (this.ring.space >= n) return;
    this.ring.submit();
    if (this.ring.space >= n) return;
    this.reap();
    this.ring.submit();
    if (this.ring.space < n) throw new SysError(16, "io_uring_enter", undefined, "submission queue full");
  }

  /** Writes `op`'s SQE; returns its word base for the ring's set* helpers. */
  sqe(op: UringOp, opcode: number, fd: number, addr: number, len: number, off: number): number {
    if (this.dead) throw new SysError(9, "io_uring_enter", "EBADF", "the io_uring driver is closed");
    this.reserve(1);
    op.pos = this.ring.position;
    if (op.state === ST_FREE) op.state = ST_SUBMITTED;
    if (!op.background) {
      this.inflight++;
      this.live++; // an op in the kernel may wake a task, as a registration may (hosted keepAlive)
    }
    return this.ring.prep(opcode, fd, addr, len, off, op.token);
  }

  /**
   * Cancels `op` on behalf of a future that is gone. SUBMITTED: a NOP rewrite if the SQE
   * is still ours, else an ASYNC_CANCEL; the outcome is decided at the CQE. DONE (a
   * completion the future never re-polled for): orphaned at once.
   */
  cancel(op: UringOp): void {
    if (op.state === ST_SUBMITTED) {
      op.waker = null;
      op.state = ST_CANCELLING;
      if (this.ring.neuter(op.pos)) op.neutered = true;
      else this.cancelToken(op.token);
    } else if (op.state === ST_DONE) {
      if (op.res >= 0) this.orphan(op, op.res, op.cflags);
      this.release(op);
    }
  }

  /** Queues an ASYNC_CANCEL for the op with user_data `token`. */
  private cancelToken(token: number): void {
    const c = this.op(K_PLAIN, null);
    c.state = ST_DETACHED;
    this.sqe(c, U.OP_ASYNC_CANCEL, -1, token, 0, 0);
  }

  /** Frees an op whose final CQE has arrived (or that never reached the kernel). */
  release(op: UringOp): void {
    if (op.state === ST_FREE) return;
    if (op.buf !== null) this.pool.put(op.buf);
    op.buf = null;
    op.aux = null;
    op.sink = null;
    op.waker = null;
    op.state = ST_FREE;
    op.neutered = op.multishot = op.background = false;
    op.res = op.cflags = op.tag = 0;
    this.opGens[op.index] = (this.opGens[op.index]! + 1) & GEN_MASK;
    this.freeOps.push(op.index);
  }

  private orphan(op: UringOp, res: number, flags: number): void {
    if (op.sink !== null && op.sink.orphan !== undefined) op.sink.orphan(op, res, flags);
    else if (op.kind === K_FD) libc.close(res);
  }

  /** The one place a CQE settles its op (see the module header). */
  private complete(ud: number, res: number, flags: number): void {
    const op = this.ops[ud & INDEX_MASK];
    if (op === undefined || op.token !== ud) return; // not ours (cannot happen: ops outlive their CQEs)
    const final = !op.multishot || (flags & U.CQE_F_MORE) === 0;
    if (final && !op.background) {
      this.inflight--;
      this.live--;
    }
    switch (op.state) {
      case ST_SUBMITTED:
        if (op.multishot) {
          if (final) op.state = ST_DONE;
          op.sink!.onCqe(op, res, flags, final);
          return;
        }
        op.res = res;
        op.cflags = flags;
        op.state = ST_DONE;
        if (op.waker !== null) {
          const w = op.waker;
          op.waker = null;
          w.wake();
        }
        return;
      case ST_CANCELLING:
        // Completed xor cancelled: a result ≥ 0 (not from a NOP rewrite) is a completion.
        if (res >= 0 && !op.neutered) this.orphan(op, res, flags);
        if (final) this.release(op);
        return;
      case ST_DETACHED:
        if (final) this.release(op);
        return;
    }
  }

  /** Settles every CQE in the ring; returns how many. */
  reap(): number {
    const ring = this.ring;
    const n = ring.ready();
    for (let i = 0; i < n; i++) this.complete(ring.cqeUserData(i), ring.cqeRes(i), ring.cqeFlags(i));
    ring.advance(n);
    this.flushBridge();
    return n;
  }

  /** One turn: submit this tick's SQEs, wait (≤ the next timer) for CQEs, settle them, fire timers. */
  override turn(maxWaitMs: number): number {
    const ring = this.ring;
    const wait = this.waitTimeout(maxWaitMs);
    this.bridge.drainHost();
    let n = 0;
    this.stats.turns++;
    if (wait !== 0 || ring.pending > 0 || this.inflight > 0 || ring.ready() > 0) {
      this.stats.submitted += ring.pending;
      this.stats.enters++;
      ring.submitAndWait(wait);
      n = this.reap();
      this.stats.events += n;
    }
    if (this.wheel.size > 0) this.wheel.advance(Math.floor(now()));
    return n;
  }

  override hasWork(): boolean {
    return this.inflight > 0 || super.hasWork();
  }

  /** Ops not yet freed (for leak tests). */
  get opsInUse(): number {
    return this.ops.length - this.freeOps.length;
  }

  /**
   * Cancels everything still in the kernel and reaps until the CQEs are in (bounded),
   * then unmaps the ring. Ops the kernel would not give back in time keep their memory
   * forever (a bounded leak is better than the kernel writing into freed memory).
   */
  override close(): void {
    if (this.dead) return;
    const pendingOps = this.ops.some((o) => o.state === ST_SUBMITTED || o.state === ST_CANCELLING || o.state === ST_DETACHED);
    if (pendingOps) {
      const c = this.op(K_PLAIN, null);
      c.state = ST_DETACHED;
      const w = this.sqe(c, U.OP_ASYNC_CANCEL, -1, 0, 0, 0);
      this.ring.setOpFlags(w, U.ASYNC_CANCEL_ANY | U.ASYNC_CANCEL_ALL);
      for (let i = 0; i < 100 && this.ops.some((o) => o.state !== ST_FREE && o.state !== ST_DONE); i++) {
        this.ring.submitAndWait(10);
        this.reap();
      }
      if (this.ops.some((o) => o.state !== ST_FREE && o.state !== ST_DONE)) graveyard.push(this.ops);
    }
    // Unregistered before unmapping; its memory stays mapped if an op might still write.
    this.pbuf?.close(graveyard.at(-1) === this.ops);
    this.dead = true;
    this.bridge.close();
    this.ring.close();
  }
}

/** Op tables of drivers closed while the kernel still held some of their buffers. */
const graveyard: UringOp[][] = [];

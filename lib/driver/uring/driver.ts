/**
 * The io_uring driver: completion-based I/O behind the Driver contract. Its turn hands
 * every SQE written during the tick to the kernel and waits for completions in one
 * io_uring_enter (bounded by the next timer), then settles the ops their CQEs name.
 *
 * The op table: every SQE belongs to a {@link UringOp} in the generational slab, named in
 * user_data by its token. An op moves through
 *
 *     FREE → SUBMITTED (waiting: its waker) → DONE (res stored, waker woken) → FREE
 *                     ↘ CANCELLING (its future is gone) → FREE at the final CQE
 *
 * Cancellation (the kernel's cancel-vs-completion race) is decided in one place,
 * {@link UringDriver.complete}, when the CQE arrives: a non-negative result on a
 * CANCELLING op is a completion nobody will see, handed to its sink's `orphan` (an
 * accepted or opened fd is closed; received bytes go to the socket's stash, socket.ts);
 * anything else means it was cancelled. An op cancelled before its SQE reached the kernel
 * is rewritten into a NOP (its CQE still arrives, so the rule stays "decided at the CQE");
 * one already in the kernel gets an ASYNC_CANCEL.
 *
 * Readiness on this backend (for the per-fd `pollReady`) comes through the poll bridge
 * (poll.ts) feeding the same registry the readiness backends use. The provided buffer
 * ring (`pbuf`, pbuf.ts) is registered at setup when the kernel accepts it (else
 * `caps.multishotRecv` is false and recv stays single-shot).
 *
 * Invariants:
 * - An op's owned memory (`buf`, `aux`) stays referenced from this table until the op's
 *   final CQE, even after its future was cancelled: the kernel may write into it.
 * - Each op that is not background is driver work from its SQE to its final CQE, so the
 *   executor's deadlock check sees it; each op naming an owned fd is counted by the owner
 *   (owner.ts) over the same span.
 *
 * Must never: free an op before its final CQE, wake while iterating the CQ (wakers only
 * enqueue), reap re-entrantly, or block when asked for a zero wait.
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import { EBADF, EBUSY } from "../../../ffi/errno.ts";
import { SysError } from "../../errors.ts";
import { Driver } from "../driver.ts";
import { Registry, type ScheduledIo } from "../registry.ts";
import { Retirer } from "../retire.ts";
import { Slab } from "../slab.ts";
import type { FileFd, FileFuture, IoFd, PathOps, StatFields } from "../fd.ts";
import { K_FD, K_PLAIN, ST_CANCELLING, ST_DETACHED, ST_DONE, ST_FREE, ST_SUBMITTED, UringOp, type FdOwnerCount, type OpKind, type OpSink, type UringCaps } from "./op.ts";
import { ReadinessBridge } from "./poll.ts";
import { Ring, type RingOptions, type RingPath } from "./ring.ts";
import { BufferPool } from "./buf.ts";
import { BufRing, PBUF_COUNT } from "./pbuf.ts";
import { UringFd } from "./socket.ts";
import { UringFile, openOnRing, statOnRing } from "./files.ts";
import { UringPaths } from "./paths.ts";
import { PoolClient } from "../pool/pool.ts";

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
  readonly name = "uring";
  readonly ring: Ring;
  readonly pool = new BufferPool();
  readonly caps: UringCaps;
  /** The provided buffer ring multishot recv selects from (null: registration refused). */
  readonly pbuf: BufRing | null;
  readonly registry: Registry;
  /** Numbers of closed fds that an op may still act on (owner.ts, retire.ts). */
  readonly retirer: Retirer;
  private readonly ops = new Slab<UringOp>("io_uring ops in flight");
  private readonly bridge: ReadinessBridge;
  /** Ops whose final CQE is still to come (background ops excluded). */
  private inflightOps = 0;
  private reaping = false;

  constructor(opts: RingOptions = {}) {
    super();
    const ring = Ring.open(opts);
    this.ring = ring;
    const probe = ring.probe();
    // REEL_URING_PBUF=N sizes the provided buffer ring (a power of two); 0 turns it off.
    const count = Number(process.env.REEL_URING_PBUF ?? PBUF_COUNT);
    const pb = count === 0 ? -1 : BufRing.open(ring, 0, count);
    this.pbuf = typeof pb === "number" ? null : pb;
    // OP_SOCKET (5.19) marks the 5.19 features no probe bit names: multishot accept,
    // ASYNC_CANCEL_ANY and _FD; multishot recv came with 6.0 and needs a registered ring
    // (EINVAL at the first CQE would still fall back, op by op: recv.ts).
    const is519 = probe[U.OP_SOCKET] === 1;
    this.caps = {
      multishotAccept: is519,
      multishotRecv: this.pbuf !== null && is519,
      cancelByFd: is519,
      deferTaskrun: (ring.flags & U.SETUP_DEFER_TASKRUN) !== 0,
      probe,
    };
    this.bridge = new ReadinessBridge(this);
    this.registry = new Registry(this.bridge, this);
    let retirer: Retirer | null = null;
    try {
      retirer = new Retirer();
      this.bridge.attach();
      ring.submit(); // the notify poll goes in now: a fresh driver has nothing pending
    } catch (err) {
      retirer?.close();
      this.pbuf?.close(true);
      this.bridge.close();
      ring.close();
      throw err;
    }
    this.retirer = retirer;
  }

  get path(): RingPath {
    return this.ring.path;
  }

  get watchFd(): number {
    return this.bridge.fd;
  }

  get registrations(): number {
    return this.registry.size;
  }

  /** Ops in the kernel that a task waits for (for metrics and tests). */
  get inflight(): number {
    return this.inflightOps;
  }

  override get ringInflight(): number | null {
    return this.inflightOps;
  }

  /**
   * A task waits on a background op (a reader on an armed multishot recv): count it as
   * in flight and as driver work until {@link stopWaiting}.
   */
  startWaiting(): void {
    this.inflightOps++;
    this.addWork();
  }

  /** The waiter of {@link startWaiting} was woken, cancelled or closed. */
  stopWaiting(): void {
    this.inflightOps--;
    this.doneWork();
  }

  /** Ops not yet freed (for leak tests). */
  get opsInUse(): number {
    return this.ops.size;
  }

  socket(fd: number, flags = 0): IoFd {
    return new UringFd(this, fd, flags);
  }

  file(fd: number): FileFd {
    return new UringFile(this, fd);
  }

  openFile(path: string, flags: number, mode: number): FileFuture<number> {
    return openOnRing(this, path, flags, mode);
  }

  statPath(path: string): FileFuture<StatFields> {
    return statOnRing(this, path);
  }

  private pathOps: UringPaths | null = null;
  private pool_: PoolClient | null = null;

  /** Path ops: ring ops where the kernel has them, the blocking pool otherwise (paths.ts). */
  get paths(): PathOps {
    return (this.pathOps ??= new UringPaths(this));
  }

  /** A shared (blocking) fd: ring ops work on it as they are, so it is a UringFd like any other. */
  inherited(fd: number): IoFd {
    return new UringFd(this, fd);
  }

  /** The blocking pool, for the calls the ring has no opcode for; closed with the driver. */
  poolClient(): PoolClient {
    if (this.pool_ === null) {
      const client = new PoolClient(this.registry, this);
      this.pool_ = client;
      this.atClose(() => client.close());
    }
    return this.pool_;
  }

  /** Takes a free op slot. `owner`: the owner of the fd the op will name (owner.ts). */
  op(kind: OpKind, sink: OpSink | null, owner: FdOwnerCount | null = null): UringOp {
    const op = this.ops.insert((i) => new UringOp(i), true);
    op.uses++;
    op.kind = kind;
    op.sink = sink;
    op.owner = owner;
    return op;
  }

  /** Makes room for `n` SQEs written back to back (a linked chain must not be split). */
  reserve(n: number): void {
    if (this.ring.space >= n) return;
    this.ring.submit();
    if (this.ring.space >= n) return;
    this.reap();
    this.ring.submit();
    if (this.ring.space < n) throw new SysError(EBUSY, "io_uring_enter", undefined, "submission queue full");
  }

  /** Writes `op`'s SQE; returns its word base for the ring's set* helpers. */
  sqe(op: UringOp, opcode: number, fd: number, addr: number, len: number, off: number): number {
    if (this.isClosed) throw new SysError(EBADF, "io_uring_enter", "EBADF", "the io_uring driver is closed");
    this.reserve(1);
    op.pos = this.ring.position;
    if (op.state === ST_FREE) op.state = ST_SUBMITTED;
    if (!op.background) {
      this.inflightOps++;
      this.addWork(); // an op in the kernel may wake a task, as a registration may
    }
    op.owner?.opStarted();
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
      if (this.ring.neuter(op.pos)) this.neutered(op);
      else this.cancelToken(op.token);
    } else if (op.state === ST_DONE) {
      if (op.res >= 0) this.orphan(op, op.res, op.cflags);
      this.release(op);
    }
  }

  /** An op whose SQE became a NOP no longer names its fd. */
  private neutered(op: UringOp): void {
    op.neutered = true;
    const owner = op.owner;
    op.owner = null;
    owner?.opFinished();
  }

  /** Queues an ASYNC_CANCEL for the op with user_data `token`. */
  private cancelToken(token: number): void {
    const c = this.op(K_PLAIN, null);
    c.state = ST_DETACHED;
    this.sqe(c, U.OP_ASYNC_CANCEL, -1, token, 0, 0);
  }

  /**
   * Rewrites every SQE naming `fd` that the kernel has not seen into a NOP (close, step
   * 1: owner.ts). Its op is settled as cancelled when the NOP's CQE arrives.
   */
  neuterFd(fd: number): void {
    const ring = this.ring;
    const end = ring.position;
    for (let p = ring.unpublished; p !== end; p = (p + 1) >>> 0) {
      const code = ring.sqeOpcode(p);
      if (code === U.OP_NOP || code === U.OP_ASYNC_CANCEL || ring.sqeFd(p) !== fd) continue;
      const op = this.ops.get(ring.sqeUserData(p));
      if (op === undefined || !ring.neuter(p)) continue;
      if (op.state === ST_SUBMITTED) {
        op.state = ST_CANCELLING;
        const w = op.waker;
        op.waker = null;
        w?.wake();
      }
      this.neutered(op);
    }
  }

  /**
   * Close, step 2 (owner.ts): cancels every op on `fd` in the kernel and reaps what that
   * settles, without waiting. Skipped inside the driver's own reap (the owner pins then).
   */
  cancelFd(fd: number, owner: { readonly kernelOps: number }): void {
    if (this.reaping || this.isClosed || !this.caps.cancelByFd) return;
    const c = this.op(K_PLAIN, null);
    c.state = ST_DETACHED;
    const w = this.sqe(c, U.OP_ASYNC_CANCEL, fd, 0, 0, 0);
    this.ring.setOpFlags(w, U.ASYNC_CANCEL_FD | U.ASYNC_CANCEL_ALL);
    // Two rounds: the cancel itself, then completions its task work may have posted.
    for (let i = 0; i < 2 && owner.kernelOps > 0; i++) {
      this.stats.submitted += this.ring.pending;
      this.ring.submitAndWait(0);
      this.reap();
    }
  }

  /** Frees an op whose final CQE has arrived (or that never reached the kernel). */
  release(op: UringOp): void {
    if (op.state === ST_FREE) return;
    if (op.buf !== null) this.pool.put(op.buf);
    op.buf = null;
    op.aux = null;
    op.sink = null;
    op.owner = null;
    op.waker = null;
    op.state = ST_FREE;
    op.neutered = op.multishot = op.background = false;
    op.res = op.cflags = op.tag = 0;
    this.ops.remove(op, true);
  }

  private orphan(op: UringOp, res: number, flags: number): void {
    if (op.sink !== null && op.sink.orphan !== undefined) op.sink.orphan(op, res, flags);
    else if (op.kind === K_FD) libc.close(res);
  }

  /** The one place a CQE settles its op (see the module header). */
  private complete(ud: number, res: number, flags: number): void {
    const op = this.ops.get(ud);
    if (op === undefined) return; // not ours (cannot happen: ops outlive their CQEs)
    const final = !op.multishot || (flags & U.CQE_F_MORE) === 0;
    if (final) {
      if (!op.background) {
        this.inflightOps--;
        this.doneWork();
      }
      const owner = op.owner;
      op.owner = null;
      owner?.opFinished();
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
    if (this.reaping) return 0;
    this.reaping = true;
    try {
      const ring = this.ring;
      const n = ring.ready();
      for (let i = 0; i < n; i++) this.complete(ring.cqeUserData(i), ring.cqeRes(i), ring.cqeFlags(i));
      ring.advance(n);
      this.bridge.flush();
      return n;
    } finally {
      this.reaping = false;
    }
  }

  /** Registers `fd` for readiness through the poll bridge, its poll op counted by `owner`. */
  bridgeRegister(owner: FdOwnerCount, fd: number): ScheduledIo {
    return this.bridge.withOwner(owner, () => this.registry.register(fd));
  }

  /** Readiness events the bridge collected, handed to the registry. */
  dispatchBridge(n: number): void {
    this.registry.dispatch(this.bridge.events, n);
  }

  /** One wait: submit this tick's SQEs, wait (≤ timeout) for CQEs, settle them. */
  protected poll(timeoutMs: number): number {
    const ring = this.ring;
    this.bridge.drainHost();
    if (timeoutMs === 0 && ring.pending === 0 && this.inflightOps === 0 && ring.ready() === 0) return 0;
    this.stats.submitted += ring.pending;
    this.stats.enters++;
    ring.submitAndWait(timeoutMs);
    return this.reap();
  }

  /**
   * Cancels everything still in the kernel and reaps until the CQEs are in (bounded),
   * then unmaps the ring. Ops the kernel would not give back in time keep their memory
   * forever (a bounded leak is better than the kernel writing into freed memory).
   */
  protected shutdown(): void {
    let stuck = false;
    if (this.ops.size > 0) {
      const c = this.op(K_PLAIN, null);
      c.state = ST_DETACHED;
      // sqe() refuses once closed: write this last SQE directly.
      this.reserve(1);
      c.pos = this.ring.position;
      const w = this.ring.prep(U.OP_ASYNC_CANCEL, -1, 0, 0, 0, c.token);
      this.ring.setOpFlags(w, U.ASYNC_CANCEL_ANY | U.ASYNC_CANCEL_ALL);
      const busy = () => {
        let n = 0;
        this.ops.forEach((o) => {
          if (o.state !== ST_DONE) n++;
        });
        return n;
      };
      for (let i = 0; i < 100 && busy() > 0; i++) {
        this.ring.submitAndWait(10);
        this.reap();
      }
      if (busy() > 0) {
        stuck = true;
        this.ops.forEach((o) => graveyard.push(o));
      }
    }
    // Unregistered before unmapping; its memory stays mapped if an op might still write.
    this.pbuf?.close(stuck);
    this.registry.closeAll();
    this.bridge.close();
    this.ring.close();
    this.retirer.close();
  }
}

/** Ops of drivers closed while the kernel still held some of their buffers. */
const graveyard: UringOp[] = [];

export { K_FD, K_PLAIN, ST_CANCELLING, ST_DETACHED, ST_DONE, ST_FREE, ST_SUBMITTED, UringOp, type OpSink, type UringCaps };

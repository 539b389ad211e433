/**
 * io_uring ops as futures: one hand-written state machine, {@link UringFuture}, for every
 * op that is not a socket stream op (those live in socket.ts): nop, timeout, file read,
 * write, statx, fsync, openat, and linked chains (IOSQE_IO_LINK, with an optional
 * LINK_TIMEOUT).
 *
 * The future keeps no state machine of its own: before its first poll it has no op; then
 * its op (SUBMITTED → DONE in the driver's table, driver.ts) is the state; once the value
 * was taken or the future was cancelled, `done` is set and the op is the driver's alone
 * (a cancelled one is settled at its CQE).
 *
 * An op on an owned file names the file's fd at submission and is counted by the file
 * (owner.ts); a file closed before the op was submitted, or while it was pending, fails
 * the op with EBADF.
 *
 * Buffer ownership: data moves through an {@link OwnedBuf} held by the op. A read copies
 * into the caller's array in the poll that completes (a caller's array detached
 * meanwhile is a TypeError, after the op was freed); a write copies the caller's bytes in
 * when the op is made. A cancelled read at an explicit offset loses nothing: the bytes are
 * still in the file and the caller's position did not advance.
 *
 * Must never: hand the caller's buffer to the kernel, resubmit an op, or swallow an error
 * (a negative result throws SysError naming the syscall; a timeout's -ETIME is its success).
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import { ptr } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import { ETIME } from "../../../ffi/errno.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll } from "../../future.ts";
import { currentDriver } from "../../current.ts";
import { RuntimeError, SysError } from "../../errors.ts";
import { closedError } from "../fd.ts";
import { K_PLAIN, ST_DETACHED, ST_DONE, type OpKind, type UringOp } from "./op.ts";
import type { UringDriver } from "./driver.ts";
import type { OwnedBuf } from "./buf.ts";
import type { UringFdOwner } from "./owner.ts";

/** One SQE, described. Buffers referenced here are owned by the op once submitted. */
export interface OpSpec {
  opcode: number;
  /** The fd the op names (ignored when an owner is given: its fd is used). */
  fd: number;
  /** A byte address (owned memory), or 0. */
  addr?: number;
  len?: number;
  /** File offset; -1 = the file's current position. */
  off?: number;
  addr2?: number;
  opFlags?: number;
  ioprio?: number;
  /** K_FD when the result is an fd (closed if it completes after a cancel). */
  kind?: OpKind;
  /** Owned data buffer (SAFETY: held by the op until its final CQE). */
  buf?: OwnedBuf | null;
  /** Other memory the kernel reads (a path, a timespec, a statx buffer). */
  aux?: object | null;
  /** For errors: "read", "openat", … */
  syscall: string;
  /** -ETIME counts as success (timeouts). */
  timeOk?: boolean;
}

/** The driver of the running runtime, which must be io_uring. */
export function uringDriver(): UringDriver {
  const d = currentDriver();
  if (d.name !== "uring") throw new RuntimeError("This operation needs the io_uring backend (REEL_BACKEND=uring)", "ENOTURING");
  return d as UringDriver;
}

/** Writes `spec`'s SQE for a fresh op (naming `owner`'s fd if given) and returns the op. */
function submit(d: UringDriver, spec: OpSpec, sqeFlags: number, owner: UringFdOwner | null): UringOp {
  const fd = owner !== null ? owner.fd : spec.fd;
  if (owner !== null && fd < 0) throw closedError(spec.syscall, "file");
  const op = d.op(spec.kind ?? K_PLAIN, null, owner);
  // SAFETY: the op holds the data buffer and aux memory until its final CQE.
  op.buf = spec.buf ?? null;
  op.aux = spec.aux ?? null;
  spec.buf = null; // the op owns it now (a failed submission must not free it twice)
  const w = d.sqe(op, spec.opcode, fd, spec.addr ?? 0, spec.len ?? 0, spec.off ?? 0);
  if (spec.opFlags !== undefined) d.ring.setOpFlags(w, spec.opFlags);
  if (spec.ioprio !== undefined) d.ring.setIoprio(w, spec.ioprio);
  if (spec.addr2 !== undefined) d.ring.setAddr2(w, spec.addr2);
  if (sqeFlags !== 0) d.ring.setSqeFlags(w, sqeFlags);
  return op;
}

/**
 * An io_uring op as a future: resolves to the CQE's result (≥ 0), throws SysError for a
 * negative one. `copyOut`: where a read's bytes go on completion; `owner`: the file whose
 * fd the op names.
 *
 * @example
 * ```ts
 * const n = yield* new UringFuture(null, { opcode: OP_NOP, fd: -1, syscall: "nop" });
 * ```
 */
export class UringFuture extends BaseFuture<number> {
  /** The op, from the first poll until the value is taken or the future cancelled. */
  private op: UringOp | null = null;
  /** `op.uses` when this future got it: see {@link UringFuture.ownOp}. */
  private use = 0;
  private done = false;

  constructor(
    private driver: UringDriver | null,
    private readonly spec: OpSpec,
    private readonly copyOut: Uint8Array | null = null,
    private readonly owner: UringFdOwner | null = null,
  ) {
    super();
  }

  /** @internal A future for an op already submitted (a linked chain member). */
  static submitted(d: UringDriver, op: UringOp, spec: OpSpec, copyOut: Uint8Array | null, owner: UringFdOwner | null): UringFuture {
    const f = new UringFuture(d, spec, copyOut, owner);
    f.op = op;
    f.use = op.uses;
    return f;
  }

  /**
   * The op if it is still this future's. Closing the file rewrites an op whose SQE was not
   * yet submitted into a NOP and hands it to the driver, which frees it at that NOP's CQE
   * and may give the same object to the next op (another file's read, a socket's
   * receive): a future polled or cancelled after that must not act on it.
   */
  private ownOp(): UringOp | null {
    const op = this.op;
    if (op !== null && op.uses !== this.use) this.op = null;
    return this.op;
  }

  poll(cx: Context): Poll<number> {
    if (this.done) throw new FutureStateError(`${this.spec.syscall} future polled after completion`);
    if (this.op === null) {
      if (this.owner !== null && this.owner.fd < 0) {
        this.cancel();
        throw closedError(this.spec.syscall, "file");
      }
      const d = this.driver ?? (this.driver = uringDriver());
      const fresh = submit(d, this.spec, 0, this.owner);
      this.op = fresh;
      this.use = fresh.uses;
    }
    const op = this.ownOp();
    if (op === null || (this.owner !== null && this.owner.fd < 0)) {
      // The file was closed while this op was pending: the op is abandoned to the driver.
      this.cancel();
      throw closedError(this.spec.syscall, "file");
    }
    if (op.state !== ST_DONE) {
      op.waker = cx.waker;
      return PENDING;
    }
    return this.finish(op);
  }

  private finish(op: UringOp): number {
    const res = op.res;
    this.done = true;
    this.op = null;
    const out = this.copyOut;
    const buf = op.buf;
    // A caller's buffer detached while the op was pending: free the op first, then fail.
    const detached = out !== null && (out.buffer as ArrayBuffer).detached;
    if (!detached && res > 0 && out !== null && buf !== null) out.set(buf.bytes.subarray(0, Math.min(res, out.byteLength)));
    this.driver!.release(op);
    if (detached) throw new TypeError("The read buffer is detached (its ArrayBuffer was transferred)");
    if (res >= 0 || (res === -ETIME && this.spec.timeOk === true)) return res < 0 ? 0 : res;
    throw new SysError(-res, this.spec.syscall);
  }

  /** Cancel before submit: nothing reached the ring. In flight: ASYNC_CANCEL (or a NOP rewrite). */
  override cancel(): void {
    if (this.done) return;
    this.done = true;
    const op = this.ownOp();
    this.op = null;
    if (op !== null) this.driver!.cancel(op);
    else if (this.spec.buf != null) {
      // Never submitted: its owned buffer goes straight back.
      this.driver?.pool.put(this.spec.buf);
      this.spec.buf = null;
    }
  }
}

/**
 * Submits `specs` as one IOSQE_IO_LINK chain: each starts only after the previous one
 * completed successfully (a failure cancels the rest with ECANCELED). `timeoutMs` adds a
 * LINK_TIMEOUT bounding the last op. Returns one future per op, already submitted.
 *
 * @example
 * ```ts
 * const [a, b] = linked([writeSpec(pool, fd, x, 0), writeSpec(pool, fd, y, 0)]);
 * yield* a; yield* b; // y landed after x
 * ```
 */
export function linked(
  specs: readonly OpSpec[],
  copyOuts: readonly (Uint8Array | null)[] = [],
  timeoutMs = -1,
  owner: UringFdOwner | null = null,
  driver: UringDriver = uringDriver(),
): UringFuture[] {
  const d = driver;
  d.reserve(specs.length + (timeoutMs >= 0 ? 1 : 0));
  const out: UringFuture[] = [];
  for (let i = 0; i < specs.length; i++) {
    const last = i === specs.length - 1;
    const flags = !last || timeoutMs >= 0 ? U.IOSQE_IO_LINK : 0;
    out.push(UringFuture.submitted(d, submit(d, specs[i]!, flags, owner), specs[i]!, copyOuts[i] ?? null, owner));
  }
  if (timeoutMs >= 0) {
    const ts = timespec(timeoutMs);
    const t = d.op(K_PLAIN, null);
    t.state = ST_DETACHED; // nobody awaits the timer itself
    // SAFETY: the timespec is held by the detached op until its CQE.
    t.aux = ts;
    d.sqe(t, U.OP_LINK_TIMEOUT, -1, ptr(ts) as number, 1, 0);
  }
  return out;
}

/** A struct __kernel_timespec for `ms`, ArrayBuffer-backed. */
export function timespec(ms: number): Int32Array {
  const ts = new Int32Array(new ArrayBuffer(16));
  const sec = Math.floor(ms / 1000);
  ts[0] = sec; // tv_sec (i64, low word; reel's timeouts stay far below 2^31 s)
  ts[2] = Math.round((ms - sec * 1000) * 1_000_000); // tv_nsec
  return ts;
}

/**
 * IORING_OP_NOP, on the current (io_uring) runtime.
 *
 * @example
 * ```ts
 * yield* nop(); // one trip through the ring
 * ```
 */
export function nop(): UringFuture {
  return new UringFuture(null, { opcode: U.OP_NOP, fd: -1, syscall: "nop" });
}

/**
 * IORING_OP_TIMEOUT: resolves after `ms` (a kernel timer, not reel's wheel).
 *
 * @example
 * ```ts
 * yield* uringTimeout(15);
 * ```
 */
export function uringTimeout(ms: number): UringFuture {
  const ts = timespec(ms);
  // SAFETY: ts (ArrayBuffer-backed) is the op's aux until its CQE.
  return new UringFuture(null, { opcode: U.OP_TIMEOUT, fd: -1, addr: ptr(ts) as number, len: 1, aux: ts, syscall: "timeout", timeOk: true });
}

/**
 * io_uring ops as futures: one hand-written state machine, {@link UringFuture}, for every
 * op that is not a socket stream op (those live in uring_socket.ts): nop, timeout, read,
 * write, readv/writev (into one owned buffer), openat, statx, fsync, close, shutdown,
 * and linked chains (IOSQE_IO_LINK, with an optional LINK_TIMEOUT).
 *
 *     INIT ──poll──▶ SUBMITTED (SQE written; waker on the op) ──CQE──▶ COMPLETED
 *       │                 │
 *       └──cancel──▶ CANCELLED ◀──cancel── (the driver decides at the CQE, uring.ts)
 *
 * Buffer ownership: data moves through an {@link OwnedBuf} held by the op. A read copies
 * into the caller's array in the poll that completes; a write copies the caller's bytes
 * in before submission. A cancelled read at an explicit offset loses nothing: the bytes
 * are still in the file and the caller's position did not advance (the driver returns
 * the buffer to the pool at the CQE).
 *
 * Must never: hand the caller's buffer to the kernel, resubmit an op, or swallow an error
 * (a negative result throws SysError naming the syscall; a timeout's -ETIME is its success).
 */
import { ptr } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll } from "../../future.ts";
import { currentDriver } from "../../current.ts";
import { K_PLAIN, ST_DETACHED, ST_DONE, UringDriver, type UringOp } from "./driver.ts";
import type { OwnedBuf } from "./buf.ts";
import { RuntimeError, SysError } from "../../errors.ts";

const ETIME = 62;
const INIT = 0;
const SUBMITTED = 1;
const COMPLETED = 2;
const CANCELLED = 3;

/** One SQE, described. Buffers referenced here are owned by the op once submitted. */
export interface OpSpec {
  opcode: number;
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
  kind?: number;
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
  if (!(d instanceof UringDriver)) throw new RuntimeError("This operation needs the io_uring backend (REEL_BACKEND=uring)", "ENOTURING");
  return d;
}

/** Writes `spec`'s SQE for a fresh op and returns the op. */
function submit(d: UringDriver, spec: OpSpec, sqeFlags: number): UringOp {
  const op = d.op(spec.kind ?? K_PLAIN, null);
  // SAFETY: the op holds the data buffer and aux memory until its final CQE.
  op.buf = spec.buf ?? null;
  op.aux = spec.aux ?? null;
  const w = d.sqe(op, spec.opcode, spec.fd, spec.addr ?? 0, spec.len ?? 0, spec.off ?? 0);
  if (spec.opFlags !== undefined) d.ring.setOpFlags(w, spec.opFlags);
  if (spec.ioprio !== undefined) d.ring.setIoprio(w, spec.ioprio);
  if (spec.addr2 !== undefined) d.ring.setAddr2(w, spec.addr2);
  if (sqeFlags !== 0) d.ring.setSqeFlags(w, sqeFlags);
  return op;
}

/**
 * An io_uring op as a future: resolves to the CQE's result (≥ 0), throws SysError for a
 * negative one. `copyOut`: where a read's bytes go on completion.
 *
 * @example
 * ```ts
 * const n = yield* new UringFuture({ opcode: OP_NOP, fd: -1, syscall: "nop" });
 * ```
 */
export class UringFuture extends BaseFuture<number> {
  private state = INIT;
  private op: UringOp | null = null;
  private driver: UringDriver | null = null;

  constructor(
    private readonly spec: OpSpec,
    private readonly copyOut: Uint8Array | null = null,
  ) {
    super();
  }

  /** @internal A future for an op already submitted (a linked chain member). */
  static submitted(d: UringDriver, op: UringOp, spec: OpSpec, copyOut: Uint8Array | null): UringFuture {
    const f = new UringFuture(spec, copyOut);
    f.driver = d;
    f.op = op;
    f.state = SUBMITTED;
    return f;
  }

  poll(cx: Context): Poll<number> {
    if (this.state === INIT) {
      this.driver = uringDriver();
      this.op = submit(this.driver, this.spec, 0);
      this.state = SUBMITTED;
    } else if (this.state !== SUBMITTED) {
      throw new FutureStateError(`${this.spec.syscall} future polled after completion`);
    }
    const op = this.op!;
    if (op.state !== ST_DONE) {
      op.waker = cx.waker;
      return PENDING;
    }
    return this.finish(op);
  }

  private finish(op: UringOp): number {
    const res = op.res;
    this.state = COMPLETED;
    this.op = null;
    if (res > 0 && this.copyOut !== null && op.buf !== null) {
      this.copyOut.set(op.buf.bytes.subarray(0, Math.min(res, this.copyOut.byteLength)));
    }
    this.driver!.release(op);
    if (res >= 0 || (res === -ETIME && this.spec.timeOk === true)) return res < 0 ? 0 : res;
    throw new SysError(-res, this.spec.syscall);
  }

  /** Cancel before submit: nothing reached the ring. In flight: ASYNC_CANCEL (or a NOP rewrite). */
  override cancel(): void {
    if (this.state === SUBMITTED) this.driver!.cancel(this.op!);
    this.op = null;
    if (this.state !== COMPLETED) this.state = CANCELLED;
  }
}

/**
 * Submits `specs` as one IOSQE_IO_LINK chain: each starts only after the previous one
 * completed successfully (a failure cancels the rest with ECANCELED). `timeoutMs` adds a
 * LINK_TIMEOUT bounding the last op. Returns one future per op, already submitted.
 *
 * @example
 * ```ts
 * const [a, b] = linked([writeSpec(fd, x, 0), writeSpec(fd, y, 0)]);
 * yield* a; yield* b; // y landed after x
 * ```
 */
export function linked(specs: readonly OpSpec[], copyOuts: readonly (Uint8Array | null)[] = [], timeoutMs = -1): UringFuture[] {
  const d = uringDriver();
  d.reserve(specs.length + (timeoutMs >= 0 ? 1 : 0));
  const out: UringFuture[] = [];
  for (let i = 0; i < specs.length; i++) {
    const last = i === specs.length - 1;
    const flags = !last || timeoutMs >= 0 ? U.IOSQE_IO_LINK : 0;
    out.push(UringFuture.submitted(d, submit(d, specs[i]!, flags), specs[i]!, copyOuts[i] ?? null));
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

/** IORING_OP_NOP. */
export function nop(): UringFuture {
  return new UringFuture({ opcode: U.OP_NOP, fd: -1, syscall: "nop" });
}

/** IORING_OP_TIMEOUT: resolves after `ms` (a kernel timer, not reel's wheel). */
export function uringTimeout(ms: number): UringFuture {
  const ts = timespec(ms);
  // SAFETY: ts (ArrayBuffer-backed) is the op's aux until its CQE.
  return new UringFuture({ opcode: U.OP_TIMEOUT, fd: -1, addr: ptr(ts) as number, len: 1, aux: ts, syscall: "timeout", timeOk: true });
}

/** IORING_OP_SHUTDOWN of a socket fd. */
export function shutdownOp(fd: number, how: number): UringFuture {
  return new UringFuture({ opcode: U.OP_SHUTDOWN, fd, len: how, syscall: "shutdown" });
}

/** IORING_OP_CLOSE. */
export function closeOp(fd: number): UringFuture {
  return new UringFuture({ opcode: U.OP_CLOSE, fd, syscall: "close" });
}

/** IORING_OP_FSYNC (datasync: IORING_FSYNC_DATASYNC). */
export function fsyncOp(fd: number, datasync = false): UringFuture {
  return new UringFuture({ opcode: U.OP_FSYNC, fd, opFlags: datasync ? 1 : 0, syscall: "fsync" });
}

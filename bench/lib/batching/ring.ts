// The batched side of bench/batching.ts, on reel's own ring (lib/driver/uring_ring.ts):
// k SQEs written with Ring.prep, handed to the kernel with one Ring.submitAndWait (one
// io_uring_enter, or liburing's submit-and-wait, which is one enter too), their CQEs read
// with cqeRes and released with advance. And the unbatched side: the same operation as
// one plain read() syscall each, through reel's ffi/libc.ts — what an epoll-style
// reactor does once readiness is known (the epoll_wait itself is not counted).
//
// The operation both sides repeat (the "target") is, by default, an 8-byte read (64-byte
// buffer) of an EFD_SEMAPHORE eventfd whose counter is set so high it never reaches zero:
// every read succeeds at once, takes 1 off the counter, and costs the same each time. The
// alternative is a 64-byte write to /dev/null. Every op of a batch uses the same buffer,
// as the syscall side does. Both complete inline in io_uring_enter (no io-wq thread, no
// second enter); ringBatches counts enters so the report can show it.
//
// Must never: leave an SQE in the kernel when a run ends (each batch is reaped in full
// before the next starts), or hand the kernel a buffer that is not ArrayBuffer-backed.
import { dlopen, ptr } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import { EFD_CLOEXEC, EFD_NONBLOCK, eventfd } from "../../../ffi/epoll.ts";
import { SYS } from "../../../ffi/constants.ts";
import type { Ring } from "../../../lib/driver/uring/ring.ts";

const EFD_SEMAPHORE = 1;

/** One SQE's operands, the same for every SQE of a batch. */
export interface RingOp {
  readonly opcode: number;
  readonly fd: number;
  readonly addr: number;
  readonly len: number;
  readonly off: number;
}

/** The operations both sides can repeat (see the module header). */
export const TARGET_KINDS = ["eventfd-read", "null-write"] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];
/** What one op of each target is, for the report. */
export const TARGET_DESCRIPTIONS: Record<TargetKind, string> = {
  "eventfd-read": "8-byte read (64-byte buffer) of a non-blocking EFD_SEMAPHORE eventfd that never runs dry",
  "null-write": "64-byte write to /dev/null",
};

/** An fd every op on which succeeds at once, and the buffers both sides use. */
export interface Target {
  readonly kind: TargetKind;
  /** What one op is, for the report. */
  readonly describe: string;
  readonly fd: number;
  /** true: the syscall side calls write(), else read(). */
  readonly write: boolean;
  /** The buffer the syscall side reads into / writes from. */
  readonly buf: Uint8Array;
  /** The same op as an SQE. SAFETY: `ringBuf` below is what `addr` points at. */
  readonly op: RingOp;
  /** Held for as long as the target is used: the kernel reads or writes it. */
  readonly ringBuf: Uint8Array;
  /** The result every successful op returns (bytes moved). */
  readonly perOp: number;
}

/** The NOP every t_r batch repeats. */
export const NOP: RingOp = { opcode: U.OP_NOP, fd: -1, addr: 0, len: 0, off: 0 };

const { symbols: C } = dlopen("libc.so.6", { open: { args: ["ptr", "i32"], returns: "i32" } });
const O_WRONLY = 1;

/** A non-blocking EFD_SEMAPHORE eventfd holding 2^52, so it never runs dry here. */
function semaphoreEventfd(): number {
  const fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
  if (fd < 0) throw new Error(`eventfd failed: errno ${-fd}`);
  const init = new Uint8Array(new ArrayBuffer(8));
  new Uint32Array(init.buffer)[1] = 1 << 20; // 2^52
  const w = libc.write(fd, init);
  if (w !== 8) throw new Error(`eventfd write returned ${w}`);
  return fd;
}

/**
 * Opens the fd `kind` names: "eventfd-read" (8-byte reads, 64-byte buffer, of a semaphore
 * eventfd) or "null-write" (64-byte writes to /dev/null).
 *
 * @example
 * ```ts
 * const t = openTarget("eventfd-read");
 * libc.read(t.fd, t.buf); // 8
 * closeTarget(t);
 * ```
 */
export function openTarget(kind: TargetKind): Target {
  const write = kind === "null-write";
  // SAFETY: the path Buffer is only read during the synchronous open() call.
  const fd = write ? C.open(Buffer.from("/dev/null\0"), O_WRONLY | SYS.O_CLOEXEC) : semaphoreEventfd();
  if (fd < 0) throw new Error(`open /dev/null failed: errno ${libc.errno()}`);
  const ringBuf = new Uint8Array(new ArrayBuffer(64));
  // SAFETY: ringBuf is ArrayBuffer-backed (its address is stable) and held by the target
  // for as long as SQEs name it; every batch is reaped before the target is dropped.
  const addr = ptr(ringBuf) as number;
  const op = { opcode: write ? U.OP_WRITE : U.OP_READ, fd, addr, len: 64, off: -1 };
  const describe = TARGET_DESCRIPTIONS[kind];
  return { kind, describe, fd, write, buf: new Uint8Array(new ArrayBuffer(64)), ringBuf, op, perOp: write ? 64 : 8 };
}

/**
 * Closes the target's fd (after its last batch was reaped).
 *
 * @example
 * ```ts
 * closeTarget(openTarget("null-write"));
 * ```
 */
export function closeTarget(t: Target): void {
  libc.close(t.fd);
}

/** io_uring_enter calls made by {@link ringBatches} since the last {@link takeEnters}. */
let enters = 0;

/**
 * Returns and resets the enter count (to report enters per batch: 1.00 when all ops
 * completed inline).
 *
 * @example
 * ```ts
 * takeEnters();
 * ringBatches(ring, NOP, 8, 100);
 * takeEnters(); // 100
 * ```
 */
export function takeEnters(): number {
  const e = enters;
  enters = 0;
  return e;
}

/**
 * `batches` batches of `k` copies of `op`: k × prep, one submitAndWait, read every CQE's
 * result, advance. If fewer than k CQEs are in after the enter (an op went async), it
 * waits again for the rest; {@link takeEnters} shows whether that happened. Returns the
 * sum of the CQE results (0 for NOPs, 8 per eventfd read).
 *
 * @example
 * ```ts
 * const t = openTarget("eventfd-read");
 * ringBatches(ring, t.op, 16, 100); // 8 × 1600
 * ```
 */
export function ringBatches(ring: Ring, op: RingOp, k: number, batches: number): number {
  let sum = 0;
  for (let i = 0; i < batches; i++) {
    for (let j = 0; j < k; j++) ring.prep(op.opcode, op.fd, op.addr, op.len, op.off, j);
    let left = k;
    while (left > 0) {
      ring.submitAndWait(-1);
      enters++;
      const n = ring.ready();
      for (let j = 0; j < n; j++) sum += ring.cqeRes(j);
      ring.advance(n);
      left -= n;
    }
  }
  return sum;
}

/**
 * The same ops one syscall each, in the same batch-shaped loop. Returns the sum of the results.
 *
 * @example
 * ```ts
 * syscallBatches(openTarget("null-write"), 16, 100); // 64 × 1600
 * ```
 */
export function syscallBatches(t: Target, k: number, batches: number): number {
  const fd = t.fd;
  const buf = t.buf;
  let sum = 0;
  if (t.write) {
    for (let i = 0; i < batches; i++) for (let j = 0; j < k; j++) sum += libc.write(fd, buf);
  } else {
    for (let i = 0; i < batches; i++) for (let j = 0; j < k; j++) sum += libc.read(fd, buf);
  }
  return sum;
}

/** ns per op spent in each phase of a batch: JS filling SQEs, the enter, JS reading CQEs. */
export interface Phases {
  readonly fill: number;
  readonly enter: number;
  readonly reap: number;
}

/**
 * {@link ringBatches} with a clock read between the phases (three Bun.nanoseconds() per
 * batch: the caller subtracts their cost). Throws when a CQE carries an error.
 *
 * @example
 * ```ts
 * const { fill, enter, reap } = ringPhases(ring, NOP, 256, 64); // ns per op
 * ```
 */
export function ringPhases(ring: Ring, op: RingOp, k: number, batches: number): Phases {
  let fill = 0;
  let enter = 0;
  let reap = 0;
  for (let i = 0; i < batches; i++) {
    const t0 = Bun.nanoseconds();
    for (let j = 0; j < k; j++) ring.prep(op.opcode, op.fd, op.addr, op.len, op.off, j);
    const t1 = Bun.nanoseconds();
    ring.submitAndWait(-1);
    const t2 = Bun.nanoseconds();
    let left = k;
    let bad = 0;
    for (;;) {
      const n = ring.ready();
      for (let j = 0; j < n; j++) if (ring.cqeRes(j) < 0) bad++;
      ring.advance(n);
      left -= n;
      if (left <= 0) break;
      ring.submitAndWait(-1);
    }
    reap += Bun.nanoseconds() - t2;
    fill += t1 - t0;
    enter += t2 - t1;
    if (bad > 0) throw new Error(`${bad} CQEs of opcode ${op.opcode} failed`);
  }
  const ops = k * batches;
  return { fill: fill / ops, enter: enter / ops, reap: reap / ops };
}

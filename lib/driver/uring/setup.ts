/**
 * io_uring setup, both paths: liburing.so.2's io_uring_queue_init_params (liburing maps
 * the rings and fills its struct io_uring, whose pointers are read once here), or the raw
 * io_uring_setup syscall plus our own mmap of the SQ ring, CQ ring and SQE array. Either
 * way the result is a {@link RingSetup}: the fd, the negotiated flags and features, and
 * typed-array views over the shared memory, which uring_ring.ts's Ring then uses.
 *
 * Setup flags are negotiated down a ladder (DEFER_TASKRUN+SINGLE_ISSUER, then
 * COOP_TASKRUN, then plain) so older kernels still get a ring.
 *
 * IORING_SETUP_NO_SQARRAY (6.6; liburing ≥ 2.6 asks for it by default): the ring then has
 * no SQ index array and the kernel reports `sq_off.array` as 0 — writing the identity map
 * there would overwrite the ring's head and tail. The map is written only when the array
 * exists. The raw path can force the flag (`noSqArray`, REEL_URING_NO_SQARRAY=1) so CI
 * proves a newer liburing's default cannot corrupt the ring.
 *
 * Must never: leave a mapping or the ring fd behind when a later setup step fails, or
 * report success on a kernel that cannot bound a wait (no IORING_FEAT_EXT_ARG).
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import { ptr, read, toArrayBuffer, type Pointer } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import { EINVAL, ENOSYS, EPERM } from "../../../ffi/errno.ts";
import { RuntimeError, SysError } from "../../errors.ts";

/** How the ring was set up. */
export type RingPath = "liburing" | "raw";

/** Setup flag sets, tried in order until the kernel accepts one (older kernels reject newer bits). */
const FLAG_LADDER = [
  U.SETUP_SUBMIT_ALL | U.SETUP_SINGLE_ISSUER | U.SETUP_DEFER_TASKRUN | U.SETUP_TASKRUN_FLAG,
  U.SETUP_SUBMIT_ALL | U.SETUP_COOP_TASKRUN | U.SETUP_TASKRUN_FLAG,
  U.SETUP_SUBMIT_ALL,
  0,
];

/** Options for {@link Ring.open}. */
export interface RingOptions {
  /** SQ entries (power of two); default 256. */
  entries?: number;
  /** CQ entries; default 8 × entries (multishot ops post many CQEs per SQE). */
  cqEntries?: number;
  /** liburing or raw; default REEL_URING, else liburing when installed (raw when noSqArray). */
  path?: RingPath;
  /** Ask for IORING_SETUP_NO_SQARRAY (raw path only); default: REEL_URING_NO_SQARRAY=1 on raw-path rings. */
  noSqArray?: boolean;
}

let simulatedErrno = 0;

/**
 * Makes the next ring setups fail with `errno` (EPERM as under kernel.io_uring_disabled=2,
 * ENOSYS as on a kernel without io_uring); 0 restores. For the fallback tests. The
 * environment variable REEL_URING_SIMULATE=EPERM|ENOSYS does the same for a process.
 */
export function simulateSetupFailure(errno: number): void {
  simulatedErrno = errno;
}

function envSimulated(): number {
  const v = process.env.REEL_URING_SIMULATE;
  return v === "EPERM" ? EPERM : v === "ENOSYS" ? ENOSYS : 0;
}

/** The path to use: explicit, then REEL_URING, then liburing when it loads. */
export function selectPath(path?: RingPath): RingPath {
  const want = path ?? (process.env.REEL_URING as RingPath | undefined);
  if (want === undefined || (want as string) === "") return U.liburing() !== null ? "liburing" : "raw";
  if (want !== "liburing" && want !== "raw") {
    throw new RangeError(`Unknown REEL_URING "${String(want)}": expected "liburing" or "raw"`);
  }
  if (want === "liburing" && U.liburing() === null) {
    throw new RuntimeError("REEL_URING=liburing but liburing.so.2 cannot be loaded", "ENOLIBURING");
  }
  return want;
}

/** Whether NO_SQARRAY is asked for: explicitly, or by REEL_URING_NO_SQARRAY=1. */
export function wantNoSqArray(opt?: boolean): boolean {
  return opt ?? process.env.REEL_URING_NO_SQARRAY === "1";
}

/** Sets up a ring through `path` (throws SysError("io_uring_setup") when the kernel refuses). */
export function setupRing(entries: number, cq: number, path: RingPath, noSqArray = false): RingSetup {
  const fail = simulatedErrno !== 0 ? simulatedErrno : envSimulated();
  if (fail !== 0) throw new SysError(fail, "io_uring_setup", undefined, "simulated");
  if (noSqArray && path === "liburing") {
    throw new RangeError("IORING_SETUP_NO_SQARRAY can be forced on the raw ring path only (REEL_URING=raw): this liburing would write the SQ array itself");
  }
  return path === "liburing" ? setupLiburing(entries, cq) : setupRaw(entries, cq, noSqArray ? U.SETUP_NO_SQARRAY : 0);
}

/** What a setup path hands to the Ring constructor. */
export interface RingSetup {
  fd: number;
  path: RingPath;
  flags: number;
  features: number;
  sqEntries: number;
  cqEntries: number;
  sq32: Uint32Array;
  cq32: Uint32Array;
  sqe8: Uint8Array;
  sqHead: number;
  sqTail: number;
  cqHead: number;
  cqTail: number;
  cqes: number;
  lrStruct: Uint8Array | null;
  maps: [number, number][];
}

/** Fresh io_uring_params asking for `cq` CQ entries and `flags`. */
function params(cq: number, flags: number): Uint32Array {
  const p = new Uint32Array(new ArrayBuffer(U.PARAMS_SIZE));
  p[U.P.flags] = flags | U.SETUP_CQSIZE | U.SETUP_CLAMP;
  p[U.P.cqEntries] = cq;
  return p;
}

/** Tries each flag set until the kernel accepts one; returns the result and the params. */
function tryLadder(attempt: (p: Uint32Array) => number, extra = 0): [number, Uint32Array] {
  let r = -EINVAL;
  let p = params(0, 0);
  for (const f of FLAG_LADDER) {
    p = params(0, f | extra);
    r = attempt(p);
    if (r !== -EINVAL) break;
  }
  if (r < 0) throw new SysError(-r, "io_uring_setup");
  if ((p[U.P.features]! & U.FEAT_EXT_ARG) === 0) {
    // Pre-5.11 kernels cannot bound a wait without a timeout SQE: treat as "too old".
    throw new SysError(ENOSYS, "io_uring_setup", undefined, "kernel lacks IORING_FEAT_EXT_ARG (needs Linux 5.11+)");
  }
  return [r, p];
}

/** Views over the SQ/CQ rings given their base addresses and the kernel's offsets. */
function views(p: Uint32Array, sqBase: number, sqLen: number, cqBase: number, cqLen: number, sqes: number): Omit<RingSetup, "fd" | "path" | "lrStruct" | "maps"> {
  // SAFETY: the three regions are the kernel's ring mappings; they stay mapped until
  // Ring.close() (queue_exit or munmap), and the views are never used after it.
  const sq32 = new Uint32Array(toArrayBuffer(sqBase as Pointer, 0, sqLen));
  const cq32 = cqBase === sqBase ? sq32 : new Uint32Array(toArrayBuffer(cqBase as Pointer, 0, cqLen));
  const sqEntries = p[U.P.sqEntries]!;
  // SAFETY: the SQE array mapping, likewise alive until Ring.close().
  const sqe8 = new Uint8Array(toArrayBuffer(sqes as Pointer, 0, sqEntries * U.SQE_SIZE));
  // The identity slot map, only where the ring has an SQ array (see the module header).
  if ((p[U.P.flags]! & U.SETUP_NO_SQARRAY) === 0) {
    const array = p[U.P.sqArray]! >> 2;
    for (let i = 0; i < sqEntries; i++) sq32[array + i] = i;
  }
  return {
    flags: p[U.P.flags]!,
    features: p[U.P.features]!,
    sqEntries,
    cqEntries: p[U.P.cqEntries]!,
    sq32,
    cq32,
    sqe8,
    sqHead: p[U.P.sqHead]! >> 2,
    sqTail: p[U.P.sqTail]! >> 2,
    cqHead: p[U.P.cqHead]! >> 2,
    cqTail: p[U.P.cqTail]! >> 2,
    cqes: p[U.P.cqCqes]! >> 2,
  };
}

function setupLiburing(entries: number, cq: number): RingSetup {
  const lr = U.liburing()!;
  const struct = new Uint8Array(new ArrayBuffer(U.LIBURING_RING_SIZE));
  const [, p] = tryLadder((prm) => {
    prm[U.P.cqEntries] = cq;
    // SAFETY: struct and prm are ArrayBuffer-backed; struct is kept by the Ring for life.
    return lr.io_uring_queue_init_params(entries, ptr(struct), ptr(prm));
  });
  // SAFETY: reading pointers liburing stored in `struct` (held above) once, at setup.
  const sp = ptr(struct);
  const sqPtr = read.ptr(sp, U.LR.sqRingPtr) as number;
  const sqSz = read.u32(sp, U.LR.sqRingSz);
  // SAFETY: as above, `struct` is ArrayBuffer-backed and kept by the Ring.
  const cqPtr = read.ptr(sp, U.LR.cqRingPtr) as number;
  const cqSz = read.u32(sp, U.LR.cqRingSz);
  // SAFETY: the same struct, read once at setup.
  const sqes = read.ptr(sp, U.LR.sqSqes) as number;
  const fd = read.i32(sp, U.LR.ringFd);
  return { ...views(p, sqPtr, sqSz, cqPtr, cqSz, sqes), fd, path: "liburing", lrStruct: struct, maps: [] };
}

function setupRaw(entries: number, cq: number, extra: number): RingSetup {
  const [fd, p] = tryLadder((prm) => {
    prm[U.P.cqEntries] = cq;
    // SAFETY: prm is ArrayBuffer-backed and only read/written during the syscall.
    return U.setup(entries, ptr(prm));
  }, extra);
  const maps: [number, number][] = [];
  try {
    // Without an SQ array (NO_SQARRAY: sq_off.array is 0) the SQ fields live in the one
    // shared mapping (6.6 kernels always have FEAT_SINGLE_MMAP), sized by the CQ ring.
    const sqLen = (p[U.P.flags]! & U.SETUP_NO_SQARRAY) !== 0 ? 0 : p[U.P.sqArray]! + p[U.P.sqEntries]! * 4;
    const cqLen = p[U.P.cqCqes]! + p[U.P.cqEntries]! * U.CQE_SIZE;
    const single = (p[U.P.features]! & U.FEAT_SINGLE_MMAP) !== 0;
    const ringLen = single ? Math.max(sqLen, cqLen) : sqLen;
    const prot = U.PROT_READ | U.PROT_WRITE;
    const flags = U.MAP_SHARED | U.MAP_POPULATE;
    const sq = mapOrThrow(maps, ringLen, prot, flags, fd, U.OFF_SQ_RING);
    const cqBase = single ? sq : mapOrThrow(maps, cqLen, prot, flags, fd, U.OFF_CQ_RING);
    const sqes = mapOrThrow(maps, p[U.P.sqEntries]! * U.SQE_SIZE, prot, flags, fd, U.OFF_SQES);
    return { ...views(p, sq, ringLen, cqBase, single ? ringLen : cqLen, sqes), fd, path: "raw", lrStruct: null, maps };
  } catch (err) {
    for (const [a, l] of maps) U.munmap(a, l);
    libc.close(fd);
    throw err;
  }
}

function mapOrThrow(maps: [number, number][], len: number, prot: number, flags: number, fd: number, off: number): number {
  const a = U.mmap(len, prot, flags, fd, off);
  if (a < 0) throw new SysError(-a, "mmap", undefined, "io_uring ring");
  maps.push([a, len]);
  return a;
}

// The few libc entry points bench/batching.ts needs beyond reel's ffi/ layer, and the
// timed loops for t_s (the cost of one syscall): a libc function that makes no syscall
// (abs: the bare bun:ffi call), a null syscall (getppid), reel's own getpid wrapper
// (ffi/libc.ts), and non-blocking eventfd read/write through reel's ffi/libc.ts.
//
// Also thread pinning (sched_setaffinity on the calling thread), so the context-switch
// ping-pong in batching-switch.ts can put both threads on one CPU. Linux only.
//
// Must never: be imported on a platform without these symbols (the bench checks Linux
// first), or leave the calling thread pinned (pinToCpu returns the mask to restore).
import { dlopen } from "bun:ffi";
import * as libc from "../../../ffi/libc.ts";

const { symbols: C } = dlopen("libc.so.6", {
  abs: { args: ["i32"], returns: "i32" },
  getppid: { args: [], returns: "i32" },
  sched_getcpu: { args: [], returns: "i32" },
  sched_getaffinity: { args: ["i32", "u64", "ptr"], returns: "i32" },
  sched_setaffinity: { args: ["i32", "u64", "ptr"], returns: "i32" },
});

/** sizeof(cpu_set_t) in glibc: 1024 CPUs. */
const CPU_SET_BYTES = 128;

/**
 * Loop bodies with the call inside, so one sample is one JS call and the loop overhead is
 * the same for every variant (it cancels in the differences the bench reports).
 *
 * @example
 * ```ts
 * const t0 = Bun.nanoseconds();
 * nullLoops.getppid(10_000);
 * const nsPerCall = (Bun.nanoseconds() - t0) / 10_000;
 * ```
 */
export const nullLoops = {
  /** abs(): a libc function, no kernel entry. The bare FFI call. */
  abs(n: number): number {
    let s = 0;
    for (let i = 0; i < n; i++) s += C.abs(-i);
    return s;
  },
  /** getppid(): the cheapest real syscall glibc does not cache. */
  getppid(n: number): number {
    let s = 0;
    for (let i = 0; i < n; i++) s += C.getppid();
    return s;
  },
  /** getpid() through reel's ffi/libc.ts wrapper (one more JS call frame). */
  reelGetpid(n: number): number {
    let s = 0;
    for (let i = 0; i < n; i++) s += libc.getpid();
    return s;
  },
};

/**
 * `n` non-blocking 8-byte reads of an EFD_SEMAPHORE eventfd (each takes 1 off the counter)
 * through reel's ffi/libc.ts. Returns the sum of the results (8 × n when all succeeded).
 *
 * @example
 * ```ts
 * eventfdReads(efd, new Uint8Array(new ArrayBuffer(64)), 1000); // 8000
 * ```
 */
export function eventfdReads(fd: number, buf: Uint8Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += libc.read(fd, buf);
  return s;
}

/**
 * `n` 8-byte writes of the u64 in `one` to an eventfd through reel's ffi/libc.ts. Returns
 * the sum of the results (8 × n when all succeeded).
 *
 * @example
 * ```ts
 * const one = new Uint8Array(new ArrayBuffer(8));
 * one[0] = 1;
 * eventfdWrites(efd, one, 1000); // 8000; the counter grew by 1000
 * ```
 */
export function eventfdWrites(fd: number, one: Uint8Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += libc.write(fd, one);
  return s;
}

/**
 * The CPU the calling thread runs on now.
 *
 * @example
 * ```ts
 * const old = pinToCpu(currentCpu());
 * ```
 */
export function currentCpu(): number {
  return C.sched_getcpu();
}

/**
 * Pins the calling thread (pid 0 = this thread) to `cpu`. Returns the previous mask, for
 * {@link restoreAffinity}, or null when the kernel refused (the caller reports "unpinned").
 *
 * @example
 * ```ts
 * const old = pinToCpu(currentCpu());
 * // … measure …
 * if (old !== null) restoreAffinity(old);
 * ```
 */
export function pinToCpu(cpu: number): Uint8Array | null {
  const old = new Uint8Array(new ArrayBuffer(CPU_SET_BYTES));
  // SAFETY: `old` and `set` are ArrayBuffer-backed and only used during these calls.
  if (C.sched_getaffinity(0, CPU_SET_BYTES, old) !== 0) return null;
  const set = new Uint8Array(new ArrayBuffer(CPU_SET_BYTES));
  set[cpu >> 3] = 1 << (cpu & 7);
  return C.sched_setaffinity(0, CPU_SET_BYTES, set) === 0 ? old : null;
}

/**
 * Puts back a mask {@link pinToCpu} returned.
 *
 * @example
 * ```ts
 * const old = pinToCpu(0);
 * if (old !== null) restoreAffinity(old);
 * ```
 */
export function restoreAffinity(mask: Uint8Array): void {
  // SAFETY: `mask` is ArrayBuffer-backed (made by pinToCpu) and read during the call only.
  C.sched_setaffinity(0, CPU_SET_BYTES, mask);
}

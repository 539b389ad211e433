// The model's terms for bench/batching.ts, measured through reel's ffi layer, and seed
// 004's break-even formula.
//
// - t_s, the syscall cost: a null syscall (getppid) through bun:ffi minus a libc call that
//   makes no syscall (abs): the kernel entry and exit alone. Both are reported, with reel's
//   own getpid wrapper (ffi/libc.ts) and the non-blocking eventfd read/write costs that
//   t_k subtracts.
// - t_k, the context-switch cost: the ping-pong of batching-switch.ts, half a round trip
//   minus one eventfd write and one eventfd read: pinned (one CPU: a real switch) and
//   unpinned (two CPUs: a cross-CPU wake-up).
// - t_r comes from the NOP sweep (batching-sweep.ts): the slope of batch time over k.
//
// Must never: report a difference without the two numbers it came from.
import { EFD_CLOEXEC, EFD_NONBLOCK, eventfd } from "../../../ffi/epoll.ts";
import * as libc from "../../../ffi/libc.ts";
import { eventfdReads, eventfdWrites, nullLoops } from "./ffi.ts";
import { closeTarget, openTarget } from "./ring.ts";
import { pingPong } from "./switch.ts";
import { median, sampleInterleaved } from "./stats.ts";

/** Median ns per call of the syscall-cost loops, and t_s. */
export interface SyscallTerms {
  /** abs(): bare FFI call, no syscall. */
  readonly ffiNs: number;
  /** getppid(): FFI call + null syscall. */
  readonly getppidNs: number;
  /** getpid() through reel's ffi/libc.ts wrapper. */
  readonly reelGetpidNs: number;
  /** Non-blocking 8-byte eventfd read through reel's ffi/libc.ts. */
  readonly efdReadNs: number;
  /** Non-blocking 8-byte eventfd write through reel's ffi/libc.ts. */
  readonly efdWriteNs: number;
  /** getppid − abs. */
  readonly tS: number;
}

const NULL_CALLS = 50_000;
const EFD_CALLS = 10_000;

/**
 * Times the null-call loops, interleaved, `samples` times each.
 *
 * @example
 * ```ts
 * const { tS } = measureSyscall(15); // ns of one kernel entry + exit
 * ```
 */
export function measureSyscall(samples: number): SyscallTerms {
  const rd = openTarget("eventfd-read");
  const wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wfd < 0) throw new Error(`eventfd failed: errno ${-wfd}`);
  const one = new Uint8Array(new ArrayBuffer(8));
  one[0] = 1;
  try {
    // Checksums: abs(-i) sums to a known value; pids are > 0 so the sums are ≥ the count.
    const absSum = (NULL_CALLS * (NULL_CALLS - 1)) / 2;
    const s = sampleInterleaved(
      [
        { name: "abs", ops: NULL_CALLS, run: () => nullLoops.abs(NULL_CALLS), expect: absSum },
        { name: "getppid", ops: NULL_CALLS, run: () => (nullLoops.getppid(NULL_CALLS) >= NULL_CALLS ? 1 : 0), expect: 1 },
        { name: "reelGetpid", ops: NULL_CALLS, run: () => (nullLoops.reelGetpid(NULL_CALLS) >= NULL_CALLS ? 1 : 0), expect: 1 },
        { name: "efdRead", ops: EFD_CALLS, run: () => eventfdReads(rd.fd, rd.buf, EFD_CALLS), expect: 8 * EFD_CALLS },
        { name: "efdWrite", ops: EFD_CALLS, run: () => eventfdWrites(wfd, one, EFD_CALLS), expect: 8 * EFD_CALLS },
      ],
      samples,
    );
    const m = (k: string) => median(s.get(k)!);
    const ffiNs = m("abs");
    const getppidNs = m("getppid");
    return { ffiNs, getppidNs, reelGetpidNs: m("reelGetpid"), efdReadNs: m("efdRead"), efdWriteNs: m("efdWrite"), tS: getppidNs - ffiNs };
  } finally {
    closeTarget(rd);
    libc.close(wfd);
  }
}

/** One ping-pong variant: round trip, and t_k derived from it. */
export interface SwitchVariant {
  /** Whether the threads really were pinned to one CPU. */
  readonly pinned: boolean;
  readonly rttNs: number;
  /** RTT / 2 − (eventfd write + eventfd read). */
  readonly tK: number;
}

/** t_k pinned (the one the formula uses) and unpinned. */
export interface SwitchTerms {
  readonly pinned: SwitchVariant;
  readonly unpinned: SwitchVariant;
}

/**
 * Runs the pinned and the unpinned ping-pong and derives t_k from each.
 *
 * @example
 * ```ts
 * const sw = await measureSwitch(9, measureSyscall(15));
 * sw.pinned.tK; // ns per context switch
 * ```
 */
export async function measureSwitch(samples: number, sys: SyscallTerms): Promise<SwitchTerms> {
  const handOff = sys.efdWriteNs + sys.efdReadNs;
  const variant = async (pin: boolean): Promise<SwitchVariant> => {
    const r = await pingPong({ rounds: 1000, samples, pin });
    const rttNs = median(r.rttNs);
    return { pinned: r.pinned, rttNs, tK: rttNs / 2 - handOff };
  };
  const pinned = await variant(true);
  const unpinned = await variant(false);
  return { pinned, unpinned };
}

/**
 * The break-even batch size B* = 2(t_s + t_k) / (2(t_s + t_k) − t_r): batching wins
 * for B > B*. Infinity when t_r ≥ 2(t_s + t_k) (batching never wins in the model).
 *
 * @example
 * ```ts
 * seedBreakEven(100, 0, 50); // 200 / 150 = 1.33
 * ```
 */
export function seedBreakEven(tS: number, tK: number, tR: number): number {
  const perOp = 2 * (tS + tK);
  const den = perOp - tR;
  return den <= 0 ? Infinity : perOp / den;
}

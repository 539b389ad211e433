// The batch-size sweep of bench/batching.ts: for k = 1, 2, 4 … 256, the per-op cost of
// (a) k NOPs, (b) k target ops on reel's ring, one enter per batch, and (c) the same target
// ops one syscall each — interleaved, medians. Then lines fitted to the per-batch times
// (intercept = the per-enter cost, slope = the per-SQE cost; the NOP slope is t_r), the
// crossovers, and where the time of a batch goes (JS SQE fill, the enter, JS CQE reap).
//
// Must never: compare numbers from different runs of the sweep, or call a crossover
// "measured" when it comes from a fit (both are reported, labelled).
import type { Ring } from "../../../lib/driver/uring/ring.ts";
import { NOP, ringBatches, ringPhases, syscallBatches, takeEnters, type Phases, type RingOp, type Target } from "./ring.ts";
import { fitLine, median, sampleInterleaved, type Case, type Line } from "./stats.ts";

/** Batch sizes of the sweep. */
export const BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256] as const;
/** Ops per timed run (so a run of k = 1 is ~16k enters, ~10 ms here). */
const OPS_PER_RUN = 16_384;

/** One row of the sweep: median ns per op at batch size `k`. */
export interface SweepRow {
  readonly k: number;
  /** The target op, one syscall each (reel's ffi/libc.ts read/write). */
  readonly syscallNs: number;
  /** The target op as k SQEs per enter on reel's Ring. */
  readonly uringNs: number;
  /** A NOP as k SQEs per enter. */
  readonly nopNs: number;
  /** io_uring_enter calls per batch of target ops (1.00: every op completed inline). */
  readonly entersPerBatch: number;
}

/** Per-op phase split of one batch shape. */
export interface PhaseRow extends Phases {
  readonly label: string;
}

/** Everything the sweep measured. */
export interface Sweep {
  readonly rows: SweepRow[];
  /** Per-batch NOP time over k: slope = t_r, intercept = the per-enter cost. */
  readonly nopFit: Line;
  /** Per-batch target-op time over k. */
  readonly opFit: Line;
  /** Median of the syscall column (it does not depend on k). */
  readonly syscallNs: number;
  readonly phases: PhaseRow[];
  /** Cost of one Bun.nanoseconds() read, subtracted once per phase per batch. */
  readonly clockNs: number;
}

/** A timed case of `batches` ring batches of k × `op`, adding its enters to `enters.n`. */
function ringCase(name: string, ring: Ring, op: RingOp, k: number, batches: number, expect: number, enters: { n: number }): Case {
  return {
    name,
    ops: k * batches,
    run: () => {
      const sum = ringBatches(ring, op, k, batches);
      enters.n += takeEnters();
      return sum;
    },
    expect,
  };
}

/** Times the three cases at batch size k, interleaved. */
function row(ring: Ring, t: Target, k: number, samples: number): SweepRow {
  const batches = Math.max(1, Math.floor(OPS_PER_RUN / k));
  const ops = batches * k;
  const nopEnters = { n: 0 };
  const opEnters = { n: 0 };
  takeEnters();
  const s = sampleInterleaved(
    [
      ringCase("nop", ring, NOP, k, batches, 0, nopEnters),
      ringCase("uring", ring, t.op, k, batches, t.perOp * ops, opEnters),
      { name: "syscall", ops, run: () => syscallBatches(t, k, batches), expect: t.perOp * ops },
    ],
    samples,
  );
  const m = (n: string) => median(s.get(n)!);
  // Each case ran samples + 1 times (one untimed warm-up).
  return { k, syscallNs: m("syscall"), uringNs: m("uring"), nopNs: m("nop"), entersPerBatch: opEnters.n / ((samples + 1) * batches) };
}

/** Median ns of one Bun.nanoseconds() call. */
function clockCost(reps: number): number {
  const n = 10_000;
  const runs: number[] = [];
  let s = 0;
  for (let r = 0; r <= reps; r++) {
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < n; i++) s += Bun.nanoseconds();
    if (r > 0) runs.push((Bun.nanoseconds() - t0) / n);
  }
  if (s === 0) throw new Error("Bun.nanoseconds() returned only zeros");
  return median(runs);
}

/**
 * Median phase split over `reps` runs of `batches` batches of k copies of `op`. Each phase
 * interval spans one clock read, so `clockNs` per batch (clockNs / k per op) comes off each.
 */
function phases(ring: Ring, label: string, op: RingOp, k: number, reps: number, clockNs: number): PhaseRow {
  const batches = Math.max(1, Math.floor(OPS_PER_RUN / 2 / k));
  ringPhases(ring, op, k, batches); // warm-up
  const runs: Phases[] = [];
  for (let i = 0; i < reps; i++) runs.push(ringPhases(ring, op, k, batches));
  const c = clockNs / k;
  return {
    label,
    fill: median(runs.map((r) => r.fill)) - c,
    enter: median(runs.map((r) => r.enter)) - c,
    reap: median(runs.map((r) => r.reap)) - c,
  };
}

/**
 * Runs the sweep on `ring` with target `t`.
 *
 * @example
 * ```ts
 * const sw = sweep(Ring.open({ entries: 256 }), openTarget("eventfd-read"), 15);
 * sw.nopFit.slope; // t_r, ns per extra SQE
 * ```
 */
export function sweep(ring: Ring, t: Target, samples: number): Sweep {
  if (ring.sqEntries < BATCH_SIZES[BATCH_SIZES.length - 1]!) throw new RangeError(`Ring has ${ring.sqEntries} SQ entries: the sweep needs 256`);
  const rows = BATCH_SIZES.map((k) => row(ring, t, k, samples));
  const ks = rows.map((r) => r.k);
  const nopFit = fitLine(ks, rows.map((r) => r.nopNs * r.k));
  const opFit = fitLine(ks, rows.map((r) => r.uringNs * r.k));
  const reps = Math.max(3, Math.ceil(samples / 3));
  const clockNs = clockCost(reps);
  const ph = [
    phases(ring, "NOP, k = 1", NOP, 1, reps, clockNs),
    phases(ring, "NOP, k = 256", NOP, 256, reps, clockNs),
    phases(ring, `${t.kind}, k = 1`, t.op, 1, reps, clockNs),
    phases(ring, `${t.kind}, k = 256`, t.op, 256, reps, clockNs),
  ];
  return { rows, nopFit, opFit, syscallNs: median(rows.map((r) => r.syscallNs)), phases: ph, clockNs };
}

/**
 * The smallest k of the sweep from which `batched(k) < single(k)` holds for every larger
 * k too, or null when it does not hold at the largest k.
 *
 * @example
 * ```ts
 * tableCrossover([1, 2, 4], [9, 5, 3], [4, 4, 4]); // 4
 * ```
 */
export function tableCrossover(ks: readonly number[], batched: readonly number[], single: readonly number[]): number | null {
  let at: number | null = null;
  for (let i = ks.length - 1; i >= 0; i--) {
    if (batched[i]! < single[i]!) at = ks[i]!;
    else break;
  }
  return at;
}

/**
 * Where a/k + b (the fitted batched per-op cost) meets the single-op cost c: k = a / (c − b),
 * or Infinity when b ≥ c (batching never catches up).
 *
 * @example
 * ```ts
 * fitCrossover({ intercept: 500, slope: 100, r2: 1 }, 200); // 5
 * ```
 */
export function fitCrossover(line: Line, single: number): number {
  return single > line.slope ? line.intercept / (single - line.slope) : Infinity;
}

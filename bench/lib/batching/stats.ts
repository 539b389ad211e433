// Timing and statistics for bench/batching.ts: interleaved samples of several cases
// (A B, B A, … so slow drift from other load on the machine hits every case alike),
// medians, and a weighted least-squares line for per-batch cost = intercept + slope × k.
//
// Every timed run returns a checksum that is compared with what the case expects, so a
// loop whose calls failed (−errno) cannot pass for a fast one.
//
// Must never: report a sample whose checksum was wrong, or time anything but the run
// itself (set-up and checks stay outside the clock).
import os from "node:os";
import { median as medianOf } from "../report.ts";

/** One thing to time: `run()` performs `ops` operations and returns a checksum. */
export interface Case {
  readonly name: string;
  /** Operations one run performs (the per-op figure divides by this). */
  readonly ops: number;
  /** Does the work; returns a value to compare with `expect`. */
  readonly run: () => number;
  /** The checksum a correct run returns. */
  readonly expect: number;
}

/**
 * Median of a non-empty list.
 *
 * @example
 * ```ts
 * median([3, 1, 2]); // 2
 * ```
 */
export function median(xs: readonly number[]): number {
  const m = medianOf([...xs]);
  if (m === undefined) throw new RangeError("Cannot take the median of no samples");
  return m;
}

/**
 * Times one run of `c`; returns ns per operation. Throws when the checksum is wrong.
 *
 * @example
 * ```ts
 * timeOnce({ name: "abs", ops: 1000, run: () => nullLoops.abs(1000), expect: 499500 });
 * ```
 */
export function timeOnce(c: Case): number {
  const t0 = Bun.nanoseconds();
  const got = c.run();
  const t1 = Bun.nanoseconds();
  if (got !== c.expect) throw new Error(`${c.name}: checksum ${got}, expected ${c.expect} (a call failed)`);
  return (t1 - t0) / c.ops;
}

/**
 * Runs every case once untimed (JIT warm-up), then `samples` rounds; round r starts at
 * case r mod n, so the order rotates. Returns ns-per-op samples by case name.
 *
 * @example
 * ```ts
 * const s = sampleInterleaved([{ name: "abs", ops: 1000, run: () => nullLoops.abs(1000), expect: 499500 }], 11);
 * const ns = median(s.get("abs")!);
 * ```
 */
export function sampleInterleaved(cases: readonly Case[], samples: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const c of cases) {
    timeOnce(c);
    out.set(c.name, []);
  }
  for (let r = 0; r < samples; r++) {
    for (let i = 0; i < cases.length; i++) {
      const c = cases[(r + i) % cases.length]!;
      out.get(c.name)!.push(timeOnce(c));
    }
  }
  return out;
}

/** A fitted line y = intercept + slope × x. */
export interface Line {
  readonly intercept: number;
  readonly slope: number;
  /** Weighted R² of the fit. */
  readonly r2: number;
}

/**
 * Least squares with weights 1/y² (each point's relative error counts alike, which suits
 * batch sizes spaced 1, 2, 4 … 256: plain least squares would let k = 256 alone decide
 * the intercept).
 *
 * @example
 * ```ts
 * fitLine([1, 2, 4], [300, 340, 420]); // { intercept: 260, slope: 40, r2: 1 }
 * ```
 */
export function fitLine(xs: readonly number[], ys: readonly number[]): Line {
  if (xs.length !== ys.length || xs.length < 2) throw new RangeError(`Cannot fit a line to ${xs.length} points`);
  let sw = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < xs.length; i++) {
    const w = 1 / (ys[i]! * ys[i]!);
    sw += w;
    sx += w * xs[i]!;
    sy += w * ys[i]!;
  }
  const mx = sx / sw;
  const my = sy / sw;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    const w = 1 / (ys[i]! * ys[i]!);
    const dx = xs[i]! - mx;
    const dy = ys[i]! - my;
    sxx += w * dx * dx;
    sxy += w * dx * dy;
    syy += w * dy * dy;
  }
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const r2 = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy);
  return { intercept, slope, r2 };
}

/**
 * The 1-minute, 5-minute and 15-minute load averages, as "1.23 / 1.10 / 0.98".
 *
 * @example
 * ```ts
 * console.log(`load ${loadAverage()}`);
 * ```
 */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" / ");
}

/**
 * The simulator's randomness: one seeded generator per simulation (sfc32, seeded through
 * splitmix32), from which every random choice is drawn — the run queue's pick, network
 * latency and jitter, short reads and writes, event tie-breaks, chaos faults, and what
 * `Math.random()` returns while the simulation runs. Independent streams are forked from
 * it by label, so adding draws to one stream (say, user code calling Math.random more
 * often) does not shift another (the network's).
 *
 * Invariants: the same seed gives the same sequence on every run and platform (32-bit
 * integer arithmetic only); no generator reads anything but its own state.
 *
 * Must never: read real time, Math.random or crypto; allocate per draw.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */

/** splitmix32: expands a 32-bit seed into well-mixed words. */
function splitmix32(state: { s: number }): number {
  let z = (state.s = (state.s + 0x9e3779b9) | 0);
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** FNV-1a of a label, to derive a fork's seed. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * A seeded pseudo-random generator (sfc32): fast, 32-bit, reproducible from its seed.
 *
 * @example
 * ```ts
 * const rng = new SimRng(42);
 * rng.below(6);            // 0..5
 * rng.chance(0.1);         // true one time in ten
 * const net = rng.fork("net"); // an independent stream
 * ```
 */
export class SimRng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** Draws made so far (for reports). */
  draws = 0;

  constructor(readonly seed: number) {
    const st = { s: seed >>> 0 };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st) | 1;
    for (let i = 0; i < 12; i++) this.u32();
    this.draws = 0;
  }

  /** A uniform unsigned 32-bit integer. */
  u32(): number {
    this.draws++;
    const a = this.a;
    const b = this.b;
    const c = this.c;
    const d = this.d;
    const t = (((a + b) | 0) + d) | 0;
    this.d = (d + 1) | 0;
    this.a = b ^ (b >>> 9);
    this.b = (c + (c << 3)) | 0;
    const r = (c << 21) | (c >>> 11);
    this.c = (r + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1) with 32 bits of randomness. */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** A uniform integer in [0, n) (n ≥ 1; 0 when n ≤ 1). */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor(this.float() * n);
  }

  /** A uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && (p >= 1 || this.float() < p);
  }

  /** A uniform float in [lo, hi). */
  range(lo: number, hi: number): number {
    return hi <= lo ? lo : lo + this.float() * (hi - lo);
  }

  /** An independent generator derived from this one's seed and `label` (not from its position). */
  fork(label: string): SimRng {
    return new SimRng((Math.imul(this.seed ^ 0x5bd1e995, 0x27d4eb2d) ^ hashLabel(label)) >>> 0);
  }
}

// The output of bench/batching.ts: the measured terms, predicted vs measured break-even
// batch size, the sweep table and the phase split, as markdown (stdout and the
// `bench:batching` section of bench/RESULTS.md) or as one JSON object.
//
// Every derived number names its inputs in the text beside it; what each figure includes
// (FFI call, JS SQE fill, CQE reap) is written under the tables.
//
// Must never: round a number before it is used in a derivation, or print a crossover
// without saying whether it was read off the table or from a fitted line.
import * as U from "../../../ffi/uring.ts";
import { BATCH_SIZES, fitCrossover, tableCrossover, type Sweep } from "./sweep.ts";
import { seedBreakEven, type SwitchTerms, type SyscallTerms } from "./terms.ts";

/** Everything one run of the bench produced. */
export interface Results {
  readonly date: string;
  readonly machine: string;
  /** The kernel's speculative-execution mitigations that make kernel entry and calls dear. */
  readonly mitigations: string;
  readonly command: string;
  readonly loadBefore: string;
  readonly loadAfter: string;
  readonly samples: number;
  readonly elapsedS: number;
  readonly sys: SyscallTerms;
  readonly sw: SwitchTerms;
  /** The ring the sweep ran on, or why there was none. */
  readonly ring: { readonly path: string; readonly flags: number } | { readonly error: string };
  readonly target: { readonly kind: string; readonly describe: string };
  readonly sweep: Sweep | null;
}

/** The break-even figures derived from the results. */
export interface BreakEven {
  /** Seed formula with t_k pinned / unpinned / 0; null without a ring (no t_r). */
  readonly predicted: { readonly pinned: number; readonly unpinned: number; readonly noSwitch: number } | null;
  /** Target op, io_uring vs one syscall each: off the table, and from the fitted line. */
  readonly opTable: number | null;
  readonly opFit: number;
  /** NOP per SQE vs the null syscall through FFI (the model's own pair). */
  readonly nopTable: number | null;
  readonly nopFit: number;
}

/**
 * Derives predicted and measured B* (see {@link BreakEven}).
 *
 * @example
 * ```ts
 * breakEven(results).predicted?.pinned; // the break-even batch size B* with the pinned t_k
 * ```
 */
export function breakEven(r: Results): BreakEven {
  const s = r.sweep;
  if (s === null) return { predicted: null, opTable: null, opFit: NaN, nopTable: null, nopFit: NaN };
  const tR = s.nopFit.slope;
  const ks = s.rows.map((x) => x.k);
  return {
    predicted: {
      pinned: seedBreakEven(r.sys.tS, r.sw.pinned.tK, tR),
      unpinned: seedBreakEven(r.sys.tS, r.sw.unpinned.tK, tR),
      noSwitch: seedBreakEven(r.sys.tS, 0, tR),
    },
    opTable: tableCrossover(ks, s.rows.map((x) => x.uringNs), s.rows.map((x) => x.syscallNs)),
    opFit: fitCrossover(s.opFit, s.syscallNs),
    nopTable: tableCrossover(ks, s.rows.map((x) => x.nopNs), s.rows.map(() => r.sys.getppidNs)),
    nopFit: fitCrossover(s.nopFit, r.sys.getppidNs),
  };
}

const ns = (x: number): string => `${x.toFixed(1)} ns`;
const bStar = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : Number.isNaN(x) ? "–" : "∞ (never)");
const bTable = (x: number | null): string => (x === null ? `none up to ${BATCH_SIZES[BATCH_SIZES.length - 1]}` : `B = ${x}`);

/** Names of the setup flags that matter here. */
function flagNames(flags: number): string {
  const names: [number, string][] = [
    [U.SETUP_DEFER_TASKRUN, "DEFER_TASKRUN"],
    [U.SETUP_SINGLE_ISSUER, "SINGLE_ISSUER"],
    [U.SETUP_COOP_TASKRUN, "COOP_TASKRUN"],
    [U.SETUP_SUBMIT_ALL, "SUBMIT_ALL"],
  ];
  const on = names.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n);
  return on.length === 0 ? "none" : on.join("|");
}

/** The measured terms as a table. */
function termsTable(r: Results): string[] {
  const { sys, sw } = r;
  const pin = sw.pinned.pinned ? "pinned to one CPU" : "pinning refused: threads were free";
  const lines = [
    "| term | value | how |",
    "|---|---:|---|",
    `| bare FFI call | ${ns(sys.ffiNs)} | abs() through bun:ffi (no syscall) |`,
    `| null syscall via FFI | ${ns(sys.getppidNs)} | getppid() through bun:ffi |`,
    `| reel ffi/libc.ts getpid() | ${ns(sys.reelGetpidNs)} | another null syscall, through reel's own wrapper |`,
    `| **t_s** | **${ns(sys.tS)}** | getppid − abs: kernel entry + exit only |`,
    `| eventfd read / write | ${ns(sys.efdReadNs)} / ${ns(sys.efdWriteNs)} | non-blocking, 8 bytes, via reel's ffi/libc.ts |`,
    `| ping-pong round trip | ${ns(sw.pinned.rttNs)} / ${ns(sw.unpinned.rttNs)} | main thread ⇄ Bun Worker over two blocking eventfds (${pin} / unpinned) |`,
    `| **t_k** | **${ns(sw.pinned.tK)}** | RTT/2 − (eventfd write + read), pinned; unpinned (cross-CPU wake-up): ${ns(sw.unpinned.tK)} |`,
  ];
  const s = r.sweep;
  if (s !== null) {
    lines.push(`| **t_r** | **${ns(s.nopFit.slope)}** | slope of NOP batch time over k = 1…256 (weighted fit, R² ${s.nopFit.r2.toFixed(4)}); JS fill + kernel + JS reap per SQE |`);
    lines.push(`| per-enter cost | ${ns(s.nopFit.intercept)} | intercept of the same fit: one submitAndWait with its FFI call |`);
  } else lines.push("| t_r | not measured | no io_uring ring (see above) |");
  return lines;
}

/** Predicted vs measured B*. */
function breakEvenTable(r: Results, b: BreakEven): string[] {
  if (b.predicted === null) return ["Not computed: t_r needs an io_uring ring."];
  const s = r.sweep!;
  return [
    "| break-even batch size | B* | from |",
    "|---|---:|---|",
    `| **predicted** (the break-even batch size, t_k pinned) | **${bStar(b.predicted.pinned)}** | 2(t_s + t_k) / (2(t_s + t_k) − t_r) |`,
    `| predicted, t_k unpinned | ${bStar(b.predicted.unpinned)} | same, cross-CPU t_k |`,
    `| predicted, t_k = 0 | ${bStar(b.predicted.noSwitch)} | same, no switch (a non-blocking syscall does not switch) |`,
    `| **measured**: ${r.target.kind}, table | **${bTable(b.opTable)}** | smallest B from which io_uring < syscall in every row below |`,
    `| measured: ${r.target.kind}, fitted | ${bStar(b.opFit)} | a/(c − b): a = ${ns(s.opFit.intercept)}, b = ${ns(s.opFit.slope)} per SQE, c = ${ns(s.syscallNs)} per syscall |`,
    `| measured: NOP vs null syscall, table | ${bTable(b.nopTable)} | NOP per SQE vs getppid via FFI (${ns(r.sys.getppidNs)}) |`,
    `| measured: NOP vs null syscall, fitted | ${bStar(b.nopFit)} | a/(c − b) with the NOP fit and c = getppid |`,
  ];
}

/** Two sentences reading the B* table: what was measured, and which model term missed. */
function verdict(r: Results, b: BreakEven): string[] {
  const s = r.sweep;
  if (s === null || b.predicted === null) return [];
  const last = s.rows[s.rows.length - 1]!;
  const measured =
    b.opTable === null
      ? `measured, io_uring never got below one syscall per op up to B = ${last.k} (${(last.uringNs / last.syscallNs).toFixed(2)}× at ${last.k})`
      : `measured, io_uring is cheaper per op from B = ${b.opTable}`;
  const modelOp = 2 * (r.sys.tS + r.sw.pinned.tK);
  return [
    "",
    `Reading: the break-even formula predicts batching wins from B* = ${bStar(b.predicted.pinned)}; ${measured}.`,
    `The model charges an unbatched op 2(t_s + t_k) = ${ns(modelOp)}; the non-blocking ${r.target.kind} costs c = ${ns(s.syscallNs)} (no context switch). ` +
      `A batch pays a = ${ns(s.opFit.intercept)} per enter (not t_s = ${ns(r.sys.tS)}) and b = ${ns(s.opFit.slope)} per ${r.target.kind} SQE (not the NOP's t_r = ${ns(s.nopFit.slope)}).`,
  ];
}

/** The per-k table. */
function sweepTable(s: Sweep): string[] {
  const lines = [
    "| B | syscall per op | io_uring per op | io_uring / syscall | NOP per SQE | enters per batch |",
    "|---:|---:|---:|---:|---:|---:|",
  ];
  for (const x of s.rows) {
    const ratio = (x.uringNs / x.syscallNs).toFixed(2);
    lines.push(`| ${x.k} | ${x.syscallNs.toFixed(1)} | ${x.uringNs.toFixed(1)} | ${ratio}× | ${x.nopNs.toFixed(1)} | ${x.entersPerBatch.toFixed(2)} |`);
  }
  return lines;
}

/** Where a batch's time goes. */
function phaseTable(s: Sweep): string[] {
  const lines = ["| batch | JS SQE fill | enter (kernel + FFI) | JS CQE reap | total |", "|---|---:|---:|---:|---:|"];
  for (const p of s.phases) lines.push(`| ${p.label} | ${p.fill.toFixed(1)} | ${p.enter.toFixed(1)} | ${p.reap.toFixed(1)} | ${(p.fill + p.enter + p.reap).toFixed(1)} |`);
  return lines;
}

const NOTES = [
  "What the numbers include:",
  "- *syscall per op*: one `read`/`write` through reel's ffi/libc.ts (JS wrapper + bun:ffi call + syscall + the file's own work). An epoll-style reactor would also pay its epoll_wait, not counted here.",
  "- *io_uring per op*: per batch, k × `Ring.prep` (JS writes the SQE into the mapped ring), one `Ring.submitAndWait` (one io_uring_enter, via liburing or the raw syscall), k × `cqeRes` and one `advance`, divided by k. *Enters per batch* 1.00 means every op completed inside that one enter (no io-wq thread, no second enter); more means some did not and waited.",
  "- *t_r* is the NOP slope, so it includes the JS SQE fill and CQE read as well as the kernel's per-request work: the bookkeeping of the batched interface as reel pays it. The phase table splits it.",
  "- The phase table reads the clock three times per batch; one clock read (measured, see below) is subtracted from each phase of each batch.",
  "- Medians of interleaved runs (A B C, B C A, …); the machine is shared, so the load average is printed with the results.",
];

/**
 * The markdown report.
 *
 * @example
 * ```ts
 * console.log(markdown(results));
 * ```
 */
export function markdown(r: Results): string {
  const b = breakEven(r);
  const ring = "error" in r.ring ? `no ring: ${r.ring.error}` : `reel's Ring, ${r.ring.path} path, flags ${flagNames(r.ring.flags)}`;
  const out = [
    "## The break-even batch size (bench/batching.ts)",
    "",
    `- date: ${r.date}`,
    `- machine: ${r.machine}`,
    `- CPU mitigations: ${r.mitigations}`,
    `- load average (1/5/15 min): ${r.loadBefore} before, ${r.loadAfter} after`,
    `- command: \`${r.command}\` (${r.samples} samples per median, ${r.elapsedS.toFixed(1)} s)`,
    `- io_uring: ${ring}`,
    `- op on both sides: ${r.target.describe}`,
    "",
    "### Measured terms",
    "",
    ...termsTable(r),
    "",
    "### Predicted vs measured B*",
    "",
    ...breakEvenTable(r, b),
    ...verdict(r, b),
  ];
  if (r.sweep !== null) {
    out.push("", `### Per-op cost by batch size (ns, ${r.target.kind})`, "", ...sweepTable(r.sweep));
    out.push("", "### Where a batch's time goes (ns per op)", "", ...phaseTable(r.sweep));
    out.push("", `One Bun.nanoseconds() read: ${ns(r.sweep.clockNs)} (subtracted, ÷ k per op, from each phase).`);
  }
  out.push("", ...NOTES);
  return out.join("\n");
}

/**
 * The results and derived figures as JSON text (Infinity as the string "Infinity").
 *
 * @example
 * ```ts
 * console.log(jsonReport(results));
 * ```
 */
export function jsonReport(r: Results): string {
  return JSON.stringify({ ...r, breakEven: breakEven(r) }, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v), 2);
}

// Turns runs into medians, markdown tables and the goals check.
// Medians are over the *clean* runs only (echo-load exit 0); failed runs are counted in the
// errors column and listed under the table, never averaged in. Ratios are of medians
// measured in the same session, alternating servers. The goals are fixed in GOALS below
// and are reported as measured: this file must never adjust a number toward a goal.
import type { LoadSpec, RunResult } from "./load.ts";
import { REEL_SERVERS } from "./servers.ts";

/** Medians of one server under one load. */
export interface Summary {
  readonly server: string;
  readonly runs: number;
  readonly okRuns: number;
  readonly msgsPerSec?: number;
  readonly p50us?: number;
  readonly p99us?: number;
  readonly cpuUsPerMsg?: number;
  readonly errors: number;
  /** notes of failed runs, e.g. "round 2: connect: Connection refused" */
  readonly notes: string[];
  /** set when the server never ran: why */
  readonly skipped?: string;
}

/** Median of the defined numbers in `xs`, or undefined when there are none. */
export function median(xs: (number | undefined)[]): number | undefined {
  const v = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1]! + v[mid]!) / 2;
}

/** Summarizes the runs of one server under one load (`skipped`: why it never ran). */
export function summarize(server: string, runs: RunResult[], skipped?: string): Summary {
  const ok = runs.filter((r) => r.ok);
  const notes = runs.flatMap((r, i) => (r.ok ? [] : [`round ${i + 1}: ${r.note ?? "failed"}`]));
  return {
    server,
    runs: runs.length,
    okRuns: ok.length,
    msgsPerSec: median(ok.map((r) => r.msgsPerSec)),
    p50us: median(ok.map((r) => r.p50us)),
    p99us: median(ok.map((r) => r.p99us)),
    cpuUsPerMsg: median(ok.map((r) => r.cpuUsPerMsg)),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    notes,
    skipped: runs.length === 0 ? skipped : undefined,
  };
}

/** Formats a number with `digits` decimals, or "–" when absent. */
function fmt(x: number | undefined, digits: number): string {
  return x === undefined ? "–" : x.toFixed(digits);
}

/** a/b formatted as "1.23×", or "–" when either is absent or b is zero. */
function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? "–" : `${(a / b).toFixed(2)}×`;
}

/** One markdown row of the load table. */
function row(s: Summary, bun: Summary | undefined, c: Summary | undefined, latency: boolean): string {
  if (s.skipped !== undefined) {
    const rest = latency ? 8 : 7; // the cells after "server" and the reason
    return `| ${s.server} | skipped: ${s.skipped.replaceAll("|", "\\|")} |${" – |".repeat(rest)}`;
  }
  const cells = [
    s.server,
    `${s.okRuns}/${s.runs}`,
    fmt(s.msgsPerSec, 0),
    fmt(s.p50us, 1),
    fmt(s.p99us, 1),
    fmt(s.cpuUsPerMsg, 3),
    String(s.errors),
    ratio(s.msgsPerSec, bun?.msgsPerSec),
    ratio(s.msgsPerSec, c?.msgsPerSec),
  ];
  if (latency) cells.push(ratio(s.p50us, c?.p50us));
  return `| ${cells.join(" | ")} |`;
}

/**
 * A markdown table for one load: medians per server and ratios to bun-listen and c-epoll
 * (and, for the 1-connection latency load, p50 relative to c-epoll), failed runs listed below.
 */
export function loadTable(load: LoadSpec, summaries: Summary[]): string {
  const latency = load.conns === 1;
  const bun = summaries.find((s) => s.server === "bun-listen");
  const c = summaries.find((s) => s.server === "c-epoll");
  const head = ["server", "clean runs", "msgs/s", "p50_us", "p99_us", "srv_cpu_us/msg", "errors", "msgs/s ÷ bun-listen", "msgs/s ÷ c-epoll"];
  if (latency) head.push("p50 ÷ c-epoll");
  const pipe = load.pipeline > 1 ? `, pipeline ${load.pipeline}` : "";
  const lines = [
    `### ${load.name} — ${load.conns} conn × ${load.size} B${pipe}`,
    "",
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...summaries.map((s) => row(s, bun, c, latency)),
  ];
  const notes = summaries.flatMap((s) => s.notes.map((n) => `- ${s.server} ${n}`));
  if (notes.length > 0) lines.push("", "Failed runs (not in the medians):", ...notes);
  return lines.join("\n");
}

/** One goal: `metric` of a reel server relative to `base`, on each of `loads` (only for `servers` when given). */
interface Goal {
  readonly metric: "msgsPerSec" | "p50us";
  readonly base: string;
  readonly factor: number;
  readonly loads: readonly string[];
  readonly servers?: readonly string[];
}

/**
 * The project's goals. msgs/s must be ≥ factor × base; p50 must be ≤ factor × base. The
 * ceilings (raw-epoll, raw-uring: the same echo over bun:ffi with no runtime layers) make
 * the layers' cost a goal of its own: within 5 % on each backend.
 */
export const GOALS: readonly Goal[] = [
  { metric: "msgsPerSec", base: "bun-listen", factor: 1.0, loads: ["64x64", "256x64"], servers: ["reel-epoll", "reel-epoll-handlers"] },
  { metric: "msgsPerSec", base: "bun-listen", factor: 1.1, loads: ["64x64"], servers: ["reel-uring", "reel-uring-handlers"] },
  { metric: "msgsPerSec", base: "bun-listen", factor: 1.0, loads: ["256x64"], servers: ["reel-uring", "reel-uring-handlers"] },
  { metric: "msgsPerSec", base: "raw-epoll", factor: 0.95, loads: ["64x64", "256x64"], servers: ["reel-epoll", "reel-epoll-handlers"] },
  { metric: "msgsPerSec", base: "raw-uring", factor: 0.95, loads: ["64x64", "256x64"], servers: ["reel-uring", "reel-uring-handlers"] },
  { metric: "msgsPerSec", base: "tokio", factor: 1.0, loads: ["64x64", "256x64"] },
  { metric: "msgsPerSec", base: "c-epoll", factor: 0.9, loads: ["64x64", "256x64"] },
  { metric: "p50us", base: "c-epoll", factor: 1.1, loads: ["1x64"] },
  { metric: "msgsPerSec", base: "bun-listen", factor: 1.2, loads: ["64x4096"] },
];

/** The verdict cells of one goal for one reel server under one load. */
function verdict(goal: Goal, server: string, table: Summary[] | undefined): [string, string] {
  if (!table) return ["–", "n/a: load not run"];
  const mine = table.find((s) => s.server === server)?.[goal.metric];
  const baseRow = table.find((s) => s.server === goal.base);
  const base = baseRow?.[goal.metric];
  if (mine === undefined) return ["–", `n/a: no clean ${server} run`];
  if (!baseRow) return ["–", `n/a: ${goal.base} not selected`];
  if (baseRow.skipped !== undefined) return ["–", `n/a: ${goal.base} skipped`];
  if (base === undefined || base === 0) return ["–", `n/a: no clean ${goal.base} run`];
  const r = mine / base;
  const met = goal.metric === "p50us" ? r <= goal.factor : r >= goal.factor;
  return [`${r.toFixed(3)}×`, met ? "met" : "NOT met"];
}

/** Why a reel server has no goal rows: skipped (reason), not selected, or no clean run. */
function reelStatus(rows: Summary[]): string {
  if (rows.length === 0) return "not selected";
  const skipped = rows.find((s) => s.skipped !== undefined)?.skipped;
  if (skipped !== undefined) return `skipped: ${skipped}`;
  const failed = rows.reduce((n, s) => n + s.runs - s.okRuns, 0);
  return `no clean run (${failed} failed)`;
}

/**
 * The "Goals" markdown section: every goal, for every reel backend with a clean run, marked
 * met / NOT met with the measured ratio (or n/a with the reason).
 */
export function goalsSection(tables: Map<string, Summary[]>): string {
  const all = [...tables.values()].flat();
  const ran = REEL_SERVERS.filter((name) => all.some((s) => s.server === name && s.okRuns > 0));
  const lines = ["### Goals", ""];
  if (ran.length === 0) {
    const why = REEL_SERVERS.map((n) => `${n}: ${reelStatus(all.filter((s) => s.server === n))}`);
    return [...lines, "No reel backend ran, so no goal was evaluated.", "", ...why.map((w) => `- ${w}`)].join("\n");
  }
  lines.push("| goal | server | load | measured | result |", "|---|---|---|---:|---|");
  for (const goal of GOALS) {
    const text = goal.metric === "p50us" ? `p50 ≤ ${goal.factor.toFixed(2)}× ${goal.base}` : `msgs/s ≥ ${goal.factor.toFixed(2)}× ${goal.base}`;
    for (const server of ran.filter((s) => goal.servers === undefined || goal.servers.includes(s)))
      for (const load of goal.loads) {
        const [measured, result] = verdict(goal, server, tables.get(load));
        lines.push(`| ${text} | ${server} | ${load} | ${measured} | ${result} |`);
      }
  }
  return lines.join("\n");
}

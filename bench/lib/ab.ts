/**
 * A/B runs of bench/micro.ts: another checkout (A, the baseline) against this one (B),
 * alternating A B A B in fresh processes so that a noisy machine hurts both alike; the
 * per-op figures are summarised as median and minimum, with B/A ratios.
 *
 * Must never: run both in one process (JIT and GC state would leak from one to the other),
 * or write any section but bench:micro-ab.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { commandLine, machineLine, writeSection } from "./results.ts";

/** Runs one checkout's micro.ts --json and returns its per-op figures. */
function once(dir: string): Record<string, number> {
  const p = Bun.spawnSync(["bun", "run", "bench/micro.ts", "--json"], { cwd: dir, stdout: "pipe", stderr: "ignore" });
  const out = p.stdout.toString();
  const at = out.indexOf("{");
  if (p.exitCode !== 0 || at < 0) throw new Error(`bench/micro.ts --json failed in ${dir} (exit ${p.exitCode})`);
  return JSON.parse(out.slice(at)) as Record<string, number>;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;

/**
 * Compares `baseDir` (A) with this checkout (B); `argv` gives `--rounds N` and `--write`.
 *
 * @example
 * ```ts
 * await abCompare("/tmp/reel-base", ["--rounds", "9", "--write"]);
 * ```
 */
export async function abCompare(baseDir: string | undefined, argv: string[]): Promise<void> {
  if (baseDir === undefined || !existsSync(join(baseDir, "bench/micro.ts"))) {
    throw new Error(`--ab needs a checkout with bench/micro.ts, got ${String(baseDir)}`);
  }
  const l = argv.indexOf("--label");
  const label = l >= 0 ? argv[l + 1] : undefined;
  const r = argv.indexOf("--rounds");
  const rounds = r >= 0 ? Number(argv[r + 1]) : 7;
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`Invalid --rounds ${String(argv[r + 1])}: must be an integer ≥ 1`);
  const here = join(import.meta.dir, "../..");
  const a: Record<string, number[]> = {};
  const b: Record<string, number[]> = {};
  for (let i = 0; i < rounds; i++) {
    for (const [dir, into] of [[baseDir, a], [here, b]] as const) {
      for (const [k, v] of Object.entries(once(dir))) (into[k] ??= []).push(v);
    }
    console.error(`round ${i + 1}/${rounds} done`);
  }
  const rows: string[] = [];
  for (const k of Object.keys(b)) {
    const av = a[k];
    const bv = b[k]!;
    if (av === undefined) continue;
    const [am, bm, amin, bmin] = [median(av), median(bv), Math.min(...av), Math.min(...bv)];
    rows.push(`| ${k} | ${am.toFixed(1)} | ${bm.toFixed(1)} | ${(bm / am).toFixed(3)} | ${amin.toFixed(1)} | ${bmin.toFixed(1)} | ${(bmin / amin).toFixed(3)} |`);
  }
  const table = [
    "| operation | A median (ns) | B median (ns) | B/A | A min (ns) | B min (ns) | B/A |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...rows,
  ].join("\n");
  console.log(table);
  if (argv.includes("--write")) {
    const body = [
      `## Microbenchmarks, A/B — ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`,
      "",
      `- Machine: ${machineLine()}`,
      `- Command: \`${commandLine("bench/micro.ts")}\` (A = ${baseDir}${label !== undefined ? `: ${label}` : ""}; B = this checkout)`,
      `- Method: ${rounds} rounds, A and B alternating, each a fresh \`bun run bench/micro.ts --json\`; per op the median and the minimum over the rounds.`,
      "",
      table,
    ].join("\n");
    writeSection(join(here, "bench/RESULTS.md"), "bench:micro-ab", body);
    console.log("wrote the micro-ab section of bench/RESULTS.md");
  }
}

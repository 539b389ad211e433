// echo: the side-by-side TCP echo benchmark — reel's echo example on each backend against
// Bun.listen, node:net, a C epoll server and tokio, under the same closed-loop client.
//
// usage: bun run bench/echo.ts [--secs N] [--rounds N] [--loads a,b] [--servers a,b]
//                              [--out FILE] [--no-write]
//
// For each load, the servers run in turn A B C … A B C … for --rounds rounds, each run a
// fresh server process loaded by echo-load for --secs seconds. The result is a markdown
// table per load (medians, ratios to bun-listen and c-epoll) and a goals check, printed and
// written into the echo section of bench/RESULTS.md (or --out FILE).
//
// It must never leave a server running (every exit path kills its children), never turn a
// failing server or client into a crash (a failed start is a skip, a failed load an error
// in the table), and never tune what it measures toward the goals.
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ensureAnchors } from "./lib/anchors.ts";
import { installCleanup, killAllNow, killChild } from "./lib/children.ts";
import { DEFAULT_LOADS, type LoadSpec, parseLoad, type RunResult, runLoad } from "./lib/load.ts";
import { goalsSection, loadTable, type Summary, summarize } from "./lib/report.ts";
import { commandLine, machineLine, writeSection } from "./lib/results.ts";
import { type Paths, SERVER_NAMES, type ServerSpec, serverSpecs, startServer } from "./lib/servers.ts";

/** Parsed command-line options. */
interface Options {
  secs: number;
  rounds: number;
  loads: LoadSpec[];
  servers: string[];
  out: string | null;
}

const USAGE = `usage: bun run bench/echo.ts [options]
  --secs N        seconds per run (default 5)
  --rounds N      rounds per load; each round runs every server once (default 3)
  --loads a,b     loads CONNSxSIZE[pPIPELINE] (default ${DEFAULT_LOADS.join(",")})
  --servers a,b   servers (default ${SERVER_NAMES.join(",")})
  --out FILE      write the results section into FILE (default bench/RESULTS.md)
  --no-write      print only`;

/** Exits with status 2 and a message naming the bad value. */
function die(msg: string): never {
  console.error(`${msg}\n${USAGE}`);
  process.exit(2);
}

/** Parses a positive number option, dying with a clear message on a bad value. */
function positive(name: string, raw: string | undefined, fallback: number, integer: boolean): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) die(`Cannot use --${name} ${raw}: must be a positive ${integer ? "integer" : "number"}`);
  return n;
}

/** Reads the command line into Options (exits with usage on --help or a bad value). */
function parseOptions(root: string): Options {
  const { values } = parseArgs({
    options: {
      secs: { type: "string" },
      rounds: { type: "string" },
      loads: { type: "string" },
      servers: { type: "string" },
      out: { type: "string" },
      "no-write": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const loads = (values.loads ?? DEFAULT_LOADS.join(",")).split(",").map((name) => parseLoad(name.trim()) ?? die(`Cannot parse load "${name}": expected CONNSxSIZE[pPIPELINE], e.g. 64x64 or 16x64p16`));
  const servers = (values.servers ?? SERVER_NAMES.join(",")).split(",").map((s) => s.trim());
  for (const s of servers) if (!(SERVER_NAMES as readonly string[]).includes(s)) die(`Unknown server "${s}": expected one of ${SERVER_NAMES.join(", ")}`);
  const out = values["no-write"] ? null : resolve(values.out ?? join(root, "bench", "RESULTS.md"));
  return { secs: positive("secs", values.secs, 5, false), rounds: positive("rounds", values.rounds, 3, true), loads, servers, out };
}

/** Per-session server state: why a server is skipped, and which ones started at least once. */
interface Session {
  readonly skipped: Map<string, string>;
  readonly started: Set<string>;
}

/** One run: a fresh server, one load, the server killed. A failed start returns the reason. */
async function oneRun(paths: Paths, spec: ServerSpec, load: LoadSpec, secs: number): Promise<RunResult | string> {
  const started = await startServer(spec, { cwd: paths.root });
  if (!started.ok) return started.reason;
  try {
    return await runLoad(join(paths.anchors, "echo-load"), started.server, load, secs);
  } finally {
    await killChild(started.server.child);
  }
}

/** One-line progress report of a run, to stderr. */
function progress(tag: string, server: string, r: RunResult | string): void {
  const text =
    typeof r === "string"
      ? `skipped: ${r}`
      : `${r.msgsPerSec?.toFixed(0) ?? "–"} msgs/s  p50 ${r.p50us ?? "–"} us  p99 ${r.p99us ?? "–"} us  cpu ${r.cpuUsPerMsg ?? "–"} us/msg  errors ${r.errors}${r.ok ? "" : `  FAILED: ${r.note}`}`;
  console.error(`${tag} ${server.padEnd(10)} ${text}`);
}

/** Runs every round of one load, servers alternating; returns the summaries in server order. */
async function runOneLoad(paths: Paths, opts: Options, load: LoadSpec, session: Session): Promise<Summary[]> {
  const specs = serverSpecs(paths);
  const runs = new Map<string, RunResult[]>(opts.servers.map((s) => [s, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    for (const name of opts.servers) {
      if (session.skipped.has(name)) continue;
      const r = await oneRun(paths, specs.get(name)!, load, opts.secs);
      progress(`[${load.name} ${round}/${opts.rounds}]`, name, r);
      if (typeof r !== "string") {
        session.started.add(name);
        runs.get(name)!.push(r);
      } else if (session.started.has(name)) {
        runs.get(name)!.push({ ok: false, errors: 1, note: `failed to start: ${r}` });
      } else {
        session.skipped.set(name, r);
      }
    }
  }
  return opts.servers.map((s) => summarize(s, runs.get(s) ?? [], session.skipped.get(s)));
}

/** The full markdown section: heading, machine, command, method, a table per load, goals. */
function render(opts: Options, tables: Map<string, Summary[]>): string {
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const head = [
    `## Echo benchmark — ${date}`,
    "",
    `- Machine: ${machineLine()}`,
    `- Command: \`${commandLine("bench/echo.ts")}\``,
    `- Method: per load, servers alternate for ${opts.rounds} round(s); each run is a fresh server process under echo-load for ${opts.secs} s. Medians over clean runs (echo-load exit 0); srv_cpu_us/msg is the server's user+sys CPU per echoed message.`,
  ];
  const body = opts.loads.map((l) => loadTable(l, tables.get(l.name) ?? []));
  return [...head, "", ...body.flatMap((t) => [t, ""]), goalsSection(tables), ""].join("\n");
}

/** Builds the anchors, runs every load, prints and writes the results. */
async function main(): Promise<void> {
  const root = resolve(import.meta.dir, "..");
  const paths: Paths = { root, anchors: join(root, "bench", ".anchors") };
  const opts = parseOptions(root);
  installCleanup();
  await ensureAnchors(resolve(root, "..", "shared"), paths.anchors);
  const session: Session = { skipped: new Map(), started: new Set() };
  const tables = new Map<string, Summary[]>();
  for (const load of opts.loads) tables.set(load.name, await runOneLoad(paths, opts, load, session));
  const md = render(opts, tables);
  console.log(md);
  if (opts.out) {
    writeSection(opts.out, "bench:echo", md);
    console.error(`wrote the echo section of ${opts.out}`);
  }
}

try {
  await main();
} finally {
  killAllNow();
}

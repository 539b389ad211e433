// memory: server memory per idle connection — reel's echo example against Bun.listen (and,
// on request, the other echo servers), same start contract as bench/echo.ts.
//
// usage: bun run bench/memory.ts [--conns N] [--servers a,b] [--settle-ms N] [--timeout N]
//                                [--no-ping] [--out FILE] [--no-write]
//
// Per server: start a fresh server with RLIMIT_NOFILE raised (prlimit, else `ulimit -n` in an
// exec'ing sh), read its VmRSS, open N connections from this process (each pings once and
// waits for the echo, unless --no-ping), let it settle, read VmRSS again, and report
// (after - before) / N. Linux only (/proc). Loopback only; every phase has a deadline.
// It must never leave a server running or sockets open, and never crash on a failing server.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ensureAnchors } from "./lib/anchors.ts";
import { installCleanup, killAllNow, killChild, sleep } from "./lib/children.ts";
import { closeAll, openIdle } from "./lib/idle-clients.ts";
import { commandLine, machineLine, writeSection } from "./lib/results.ts";
import { getNofile, raiseNofile } from "./lib/rlimit.ts";
import { type Paths, SERVER_NAMES, type ServerSpec, serverSpecs, startServer } from "./lib/servers.ts";

/** Parsed command-line options. */
interface Options {
  conns: number;
  servers: string[];
  settleMs: number;
  timeoutSecs: number;
  ping: boolean;
  out: string | null;
}

/** What one server measured (or why it was skipped). */
interface MemResult {
  server: string;
  skipped?: string;
  opened?: number;
  failed?: number;
  note?: string;
  fds?: number;
  rssBeforeKiB?: number;
  rssAfterKiB?: number;
}

const USAGE = `usage: bun run bench/memory.ts [options]
  --conns N       idle connections per server (default 10000)
  --servers a,b   servers (default reel-epoll,bun-listen; any of ${SERVER_NAMES.join(",")})
  --settle-ms N   wait before each RSS reading (default 1000)
  --timeout N     seconds allowed for opening the connections (default 60)
  --no-ping       do not send one message per connection before measuring
  --out FILE      write the results section into FILE (default bench/RESULTS.md)
  --no-write      print only`;

/** Exits with status 2 and a message naming the bad value. */
function die(msg: string): never {
  console.error(`${msg}\n${USAGE}`);
  process.exit(2);
}

/** Parses a positive integer option. */
function int(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) die(`Cannot use --${name} ${raw}: must be a positive integer`);
  return n;
}

/** Reads the command line into Options. */
function parseOptions(root: string): Options {
  const { values } = parseArgs({
    options: {
      conns: { type: "string" },
      servers: { type: "string" },
      "settle-ms": { type: "string" },
      timeout: { type: "string" },
      "no-ping": { type: "boolean" },
      out: { type: "string" },
      "no-write": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const servers = (values.servers ?? "reel-epoll,bun-listen").split(",").map((s) => s.trim());
  for (const s of servers) if (!(SERVER_NAMES as readonly string[]).includes(s)) die(`Unknown server "${s}": expected one of ${SERVER_NAMES.join(", ")}`);
  return {
    conns: int("conns", values.conns, 10_000),
    servers,
    settleMs: int("settle-ms", values["settle-ms"], 1000),
    timeoutSecs: int("timeout", values.timeout, 60),
    ping: !values["no-ping"],
    out: values["no-write"] ? null : resolve(values.out ?? join(root, "bench", "RESULTS.md")),
  };
}

/** VmRSS of `pid` in KiB, from /proc/PID/status; undefined when it cannot be read. */
function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Number of open file descriptors of `pid`; undefined when /proc/PID/fd cannot be read. */
function fdCount(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** An argv rewriter that runs a server with RLIMIT_NOFILE = `limit` (the wrapper execs it). */
function withNofile(limit: number): (argv: string[]) => string[] {
  const hard = Math.max(limit, getNofile().hard);
  if (Bun.which("prlimit")) return (argv) => ["prlimit", `--nofile=${limit}:${hard}`, "--", ...argv];
  return (argv) => ["sh", "-c", 'ulimit -n "$0" && exec "$@"', String(limit), ...argv];
}

/** Measures one server: RSS before and after opening `conns` idle connections. */
async function measure(paths: Paths, spec: ServerSpec, opts: Options): Promise<MemResult> {
  const started = await startServer(spec, { cwd: paths.root, wrap: withNofile(opts.conns + 256) });
  if (!started.ok) return { server: spec.name, skipped: started.reason };
  const { child, host, port } = started.server;
  try {
    await sleep(opts.settleMs); // let startup garbage settle before the baseline reading
    const rssBeforeKiB = rssKiB(child.pid);
    const deadline = Date.now() + opts.timeoutSecs * 1000;
    const clients = await openIdle(host, port, opts.conns, { ping: opts.ping, inFlight: 128, deadline });
    await sleep(opts.settleMs);
    const result: MemResult = {
      server: spec.name,
      opened: clients.sockets.length,
      failed: clients.failed,
      note: clients.timedOut ? `timed out after ${opts.timeoutSecs} s` : (clients.firstError ?? undefined),
      fds: fdCount(child.pid),
      rssBeforeKiB,
      rssAfterKiB: rssKiB(child.pid),
    };
    closeAll(clients);
    return result;
  } finally {
    await killChild(child);
  }
}

/** One markdown row of the memory table. */
function row(r: MemResult): string {
  if (r.skipped !== undefined) return `| ${r.server} | skipped: ${r.skipped.replaceAll("|", "\\|")} | – | – | – | – | – |`;
  const mib = (k: number | undefined): string => (k === undefined ? "–" : (k / 1024).toFixed(1));
  const per =
    r.rssBeforeKiB !== undefined && r.rssAfterKiB !== undefined && r.opened
      ? ((r.rssAfterKiB - r.rssBeforeKiB) / r.opened).toFixed(2)
      : "–";
  const failed = r.failed ? `${r.failed} (${r.note ?? "?"})` : r.note ? `0 (${r.note})` : "0";
  return `| ${r.server} | ${r.opened ?? 0} | ${failed} | ${r.fds ?? "–"} | ${mib(r.rssBeforeKiB)} | ${mib(r.rssAfterKiB)} | ${per} |`;
}

/** The markdown section: heading, machine, command, method, the table. */
function render(opts: Options, results: MemResult[]): string {
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  return [
    `## Memory per idle connection — ${date}`,
    "",
    `- Machine: ${machineLine()}`,
    `- Command: \`${commandLine("bench/memory.ts")}\``,
    `- Method: fresh server; VmRSS read ${opts.settleMs} ms after it accepts; ${opts.conns} loopback connections opened${opts.ping ? ", each echoing one 16-byte message," : ""} then held idle; VmRSS read again after ${opts.settleMs} ms. Per connection = (after − before) / connections open; RSS is user-space memory only (kernel socket buffers are not in it).`,
    "",
    "| server | conns open | failed | server fds | RSS before (MiB) | RSS after (MiB) | RSS per conn (KiB) |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...results.map(row),
    "",
  ].join("\n");
}

/** Raises limits, measures every server, prints and writes the results. */
async function main(): Promise<void> {
  if (process.platform !== "linux") die("bench/memory.ts reads /proc: Linux only");
  const root = resolve(import.meta.dir, "..");
  const paths: Paths = { root, anchors: join(root, "bench", ".anchors") };
  const opts = parseOptions(root);
  installCleanup();
  const lim = raiseNofile(opts.conns + 256);
  if (lim.soft < opts.conns + 256) console.error(`warning: RLIMIT_NOFILE of this process is ${lim.soft}; some connections will fail`);
  await ensureAnchors(resolve(root, "..", "shared"), paths.anchors);
  const specs = serverSpecs(paths);
  const results: MemResult[] = [];
  for (const name of opts.servers) {
    const r = await measure(paths, specs.get(name)!, opts);
    console.error(row(r));
    results.push(r);
  }
  const md = render(opts, results);
  console.log(md);
  if (opts.out) {
    writeSection(opts.out, "bench:memory", md);
    console.error(`wrote the memory section of ${opts.out}`);
  }
}

try {
  await main();
} finally {
  killAllNow();
}

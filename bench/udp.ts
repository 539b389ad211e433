// udp: the UDP echo ping-pong benchmark — reel's examples/udp-echo.ts (one datagram at a
// time, and with recvMany/sendMany batches) on each backend against Bun.udpSocket and a C
// recvfrom/sendto loop, all under the same closed-loop client (udp-load, from
// ../shared/tools/build-anchors.sh).
//
// usage: bun run bench/udp.ts [--secs N] [--rounds N] [--loads a,b] [--servers a,b]
//                             [--out FILE] [--no-write]
//
// For each load, the servers run in turn A B C … A B C … for --rounds rounds, each run a
// fresh server process loaded by udp-load for --secs seconds. Output: a markdown table per
// load (medians over clean runs, ratios to bun-udp and c-udp), printed and written into
// the udp section of bench/RESULTS.md (or --out FILE).
//
// It must never leave a server running (every exit path kills its children), never turn a
// failing server or client into a crash (a failed start is a skip, a failed load an error
// in the table), and never tune what it measures toward the goal.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import dgram from "node:dgram";
import { installCleanup, killAllNow, killChild, hasExited, spawnChild, type Child } from "./lib/children.ts";
import { parseReport } from "./lib/load.ts";
import { median } from "./lib/report.ts";
import { commandLine, machineLine, writeSection } from "./lib/results.ts";
import { stderrReason } from "./lib/servers.ts";

/** One UDP load: SOCKS client sockets × SIZE-byte datagrams, PIPELINE in flight per socket. */
interface UdpLoad {
  readonly name: string;
  readonly socks: number;
  readonly size: number;
  readonly pipeline: number;
}

/** What one run of udp-load measured. */
interface UdpRun {
  readonly ok: boolean;
  readonly msgsPerSec?: number;
  readonly p50us?: number;
  readonly p99us?: number;
  readonly cpuUsPerMsg?: number;
  readonly lost: number;
  readonly errors: number;
  readonly note?: string;
}

/** How to start one server (all announce `listening on 127.0.0.1:PORT` when started on port 0). */
interface UdpServer {
  readonly name: string;
  argv(root: string, anchors: string): string[];
  readonly env: Record<string, string>;
  /** A binary it needs, when that may be missing. */
  needs?(anchors: string): string | null;
}

const DEFAULT_LOADS = ["1x64", "16x64", "16x64p8", "64x512"];

const SERVERS: readonly UdpServer[] = [
  { name: "reel-epoll", argv: (root) => [process.execPath, "run", join(root, "examples", "udp-echo.ts"), "0"], env: { REEL_BACKEND: "epoll" } },
  { name: "reel-epoll-many", argv: (root) => [process.execPath, "run", join(root, "examples", "udp-echo.ts"), "--many", "0"], env: { REEL_BACKEND: "epoll" } },
  { name: "reel-uring", argv: (root) => [process.execPath, "run", join(root, "examples", "udp-echo.ts"), "0"], env: { REEL_BACKEND: "uring" } },
  { name: "reel-uring-many", argv: (root) => [process.execPath, "run", join(root, "examples", "udp-echo.ts"), "--many", "0"], env: { REEL_BACKEND: "uring" } },
  { name: "bun-udp", argv: (root) => [process.execPath, "run", join(root, "bench", "servers", "bun-udp.ts"), "0"], env: {} },
  {
    name: "c-udp",
    argv: (_root, anchors) => [join(anchors, "udp-echo"), "0"],
    env: {},
    needs: (anchors) => (existsSync(join(anchors, "udp-echo")) ? null : "udp-echo is not built"),
  },
];

const USAGE = `usage: bun run bench/udp.ts [options]
  --secs N        seconds per run (default 5)
  --rounds N      rounds per load; each round runs every server once (default 3)
  --loads a,b     loads SOCKSxSIZE[pPIPELINE] (default ${DEFAULT_LOADS.join(",")})
  --servers a,b   servers (default ${SERVERS.map((s) => s.name).join(",")})
  --out FILE      write the results section into FILE (default bench/RESULTS.md)
  --no-write      print only`;

function die(msg: string): never {
  console.error(`${msg}\n${USAGE}`);
  process.exit(2);
}

function parseLoad(name: string): UdpLoad | null {
  const m = /^(\d+)x(\d+)(?:p(\d+))?$/.exec(name);
  if (!m) return null;
  const socks = Number(m[1]);
  const size = Number(m[2]);
  const pipeline = m[3] === undefined ? 1 : Number(m[3]);
  if (socks < 1 || size < 4 || size > 65000 || pipeline < 1 || pipeline > 64) return null;
  return { name, socks, size, pipeline };
}

/** Sends one datagram to the server until it comes back (bounded): it is up and echoing. */
async function pingUdp(port: number, tries = 100): Promise<boolean> {
  const sock = dgram.createSocket("udp4");
  try {
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    for (let i = 0; i < tries; i++) {
      const got = new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 50);
        sock.once("message", () => {
          clearTimeout(t);
          resolve(true);
        });
      });
      sock.send(Buffer.from("ping"), port, "127.0.0.1");
      if (await got) return true;
    }
    return false;
  } finally {
    sock.close();
  }
}

/** Starts one fresh server; its port, or the reason it did not start. */
async function start(spec: UdpServer, root: string, anchors: string): Promise<{ child: Child; port: number } | string> {
  const missing = spec.needs?.(anchors) ?? null;
  if (missing !== null) return missing;
  const child = spawnChild(spec.name, spec.argv(root, anchors), spec.env, root);
  let timer: Timer | undefined;
  const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), 20_000)));
  const line = await Promise.race([child.waitForLine(/^listening on 127\.0\.0\.1:(\d+)\s*$/), child.exited.then(() => null), timeout]);
  clearTimeout(timer);
  if (line === null || line === "timeout") {
    const why = stderrReason(child.stderr) ?? (line === "timeout" ? "printed no `listening on` line in time" : "exited before listening");
    await killChild(child);
    return why;
  }
  const port = Number(line[1]);
  if (!(await pingUdp(port)) || hasExited(child)) {
    const why = stderrReason(child.stderr) ?? "did not echo a datagram";
    await killChild(child);
    return why;
  }
  const banner = child.stderr.find((l) => /backend/.test(l));
  const want = spec.env.REEL_BACKEND;
  if (want !== undefined && banner !== undefined && !banner.includes(`${want} backend`)) {
    await killChild(child);
    return `REEL_BACKEND=${want} but: ${banner.trim()}`;
  }
  return { child, port };
}

/** Runs udp-load against a running server. */
async function load(udpLoad: string, port: number, server: Child, l: UdpLoad, secs: number): Promise<UdpRun> {
  const argv = [udpLoad, "127.0.0.1", String(port), String(l.socks), String(l.size), String(secs), String(l.pipeline)];
  const child = spawnChild("udp-load", argv, { ECHO_LOAD_SERVER_PID: String(server.pid) });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void killChild(child);
  }, (secs + 15) * 1000);
  const code = await child.exited;
  clearTimeout(timer);
  if (timedOut) return { ok: false, lost: 0, errors: 1, note: `udp-load did not finish within ${secs + 15} s` };
  const line = child.stdout.findLast((x) => x.includes("msgs/s="));
  const kv = line ? parseReport(line) : new Map<string, number>();
  const ok = code === 0 && line !== undefined && !hasExited(server);
  return {
    ok,
    msgsPerSec: kv.get("msgs/s"),
    p50us: kv.get("p50_us"),
    p99us: kv.get("p99_us"),
    cpuUsPerMsg: kv.get("srv_cpu_us/msg"),
    lost: kv.get("lost") ?? 0,
    errors: kv.get("errors") ?? (ok ? 0 : 1),
    note: ok ? undefined : hasExited(server) ? "server exited during the run" : (stderrReason(child.stderr) ?? `udp-load exited ${code}`),
  };
}

interface Row {
  server: string;
  runs: UdpRun[];
  skipped?: string;
}

function fmt(x: number | undefined, d: number): string {
  return x === undefined ? "–" : x.toFixed(d);
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? "–" : `${(a / b).toFixed(2)}×`;
}

/** The markdown table of one load. */
function table(l: UdpLoad, rows: Row[]): string {
  const med = (r: Row, k: "msgsPerSec" | "p50us" | "p99us" | "cpuUsPerMsg") => median(r.runs.filter((x) => x.ok).map((x) => x[k]));
  const bun = rows.find((r) => r.server === "bun-udp");
  const c = rows.find((r) => r.server === "c-udp");
  const head = ["server", "clean runs", "msgs/s", "p50_us", "p99_us", "srv_cpu_us/msg", "lost", "errors", "msgs/s ÷ bun-udp", "msgs/s ÷ c-udp"];
  const lines = [
    `### ${l.name} — ${l.socks} socket${l.socks > 1 ? "s" : ""} × ${l.size} B${l.pipeline > 1 ? `, pipeline ${l.pipeline}` : ""}`,
    "",
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
  ];
  for (const r of rows) {
    if (r.skipped !== undefined) {
      lines.push(`| ${r.server} | skipped: ${r.skipped.replaceAll("|", "\\|")} |${" – |".repeat(8)}`);
      continue;
    }
    const ok = r.runs.filter((x) => x.ok).length;
    const lost = r.runs.reduce((s, x) => s + x.lost, 0);
    const errors = r.runs.reduce((s, x) => s + x.errors, 0);
    lines.push(
      `| ${[r.server, `${ok}/${r.runs.length}`, fmt(med(r, "msgsPerSec"), 0), fmt(med(r, "p50us"), 1), fmt(med(r, "p99us"), 1), fmt(med(r, "cpuUsPerMsg"), 3), String(lost), String(errors), ratio(med(r, "msgsPerSec"), bun && med(bun, "msgsPerSec")), ratio(med(r, "msgsPerSec"), c && med(c, "msgsPerSec"))].join(" | ")} |`,
    );
  }
  const notes = rows.flatMap((r) => r.runs.flatMap((x, i) => (x.ok ? [] : [`- ${r.server} round ${i + 1}: ${x.note ?? "failed"}`])));
  if (notes.length > 0) lines.push("", "Failed runs (not in the medians):", ...notes);
  return lines.join("\n");
}

async function ensureUdpAnchors(shared: string, anchors: string): Promise<void> {
  if (existsSync(join(anchors, "udp-load")) && existsSync(join(anchors, "udp-echo"))) return;
  const script = join(shared, "tools", "build-anchors.sh");
  if (!existsSync(script)) throw new Error(`Cannot build the UDP anchors: ${script} does not exist`);
  console.error(`building anchors into ${anchors} (udp-load / udp-echo missing) ...`);
  const code = await Bun.spawn(["bash", script, anchors], { stdin: "ignore", stdout: "inherit", stderr: "inherit" }).exited;
  if (code !== 0) throw new Error(`Cannot build the UDP anchors: build-anchors.sh exited with ${code}`);
}

async function main(): Promise<void> {
  const root = resolve(import.meta.dir, "..");
  const anchors = join(root, "bench", ".anchors");
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
  const secs = Number(values.secs ?? 5);
  const rounds = Number(values.rounds ?? 3);
  if (!(secs > 0) || !Number.isInteger(rounds) || rounds < 1) die("--secs must be > 0 and --rounds a positive integer");
  const loads = (values.loads ?? DEFAULT_LOADS.join(",")).split(",").map((n) => parseLoad(n.trim()) ?? die(`Cannot parse load "${n}": expected SOCKSxSIZE[pPIPELINE]`));
  const names = (values.servers ?? SERVERS.map((s) => s.name).join(",")).split(",").map((s) => s.trim());
  const specs = names.map((n) => SERVERS.find((s) => s.name === n) ?? die(`Unknown server "${n}"`));
  const out = values["no-write"] ? null : resolve(values.out ?? join(root, "bench", "RESULTS.md"));
  installCleanup();
  await ensureUdpAnchors(resolve(root, "..", "shared"), anchors);
  const udpLoad = join(anchors, "udp-load");
  const skipped = new Map<string, string>();
  const tables: string[] = [];
  for (const l of loads) {
    const rows: Row[] = specs.map((s) => ({ server: s.name, runs: [] }));
    for (let round = 1; round <= rounds; round++) {
      for (const [i, spec] of specs.entries()) {
        if (skipped.has(spec.name)) continue;
        const s = await start(spec, root, anchors);
        if (typeof s === "string") {
          if (rows[i]!.runs.length === 0 && round === 1) skipped.set(spec.name, s);
          else rows[i]!.runs.push({ ok: false, lost: 0, errors: 1, note: `failed to start: ${s}` });
          console.error(`[${l.name} ${round}/${rounds}] ${spec.name.padEnd(16)} skipped: ${s}`);
          continue;
        }
        let r: UdpRun;
        try {
          r = await load(udpLoad, s.port, s.child, l, secs);
        } finally {
          await killChild(s.child);
        }
        rows[i]!.runs.push(r);
        console.error(`[${l.name} ${round}/${rounds}] ${spec.name.padEnd(16)} ${fmt(r.msgsPerSec, 0)} msgs/s  p50 ${fmt(r.p50us, 1)} us  lost ${r.lost}  errors ${r.errors}${r.ok ? "" : `  FAILED: ${r.note}`}`);
      }
    }
    for (const r of rows) if (skipped.has(r.server)) r.skipped = skipped.get(r.server);
    tables.push(table(l, rows));
  }
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const md = [
    `## UDP echo benchmark — ${date}`,
    "",
    `- Machine: ${machineLine()}`,
    `- Command: \`${commandLine("bench/udp.ts")}\``,
    `- Method: per load, servers alternate for ${rounds} round(s); each run is a fresh server process under udp-load (closed loop over connected client sockets) for ${secs} s. Medians over clean runs. reel-*: examples/udp-echo.ts (recvFrom/sendTo one datagram at a time; -many: recvMany/sendMany batches of up to 32); bun-udp: bench/servers/bun-udp.ts (Bun.udpSocket); c-udp: the C recvfrom/sendto loop.`,
    "",
    ...tables.flatMap((t) => [t, ""]),
  ].join("\n");
  console.log(md);
  if (out) {
    writeSection(out, "bench:udp", md);
    console.error(`wrote the udp section of ${out}`);
  }
}

try {
  await main();
} finally {
  killAllNow();
}

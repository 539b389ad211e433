// The simulator's speed: an echo of N messages (default 10,000 × 64 B, one at a time:
// write, read the echo back) between a client and a server, run (a) over loopback on the
// epoll backend, (b) between two simulated hosts (`new Sim()`, default settings: 0.5–2 ms
// of virtual latency per hop, seeded random scheduling, short transfers 10 % of the time,
// the trace hashed). The same reel code runs in both.
//
// Each side runs in fresh processes, alternating A B A B (as micro.ts --ab does): in one
// process the two would share JIT state (IoSource's calls into the driver would see two
// kinds of fd and slow down both). Each child makes WARMUP runs (the JIT needs a few to
// reach its optimising tiers: the first simulated runs are several times slower) and RUNS
// timed ones, and reports their median; the table gives
// the median over the rounds, the ratio, and the virtual time the simulated exchange took.
//
//   bun run bench/sim.ts [--messages N] [--size B] [--rounds N] [--runs N] [--warmup N] [--write]
//
// Goal (issue 16): the simulated echo at least 10× faster than the loopback one.
//
// Must never: compare numbers from different runs, or time the epoll runtime's creation
// (it is made once per child; the simulation's own setup, a runtime per run, is timed:
// it is part of running a simulation).
import { Runtime, Sim, TcpListener, TcpStream, spawn } from "../lib/index.ts";
import { writeSection } from "./lib/results.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const MESSAGES = opt("--messages", 10_000);
const SIZE = opt("--size", 64);
const ROUNDS = opt("--rounds", 7);
const RUNS = opt("--runs", 5);
const WARMUP = opt("--warmup", 15);
const WRITE = args.includes("--write");
const CHILD = args.includes("--child") ? (args[args.indexOf("--child") + 1] ?? "") : null;

/** The server: echo each connection until EOF. */
function* echoServer(l: TcpListener): Generator<unknown, void, unknown> {
  const [s] = yield* l.accept();
  s.setNoDelay(true);
  const buf = new Uint8Array(65536);
  for (let n; (n = yield* s.read(buf)) > 0; ) yield* s.writeAll(buf.subarray(0, n));
  s.close();
}

/** The client: N messages, each written and read back before the next. */
function* echoClient(host: string, port: number): Generator<unknown, number, unknown> {
  const c = yield* TcpStream.connect({ hostname: host, port });
  c.setNoDelay(true);
  const msg = new Uint8Array(SIZE).fill(7);
  const back = new Uint8Array(SIZE);
  for (let i = 0; i < MESSAGES; i++) {
    yield* c.writeAll(msg);
    yield* c.readExact(back);
  }
  c.close();
  return MESSAGES;
}

let epollRt: Runtime | null = null;

/** (a) over loopback on epoll: wall ms. */
function loopback(): number {
  const epoll = (epollRt ??= new Runtime({ backend: "epoll" }));
  const t0 = performance.now();
  epoll.blockOn(function* () {
    const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    const srv = spawn(() => echoServer(l));
    const n = yield* echoClient("127.0.0.1", l.localAddr.port);
    yield* srv;
    l.close();
    if (n !== MESSAGES) throw new Error("short exchange");
  });
  return performance.now() - t0;
}

/** (b) between two simulated hosts: wall ms, and the virtual ms the exchange took. */
function simulated(seed: number): [number, number, string] {
  const t0 = performance.now();
  const sim = new Sim({ seed });
  sim.host("server", (ctx) => function* () {
    const l = TcpListener.bind({ hostname: ctx.ip, port: 7 });
    yield* echoServer(l);
    l.close();
  });
  sim.client("client", () => () => echoClient(sim.ip("server"), 7));
  const r = sim.run();
  const wall = performance.now() - t0;
  if (r.clients.get("client") !== MESSAGES) throw new Error("short simulated exchange");
  return [wall, r.virtualMs, r.traceHash];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** One child: a warm-up run, then RUNS timed ones; prints the median wall ms (and, for sim, virtual ms and hash). */
function child(which: string): void {
  const times: number[] = [];
  let extra = "";
  for (let r = 0; r < WARMUP + RUNS; r++) {
    let t: number;
    if (which === "sim") {
      const [w, v, h] = simulated(1);
      t = w;
      extra = ` ${v} ${h}`;
    } else t = loopback();
    if (r >= WARMUP) times.push(t);
  }
  epollRt?.close();
  console.log(`RESULT ${median(times)}${extra}`);
}

/** Runs one child of this script and reads its RESULT line. */
function spawnChild(which: string): string[] {
  const p = Bun.spawnSync([process.execPath, import.meta.path, "--child", which, "--messages", String(MESSAGES), "--size", String(SIZE), "--runs", String(RUNS), "--warmup", String(WARMUP)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const line = p.stdout.toString().split("\n").find((l) => l.startsWith("RESULT "));
  if (p.exitCode !== 0 || line === undefined) throw new Error(`bench/sim.ts --child ${which} failed (exit ${p.exitCode})`);
  return line.slice(7).split(" ");
}

if (CHILD !== null) {
  child(CHILD);
  process.exit(0);
}

const real: number[] = [];
const sims: number[] = [];
let virtualMs = 0;
let hash = "";
for (let r = 0; r < ROUNDS; r++) {
  real.push(Number(spawnChild("loopback")[0]));
  const [w, v, h] = spawnChild("sim");
  sims.push(Number(w));
  virtualMs = Number(v);
  hash = h!;
}
const mr = median(real);
const ms = median(sims);
const body = [
  `### The simulator's speed: ${MESSAGES.toLocaleString("en")} echoed messages of ${SIZE} B (median of ${ROUNDS} alternating rounds, fresh processes)`,
  "",
  `\`bun run bench/sim.ts --messages ${MESSAGES} --size ${SIZE} --rounds ${ROUNDS} --runs ${RUNS} --warmup ${WARMUP}\` · Bun ${Bun.version} · ${new Date().toISOString().slice(0, 10)}`,
  "",
  `| exchange | wall ms per run | µs per message | rounds (ms, each a child's median of ${RUNS} runs after ${WARMUP} warm-up runs) |`,
  "|---|---:|---:|---|",
  `| over loopback, epoll backend (one runtime, client and server tasks) | ${mr.toFixed(1)} | ${((mr * 1000) / MESSAGES).toFixed(2)} | ${real.map((x) => x.toFixed(0)).join(", ")} |`,
  `| two simulated hosts (\`new Sim()\` per run, default settings) | ${ms.toFixed(1)} | ${((ms * 1000) / MESSAGES).toFixed(2)} | ${sims.map((x) => x.toFixed(0)).join(", ")} |`,
  "",
  `The simulated exchange is **${(mr / ms).toFixed(1)}×** as fast as the loopback one (goal: ≥ 10×); in virtual time it ` +
    `took ${(virtualMs / 1000).toFixed(1)} s (the default 0.5–2 ms per hop), the same on every run of seed 1 (trace ${hash}).`,
].join("\n");
console.log(body);
if (WRITE) writeSection(new URL("./RESULTS.md", import.meta.url).pathname, "bench:sim", body);

/**
 * Microbenchmarks of the runtime's hot operations, with mitata.
 *
 *   bun run bench/micro.ts            # mitata's table, then ns per operation
 *   bun run bench/micro.ts --json     # the per-op figures as JSON
 *   bun run bench/micro.ts --write    # also replace the micro section of bench/RESULTS.md
 *   bun run bench/micro.ts --ab DIR [--rounds N] [--label TEXT] [--write]
 *       # A/B against another checkout (DIR, e.g. a `git archive` of an older commit with
 *       # node_modules linked): runs DIR's micro.ts --json and this one's alternately, N
 *       # rounds (default 7), in fresh processes; prints median and minimum per op and the
 *       # ratios; --write puts that table in the micro-ab section of bench/RESULTS.md.
 *
 * Operations that need a running executor are measured in batches of BATCH inside one
 * blockOn (a blockOn per operation would measure blockOn); the per-op figure divides the
 * batch time by BATCH. Goals (issue 3): spawn+complete ≤ 200 ns, wake+re-poll ≤ 100 ns,
 * timer arm+cancel ≤ 100 ns.
 *
 * Must never: run against anything but this process (no sockets beyond a local pair).
 */
import { bench, do_not_optimize, run, summary } from "mitata";
import { abCompare } from "./lib/ab.ts";
import { dlopen } from "bun:ffi";
import { PENDING, Runtime, channel, pollFn, ready, sleep, spawn, type Context } from "../lib/index.ts";
import { EpollPoller } from "../lib/driver/readiness/epoll.ts";
import { addressOf, copyFromAddress } from "../ffi/libc.ts";
import { commandLine, machineLine, writeSection } from "./lib/results.ts";

const abAt = process.argv.indexOf("--ab");
if (abAt >= 0) {
  await abCompare(process.argv[abAt + 1], process.argv);
  process.exit(0);
}

const BATCH = 1000;
const rt = new Runtime();

// A trivial libc function: no syscall, so this is the bare FFI call cost.
const { symbols: libc } = dlopen(process.platform === "linux" ? "libc.so.6" : "libSystem.B.dylib", {
  abs: { args: ["i32"], returns: "i32" },
  getppid: { args: [], returns: "i32" },
});

/** Spawns BATCH trivial tasks and awaits them all. */
function spawnBatch(): void {
  rt.blockOn(function* () {
    const hs = new Array(BATCH);
    for (let i = 0; i < BATCH; i++) hs[i] = spawn(ready(i));
    for (let i = 0; i < BATCH; i++) yield* hs[i];
  });
}

/** One task that wakes itself BATCH times: each round is wake() + queue + re-poll. */
function wakeRepoll(): void {
  let n = 0;
  rt.blockOn(
    pollFn<void>((cx: Context) => {
      if (++n === BATCH) return undefined;
      cx.waker.wake();
      return PENDING;
    }),
  );
}

/** BATCH timers inserted into the wheel (first poll) and cancelled. */
function timerArmCancel(): void {
  rt.blockOn(
    pollFn<void>((cx: Context) => {
      for (let i = 0; i < BATCH; i++) {
        const s = sleep(1000 + (i & 63));
        s.poll(cx);
        s.cancel();
      }
      return undefined;
    }),
  );
}

/** BATCH/10 sleep(0)s in a row: each waits for the next driver turn. */
function sleepZero(): void {
  rt.blockOn(function* () {
    for (let i = 0; i < BATCH / 10; i++) yield* sleep(0);
  });
}

/** BATCH messages through a bounded channel: one task sends, the blockOn task receives. */
function channelSendRecv(): void {
  rt.blockOn(function* () {
    const [tx, rx] = channel<number>(128);
    const producer = spawn(function* () {
      for (let i = 0; i < BATCH; i++) yield* tx.send(i);
      tx.close();
    });
    let sum = 0;
    for (let v; (v = yield* rx.recv()) !== null; ) sum += v;
    yield* producer;
    do_not_optimize(sum);
  });
}

const poller = new EpollPoller();

// The io_uring reader's copy out of the provided-buffer ring (lib/driver/uring/recv.ts):
// a view made per copy, against one memcpy from the ring's address.
const ring = new Uint8Array(new ArrayBuffer(64 * 16384));
const ringAt = addressOf(ring);
const dst = new Uint8Array(new ArrayBuffer(65536));
let nextBuf = 0;

summary(() => {
  bench("ffi: abs() (no syscall)", () => do_not_optimize(libc.abs(-5)));
  bench("ffi: getppid() (a null syscall)", () => do_not_optimize(libc.getppid()));
  bench("epoll_wait(0) on an idle epoll", () => do_not_optimize(poller.wait(0)));
});
summary(() => {
  bench("copy 64 B out of a buffer ring: subarray + set", () => {
    const at = (nextBuf = (nextBuf + 1) & 63) * 16384;
    dst.set(ring.subarray(at, at + 64), 0);
  });
  bench("copy 64 B out of a buffer ring: copyFromAddress (memcpy)", () => {
    const at = (nextBuf = (nextBuf + 1) & 63) * 16384;
    copyFromAddress(dst, 0, ringAt + at, 64);
  });
});
bench(`spawn+complete ×${BATCH}`, spawnBatch);
bench(`wake+re-poll ×${BATCH}`, wakeRepoll);
bench(`timer arm+cancel ×${BATCH}`, timerArmCancel);
bench(`sleep(0) round trip ×${BATCH / 10}`, sleepZero);
bench(`channel send+recv (task → task, capacity 128) ×${BATCH}`, channelSendRecv);

const json = process.argv.includes("--json");
const out = await run(json ? { format: "quiet" } : {});
poller.close();
rt.close();

// Per-operation figures from mitata's averages.
const perOp: Record<string, number> = {};
for (const b of out.benchmarks) {
  const name = b.alias;
  const avg = b.runs[0]?.stats?.avg;
  if (avg === undefined) continue;
  const m = name.match(/×(\d+)$/);
  perOp[name.replace(/ ×\d+$/, "")] = m ? avg / Number(m[1]) : avg;
}
const goals: Record<string, number> = { "spawn+complete": 200, "wake+re-poll": 100, "timer arm+cancel": 100, "channel send+recv (task → task, capacity 128)": 100 };
const rows = Object.entries(perOp).map(([k, v]) => {
  const goal = goals[k];
  const verdict = goal === undefined ? "" : v <= goal ? `goal ≤ ${goal} ns: met` : `goal ≤ ${goal} ns: NOT met`;
  return { k, v, verdict };
});
if (json) {
  console.log(JSON.stringify(perOp, null, 2));
} else {
  console.log("\nper operation:");
  for (const r of rows) console.log(`  ${r.k.padEnd(50)} ${r.v.toFixed(1).padStart(9)} ns  ${r.verdict}`);
}
if (process.argv.includes("--write")) {
  const body = [
    `## Microbenchmarks — ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`,
    "",
    `- Machine: ${machineLine()}`,
    `- Command: \`${commandLine("bench/micro.ts")}\``,
    `- Method: mitata averages; operations that need a running executor are timed in batches of ${BATCH} inside one blockOn and divided.`,
    "",
    "| operation | ns/op | goal |",
    "|---|---:|---|",
    ...rows.map((r) => `| ${r.k} | ${r.v.toFixed(1)} | ${r.verdict} |`),
  ].join("\n");
  writeSection(new URL("./RESULTS.md", import.meta.url).pathname, "bench:micro", body);
  console.log("wrote the micro section of bench/RESULTS.md");
}

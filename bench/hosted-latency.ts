// hosted-latency: the wake-up latency of a reel task — from the moment another thread
// writes one byte to a socket to the moment the task's read returns — with reel owning
// the thread (blockOn: the wait is epoll_wait in this thread) and in hosted mode (run():
// reel parked in Bun's loop, woken by the watcher thread through Atomics.waitAsync), and
// Bun's own socket callback (Bun.listen's data()) under the same writer, for reference.
//
// usage: bun run bench/hosted-latency.ts [--rounds N] [--gap-us N]
//        REEL_BACKEND=uring bun run bench/hosted-latency.ts
// Prints one line per mode: p50/p90/p99/max in µs. Must never share a socket between
// modes (each gets a fresh pair) or count a round the writer did not stamp.
import { parseArgs } from "node:util";
import { Runtime, TcpListener, TcpStream } from "../lib/index.ts";
import { run } from "../lib/interop/hosted.ts";
import { monoNs } from "./lib/monoclock.ts";

const { values } = parseArgs({ options: { rounds: { type: "string" }, "gap-us": { type: "string" } } });
const ROUNDS = Number(values.rounds ?? 2000);
const GAP_US = Number(values["gap-us"] ?? 300);

/** Summary of latencies in µs. */
function summary(name: string, us: number[]): string {
  const s = [...us].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(1);
  return `${name.padEnd(22)} n=${s.length} p50_us=${q(0.5)} p90_us=${q(0.9)} p99_us=${q(0.99)} max_us=${s[s.length - 1]!.toFixed(1)}`;
}

/** Starts the writer thread on `fd`; returns the go() trigger and stamps. */
function writer(fd: number) {
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  const stamps = new Float64Array(new SharedArrayBuffer(8 * ROUNDS));
  const w = new Worker(new URL("./hosted-latency-worker.ts", import.meta.url).href);
  const finished = new Promise<void>((r) => w.addEventListener("message", () => r(), { once: true }));
  w.postMessage({ ctl: ctl.buffer, stamps: stamps.buffer, fd, rounds: ROUNDS, gapUs: GAP_US });
  const go = (i: number) => {
    Atomics.store(ctl, 0, i);
    Atomics.notify(ctl, 0);
  };
  return { go, stamps, finished: finished.then(() => w.terminate()) };
}

/** The reel task: round i asks for a byte and stamps when its read returns. */
function* rounds(s: TcpStream, go: (i: number) => void, t1: number[]) {
  const buf = new Uint8Array(1);
  for (let i = 1; i <= ROUNDS; i++) {
    go(i);
    const n = yield* s.read(buf);
    t1.push(monoNs());
    if (n !== 1) throw new Error(`round ${i}: read ${n} bytes`);
  }
}

function* pair() {
  const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
  const [s] = yield* l.accept();
  l.close();
  return [c, s] as const;
}

async function reel(mode: "blockOn" | "hosted"): Promise<number[]> {
  const rt = new Runtime();
  const [c, s] = rt.blockOn(pair);
  const { go, stamps, finished } = writer(c.fd);
  const t1: number[] = [];
  if (mode === "blockOn") rt.blockOn(() => rounds(s, go, t1));
  else await run(() => rounds(s, go, t1), { runtime: rt });
  await finished;
  c.close();
  s.close();
  rt.close();
  return t1.map((t, i) => (t - stamps[i]!) / 1000);
}

async function bun(): Promise<number[]> {
  const t1: number[] = [];
  let i = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  let go!: (i: number) => void;
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(_s, d) {
        for (let k = 0; k < d.length; k++) t1.push(monoNs());
        if (++i >= ROUNDS) done();
        else go(i + 1);
      },
    },
  });
  const rt = new Runtime();
  const c = rt.blockOn(TcpStream.connect({ hostname: "127.0.0.1", port: server.port }));
  const w = writer(c.fd);
  go = w.go;
  go(1);
  await all;
  await w.finished;
  c.close();
  rt.close();
  server.stop(true);
  return t1.map((t, k) => (t - w.stamps[k]!) / 1000);
}

console.log(`rounds=${ROUNDS} gap_us=${GAP_US} backend=${new Runtime().backend} cpus=${navigator.hardwareConcurrency}`);
for (let r = 0; r < 2; r++) {
  console.log(summary("reel blockOn", await reel("blockOn")));
  console.log(summary("reel hosted (run)", await reel("hosted")));
  console.log(summary("Bun.listen data()", await bun()));
}
process.exit(0);

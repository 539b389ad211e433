// Task ping-pong: what a wake → poll → resume costs in reel, against the same exchange
// written as two async functions over Promises in Bun — the thing reel's poll futures must
// beat to be worth their shape.
//
//   bun run bench/pingpong.ts [--trips N] [--rounds N] [--write]
//
// reel: two tasks, two `channel(1)`s; the pinger sends i and waits for the pong, the ponger
// answers. Promises: two async functions over a minimal Promise channel of capacity 1 (a
// value slot and one waiting resolver per side), the same protocol. Both run in this one
// process, alternating A B A B, so machine noise hits both; the table reports the median
// ns per round trip of each and their ratio. `--write` records it in bench/RESULTS.md.
//
// Must never: measure with a warm-up folded in (the first round of each is discarded), or
// compare numbers from different runs.
import { blockOn, channel, spawn } from "../lib/index.ts";
import { writeSection } from "./lib/results.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const TRIPS = opt("--trips", 200_000);
const ROUNDS = opt("--rounds", 5);
const WRITE = args.includes("--write");

/** reel: N round trips between two tasks over two channel(1)s; returns ns per trip. */
function reelPingPong(n: number): number {
  return blockOn(function* () {
    const [pingTx, pingRx] = channel<number>(1);
    const [pongTx, pongRx] = channel<number>(1);
    const ponger = spawn(function* () {
      for (;;) {
        const v = yield* pingRx.recv();
        if (v === null) return;
        yield* pongTx.send(v);
      }
    });
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      yield* pingTx.send(i);
      yield* pongRx.recv();
    }
    const t1 = performance.now();
    pingTx.close();
    yield* ponger;
    return ((t1 - t0) * 1e6) / n;
  });
}

/** A capacity-1 channel over Promises: one slot, one waiting receiver, one waiting sender. */
class PromiseChannel<T> {
  private slot: T | undefined = undefined;
  private full = false;
  private closed = false;
  private recvWaiter: ((v: T | null) => void) | null = null;
  private sendWaiter: (() => void) | null = null;

  send(v: T): Promise<void> | void {
    if (this.recvWaiter !== null) {
      const r = this.recvWaiter;
      this.recvWaiter = null;
      r(v);
      return;
    }
    if (!this.full) {
      this.slot = v;
      this.full = true;
      return;
    }
    return new Promise<void>((resolve) => {
      this.sendWaiter = () => {
        this.slot = v;
        this.full = true;
        resolve();
      };
    });
  }

  recv(): Promise<T | null> | T | null {
    if (this.full) {
      const v = this.slot as T;
      this.full = false;
      this.slot = undefined;
      const s = this.sendWaiter;
      this.sendWaiter = null;
      s?.();
      return v;
    }
    if (this.closed) return null;
    return new Promise<T | null>((resolve) => (this.recvWaiter = resolve));
  }

  close(): void {
    this.closed = true;
    const r = this.recvWaiter;
    this.recvWaiter = null;
    r?.(null);
  }
}

/** Promises: N round trips between two async functions; returns ns per trip. */
async function promisePingPong(n: number): Promise<number> {
  const ping = new PromiseChannel<number>();
  const pong = new PromiseChannel<number>();
  const ponger = (async () => {
    for (;;) {
      const v = await ping.recv();
      if (v === null) return;
      await pong.send(v);
    }
  })();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await ping.send(i);
    await pong.recv();
  }
  const t1 = performance.now();
  ping.close();
  await ponger;
  return ((t1 - t0) * 1e6) / n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

const reel: number[] = [];
const prom: number[] = [];
for (let r = 0; r <= ROUNDS; r++) {
  const a = reelPingPong(TRIPS);
  const b = await promisePingPong(TRIPS);
  if (r === 0) continue; // warm-up round
  reel.push(a);
  prom.push(b);
}
const mr = median(reel);
const mp = median(prom);
const body = [
  `### Task ping-pong (${TRIPS.toLocaleString("en")} round trips, median of ${ROUNDS} alternating rounds)`,
  "",
  `\`bun run bench/pingpong.ts --trips ${TRIPS} --rounds ${ROUNDS}\` · Bun ${Bun.version} · ${new Date().toISOString().slice(0, 10)}`,
  "",
  "| exchange | ns per round trip | rounds |",
  "|---|---:|---|",
  `| reel: two tasks, two channel(1)s | ${mr.toFixed(1)} | ${reel.map((x) => x.toFixed(0)).join(", ")} |`,
  `| Bun: two async functions over a Promise channel | ${mp.toFixed(1)} | ${prom.map((x) => x.toFixed(0)).join(", ")} |`,
  "",
  `reel is **${(mp / mr).toFixed(2)}×** the speed of the Promise version (goal: ≥ 2×).`,
].join("\n");
console.log(body);
if (WRITE) writeSection(new URL("./RESULTS.md", import.meta.url).pathname, "bench:pingpong", body);

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
// Beside the two, two rows say where reel's time goes (the same protocol, one layer at a
// time): "generators alone" resumes two bare generators alternately from a plain loop —
// the floor of any generator-based task, with no runtime at all; "reel tasks, a one-slot
// handoff" runs two reel tasks that hand the value over through a trivial future (a slot
// and a stored waker), so it is the executor, the task and the generator adapter without
// the channels. Channels cost the difference between that row and the first.
//
// Must never: measure with a warm-up folded in (the first round of each is discarded), or
// compare numbers from different runs.
import { BaseFuture, PENDING, blockOn, channel, spawn, type Context, type Poll, type Waker } from "../lib/index.ts";
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

/** A one-value slot with one waiting reader: the least a handoff between two tasks needs. */
class Slot {
  value = 0;
  full = false;
  waker: Waker | null = null;
  readonly take = new Take(this);
  put(v: number): void {
    this.value = v;
    this.full = true;
    const w = this.waker;
    if (w !== null) {
      this.waker = null;
      w.wake();
    }
  }
}

/** The slot's value once full; one future per slot, made `yield*`-able again by again(). */
class Take extends BaseFuture<number> {
  constructor(private readonly slot: Slot) {
    super();
  }
  poll(cx: Context): Poll<number> {
    const s = this.slot;
    if (!s.full) {
      s.waker = cx.waker;
      return PENDING;
    }
    s.full = false;
    return s.value;
  }
  again(): this {
    this.rearm();
    return this;
  }
}

/** reel tasks over a one-slot handoff (no channel): executor + task + generator adapter. */
function reelHandoff(n: number): number {
  return blockOn(function* () {
    const ping = new Slot();
    const pong = new Slot();
    const ponger = spawn(function* () {
      for (;;) {
        const v = yield* ping.take.again();
        if (v < 0) return;
        pong.put(v);
      }
    });
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      ping.put(i);
      yield* pong.take.again();
    }
    const t1 = performance.now();
    ping.put(-1);
    yield* ponger;
    return ((t1 - t0) * 1e6) / n;
  });
}

/** Two bare generators resumed alternately by a loop: the floor of generator-based tasks. */
function bareGenerators(n: number): number {
  let slot = 0;
  let back = 0;
  function* ponger(): Generator<void, void, void> {
    for (;;) {
      yield;
      back = slot;
    }
  }
  function* pinger(): Generator<void, void, void> {
    for (let i = 0; i < n; i++) {
      slot = i;
      yield;
    }
  }
  const a = pinger();
  const b = ponger();
  b.next();
  const t0 = performance.now();
  while (!a.next().done) b.next();
  const t1 = performance.now();
  if (back !== n - 1) throw new Error(`bare generators: ${back} !== ${n - 1}`);
  return ((t1 - t0) * 1e6) / n;
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
const handoff: number[] = [];
const bare: number[] = [];
for (let r = 0; r <= ROUNDS; r++) {
  const a = reelPingPong(TRIPS);
  const b = await promisePingPong(TRIPS);
  const c = reelHandoff(TRIPS);
  const d = bareGenerators(TRIPS);
  if (r === 0) continue; // warm-up round
  reel.push(a);
  prom.push(b);
  handoff.push(c);
  bare.push(d);
}
const mr = median(reel);
const mp = median(prom);
const mh = median(handoff);
const mb = median(bare);
const row = (what: string, m: number, xs: number[]) => `| ${what} | ${m.toFixed(1)} | ${xs.map((x) => x.toFixed(0)).join(", ")} |`;
const body = [
  `### Task ping-pong (${TRIPS.toLocaleString("en")} round trips, median of ${ROUNDS} alternating rounds)`,
  "",
  `\`bun run bench/pingpong.ts --trips ${TRIPS} --rounds ${ROUNDS}\` · Bun ${Bun.version} · ${new Date().toISOString().slice(0, 10)}`,
  "",
  "| exchange | ns per round trip | rounds |",
  "|---|---:|---|",
  row("reel: two tasks, two channel(1)s", mr, reel),
  row("Bun: two async functions over a Promise channel", mp, prom),
  row("where reel's time goes: reel tasks, a one-slot handoff (no channel)", mh, handoff),
  row("where reel's time goes: two bare generators, no runtime (the floor)", mb, bare),
  "",
  `reel is **${(mp / mr).toFixed(2)}×** the speed of the Promise version (goal: ≥ 2×, that is ≤ ${(mp / 2).toFixed(0)} ns).`,
  `Of reel's ${mr.toFixed(0)} ns: ${mb.toFixed(0)} ns is two generator resumes, ${(mh - mb).toFixed(0)} ns the executor, tasks and generator adapter, ${(mr - mh).toFixed(0)} ns the channels.`,
].join("\n");
console.log(body);
if (WRITE) writeSection(new URL("./RESULTS.md", import.meta.url).pathname, "bench:pingpong", body);

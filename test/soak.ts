/**
 * Soak test (on demand, not in CI): a reel echo server (serve()) and a fleet of clients in
 * one process, with connection churn and cancelled ops, for a bounded time, while RSS, open
 * fds and the driver's registrations are sampled. Passes (exit 0) when, after a warm-up,
 * RSS stays flat and fds and registrations return to where they started; prints one line
 * per sample and a verdict.
 *
 *   bun run test/soak.ts [seconds]            default 60 (or REEL_SOAK_SECONDS)
 *   REEL_BACKEND=uring bun run test/soak.ts 30
 *
 * "Flat": after the warm-up (the first sixth of the run, at least 5 s), the median RSS of
 * the last third of the samples is within max(8 MB, 10%) of the median of the first third
 * (RSS wanders by a few MB with GC timing, so single samples and raw slopes are noise at
 * this length; a leak of even 1 KB per connection would add ~15 MB a minute here). Every
 * echoed byte was verified; no client failed except on purpose; fds and registrations
 * are back where they started. The slope is printed for information.
 */
import { Runtime, TcpListener, TcpStream, TimeoutError, gen, now, sleep, spawn, timeout, type JoinHandle } from "../lib/index.ts";
import { serve } from "../lib/net/serve.ts";
import { Rng, Tracker, echoHandler, fillPattern, openFds, raiseNofile } from "./fault_util.ts";

const seconds = Number(process.argv[2] ?? process.env.REEL_SOAK_SECONDS ?? 60);
if (!Number.isFinite(seconds) || seconds < 10) {
  console.error(`usage: bun run test/soak.ts [seconds ≥ 10]  (got ${process.argv[2]})`);
  process.exit(2);
}
const CLIENTS = 64;
const SAMPLE_MS = Math.max(1000, Math.floor((seconds * 1000) / 30));
const WARMUP_MS = Math.max(5000, (seconds * 1000) / 6);

interface Sample {
  t: number;
  rssMb: number;
  fds: number;
  live: number;
  msgs: number;
}

const stats = { msgs: 0, bytes: 0, conns: 0, cancelled: 0, errors: [] as string[] };

/** One client: connections of 1–50 round trips of 1 B–64 KiB, every byte checked; some reads abandoned by a timeout. */
function* client(port: number, rng: Rng, stop: () => boolean): Generator<unknown, void, unknown> {
  const out = new Uint8Array(65536);
  const back = new Uint8Array(65536);
  const st = { x: rng.u32() | 1 };
  while (!stop()) {
    const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
    stats.conns++;
    try {
      for (let k = rng.int(1, 50); k > 0 && !stop(); k--) {
        if (rng.chance(0.02)) {
          // A read nobody answers, cancelled by its timeout: exercises the cancel paths.
          try {
            yield* timeout(s.read(back), rng.int(0, 3));
          } catch (e) {
            if (!(e instanceof TimeoutError)) throw e;
            stats.cancelled++;
          }
          continue;
        }
        const n = rng.int(1, 65536);
        fillPattern(out.subarray(0, n), st);
        yield* s.writeAll(out.subarray(0, n));
        yield* s.readExact(back.subarray(0, n));
        if (Buffer.compare(back.subarray(0, n), out.subarray(0, n)) !== 0) throw new Error("echoed bytes differ");
        stats.msgs++;
        stats.bytes += n;
      }
    } finally {
      s.close();
    }
  }
}

function sample(rt: Runtime, t0: number): Sample {
  Bun.gc(true);
  return { t: (now() - t0) / 1000, rssMb: process.memoryUsage.rss() / 1048576, fds: openFds(), live: rt.driver.registrations, msgs: stats.msgs };
}

/** Least-squares slope of RSS in MB per minute. */
function slopePerMin(xs: Sample[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, s) => a + s.t, 0) / n;
  const my = xs.reduce((a, s) => a + s.rssMb, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of xs) {
    num += (s.t - mx) * (s.rssMb - my);
    den += (s.t - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

raiseNofile();
const rt = new Runtime();
const samples: Sample[] = [];
const fds0 = openFds();
let fdsEnd = -1;
const seed = (Math.random() * 0x1_0000_0000) >>> 0;
console.log(`soak: ${seconds} s on the ${rt.backend} backend, ${CLIENTS} clients, seed ${seed}`);
rt.blockOn(function* () {
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  const conns = new Tracker();
  const server = spawn(serve(listener, conns.wrap(echoHandler(65536)), { onError: (e) => stats.errors.push(`server: ${String(e)}`) }));
  const t0 = now();
  const end = t0 + seconds * 1000;
  const stop = () => now() >= end;
  const rng = new Rng(seed);
  const clients: JoinHandle<void>[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const r = new Rng(rng.u32());
    clients.push(spawn(() => client(listener.localAddr.port, r, stop)));
  }
  // Samples only while the traffic runs at full strength (not while clients wind down).
  while (now() + SAMPLE_MS < end) {
    yield* sleep(SAMPLE_MS);
    const s = sample(rt, t0);
    samples.push(s);
    console.log(`t=${s.t.toFixed(0)}s rss=${s.rssMb.toFixed(1)}MB fds=${s.fds} registrations=${s.live} msgs=${s.msgs}`);
  }
  for (const c of clients) {
    try {
      yield* timeout(c, 10_000);
    } catch (e) {
      stats.errors.push(`client: ${String(e)}`);
    }
  }
  listener.close();
  yield* server;
  yield* timeout(gen(() => conns.drained()), 10_000);
  fdsEnd = openFds();
});
rt.close();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!;
}

const steady = samples.filter((s) => s.t * 1000 >= WARMUP_MS);
const third = Math.floor(steady.length / 3);
const first = median(steady.slice(0, third).map((s) => s.rssMb));
const last = median(steady.slice(steady.length - third).map((s) => s.rssMb));
const growth = last - first;
const slope = steady.length >= 3 ? slopePerMin(steady) : 0;
const problems: string[] = [];
if (third < 2) problems.push(`too few samples after the warm-up (${steady.length}): run longer`);
if (growth > Math.max(8, first * 0.1)) problems.push(`RSS grew from a median of ${first.toFixed(1)} MB to ${last.toFixed(1)} MB after the warm-up`);
if (fdsEnd !== fds0) problems.push(`fds: ${fds0} before, ${fdsEnd} after`);
if (stats.errors.length > 0) problems.push(`errors: ${stats.errors.slice(0, 5).join("; ")}`);
if (stats.msgs === 0) problems.push("no traffic");
console.log(
  `soak: ${stats.msgs} messages, ${(stats.bytes / 1048576).toFixed(0)} MB echoed and verified, ${stats.conns} connections, ` +
    `${stats.cancelled} cancelled reads; after the warm-up RSS median ${first.toFixed(1)} → ${last.toFixed(1)} MB (slope ${slope.toFixed(2)} MB/min)`,
);
console.log(problems.length === 0 ? "soak: PASS (RSS flat, no fd leaked)" : `soak: FAIL\n  ${problems.join("\n  ")}`);
process.exit(problems.length === 0 ? 0 : 1);

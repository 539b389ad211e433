/**
 * Head-of-line blocking, measured: four handlers arrive at once; the first has 80 ms of
 * CPU work, the other three almost none. Run inline, the CPU work holds the one runtime
 * thread, and the short handlers wait for it (≈ 80 ms). Run with spawnBlocking, the work
 * goes to a Worker and the short handlers start at once (≈ 0).
 *
 *   bun run examples/head-of-line.ts [rounds]      (default 5 rounds of each)
 *
 * "wait" is the time from the handlers' arrival (all spawned in the same tick) to the
 * moment a short handler starts running. The blocking pool is started and the work
 * module loaded before measuring, so a Worker's start-up is not counted.
 */
import { blockOn, now, spawn, spawnBlocking, startBlockingPool, type JoinHandle } from "../lib/index.ts";
import { burn } from "./cpu-work.ts";

const WORK_MS = 80;
const SHORT = 3;
const rounds = Number(process.argv[2] ?? 5);
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`usage: bun run examples/head-of-line.ts [rounds]  (got "${process.argv[2]}")`);
  process.exit(2);
}
const WORK = new URL("./cpu-work.ts", import.meta.url);

/** One round: the heavy handler and three short ones arrive together; the short ones' waits in ms. */
function* round(mode: "inline" | "spawnBlocking"): Generator<unknown, { waits: number[]; heavy: number }, unknown> {
  const arrived = now();
  const waits: number[] = [];
  let heavy = 0;
  const handlers: JoinHandle<void>[] = [
    spawn(function* () {
      const t = now();
      if (mode === "inline") burn(WORK_MS);
      else yield* spawnBlocking<number>(WORK, "burn", WORK_MS);
      heavy = now() - t;
    }),
  ];
  for (let i = 0; i < SHORT; i++) {
    handlers.push(
      spawn(function* () {
        waits.push(now() - arrived); // the short handler's work: note when it got to run
      }),
    );
  }
  for (const h of handlers) yield* h;
  return { waits, heavy };
}

function fmt(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const p50 = s[Math.floor(s.length / 2)]!;
  return `p50 ${p50.toFixed(2).padStart(6)} ms   max ${s[s.length - 1]!.toFixed(2).padStart(6)} ms`;
}

await startBlockingPool(1);
blockOn(function* () {
  yield* spawnBlocking(WORK, "burn", 1); // load the module in the Worker before measuring
  for (const mode of ["inline", "spawnBlocking"] as const) {
    const waits: number[] = [];
    const heavy: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const out = yield* round(mode);
      waits.push(...out.waits);
      heavy.push(out.heavy);
    }
    console.log(`${mode.padEnd(13)}  short handlers waited  ${fmt(waits)}   (the ${WORK_MS} ms handler took ${fmt(heavy)})`);
  }
});

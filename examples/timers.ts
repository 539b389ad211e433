/**
 * Timers on the driver's wheel: sleep, interval, timeout, and tasks racing them.
 *
 *   bun run examples/timers.ts
 */
import { TimeoutError, blockOn, interval, now, sleep, spawn, timeout, gen } from "../lib/index.ts";

const t0 = now();
const at = () => `${(now() - t0).toFixed(1).padStart(6)} ms`;

blockOn(function* () {
  // Three tasks sleeping different lengths wake in deadline order.
  const sleepers = [30, 10, 20].map((ms) =>
    spawn(function* () {
      yield* sleep(ms);
      console.log(`${at()}  slept ${ms} ms`);
    }),
  );
  for (const s of sleepers) yield* s;

  // An interval ticks at multiples of its period; the first tick is immediate.
  const every = interval(25);
  for (let i = 0; i < 4; i++) {
    const scheduled = yield* every.tick();
    console.log(`${at()}  tick ${i} (scheduled for ${(scheduled - t0).toFixed(0)} ms)`);
  }

  // timeout() cancels what it abandons: the 1 s sleep's timer is removed.
  try {
    yield* timeout(sleep(1000), 50);
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
    console.log(`${at()}  timed out after ${e.ms} ms (the inner sleep was cancelled)`);
  }

  const v = yield* timeout(
    gen(function* () {
      yield* sleep(5);
      return "in time";
    }),
    100,
  );
  console.log(`${at()}  ${v}`);
});

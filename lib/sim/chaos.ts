/**
 * Random faults for a simulation (`sim.run({ chaos })`): a task that, while the clients run,
 * waits a random time, injects one fault drawn from the seed — a partition or a held link
 * between two random hosts, a crash of one, or a reset of its connections — and undoes it
 * a random time later (repair, release, restart). Every draw comes from the simulation's
 * "chaos" stream, so the same seed injects the same faults at the same virtual times.
 *
 * Must never: read real time or Math.random, or leave a fault it injected in place when it
 * is halted between a fault and its undoing (the run's end heals nothing: the world is
 * dropped with the runtime).
 * Must never import: lib/executor.ts
 */
import { sleep } from "../time/sleep.ts";
import type { SimRng } from "../driver/sim/rng.ts";

/**
 * Random faults while the clients run: every `interval` ms (a random time in the range),
 * one fault on random hosts, undone `heal` ms later.
 *
 * @example
 * ```ts
 * sim.run({ chaos: { faults: ["partition", "crash"], interval: [50, 200], heal: [20, 100] } });
 * ```
 */
export interface ChaosOptions {
  /** Which faults to draw from (default partition, crash, hold, reset). */
  faults?: readonly ("partition" | "crash" | "hold" | "reset")[];
  /** Time between faults, ms (default [100, 500]). */
  interval?: readonly [number, number];
  /** How long a fault lasts before it is undone, ms (default [50, 300]). */
  heal?: readonly [number, number];
  /** Hosts that may be hit (default every host and client but "main"). */
  hosts?: readonly string[];
}

/** The faults the chaos task injects, as the Sim offers them. */
export interface FaultApi {
  partition(a: string, b: string): void;
  repair(a: string, b: string): void;
  hold(a: string, b: string): void;
  release(a: string, b: string): void;
  crash(name: string): void;
  restart(name: string): void;
  resetConnections(name: string): void;
}

/**
 * The chaos task's body: faults on `targets` (the hosts that may be hit), the other end of
 * a link picked among `all`.
 *
 * @example
 * ```ts
 * rt.spawn(gen(chaosTask(sim, { faults: ["partition"] }, ["db"], ["db", "app", "main"], rng.fork("chaos"))));
 * ```
 */
export function chaosTask(sim: FaultApi, o: ChaosOptions, targets: readonly string[], all: readonly string[], rng: SimRng) {
  const kinds = o.faults ?? ["partition", "crash", "hold", "reset"];
  const [imin, imax] = o.interval ?? [100, 500];
  const [hmin, hmax] = o.heal ?? [50, 300];
  return function* (): Generator<unknown, void, unknown> {
    if (targets.length === 0 || kinds.length === 0) return;
    for (;;) {
      yield* sleep(rng.range(imin, imax));
      const kind = kinds[rng.below(kinds.length)]!;
      const a = targets[rng.below(targets.length)]!;
      const others = all.filter((n) => n !== a);
      const b = others[rng.below(others.length)]!;
      const heal = rng.range(hmin, hmax);
      if (kind === "partition") {
        sim.partition(a, b);
        yield* sleep(heal);
        sim.repair(a, b);
      } else if (kind === "hold") {
        sim.hold(a, b);
        yield* sleep(heal);
        sim.release(a, b);
      } else if (kind === "reset") sim.resetConnections(a);
      else {
        sim.crash(a);
        yield* sleep(heal);
        sim.restart(a);
      }
    }
  };
}

/**
 * runtime.metrics(): the executor's counters and the driver's, read on demand.
 *
 * Everything here is a plain counter bumped on a path that runs anyway (a spawn, a settle,
 * a batch of polls, a driver turn), or a size read when asked: collecting costs nothing
 * until someone calls `metrics()`.
 *
 * Every read of driver internals is in {@link readDriver}: when the driver's API changes,
 * that one function is what to retarget.
 *
 * Must never: write to the runtime or the driver, or be called on a hot path.
 */
import type { Driver } from "../driver/driver.ts";
import type { Runtime } from "../executor.ts";
import type { Node } from "../task/tree.ts";

/**
 * The driver's side of {@link RuntimeMetrics}.
 *
 * @example
 * ```ts
 * const d = rt.metrics().driver;
 * console.log(`${d.turns} turns, ${d.eventsPerTurn.toFixed(2)} events per turn`);
 * ```
 */
export interface DriverMetrics {
  /** The backend the driver runs ("epoll", "poll", "uring", "kqueue"). */
  backend: string;
  /** Driver turns (one wait for events each). */
  turns: number;
  /** I/O events delivered: readiness events, or CQEs on io_uring. */
  events: number;
  /** events / turns (0 before the first turn). */
  eventsPerTurn: number;
  /** Live fd registrations. */
  registrations: number;
  /** Everything that may still wake a task besides timers: registrations, ops in the kernel, pool jobs. */
  pendingWork: number;
  /** Timers in the wheel. */
  timers: number;
  /** io_uring only (null elsewhere). */
  uring: {
    /** SQEs handed to the kernel. */
    submitted: number;
    /** io_uring_enter calls made by turns. */
    enters: number;
    /** submitted / enters. */
    sqesPerEnter: number;
    /** CQEs (events) / enters. */
    cqesPerEnter: number;
    /** Ops whose final CQE has not arrived yet. */
    inflight: number;
  } | null;
}

/**
 * What `runtime.metrics()` returns.
 *
 * @example
 * ```ts
 * const m = rt.metrics();
 * console.log(`${m.tasks.live} live tasks, ${m.polls} polls, busy ${m.busyMs.toFixed(1)} ms`);
 * ```
 */
export interface RuntimeMetrics {
  tasks: {
    /** Tasks not yet settled (running, waiting, or ending). */
    live: number;
    /** Tasks spawned since the runtime was made (blockOn's and run()'s own included). */
    spawned: number;
    /** Tasks settled. */
    completed: number;
  };
  /** Task polls. */
  polls: number;
  /** Time spent polling and turning the driver without sleeping (ms). */
  busyMs: number;
  /** Tasks in the run queue now. */
  queueDepth: number;
  /** Polls the slow-poll detector reported. */
  slowPolls: number;
  /** Cleanups nobody drove, adopted as tasks. */
  cleanupsAdopted: number;
  driver: DriverMetrics;
}

/**
 * The one function that reads driver internals for metrics. It reads `driver.stats`
 * (DriverStats: turns, events, submitted, enters), `driver.registrations`,
 * `driver.pendingWork`, `driver.wheel.size`, and `driver.ringInflight` on io_uring. Retarget here
 * when the driver changes.
 *
 * @example
 * ```ts
 * readDriver(rt.driver, rt.backend).eventsPerTurn;
 * ```
 */
export function readDriver(driver: Driver, backend: string): DriverMetrics {
  const s = driver.stats;
  const inflight = driver.ringInflight; // null: no ring (the readiness backends, the simulator)
  const uring = inflight !== null;
  return {
    backend: uring ? "uring" : backend === "uring" ? `${driver.name} (io_uring unavailable)` : backend,
    turns: s.turns,
    events: s.events,
    eventsPerTurn: s.turns > 0 ? s.events / s.turns : 0,
    registrations: driver.registrations,
    pendingWork: driver.pendingWork,
    timers: driver.wheel.size,
    uring: uring
      ? {
          submitted: s.submitted,
          enters: s.enters,
          sqesPerEnter: s.enters > 0 ? s.submitted / s.enters : 0,
          cqesPerEnter: s.enters > 0 ? s.events / s.enters : 0,
          inflight,
        }
      : null,
  };
}

/**
 * Tasks in the tree: every live task is linked under a root or is one (tree.ts), so live
 * tasks are counted by walking it when asked — a settle costs no counter.
 */
function countLive(rt: Runtime): number {
  let n = 0;
  const stack: Node[] = [...rt.roots];
  for (let x = stack.pop(); x !== undefined; x = stack.pop()) {
    if (x.isTask) n++;
    for (let c = x.firstChild; c !== null; c = c.nextSib) stack.push(c);
  }
  return n;
}

/**
 * Collects a runtime's metrics (runtime.metrics()).
 *
 * @example
 * ```ts
 * const m = collectMetrics(rt);
 * ```
 */
export function collectMetrics(rt: Runtime): RuntimeMetrics {
  const c = rt.counts;
  const live = countLive(rt);
  return {
    tasks: { live, spawned: rt.spawned, completed: rt.spawned - live },
    polls: c.polls,
    busyMs: rt.busyMs(),
    queueDepth: rt.queued,
    slowPolls: c.slowPolls,
    cleanupsAdopted: c.cleanupsAdopted,
    driver: readDriver(rt.driver, rt.backend),
  };
}

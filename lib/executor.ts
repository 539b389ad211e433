/**
 * The executor: a run queue of tasks, polled cooperatively on this thread, and a driver
 * turned between batches of polls. `blockOn` owns the thread until its future — and
 * everything still running under it — has finished.
 *
 * One tick: poll at most {@link POLLS_PER_TICK} queued tasks (each with a fresh coop
 * budget), drain Bun's microtasks, then turn the driver — without blocking when tasks are
 * still queued, otherwise until the next I/O event or timer. Capping polls per tick keeps
 * one busy task, or a flood of ready ones, from starving I/O (the head-of-line
 * blocking); the coop budget keeps one task from monopolising a poll. Hosted mode
 * (lib/interop/hosted.ts) runs the same ticks in non-blocking slices (`runTicks`) from Bun's
 * event loop instead of owning the thread.
 *
 * Lifetimes (lib/task/tree.ts): `spawn` links the new task under the node being polled (the
 * spawning task, or a scope inside it); `blockOn`'s task is a root that halts what is left
 * under it when its future completes, so no task outlives `blockOn`. A failing task fails
 * its JoinHandle, never its parent or the runtime.
 *
 * What it costs to be watched (runtime.metrics(), dump(), the slow-poll detector): per
 * poll, one store of `running.node`, one store of a sequence number into shared memory and
 * one load from it (the watchdog Worker, lib/inspect/watchdog.ts, reads the clock, not
 * this thread); per batch, one counter add. Busy time reads the clock only around a
 * *blocking* driver turn — the thread is about to sleep then anyway — never per poll.
 *
 * The simulator (backend "sim", lib/driver/sim/) changes two things here and nothing
 * else: the run queue is a SeededRunQueue (the next task is a seeded pick among the ready
 * ones, traced), and an idle turn moves its virtual clock instead of sleeping (the
 * driver's frozen-clock turn; runTicks does the same jump, since a frozen clock cannot be
 * waited for from outside). A paused clock (time control) is frozen the same way.
 *
 * Invariants: a task is in the queue at most once (its SCHEDULED bit); only one runtime
 * runs on a thread at a time; `running.node` is null between polls.
 *
 * Must never: block while a task is runnable, poll a task re-entrantly, return from
 * blockOn while a task under it runs, or lose a task error (one nobody awaits is reported
 * to stderr, as tokio's panic hook does).
 */
import { drainMicrotasks } from "bun:jsc";
import { BaseFuture, FutureStateError, PENDING, intoFuture, unclaimed, type Context, type Future, type IntoFuture, type Poll } from "./future.ts";
import { Task, JoinHandle, SCHEDULED, CLEANUP_TASK, ROOT, forceEndTree, type Scheduler } from "./task/task.ts";
import { link, liveAncestor, type Node } from "./task/tree.ts";
import { resetBudget } from "./task/coop.ts";
import { setScopeHost, type ScopeHost } from "./task/scope.ts";
import type { Driver } from "./driver/driver.ts";
import { enterRuntime, leaveRuntime, running, runningRuntime, type ReportKind } from "./current.ts";
import { createDriver, selectedBackend, simSeed, type Backend } from "./driver/index.ts";
import { SimDriver } from "./driver/sim/driver.ts";
import type { SimOptions } from "./driver/sim/config.ts";
import { RuntimeError } from "./errors.ts";
import { now } from "./time/clock.ts";
import { SLOW, SEQ, STATE, setThreshold, slowSince, startWatchdog, watchdog } from "./inspect/watchdog.ts";
import { collectMetrics, type RuntimeMetrics } from "./inspect/metrics.ts";
import { dumpTree, type RuntimeDump } from "./inspect/dump.ts";
export type { SlowPoll } from "./inspect/slowpoll.ts";
import { reportSlowPoll, slowPollReport, type SlowPoll } from "./inspect/slowpoll.ts";
import { Queue } from "./task/queue.ts";
import { SeededRunQueue } from "./task/seeded.ts";

// The slow-poll watchdog is a Worker: start it when the executor is loaded, so its own fds
// exist before any program (or test) starts counting descriptors. It sleeps while no
// runtime runs and never keeps the process alive.
startWatchdog();
// scope() finds the running runtime through this (lib/task must not import the executor).
setScopeHost(() => currentRuntime());

/**
 * The poll sequence number the watchdog watches: one per process, not per runtime, so a
 * number it reported for one runtime can never match a poll of the next.
 */
let pollSeq = 0;

/**
 * Task polls per tick before the driver is turned (tokio's event_interval is 61).
 *
 * @example
 * ```ts
 * // a task that yields in a loop lets the driver turn at least once per POLLS_PER_TICK polls
 * for (let i = 0; i < POLLS_PER_TICK; i++) yield* yieldNow();
 * ```
 */
export const POLLS_PER_TICK = 61;

/**
 * Default {@link RuntimeOptions.cleanupLimitMs}: how long an asynchronous cleanup may run.
 *
 * @example
 * ```ts
 * new Runtime({ cleanupLimitMs: DEFAULT_CLEANUP_LIMIT_MS * 2 });
 * ```
 */
export const DEFAULT_CLEANUP_LIMIT_MS = 5000;
/**
 * Default {@link RuntimeOptions.slowPollMs}: the slow-poll detector's threshold.
 *
 * @example
 * ```ts
 * new Runtime({ slowPollMs: DEFAULT_SLOW_POLL_MS / 2 });
 * ```
 */
export const DEFAULT_SLOW_POLL_MS = 50;

/**
 * Options for {@link Runtime}.
 *
 * @example
 * ```ts
 * const rt = new Runtime({ backend: "uring", cleanupLimitMs: 2000, slowPollMs: 20, spawnSites: true });
 * ```
 */
export interface RuntimeOptions {
  /** The I/O backend; default `REEL_BACKEND` or the platform's. */
  backend?: Backend;
  /**
   * Called with errors nobody else will see: a task that failed with nobody awaiting its
   * handle (`kind` "failed"), or a cleanup that threw or ran past `cleanupLimitMs` and was
   * force-ended (`kind` "cleanup", RuntimeError code ECLEANUP for the latter). Default:
   * one line on stderr.
   */
  onTaskError?: (err: unknown, taskId: number, kind: ReportKind) => void;
  /**
   * How long a cancelled future's asynchronous cleanup (a `finally` that yields) may run
   * before it is reported and force-ended, in ms. Default 5000; 0 = no limit.
   */
  cleanupLimitMs?: number;
  /**
   * The slow-poll detector's threshold: a single poll holding the thread longer than this
   * (a blocking call in async code) is reported with the task's name and spawn site.
   * Default 50 ms (`REEL_SLOW_POLL_MS` overrides); 0 switches it off.
   */
  slowPollMs?: number;
  /** Receives slow-poll reports; default one line on stderr. */
  onSlowPoll?: (report: SlowPoll) => void;
  /**
   * Record where each task was spawned (a captured stack, ~1 µs per spawn), for dumps and
   * slow-poll reports. Default off (`REEL_SPAWN_SITES=1` turns it on).
   */
  spawnSites?: boolean;
  /**
   * The simulator's seed (backend "sim"): every choice of the run comes from it. Default
   * `REEL_SEED`, or a fresh one (printed if a blockOn fails). Ignored by the real backends.
   */
  seed?: number;
  /** The simulator's settings (backend "sim"): links, chaos, tracing. Ignored by the real backends. */
  sim?: SimOptions;
  /** Start with the clock paused (time control, as tokio's `start_paused`; see `pause()`). */
  startPaused?: boolean;
}

/**
 * Options for {@link spawn}.
 *
 * @example
 * ```ts
 * spawn(handle(conn), { name: `conn ${peer}` });
 * ```
 */
export interface SpawnOptions {
  /** A name for dumps and reports. */
  name?: string;
}

/**
 * What hosted mode (lib/interop/hosted.ts) attaches to a runtime while `run()` drives it
 * from Bun's event loop. `wake()` is called when a task is woken while the runtime is not
 * ticking (from a Promise callback, a Bun timer, ordinary async code), so the host
 * schedules a tick. Must never poll inline.
 */
export interface Host {
  wake(): void;
}

function envMs(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

function checkOptionMs(v: number | undefined, what: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new RangeError(`Invalid ${what} ${String(v)}: must be a finite number of ms ≥ 0`);
  return v;
}

/**
 * A reel runtime: an executor and its driver. Most programs use the default one through
 * the top-level {@link blockOn} and {@link spawn}.
 *
 * @example
 * ```ts
 * import { Runtime, sleep } from "reel";
 * const rt = new Runtime({ backend: "epoll" });
 * rt.blockOn(sleep(10));
 * console.log(rt.metrics().tasks);
 * rt.close();
 * ```
 */
export class Runtime implements Scheduler, ScopeHost {
  readonly driver: Driver;
  readonly backend: Backend;
  readonly cleanupLimitMs: number;
  readonly slowPollMs: number;
  readonly spawnSites: boolean;
  /** The simulator's seed; null on the real backends. */
  readonly seed: number | null;
  /** The run queue; a task is in it at most once (its SCHEDULED bit). */
  private readonly queue: Queue<Task<unknown>>;
  /** The seed was drawn at random (nobody chose it): a failure prints it. */
  private readonly seedDrawn: boolean = false;
  private readonly onTaskError: (err: unknown, taskId: number, kind: ReportKind) => void;
  private readonly onSlowPoll: (report: SlowPoll) => void;
  private closed = false;
  /** Set by hosted mode while `run()` drives this runtime; null otherwise. */
  host: Host | null = null;
  /** fromPromise futures pending on this runtime (lib/interop/promise.ts): named by the deadlock error. */
  pendingPromises = 0;
  /** @internal Nodes with no parent: blockOn's and run()'s tasks, tasks spawned from outside. */
  readonly roots = new Set<Node>();
  /** @internal blockOn's task while blockOn runs: where spawns from outside any task attach. */
  fallbackRoot: Task<unknown> | null = null;
  /** @internal Counters for metrics() (spawned is a field of its own: it is bumped per spawn). */
  readonly counts = { polls: 0, slowPolls: 0, cleanupsAdopted: 0 };
  /** @internal Tasks spawned on this runtime. */
  spawned = 0;
  /** @internal Busy-time accounting: closed busy ms, and the open span (see busyMs()). */
  private busyClosed = 0;
  private spanStart = -1;
  private spanIdle = 0;

  constructor(options: RuntimeOptions = {}) {
    this.backend = options.backend ?? selectedBackend();
    const sim = this.backend === "sim";
    this.cleanupLimitMs = checkOptionMs(options.cleanupLimitMs, "cleanupLimitMs", DEFAULT_CLEANUP_LIMIT_MS);
    // Under the simulator a slow poll is real time the simulation does not see: off unless asked for.
    this.slowPollMs = checkOptionMs(options.slowPollMs, "slowPollMs", sim ? 0 : envMs("REEL_SLOW_POLL_MS", DEFAULT_SLOW_POLL_MS));
    this.spawnSites = options.spawnSites ?? process.env.REEL_SPAWN_SITES === "1";
    this.onTaskError = options.onTaskError ?? reportTaskError;
    this.onSlowPoll = options.onSlowPoll ?? reportSlowPoll;
    if (sim) {
      let seed = options.seed;
      if (seed === undefined) {
        const s = simSeed();
        seed = s.seed;
        this.seedDrawn = !s.fromEnv;
      }
      const d = new SimDriver(seed, options.sim);
      this.driver = d;
      this.seed = seed;
      this.queue = new SeededRunQueue(d.schedulePolicy());
    } else {
      this.driver = createDriver(this.backend);
      this.seed = null;
      this.queue = new Queue<Task<unknown>>(256);
    }
    if (options.startPaused === true) this.driver.clock.pause();
  }

  /** Scheduler: a woken task joins the queue. */
  enqueue(task: Task<unknown>): void {
    this.queue.push(task);
    // Woken from outside a tick while hosted: the host schedules one on Bun's loop.
    if (this.host !== null && runningRuntime() !== this) this.host.wake();
  }

  /** Scheduler: a task failed with nobody awaiting it. */
  unobserved(task: Task<unknown>): void {
    this.report(task.error?.cause, task.id, "failed");
  }

  /** TreeHost: a node lost its parent. */
  addRoot(node: Node): void {
    this.roots.add(node);
  }

  /** TreeHost: a parentless node left the tree. */
  removeRoot(node: Node): void {
    this.roots.delete(node);
  }

  /** RunningRuntime: the onTaskError hook (never throws). */
  report(err: unknown, taskId: number, kind: ReportKind): void {
    try {
      this.onTaskError(err, taskId, kind);
    } catch (hookErr) {
      console.error("reel: onTaskError threw:", hookErr, "while reporting:", err);
    }
  }

  /**
   * Scheduler: cleanups handed out by a cancel() during `owner`'s poll that nobody took
   * are adopted as tasks under their owner (future.ts: a cleanup is never lost).
   */
  sweep(owner: Task<unknown> | null): void {
    // Take the batch first: adopting may hand out more (they go to the next sweep).
    const batch = unclaimed.splice(0, unclaimed.length);
    for (const c of batch) {
      if (c.claimed || c.isFinished) continue;
      c.claimed = true;
      const at = liveAncestor((c.owner as Node | null) ?? owner) ?? this.fallbackRoot;
      this.counts.cleanupsAdopted++;
      this.spawnUnder(at !== null && (at as Node).host === this ? at : null, c, undefined, CLEANUP_TASK);
    }
  }

  /**
   * @internal Spawns `fut` as a task under `parent` (null: a root of its own). The task
   * first runs on the next tick.
   */
  spawnUnder<T>(parent: Node | null, fut: Future<T>, opts: SpawnOptions | undefined, flags = 0): Task<T> {
    if (this.closed) throw new RuntimeError("Cannot spawn: the runtime is closed", "ECLOSED");
    const task = new Task<T>(fut, this);
    if (opts !== undefined && opts.name !== undefined) task.name = String(opts.name);
    if (this.spawnSites) {
      const site: { stack?: string } = {};
      Error.captureStackTrace(site);
      task.site = site;
    }
    task.state = SCHEDULED | flags; // before link(), which may add OBSERVED (a scope's task)
    if (parent !== null) link(parent, task);
    else this.roots.add(task);
    this.spawned++;
    this.enqueue(task as Task<unknown>);
    return task;
  }

  /** Where a spawn from the current code attaches: the node being polled, or blockOn's task. */
  private attachPoint(): Node | null {
    const n = running.node as Node | null;
    // running.node is the node being polled: never settled while its poll runs.
    if (n !== null && n.host === this) return n;
    return this.fallbackRoot;
  }

  /** @internal ScopeHost: where scope()/serve() link their group. */
  attachNode(): Node | null {
    return this.attachPoint();
  }

  /** @internal ScopeHost: spawns into a group (scope's `s.spawn`, serve's connections). */
  spawnIn<T>(parent: Node, fut: IntoFuture<T>, opts?: SpawnOptions): JoinHandle<T> {
    checkSpawnOptions(opts);
    return this.spawnUnder(parent.isGone ? this.attachPoint() : parent, intoFuture(fut, "spawn()"), opts);
  }

  /**
   * Spawns a task on this runtime, as a child of the task (or scope) spawning it; it first
   * runs on the next tick. See {@link spawn}.
   */
  spawn<T>(fut: IntoFuture<T>, opts?: SpawnOptions): JoinHandle<T> {
    if (opts !== undefined) checkSpawnOptions(opts);
    return this.spawnUnder(this.attachPoint(), intoFuture(fut, "spawn()"), opts);
  }

  /**
   * Spawns a task attached to the root of the spawning task's tree (blockOn's or run()'s
   * task), outside any cancellation in between. See {@link spawnDetached}.
   */
  spawnDetached<T>(fut: IntoFuture<T>, opts?: SpawnOptions): JoinHandle<T> {
    checkSpawnOptions(opts);
    let at = this.attachPoint();
    while (at !== null && at.parent !== null) at = at.parent;
    return this.spawnUnder(at, intoFuture(fut, "spawnDetached()"), opts);
  }

  /**
   * Runs `fut` to completion on this thread, running every spawned task meanwhile; then
   * halts whatever still runs under it (each task running its cleanup), waits for that,
   * and returns `fut`'s value or rethrows its error. Throws RuntimeError when called from
   * inside a runtime (use `spawn` or `yield*` there) or when nothing can ever wake it.
   */
  blockOn<T>(fut: IntoFuture<T>): T {
    if (runningRuntime() !== null) {
      throw new RuntimeError("blockOn() cannot be called from inside a reel runtime: use spawn() or yield* instead", "EREENTRANT");
    }
    if (this.closed) throw new RuntimeError("Cannot blockOn: the runtime is closed", "ECLOSED");
    if (this.host !== null) {
      throw new RuntimeError("blockOn() cannot drive a runtime that run() (hosted mode) is driving: await its Promise or use spawn()", "EREENTRANT");
    }
    const main = this.spawnUnder(null, intoFuture(fut, "blockOn()"), undefined, ROOT);
    main.observed = true;
    const prevRoot = this.fallbackRoot;
    this.fallbackRoot = main as Task<unknown>;
    const prev = enterRuntime(this);
    this.openSpan();
    try {
      this.loop(main as Task<unknown>);
    } catch (err) {
      // Deadlock or a driver failure: halt everything under blockOn so its hooks (timers,
      // waker slots, pending-Promise counts) do not outlive this call; drive what cleanup
      // can still run, and force-end the rest (reported).
      this.abandon(main as Task<unknown>);
      this.simFailed();
      throw err;
    } finally {
      this.closeSpan();
      this.fallbackRoot = prevRoot;
      leaveRuntime(prev);
    }
    if (main.error !== null) {
      this.simFailed();
      throw main.error.isFailed() ? main.error.cause : main.error;
    }
    return main.value as T;
  }

  private loop(main: Task<unknown>): void {
    for (;;) {
      this.runBatch();
      drainMicrotasks();
      if (main.isComplete) return;
      if (this.queue.length > 0) {
        this.driver.busy(); // the simulator charges virtual CPU time for a busy batch
        // Nothing outside the run queue can wake a task (no registration, op, job or
        // timer: the driver's invariant): the turn would be a wasted syscall.
        if (this.driver.hasWork()) this.driver.turn(0);
        continue;
      }
      if (!this.driver.hasWork()) throw deadlock(this.pendingPromises, this.driver.deadlockDetail());
      // The only place the thread sleeps: the clock is read around it for busy time.
      const t0 = now();
      this.driver.turn(-1);
      this.spanIdle += now() - t0;
    }
  }

  /** blockOn failed: halt its tree, run what cleanup can run, force-end the rest. */
  private abandon(main: Task<unknown>): void {
    main.abort();
    try {
      this.loop(main);
    } catch {
      // Cleanup that cannot progress either: end it now (each force-end is reported).
      forceEndTree(main, (err, id) => this.report(err, id, "cleanup"));
    }
  }

  /**
   * Hosted mode's slice of the loop (lib/interop/hosted.ts): enters the runtime, runs up to
   * `maxTicks` ticks — a batch of polls, then a driver turn that never blocks — stopping
   * once no task is runnable, and leaves. Microtasks are left to Bun, which drains them
   * when the slice returns. Returns the tasks still queued: 0 means idle, and the host may
   * wait for `driver.poller.fd` or the next timer before calling again.
   */
  runTicks(maxTicks: number): number {
    if (runningRuntime() !== null) throw new RuntimeError("runTicks() cannot be called from inside a reel runtime", "EREENTRANT");
    if (this.closed) throw new RuntimeError("Cannot run: the runtime is closed", "ECLOSED");
    const prev = enterRuntime(this);
    this.openSpan();
    try {
      const d = this.driver;
      for (let i = 0; i < maxTicks; i++) {
        this.runBatch();
        if (this.queue.length > 0) d.busy();
        d.turn(0);
        if (this.queue.length === 0) {
          // A frozen clock (paused, or the simulator's) is not waited for: jump it to the next
          // timed event now. That turn cannot block: there is such an event.
          if (!d.clock.frozen || d.nextTimedEvent() < 0) break;
          d.turn(-1);
        }
      }
    } finally {
      this.closeSpan();
      leaveRuntime(prev);
    }
    return this.queue.length;
  }

  /**
   * Polls up to POLLS_PER_TICK queued tasks. Per poll: `running.node` and the watchdog's
   * sequence number are written before, and the watchdog's SLOW slot read after (the
   * poll that was running when the watchdog saw no progress for slowPollMs is the slow
   * one). Nothing else, and no clock.
   */
  private runBatch(): void {
    if (unclaimed.length !== 0) this.sweep(null);
    const q = this.queue;
    if (q.length === 0) return;
    const wd = watchdog;
    let seq = pollSeq;
    wd[STATE] = 1;
    let i = 0;
    for (; i < POLLS_PER_TICK; i++) {
      const t = q.shift();
      if (t === undefined) break;
      if (t.isComplete) continue;
      resetBudget();
      running.node = t;
      seq = (seq + 1) | 0;
      wd[SEQ] = seq;
      const f = t.future; // for the report's name: a task that finished has dropped it
      t.run();
      if (wd[SLOW] === seq) this.slowPoll(t, f);
    }
    wd[STATE] = 0;
    running.node = null;
    pollSeq = seq;
    this.counts.polls += i;
  }

  /** A blockOn on the simulator failed with a seed nobody chose: print it, so the run can be replayed. */
  private simFailed(): void {
    const d = this.driver;
    if (!this.seedDrawn || !(d instanceof SimDriver)) return;
    console.error(`reel: the simulation failed (${d.describe()}); replay it with REEL_SEED=${this.seed}`);
  }

  /** The watchdog saw `t`'s poll hold the thread past the threshold: report it. */
  private slowPoll(t: Task<unknown>, f: Future<unknown> | null): void {
    watchdog[SLOW] = 0;
    this.counts.slowPolls++;
    const report = slowPollReport(t, f, Math.round(Date.now() - slowSince()), this.slowPollMs);
    try {
      this.onSlowPoll(report);
    } catch (err) {
      console.error("reel: onSlowPoll threw:", err);
    }
  }

  private openSpan(): void {
    this.spanStart = now();
    this.spanIdle = 0;
    setThreshold(this.slowPollMs);
  }

  private closeSpan(): void {
    if (this.spanStart < 0) return;
    this.busyClosed += now() - this.spanStart - this.spanIdle;
    this.spanStart = -1;
    this.spanIdle = 0;
  }

  /** @internal Milliseconds this runtime has spent polling and turning without sleeping. */
  busyMs(): number {
    return this.busyClosed + (this.spanStart >= 0 ? now() - this.spanStart - this.spanIdle : 0);
  }

  /** Number of tasks waiting in the run queue (for tests and diagnostics). */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Counters of this runtime and its driver: tasks live/spawned/completed, polls, busy
   * time, queue depth, driver turns and events per turn, registrations, and on io_uring
   * SQEs and CQEs per enter and ops in flight. Reading them costs nothing on the hot path
   * (they are plain counters).
   *
   * @example
   * ```ts
   * const m = rt.metrics();
   * console.log(`${m.tasks.live} tasks, ${m.driver.eventsPerTurn.toFixed(1)} events/turn`);
   * ```
   */
  metrics(): RuntimeMetrics {
    return collectMetrics(this);
  }

  /**
   * The task tree right now: every task, its parent, its state and what it waits on (a
   * timer and its deadline, a channel, a lock, a task, an fd where the I/O future
   * describes itself). `String(rt.dump())` prints it as an indented tree.
   *
   * @example
   * ```ts
   * console.log(String(rt.dump()));
   * ```
   */
  dump(): RuntimeDump {
    return dumpTree(this);
  }

  /** Closes the driver. Tasks still pending are abandoned; spawn/blockOn then throw. */
  close(): void {
    if (this.closed) return;
    if (runningRuntime() === this) throw new RuntimeError("Cannot close a runtime from inside its own blockOn()", "EBUSY");
    if (this.host !== null) throw new RuntimeError("Cannot close a runtime while run() (hosted mode) drives it", "EBUSY");
    this.closed = true;
    this.driver.close();
  }

  /** True once close() was called. */
  get isClosed(): boolean {
    return this.closed;
  }
}

function checkSpawnOptions(opts: SpawnOptions | undefined): void {
  if (opts === undefined) return;
  if (typeof opts !== "object" || opts === null) throw new TypeError(`spawn() options must be an object, got ${opts === null ? "null" : typeof opts}`);
  if (opts.name !== undefined && typeof opts.name !== "string") throw new TypeError(`spawn() option name must be a string, got ${typeof opts.name}`);
}

function deadlock(pendingPromises: number, detail: string): RuntimeError {
  if (pendingPromises > 0) {
    return new RuntimeError(
      `Deadlock: the blockOn() future is blocked on ${pendingPromises} Promise(s) that need Bun's event loop, ` +
        "which cannot run while blockOn() owns the thread (no runnable task, no I/O registration, no timer): use run() (hosted mode) instead of blockOn()." +
        detail,
      "EDEADLK",
    );
  }
  return new RuntimeError(
    "Deadlock: the blockOn() future is pending but nothing can wake it (no runnable task, no I/O registration, no timer). " +
      "If it awaits a Promise that needs Bun's event loop (fetch, setTimeout, Bun.sleep), use hosted mode: run() instead of blockOn()." +
      detail,
    "EDEADLK",
  );
}

function reportTaskError(err: unknown, taskId: number, kind: ReportKind): void {
  if (kind === "cleanup") console.error(`reel: the cleanup of task ${taskId} failed:`, err);
  else console.error(`reel: task ${taskId} failed and nobody is awaiting its JoinHandle:`, err);
}

let defaultRuntime: Runtime | null = null;

/**
 * The runtime `blockOn`/`spawn` use by default, created on first use.
 *
 * @example
 * ```ts
 * defaultRuntimeInstance().metrics();
 * ```
 */
export function defaultRuntimeInstance(): Runtime {
  if (defaultRuntime === null) defaultRuntime = new Runtime();
  return defaultRuntime;
}

/**
 * The runtime running on this thread, or null.
 *
 * @example
 * ```ts
 * currentRuntime()?.dump();
 * ```
 */
export function currentRuntime(): Runtime | null {
  return runningRuntime() as Runtime | null;
}

/**
 * Runs a future (or a generator function) to completion on the default runtime, owning
 * the thread meanwhile. Bun's own loop (its timers, fetch) does not progress until it
 * returns; Promise jobs do (microtasks are drained every tick). Tasks spawned under it
 * that are still running when its future completes are halted (with their cleanup)
 * before it returns: nothing outlives blockOn.
 *
 * @example
 * ```ts
 * import { blockOn, sleep } from "reel";
 * const v = blockOn(function* () {
 *   yield* sleep(10);
 *   return "done";
 * });
 * ```
 */
export function blockOn<T>(fut: IntoFuture<T>): T {
  return defaultRuntimeInstance().blockOn(fut);
}

/** The runtime spawn() uses from here: the running one, or the default one while hosted. */
function spawnRuntime(what: string): Runtime {
  // Outside any tick, ordinary async code may spawn onto the default runtime while run() hosts it.
  const rt = currentRuntime() ?? (defaultRuntime?.host != null ? defaultRuntime : null);
  if (rt === null) {
    throw new RuntimeError(`${what} must be called inside a reel runtime (blockOn, or run() on the default runtime, or a task they run)`, "ENORUNTIME");
  }
  return rt;
}

/**
 * Spawns a task on the running runtime, as a child of the spawning task; returns its
 * {@link JoinHandle}. The child keeps running if the spawner returns (its parent adopts
 * it), and is halted if the spawner fails or is cancelled. Throws RuntimeError outside a
 * runtime.
 *
 * @example
 * ```ts
 * import { blockOn, spawn } from "reel";
 * blockOn(function* () {
 *   const h = spawn(function* () { return 1 + 1; }, { name: "adder" });
 *   console.log(yield* h); // 2
 * });
 * ```
 */
export function spawn<T>(fut: IntoFuture<T>, opts?: SpawnOptions): JoinHandle<T> {
  return spawnRuntime("spawn()").spawn(fut, opts);
}

/**
 * Spawns a task attached to the root (the task of the enclosing `blockOn`/`run`) instead
 * of the spawning task: cancelling the spawner, or its ancestors below the root, leaves
 * it running. It still ends with the root.
 *
 * @example
 * ```ts
 * import { spawnDetached } from "reel";
 * spawnDetached(function* () { yield* flushMetricsForever(); }, { name: "metrics" });
 * ```
 */
export function spawnDetached<T>(fut: IntoFuture<T>, opts?: SpawnOptions): JoinHandle<T> {
  return spawnRuntime("spawnDetached()").spawnDetached(fut, opts);
}

class YieldNow extends BaseFuture<void> {
  /** 0: not yet polled; 1: yielded once; 2: completed. */
  private state = 0;
  poll(cx: Context): Poll<void> {
    if (this.state === 2) throw new FutureStateError("yieldNow() future polled after completion");
    if (this.state === 1) {
      this.state = 2;
      return undefined;
    }
    this.state = 1;
    cx.waker.wake();
    return PENDING;
  }
  override describe(): string {
    return "yieldNow (runnable)";
  }
}

/**
 * Yields to the other tasks once: the current task goes to the back of the run queue.
 *
 * @example
 * ```ts
 * import { yieldNow } from "reel";
 * for (let i = 0; i < 1000; i++) { crunch(i); if (i % 100 === 0) yield* yieldNow(); }
 * ```
 */
export function yieldNow(): BaseFuture<void> {
  return new YieldNow();
}

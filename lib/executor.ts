/**
 * The executor: a run queue of tasks, polled cooperatively on this thread, and a driver
 * turned between batches of polls. `blockOn` owns the thread until its future completes.
 *
 * One tick: poll at most {@link POLLS_PER_TICK} queued tasks (each with a fresh coop
 * budget), drain Bun's microtasks, then turn the driver — without blocking when tasks are
 * still queued, otherwise until the next I/O event or timer. Capping polls per tick keeps
 * one busy task, or a flood of ready ones, from starving I/O (the seed's head-of-line
 * blocking); the coop budget keeps one task from monopolising a poll. Hosted mode
 * (lib/interop/hosted.ts) runs the same ticks in non-blocking slices (`runTicks`) from Bun's
 * event loop instead of owning the thread.
 *
 * Invariants: a task is in the queue at most once (its SCHEDULED bit); only one runtime
 * runs on a thread at a time; a failing task fails its JoinHandle, never the runtime.
 *
 * Must never: block while a task is runnable, poll a task re-entrantly, or lose a task
 * error (one nobody awaits is reported to stderr, as tokio's panic hook does).
 */
import { drainMicrotasks } from "bun:jsc";
import { BaseFuture, FutureStateError, PENDING, intoFuture, type Context, type IntoFuture, type Poll } from "./future.ts";
import { Task, JoinHandle, SCHEDULED, type Scheduler } from "./task/task.ts";
import { resetBudget } from "./task/coop.ts";
import type { Driver } from "./driver/driver.ts";
import { enterRuntime, leaveRuntime, runningRuntime } from "./current.ts";
import { createDriver, selectedBackend, type Backend } from "./driver/index.ts";
import { RuntimeError } from "./errors.ts";

/** Task polls per tick before the driver is turned (tokio's event_interval is 61). */
export const POLLS_PER_TICK = 61;

/** A FIFO ring of tasks; grows by doubling, never shrinks. */
class RunQueue {
  private buf: (Task<unknown> | undefined)[] = new Array(256);
  private head = 0;
  private tail = 0;
  private mask = 255;

  get length(): number {
    return (this.tail - this.head) & this.mask;
  }

  push(t: Task<unknown>): void {
    this.buf[this.tail] = t;
    this.tail = (this.tail + 1) & this.mask;
    if (this.tail === this.head) this.grow();
  }

  shift(): Task<unknown> | undefined {
    if (this.head === this.tail) return undefined;
    const t = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    return t;
  }

  private grow(): void {
    const old = this.buf;
    const n = old.length;
    // The queue was full (tail caught up with head): unroll it from head into a buffer twice the size.
    const next: (Task<unknown> | undefined)[] = new Array(n * 2);
    for (let i = 0; i < n; i++) next[i] = old[(this.head + i) & this.mask];
    this.buf = next;
    this.head = 0;
    this.tail = n;
    this.mask = n * 2 - 1;
  }
}

/** Options for {@link Runtime}. */
export interface RuntimeOptions {
  /** The I/O backend; default `REEL_BACKEND` or the platform's. */
  backend?: Backend;
  /** Called when a task fails and nobody awaits its handle; default prints to stderr. */
  onTaskError?: (err: unknown, taskId: number) => void;
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

/**
 * A reel runtime: an executor and its driver. Most programs use the default one through
 * the top-level {@link blockOn} and {@link spawn}.
 *
 * @example
 * ```ts
 * import { Runtime, sleep } from "reel";
 * const rt = new Runtime({ backend: "epoll" });
 * rt.blockOn(sleep(10));
 * rt.close();
 * ```
 */
export class Runtime implements Scheduler {
  readonly driver: Driver;
  readonly backend: Backend;
  private readonly queue = new RunQueue();
  private readonly onTaskError: (err: unknown, taskId: number) => void;
  private closed = false;
  /** Set by hosted mode while `run()` drives this runtime; null otherwise. */
  host: Host | null = null;
  /** fromPromise futures pending on this runtime (lib/interop/promise.ts): named by the deadlock error. */
  pendingPromises = 0;

  constructor(options: RuntimeOptions = {}) {
    this.backend = options.backend ?? selectedBackend();
    this.driver = createDriver(this.backend);
    this.onTaskError = options.onTaskError ?? reportTaskError;
  }

  /** Scheduler: a woken task joins the queue. */
  enqueue(task: Task<unknown>): void {
    this.queue.push(task);
    // Woken from outside a tick while hosted: the host schedules one on Bun's loop.
    if (this.host !== null && runningRuntime() !== this) this.host.wake();
  }

  /** Scheduler: a task failed with nobody awaiting it. */
  unobserved(task: Task<unknown>): void {
    this.onTaskError(task.error?.cause, task.id);
  }

  /** Spawns a task on this runtime; it first runs on the next tick. */
  spawn<T>(fut: IntoFuture<T>): JoinHandle<T> {
    if (this.closed) throw new RuntimeError("Cannot spawn: the runtime is closed", "ECLOSED");
    const task = new Task<T>(intoFuture(fut), this);
    task.state = SCHEDULED;
    this.enqueue(task as Task<unknown>);
    return new JoinHandle(task);
  }

  /**
   * Runs `fut` to completion on this thread, running every spawned task meanwhile.
   * Returns its value or rethrows its error. Throws RuntimeError when called from inside
   * a runtime (use `spawn` or `yield*` there) or when nothing can ever wake the future.
   */
  blockOn<T>(fut: IntoFuture<T>): T {
    if (runningRuntime() !== null) {
      throw new RuntimeError("blockOn() cannot be called from inside a reel runtime: use spawn() or yield* instead", "EREENTRANT");
    }
    if (this.closed) throw new RuntimeError("Cannot blockOn: the runtime is closed", "ECLOSED");
    if (this.host !== null) {
      throw new RuntimeError("blockOn() cannot drive a runtime that run() (hosted mode) is driving: await its Promise or use spawn()", "EREENTRANT");
    }
    const main = new Task<T>(intoFuture(fut), this);
    main.observed = true;
    main.state = SCHEDULED;
    this.queue.push(main as Task<unknown>);
    const prev = enterRuntime(this);
    try {
      this.loop(main as Task<unknown>);
    } catch (err) {
      // Deadlock or a driver failure: cancel the main future so its hooks (timers, waker
      // slots, pending-Promise counts) do not outlive this call.
      main.abort();
      throw err;
    } finally {
      leaveRuntime(prev);
    }
    if (main.error !== null) throw main.error.isFailed() ? main.error.cause : main.error;
    return main.value as T;
  }

  private loop(main: Task<unknown>): void {
    for (;;) {
      this.runBatch();
      drainMicrotasks();
      if (main.isComplete) return;
      const idle = this.queue.length === 0;
      if (idle && !this.driver.hasWork()) throw deadlock(this.pendingPromises);
      this.driver.turn(idle ? -1 : 0);
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
    try {
      for (let i = 0; i < maxTicks; i++) {
        this.runBatch();
        this.driver.turn(0);
        if (this.queue.length === 0) break;
      }
    } finally {
      leaveRuntime(prev);
    }
    return this.queue.length;
  }

  /** Polls up to POLLS_PER_TICK queued tasks. */
  private runBatch(): void {
    const q = this.queue;
    for (let i = 0; i < POLLS_PER_TICK; i++) {
      const t = q.shift();
      if (t === undefined) return;
      if (t.isComplete) continue;
      resetBudget();
      t.run();
    }
  }

  /** Number of tasks waiting in the run queue (for tests and diagnostics). */
  get queued(): number {
    return this.queue.length;
  }

  /** Closes the driver. Tasks still pending are abandoned; spawn/blockOn then throw. */
  close(): void {
    if (this.closed) return;
    if (runningRuntime() === this) throw new RuntimeError("Cannot close a runtime from inside its own blockOn()", "EBUSY");
    if (this.host !== null) throw new RuntimeError("Cannot close a runtime while run() (hosted mode) drives it", "EBUSY");
    this.closed = true;
    this.driver.close();
  }
}

function deadlock(pendingPromises: number): RuntimeError {
  if (pendingPromises > 0) {
    return new RuntimeError(
      `Deadlock: the blockOn() future is blocked on ${pendingPromises} Promise(s) that need Bun's event loop, ` +
        "which cannot run while blockOn() owns the thread (no runnable task, no I/O registration, no timer): use run() (hosted mode) instead of blockOn().",
      "EDEADLK",
    );
  }
  return new RuntimeError(
    "Deadlock: the blockOn() future is pending but nothing can wake it (no runnable task, no I/O registration, no timer). " +
      "If it awaits a Promise that needs Bun's event loop (fetch, setTimeout, Bun.sleep), use hosted mode: run() instead of blockOn().",
    "EDEADLK",
  );
}

function reportTaskError(err: unknown, taskId: number): void {
  console.error(`reel: task ${taskId} failed and nobody is awaiting its JoinHandle:`, err);
}

let defaultRuntime: Runtime | null = null;

/** The runtime `blockOn`/`spawn` use by default, created on first use. */
export function defaultRuntimeInstance(): Runtime {
  if (defaultRuntime === null) defaultRuntime = new Runtime();
  return defaultRuntime;
}

/** The runtime running on this thread, or null. */
export function currentRuntime(): Runtime | null {
  return runningRuntime() as Runtime | null;
}

/**
 * Runs a future (or a generator function) to completion on the default runtime, owning
 * the thread meanwhile. Bun's own loop (its timers, fetch) does not progress until it
 * returns; Promise jobs do (microtasks are drained every tick).
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

/**
 * Spawns a task on the running runtime; returns its {@link JoinHandle}.
 * Throws RuntimeError outside a runtime.
 *
 * @example
 * ```ts
 * import { blockOn, spawn } from "reel";
 * blockOn(function* () {
 *   const h = spawn(function* () { return 1 + 1; });
 *   console.log(yield* h); // 2
 * });
 * ```
 */
export function spawn<T>(fut: IntoFuture<T>): JoinHandle<T> {
  // Outside any tick, ordinary async code may spawn onto the default runtime while run() hosts it.
  const rt = currentRuntime() ?? (defaultRuntime?.host != null ? defaultRuntime : null);
  if (rt === null) {
    throw new RuntimeError("spawn() must be called inside a reel runtime (blockOn, or run() on the default runtime, or a task they run)", "ENORUNTIME");
  }
  return rt.spawn(fut);
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

/**
 * Hosted mode: reel living inside Bun's event loop instead of owning the thread.
 *
 * `blockOn` blocks in epoll_wait, so Bun's timers, fetch and servers stall while it runs.
 * `run(fut)` instead returns a Promise and drives the runtime in slices scheduled as Bun
 * tasks (setImmediate): each slice runs up to {@link TICKS_PER_SLICE} ticks (polls, then a
 * driver turn that never blocks) and returns to Bun. With nothing runnable the runtime
 * *parks*: its poller's fd goes to the watcher (watcher.ts: a Worker blocked in epoll_wait
 * that wakes this thread through Atomics.waitAsync) and a Bun setTimeout is armed for the
 * next timer deadline. Whichever fires first unparks it and schedules a slice. A task woken
 * from ordinary code (a Promise callback, a Bun timer, `spawn` from an async function)
 * reaches the runtime's `enqueue`, which calls the host's `wake()`: same path.
 *
 * Rules (re-entrancy):
 * - `run()` inside `blockOn()` throws RuntimeError EREENTRANT: the thread is owned, the
 *   Promise could never settle. Use `spawn` or `yield*` there.
 * - `blockOn()` inside a hosted slice throws (as inside any runtime), and `blockOn()` on a
 *   runtime that `run()` is driving throws too, even from ordinary code between slices.
 * - Nested `run()` is defined: called from a hosted task, or from ordinary code while a
 *   run is in progress, it adds another root to the same runtime; each root settles its
 *   own Promise. The runtime stays hosted until its last root settles.
 *
 * Lifetimes: each `run()` is a root of the task tree, as `blockOn` is. When its future
 * completes, the tasks still running under it are halted (each running its cleanup) and
 * the Promise settles after that: nothing spawned by a run outlives it. Aborting
 * `signal` halts the root's whole tree, then rejects with `signal.reason`. Tasks spawned
 * from ordinary code (outside any task) are roots of their own.
 *
 * Must never: block the thread, run a slice while another runtime is inside blockOn, run
 * Bun's microtasks inside a slice (user code after `await run()` must not find itself
 * inside a runtime), or keep the process alive when nothing reel holds could wake it.
 */
import { intoFuture, type IntoFuture } from "../future.ts";
import { currentRuntime, defaultRuntimeInstance, type Host, type Runtime } from "../executor.ts";
import { RuntimeError } from "../errors.ts";
import { ROOT, type Task } from "../task/task.ts";
import { now } from "../time/clock.ts";
import { HAVE_WATCHER, existingWatcher, watcher, type Parked } from "./watcher.ts";

/**
 * Ticks per Bun task before reel yields back to Bun's loop (each tick ≤ 61 polls).
 *
 * @example
 * ```ts
 * // at most TICKS_PER_SLICE × POLLS_PER_TICK polls run before Bun's own callbacks get a turn
 * console.log(TICKS_PER_SLICE * POLLS_PER_TICK);
 * ```
 */
export const TICKS_PER_SLICE = 8;
/** Poll interval of the fallback for backends with no pollable fd (no watcher). */
const FALLBACK_POLL_MS = 1;

/**
 * Options for {@link run}.
 *
 * @example
 * ```ts
 * const result = await run(function* () { yield* sleep(10); return "done"; }, { signal: AbortSignal.timeout(1000) } satisfies RunOptions);
 * ```
 */
export interface RunOptions {
  /** The runtime to drive; default the running one, else the default runtime. */
  runtime?: Runtime;
  /** Aborting cancels the future (its cancel hooks run) and rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * @internal A JS Promise settled by a task: the root task of a hosted run, and the task of
 * `toPromise` inside blockOn. It settles when the task does — after the task's cleanup
 * and the halting of what still ran under it.
 *
 * @example
 * ```ts
 * const p = new Promise((resolve, reject) => new PromiseTask(rt.spawnUnder(null, fut, undefined, ROOT), resolve, reject, null));
 * ```
 */
export class PromiseTask<T> {
  private settled = false;
  private signal: AbortSignal | null = null;
  private readonly onAbort = () => this.task.abort();

  constructor(
    readonly task: Task<T>,
    private readonly resolve: (v: T) => void,
    private readonly reject: (e: unknown) => void,
    private readonly onSettled: ((p: PromiseTask<T>) => void) | null,
  ) {
    task.observed = true; // its failure rejects the Promise: it is not unobserved
    task.onDone = (t) => this.done(t as Task<T>);
  }

  /** Aborting `signal` halts the task (with its tree); the Promise rejects with the reason. */
  watch(signal: AbortSignal): void {
    this.signal = signal;
    signal.addEventListener("abort", this.onAbort, { once: true });
  }

  /** Rejects now with `reason` (the runtime failed) and halts the task, best effort. */
  failWith(reason: unknown): void {
    if (this.settled) return;
    this.finish();
    this.reject(reason);
    this.task.abort();
  }

  private done(t: Task<T>): void {
    if (this.settled) return;
    this.finish();
    const e = t.error;
    if (e === null) this.resolve(t.value as T);
    else if (e.isFailed()) this.reject(e.cause);
    else this.reject(this.signal?.aborted ? this.signal.reason : new RuntimeError("The hosted run was cancelled", "ECANCELED"));
  }

  private finish(): void {
    this.settled = true;
    this.signal?.removeEventListener("abort", this.onAbort);
    this.onSettled?.(this);
  }
}

/** The host hosted mode attaches to a runtime: schedules its slices and parks it. */
class HostLoop implements Host, Parked {
  private readonly roots = new Set<PromiseTask<unknown>>();
  private scheduled = false;
  private parked = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = -1;
  private readonly tickFn = () => this.tick();
  private readonly timerFn = () => {
    this.timer = null;
    this.timerAt = -1;
    this.ready();
  };
  readonly rootDone = (s: PromiseTask<unknown>) => {
    this.roots.delete(s);
    if (this.roots.size > 0) return;
    // Inside a slice, the slice detaches when it ends; outside (an abort), detach now.
    if (currentRuntime() === this.rt) this.wake();
    else this.detach();
  };

  constructor(readonly rt: Runtime) {}

  get fd(): number {
    return this.rt.driver.watchFd;
  }

  keepAlive(): boolean {
    return this.rt.driver.pendingWork > 0;
  }

  /** Detaches when no root is left (a run() that failed to start). */
  release(): void {
    if (this.roots.size === 0) this.detach();
  }

  addRoot(s: PromiseTask<unknown>): void {
    this.roots.add(s);
    this.wake();
  }

  /** Host: a task was woken outside a slice (or readiness/timer came): schedule a slice. */
  wake(): void {
    if (this.parked) this.unpark();
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.tickFn);
    }
  }

  /**
   * Parked: the watcher saw the poll fd readable, or the deadline timer fired. Runs the
   * slice at once (a Bun timer callback or a promise job between Bun tasks) rather than
   * paying a setImmediate hop — unless another runtime's blockOn is draining microtasks
   * right now, where a slice cannot run: then it is scheduled.
   */
  ready(): void {
    if (currentRuntime() !== null) return this.wake();
    if (this.parked) this.unpark();
    if (!this.scheduled) this.tick();
  }

  /** Rejects every root with `err` and detaches (the driver or the watcher failed). */
  fail(err: unknown): void {
    for (const s of [...this.roots]) s.failWith(err);
    this.detach();
  }

  /** One slice: run ticks, then reschedule, park, or detach when no root is left. */
  private tick(): void {
    this.scheduled = false;
    if (this.rt.host !== this) return; // detached since this slice was scheduled
    if (this.roots.size > 0) {
      let left: number;
      try {
        left = this.rt.runTicks(TICKS_PER_SLICE);
      } catch (err) {
        this.fail(err);
        return;
      }
      if (this.roots.size > 0) {
        if (left > 0) this.wake();
        else this.park();
        return;
      }
    }
    this.detach();
  }

  /** Idle: wait for the poll fd (the watcher) and the next timer deadline (a Bun timer). */
  private park(): void {
    if (this.scheduled) return; // woken during the slice: the next slice decides
    const wheel = this.rt.driver.wheel;
    const next = wheel.size > 0 ? wheel.nextDeadline() : -1;
    const ms = next >= 0 ? Math.ceil(next - now()) : -1;
    if (next >= 0 && ms <= 0) return this.wake();
    const watched = this.fd >= 0 && HAVE_WATCHER;
    if (!watched && (ms < 0 || ms > FALLBACK_POLL_MS)) {
      // No pollable fd (the poll backend): poll it on a short timer, which keeps the process
      // alive only when reel holds I/O registrations.
      this.armTimer(-1, FALLBACK_POLL_MS, this.keepAlive());
    } else if (next >= 0) {
      if (this.timerAt !== next) this.armTimer(next, ms, true);
    } else this.clearTimer();
    this.parked = true;
    if (!watched) return;
    try {
      watcher().park(this);
    } catch (err) {
      this.fail(err);
    }
  }

  private unpark(): void {
    this.parked = false;
    existingWatcher()?.unpark(this);
  }

  private armTimer(at: number, ms: number, ref: boolean): void {
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(this.timerFn, ms);
    if (!ref) this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = -1;
  }

  private detach(): void {
    if (this.parked) this.unpark();
    existingWatcher()?.forget(this);
    this.clearTimer();
    if (this.rt.host === this) this.rt.host = null;
  }
}

/** The runtime `run()` drives for these options; throws inside blockOn. */
function hostedRuntime(options: RunOptions): Runtime {
  const cur = currentRuntime();
  if (cur !== null && cur.host === null) {
    throw new RuntimeError("run() cannot be called inside blockOn(): blockOn owns the thread, so the Promise could never settle. Use spawn() or yield* there", "EREENTRANT");
  }
  return options.runtime ?? cur ?? defaultRuntimeInstance();
}

/** The runtime's host loop, attached if it has none. */
function attach(rt: Runtime): HostLoop {
  const h = rt.host;
  if (h instanceof HostLoop) return h;
  if (h !== null) throw new RuntimeError("This runtime is driven by another host", "EBUSY");
  const loop = new HostLoop(rt);
  rt.host = loop;
  return loop;
}

/**
 * Runs a future (or generator function) in hosted mode: reel ticks as Bun tasks and never
 * blocks the thread, so Bun's timers, `fetch` and servers keep working beside reel's I/O.
 * Resolves with the future's value or rejects with its error. Throws RuntimeError inside
 * `blockOn()`; see the module header for nesting.
 *
 * @example
 * ```ts
 * import { TcpListener, run, sleep } from "reel";
 * const server = Bun.serve({ port: 0, fetch: () => new Response("hi") });
 * const body = await run(function* () {
 *   yield* sleep(10); // reel's timer, while Bun.serve keeps serving
 *   return "done";
 * });
 * const res = await fetch(server.url); // Bun's loop was never blocked
 * ```
 */
export function run<T>(fut: IntoFuture<T>, options: RunOptions = {}): Promise<T> {
  const rt = hostedRuntime(options);
  const f = intoFuture(fut, "run()");
  const signal = options.signal;
  if (signal?.aborted) {
    f.cancel?.();
    return Promise.reject(signal.reason);
  }
  const host = attach(rt);
  return new Promise<T>((resolve, reject) => {
    let task: Task<T>;
    try {
      task = rt.spawnUnder(null, f, undefined, ROOT); // throws on a closed runtime
    } catch (err) {
      host.release();
      throw err;
    }
    const root = new PromiseTask<T>(task, resolve, reject, host.rootDone as (p: PromiseTask<T>) => void);
    host.addRoot(root as PromiseTask<unknown>);
    if (signal !== undefined) root.watch(signal);
  });
}

/**
 * True while `run()` is driving `runtime` (default: the default runtime).
 *
 * @example
 * ```ts
 * import { isHosted, run, sleep } from "reel";
 * const p = run(sleep(10));
 * isHosted(); // true until p settles
 * ```
 */
export function isHosted(runtime: Runtime = defaultRuntimeInstance()): boolean {
  return runtime.host instanceof HostLoop;
}

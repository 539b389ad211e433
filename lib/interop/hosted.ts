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
 *   own Promise. The runtime stays hosted until its last root settles; tasks spawned by
 *   roots then pause until the next `run()`/`blockOn()` (as they do after `blockOn`).
 *
 * Must never: block the thread, run a slice while another runtime is inside blockOn, run
 * Bun's microtasks inside a slice (user code after `await run()` must not find itself
 * inside a runtime), or keep the process alive when nothing reel holds could wake it.
 */
import { BaseFuture, PENDING, intoFuture, type Context, type Future, type IntoFuture, type Poll } from "../future.ts";
import { currentRuntime, defaultRuntimeInstance, type Host, type Runtime } from "../executor.ts";
import { RuntimeError } from "../errors.ts";
import type { JoinHandle } from "../task/task.ts";
import { now } from "../time/clock.ts";
import { HAVE_WATCHER, existingWatcher, watcher, type Parked } from "./watcher.ts";

/** Ticks per Bun task before reel yields back to Bun's loop (each tick ≤ 61 polls). */
export const TICKS_PER_SLICE = 8;
/** Poll interval of the fallback for backends with no pollable fd (no watcher). */
const FALLBACK_POLL_MS = 1;

/** Options for {@link run}. */
export interface RunOptions {
  /** The runtime to drive; default the running one, else the default runtime. */
  runtime?: Runtime;
  /** Aborting cancels the future (its cancel hooks run) and rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * @internal A future that settles a JS Promise with its inner future's outcome: the root
 * task of a hosted run, and of `toPromise` inside blockOn.
 *
 * @example
 * ```ts
 * const p = new Promise((resolve, reject) => rt.spawn(new Settle(fut, resolve, reject, null)));
 * ```
 */
export class Settle<T> extends BaseFuture<void> {
  private done = false;
  private signal: AbortSignal | null = null;
  private unwatch: (() => void) | null = null;

  constructor(
    private readonly inner: Future<T>,
    private readonly resolve: (v: T) => void,
    private readonly reject: (e: unknown) => void,
    private readonly onDone: ((s: Settle<T>) => void) | null,
  ) {
    super();
  }

  /** Cancels this root when `signal` aborts (the caller aborts its task for a prompt stop). */
  watch(signal: AbortSignal, abortTask: () => void): void {
    this.signal = signal;
    signal.addEventListener("abort", abortTask, { once: true });
    this.unwatch = () => signal.removeEventListener("abort", abortTask);
  }

  poll(cx: Context): Poll<void> {
    if (this.done) return undefined;
    let v: Poll<T>;
    try {
      v = this.inner.poll(cx);
    } catch (err) {
      this.finish();
      this.reject(err);
      return undefined;
    }
    if (v === PENDING) return PENDING;
    this.finish();
    this.resolve(v);
    return undefined;
  }

  /** The task was aborted: cancel the inner future, reject with the abort reason. */
  override cancel(): void {
    this.abortWith(this.signal?.aborted ? this.signal.reason : new RuntimeError("The hosted run was cancelled", "ECANCELED"));
  }

  /** Cancels the inner future and rejects with `reason`. Idempotent. */
  abortWith(reason: unknown): void {
    if (this.done) return;
    this.finish();
    try {
      this.inner.cancel?.();
    } finally {
      this.reject(reason);
    }
  }

  private finish(): void {
    this.done = true;
    this.unwatch?.();
    this.unwatch = null;
    this.onDone?.(this);
  }
}

/** The host hosted mode attaches to a runtime: schedules its slices and parks it. */
class HostLoop implements Host, Parked {
  private readonly roots = new Set<Settle<unknown>>();
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
  readonly rootDone = (s: Settle<unknown>) => {
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

  addRoot(s: Settle<unknown>): void {
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
    for (const s of [...this.roots]) s.abortWith(err);
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
  const f = intoFuture(fut);
  const signal = options.signal;
  if (signal?.aborted) {
    f.cancel?.();
    return Promise.reject(signal.reason);
  }
  const host = attach(rt);
  return new Promise<T>((resolve, reject) => {
    const root = new Settle<T>(f, resolve, reject, host.rootDone as (s: Settle<T>) => void);
    let handle: JoinHandle<void>;
    try {
      handle = rt.spawn(root); // throws on a closed runtime
    } catch (err) {
      host.release();
      throw err;
    }
    host.addRoot(root as Settle<unknown>);
    if (signal !== undefined) root.watch(signal, () => handle.abort());
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

/**
 * Promise interop: a Promise as a reel Future ({@link fromPromise}) and a reel Future as a
 * Promise ({@link toPromise}).
 *
 * `fromPromise(p)` attaches its handlers at once (so a rejection is never "unhandled") and
 * fires the polling task's waker when `p` settles; a rejection is thrown from `poll`. A
 * Promise settled by microtasks alone (`Promise.resolve().then(…)`) works everywhere,
 * including inside `blockOn`, which drains microtasks every tick. One that needs Bun's
 * event loop (fetch, setTimeout, Bun.sleep, a Bun socket) can only settle in hosted mode
 * (`run()`): inside `blockOn` it would wait forever, so while pending it is counted on the
 * runtime and the executor's deadlock error names it ("blocked on N Promise(s) that need
 * Bun's event loop: use run()"). That detection fires only when nothing else could wake the
 * runtime; with reel I/O or timers also pending, `blockOn` simply waits on those.
 *
 * `toPromise(fut)` runs the future as a task: inside `blockOn` on that runtime (the Promise
 * settles while blockOn keeps running; the task is a child of the task calling toPromise,
 * so it is halted with it), elsewhere through hosted `run()`.
 *
 * Cancel-safety: cancelling a fromPromise future forgets the Promise (a JS Promise cannot
 * be stopped); built from a function, `fromPromise((signal) => fetch(url, { signal }))`,
 * cancelling also aborts the signal so the underlying work stops.
 *
 * Must never: poll or wake from inside `poll`, leave a pending count behind after settle or
 * cancel, or let a rejection go unhandled.
 */
import { BaseFuture, FutureStateError, PENDING, intoFuture, type Context, type IntoFuture, type Poll, type Waker } from "../future.ts";
import { currentRuntime, type Runtime } from "../executor.ts";
import { PromiseTask, run, type RunOptions } from "./hosted.ts";

const PENDING_STATE = 0;
const FULFILLED = 1;
const REJECTED = 2;
/** Taken (value returned or error thrown) or cancelled. */
const DONE = 3;

/** The future behind {@link fromPromise}. */
class FromPromise<T> extends BaseFuture<T> {
  private state = PENDING_STATE;
  private value: T | undefined = undefined;
  private error: unknown = undefined;
  private waker: Waker | null = null;
  /** The runtime whose pending-Promise count includes this future, or null. */
  private counted: Runtime | null = null;
  private controller: AbortController | null = null;
  private make: ((signal: AbortSignal) => PromiseLike<T>) | null = null;

  constructor(source: PromiseLike<T> | ((signal: AbortSignal) => PromiseLike<T>)) {
    super();
    if (typeof source === "function") this.make = source;
    else this.attach(source);
  }

  private attach(p: PromiseLike<T>): void {
    Promise.resolve(p).then(
      (v) => this.settle(FULFILLED, v, undefined),
      (e) => this.settle(REJECTED, undefined, e),
    );
  }

  private settle(state: number, value: T | undefined, error: unknown): void {
    if (this.state !== PENDING_STATE) return; // cancelled meanwhile
    this.state = state;
    this.value = value;
    this.error = error;
    this.uncount();
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }

  poll(cx: Context): Poll<T> {
    const s = this.state;
    if (s === FULFILLED) {
      this.state = DONE;
      const v = this.value as T;
      this.value = undefined;
      return v;
    }
    if (s === REJECTED) {
      this.state = DONE;
      throw this.error;
    }
    if (s === DONE) throw new FutureStateError("fromPromise() future polled after completion");
    if (this.make !== null) this.start();
    this.waker = cx.waker;
    if (this.counted === null && this.state === PENDING_STATE) {
      const rt = currentRuntime();
      if (rt !== null) {
        rt.pendingPromises++;
        this.counted = rt;
      }
    }
    return PENDING;
  }

  /** The function form: creates the Promise on first poll, with an AbortSignal for cancel. */
  private start(): void {
    const make = this.make!;
    this.make = null;
    this.controller = new AbortController();
    let p: PromiseLike<T>;
    try {
      p = make(this.controller.signal);
    } catch (err) {
      p = Promise.reject(err);
    }
    this.attach(p);
  }

  private uncount(): void {
    if (this.counted !== null) {
      this.counted.pendingPromises--;
      this.counted = null;
    }
  }

  /** Forgets the Promise; aborts the signal of the function form. Idempotent. */
  override cancel(): void {
    const wasPending = this.state === PENDING_STATE;
    this.state = DONE;
    this.value = undefined;
    this.waker = null;
    this.make = null;
    this.uncount();
    if (wasPending) this.controller?.abort(new DOMException("The reel future was cancelled", "AbortError"));
  }
}

/**
 * A Future of a Promise's value: its task is woken when the Promise settles, and a
 * rejection is thrown from `poll`. Pass a function to get an AbortSignal that fires when
 * the future is cancelled (e.g. by `timeout()`); it is called on the first poll.
 *
 * Inside `blockOn`, only Promises settled by microtasks can complete; one that needs Bun's
 * loop (fetch, timers) makes `blockOn` fail with a deadlock RuntimeError naming hosted mode.
 *
 * @example
 * ```ts
 * import { fromPromise, run, timeout } from "reel";
 * const text = await run(function* () {
 *   const res = yield* timeout(fromPromise((signal) => fetch("http://127.0.0.1:3000/", { signal })), 1000);
 *   return yield* fromPromise(res.text());
 * });
 * ```
 */
export function fromPromise<T>(source: PromiseLike<T> | ((signal: AbortSignal) => PromiseLike<T>)): BaseFuture<T> {
  const ok = typeof source === "function" || (typeof source === "object" && source !== null && typeof (source as PromiseLike<T>).then === "function");
  if (!ok) throw new TypeError(`fromPromise() expects a Promise or a function returning one, got ${source === null ? "null" : typeof source}`);
  return new FromPromise(source);
}

/**
 * A Promise of a future's value. Inside `blockOn` it spawns the future on that runtime
 * (the Promise settles while blockOn keeps running); anywhere else it is hosted `run()`.
 * `signal` cancels the future and rejects with the abort reason.
 *
 * @example
 * ```ts
 * import { sleep, toPromise } from "reel";
 * const p = toPromise(function* () { yield* sleep(10); return 42; });
 * console.log(await p); // 42, with Bun's loop free meanwhile
 * ```
 */
export function toPromise<T>(fut: IntoFuture<T>, options: RunOptions = {}): Promise<T> {
  const cur = currentRuntime();
  const inBlockOn = cur !== null && cur.host === null && (options.runtime === undefined || options.runtime === cur);
  if (!inBlockOn) return run(fut, options);
  const f = intoFuture(fut, "toPromise()");
  const signal = options.signal;
  if (signal?.aborted) {
    f.cancel?.();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const root = new PromiseTask<T>(cur.spawnUnder(cur.attachNode(), f, undefined), resolve, reject, null);
    if (signal !== undefined) root.watch(signal);
  });
}

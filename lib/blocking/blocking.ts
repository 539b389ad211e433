/**
 * spawnBlocking: runs a function that would stall the runtime thread — CPU work, a
 * synchronous library — on a bounded pool of Bun Workers of its own (not the fs pool),
 * and returns its result as a future. The function is named by module and export
 * (`spawnBlocking(new URL("./work.ts", import.meta.url), "hash", data)`), since a Worker
 * cannot share a closure: arguments go to the Worker by structured clone, and the result
 * or error comes back the same way.
 *
 * How the result travels: a Worker cannot message a runtime thread that is inside
 * blockOn (Bun's loop, which delivers messages, does not run), so it writes the
 * serialized outcome into the job's growable SharedArrayBuffer and writes an eventfd the
 * runtime's driver watches (`driver.socket(efd)`, one per driver while jobs are in
 * flight) — the same path as the fs pool (lib/driver/pool/pool.ts), hosted mode
 * included.
 *
 * Bounded: at most {@link blockingPoolSize} Workers (default: the number of CPUs, at least
 * 2), each running one call at a time; further calls queue here in FIFO order and start
 * as Workers free up. Workers start on first use and never keep the process alive.
 *
 * Errors: an exception thrown (or a Promise rejected) by the function is rethrown by the
 * future as an Error with the same name, message, stack and code/errno/syscall; a value
 * that cannot be cloned is a DataCloneError.
 *
 * Cancellation: a call that has not started is dropped (it never runs); one that is
 * running cannot be stopped from outside — its result is discarded when it ends, and
 * `blockingCancelled()` returns true inside it from then on, so a long loop can stop early.
 *
 * Must never: run a cancelled call that had not started, block the runtime thread
 * (except the microseconds between a Worker's "done" and "released"), close the eventfd
 * while a Worker may still write it, or lose a call's error.
 */
import { deserialize } from "bun:jsc";
import * as libc from "../../ffi/libc.ts";
import * as ep from "../../ffi/epoll.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { currentDriver } from "../current.ts";
import { check } from "../errors.ts";
import { DIR_READ, type IoFd } from "../driver/fd.ts";
import type { Driver } from "../driver/driver.ts";

const QUEUED = 0;
const DONE = 1;
const ABANDONED = 2;
const RELEASED = 4;
/** Largest serialized result (or error) one call may return. */
const MAX_RESULT = 256 * 1024 * 1024;

let poolSize = Math.max(2, typeof navigator !== "undefined" ? navigator.hardwareConcurrency ?? 2 : 2);

/**
 * One pool Worker, the call it runs now, and where it writes outcomes: one growable
 * SharedArrayBuffer per Worker, made once (a growable one costs ~0.25 ms to create), read
 * back by the runtime thread when it settles the call — before the Worker gets another.
 */
interface Slot {
  worker: Worker;
  ready: Promise<void>;
  job: Call | null;
  readonly data: SharedArrayBuffer;
}
const slots: Slot[] = [];
/** Calls waiting for a free Worker, in order. */
const queue: Call[] = [];

/** One call: its shared memory, its state, who waits for it. */
class Call {
  readonly ctl = new SharedArrayBuffer(16);
  readonly state = new Int32Array(this.ctl, 0, 4);
  /** The Worker's outcome buffer while the call is posted (see Slot). */
  data: SharedArrayBuffer | null = null;
  /** The outcome, copied out when the call was settled. */
  outcome: ArrayBuffer | null = null;
  /** Its runtime closed while it ran: nobody settles it; its Worker is free once it finished. */
  forgotten = false;
  waker: Waker | null = null;
  /** Settled on the runtime thread (outcome stored, or dropped before it ran). */
  settled = false;
  /** The future is gone: the outcome is dropped. */
  orphaned = false;
  /** Posted to a Worker. */
  posted = false;
  client: Client | null = null;
  constructor(
    readonly moduleUrl: string,
    readonly exportName: string,
    readonly args: unknown[],
  ) {}

  get finished(): boolean {
    const s = Atomics.load(this.state, 0);
    return s === DONE || s === RELEASED;
  }
}

/**
 * Sets the most Workers spawnBlocking uses (later calls beyond it queue). Workers already
 * running stay until they finish their call.
 *
 * @example
 * ```ts
 * setBlockingPoolSize(4);
 * ```
 */
export function setBlockingPoolSize(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError(`Invalid blocking pool size ${String(n)}: must be an integer 1-256`);
  poolSize = n;
}

/**
 * The most Workers spawnBlocking uses.
 *
 * @example
 * ```ts
 * console.log(`${blockingPoolSize()} blocking workers at most`);
 * ```
 */
export function blockingPoolSize(): number {
  return poolSize;
}

/**
 * Starts `n` (default: the pool size) Workers now and waits until they have loaded, so
 * the first calls do not pay for a Worker's start-up (benchmarks, tests).
 *
 * @example
 * ```ts
 * await startBlockingPool();
 * ```
 */
export async function startBlockingPool(n = poolSize): Promise<void> {
  while (slots.length < Math.min(n, poolSize)) addSlot();
  await Promise.all(slots.map((s) => s.ready));
}

function addSlot(): Slot {
  const worker = new Worker(new URL("./worker.ts", import.meta.url).href);
  const ready = new Promise<void>((resolve) => {
    worker.onmessage = () => {
      worker.onmessage = null;
      resolve();
    };
  });
  (worker as unknown as { unref(): void }).unref();
  const slot: Slot = { worker, ready, job: null, data: new SharedArrayBuffer(64 * 1024, { maxByteLength: MAX_RESULT }) };
  slots.push(slot);
  return slot;
}

/** A Worker is free once its call was settled (outcome copied out), abandoned, or forgotten and finished. */
function isFree(s: Slot): boolean {
  const j = s.job;
  return j === null || j.settled || Atomics.load(j.state, 0) === ABANDONED || (j.forgotten && j.finished);
}

/** Posts queued calls to free Workers, in order. */
function dispatch(): void {
  while (queue.length > 0) {
    let slot = slots.find(isFree);
    if (slot === undefined && slots.length < poolSize) slot = addSlot();
    if (slot === undefined) return;
    const call = queue.shift()!;
    slot.job = call;
    call.posted = true;
    call.data = slot.data;
    slot.worker.postMessage({ moduleUrl: call.moduleUrl, exportName: call.exportName, args: call.args, ctl: call.ctl, data: slot.data, efd: call.client!.efd });
  }
}

/** A driver's side: its eventfd (bound as an IoFd while calls are in flight) and its calls. */
class Client {
  efd = -1;
  private io: IoFd | null = null;
  private readonly calls = new Set<Call>();
  private readonly unreleased: Call[] = [];
  private readonly cx: Context = { waker: { wake: () => this.onReady() } };
  private closeQueued = false;

  constructor(private readonly driver: Driver) {}

  add(call: Call): void {
    if (this.io === null) {
      this.efd = check(ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC), "eventfd");
      try {
        this.io = this.driver.socket(this.efd);
      } catch (err) {
        libc.close(this.efd);
        this.efd = -1;
        throw err;
      }
    }
    call.client = this;
    this.calls.add(call);
    this.driver.addWork();
    // Still bound from an earlier call, the waker may have been consumed: store it again.
    if (this.io.pollReady(this.cx, DIR_READ) !== PENDING) this.onReady();
  }

  /** A call that never reached a Worker (cancelled while queued, or abandoned before it started). */
  drop(call: Call): void {
    if (!this.calls.delete(call)) return;
    call.settled = true;
    this.driver.doneWork();
    this.maybeIdle();
  }

  private settle(call: Call): void {
    this.calls.delete(call);
    this.driver.doneWork();
    if (!call.orphaned) {
      const r = Atomics.load(call.state, 1);
      const len = r >= 0 ? r : -r - 1;
      call.outcome = new ArrayBuffer(len);
      new Uint8Array(call.outcome).set(new Uint8Array(call.data!, 0, len));
    }
    call.data = null;
    call.settled = true;
    if (Atomics.load(call.state, 0) === DONE) this.unreleased.push(call);
    const w = call.waker;
    call.waker = null;
    w?.wake();
  }

  private onReady(): void {
    for (let round = 0; round < 1000; round++) {
      const io = this.io;
      if (io === null || io.fd < 0) return;
      if (io.pollReady(this.cx, DIR_READ) === PENDING) return;
      libc.read(this.efd, drainBuf);
      io.clearReady(DIR_READ);
      for (const call of this.calls) if (call.posted && call.finished) this.settle(call);
      dispatch();
      if (this.calls.size === 0) return this.maybeIdle();
    }
  }

  /**
   * No call in flight: release the eventfd once no Worker can still write it. As a
   * microtask: this may run inside the driver's own event loop, where closing an fd it
   * reports on is not allowed on io_uring (blockOn drains microtasks every tick).
   */
  private maybeIdle(): void {
    if (this.calls.size > 0 || this.closeQueued || this.io === null) return;
    this.closeQueued = true;
    queueMicrotask(() => {
      this.closeQueued = false;
      if (this.calls.size === 0) this.release();
    });
  }

  /** Closes the eventfd (waiting the microseconds until Workers that wrote it say "released"). */
  release(): void {
    for (const call of this.unreleased) {
      while (Atomics.load(call.state, 0) === DONE) Atomics.wait(call.state, 0, DONE, 100);
    }
    this.unreleased.length = 0;
    const io = this.io;
    this.io = null;
    this.efd = -1;
    io?.close();
  }

  /** The driver is closing: calls still running keep their Worker; their outcome is dropped. */
  close(): void {
    for (const call of [...this.calls]) {
      call.orphaned = true;
      if (!call.posted) {
        const i = queue.indexOf(call);
        if (i >= 0) queue.splice(i, 1);
        this.drop(call);
      } else if (Atomics.compareExchange(call.state, 0, QUEUED, ABANDONED) === QUEUED) this.drop(call);
    }
    if (this.calls.size > 0) {
      // Running calls will write this eventfd when they end: leave it open for them (they
      // cannot be stopped), and forget them here.
      for (const call of this.calls) {
        Atomics.store(call.state, 2, 1);
        call.forgotten = true;
      }
      console.error(`reel: Runtime.close(): ${this.calls.size} spawnBlocking call(s) still running; their eventfd stays open`);
      return;
    }
    this.release();
  }
}

const drainBuf = new Uint8Array(new ArrayBuffer(8));
const clients = new WeakMap<Driver, Client>();

function clientFor(d: Driver): Client {
  let c = clients.get(d);
  if (c === undefined) {
    const client = new Client(d);
    clients.set(d, client);
    d.atClose(() => client.close());
    c = client;
  }
  return c;
}

/** An Error rebuilt from the Worker's record (see worker.ts). */
function rebuild(rec: Record<string, unknown>): unknown {
  if (rec.thrown !== undefined) return rec.thrown;
  const Ctor = { TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError }[rec.name as string] ?? Error;
  const err = new Ctor(String(rec.message));
  if (rec.name !== err.name) Object.defineProperty(err, "name", { value: rec.name, configurable: true, writable: true });
  if (typeof rec.stack === "string") err.stack = rec.stack;
  for (const k of ["code", "errno", "syscall"]) if (rec[k] !== undefined) (err as unknown as Record<string, unknown>)[k] = rec[k];
  return err;
}

class Blocking<T> extends BaseFuture<T> {
  private call: Call | null = null;
  private done = false;

  constructor(
    private readonly moduleUrl: string,
    private readonly exportName: string,
    private readonly args: unknown[],
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError("spawnBlocking() future polled after completion");
    if (this.call === null) {
      const d = currentDriver();
      d.requireOs("Blocking work on the thread pool (spawnBlocking) is");
      const call = new Call(this.moduleUrl, this.exportName, this.args);
      clientFor(d).add(call);
      this.call = call;
      queue.push(call);
      dispatch();
    }
    const call = this.call;
    if (!call.settled) {
      call.waker = cx.waker;
      return PENDING;
    }
    this.done = true;
    this.call = null;
    const value = deserialize(call.outcome!);
    call.outcome = null;
    if (Atomics.load(call.state, 1) < 0) throw rebuild(value as Record<string, unknown>);
    return value as T;
  }

  /** Not started: it never runs. Running: its result is dropped, and blockingCancelled() turns true. */
  override cancel(): void {
    if (this.done) return;
    this.done = true;
    const call = this.call;
    this.call = null;
    if (call === null || call.settled) return;
    call.waker = null;
    call.orphaned = true;
    if (!call.posted) {
      queue.splice(queue.indexOf(call), 1);
      call.client!.drop(call);
    } else if (Atomics.compareExchange(call.state, 0, QUEUED, ABANDONED) === QUEUED) {
      call.client!.drop(call);
      dispatch();
    } else Atomics.store(call.state, 2, 1);
  }
}

/**
 * Runs `moduleUrl`'s export `exportName` with `args` on the blocking pool: the future of
 * its result (a returned Promise is awaited in the Worker). Arguments and result travel
 * by structured clone. See the module header for errors and cancellation.
 *
 * @example
 * ```ts
 * // work.ts: export function fib(n: number): number { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
 * import { blockOn, spawnBlocking } from "reel";
 * const v = blockOn(spawnBlocking<number>(new URL("./work.ts", import.meta.url), "fib", 30));
 * ```
 */
export function spawnBlocking<T = unknown>(moduleUrl: string | URL, exportName: string, ...args: unknown[]): BaseFuture<T> {
  let url: string;
  if (moduleUrl instanceof URL) url = moduleUrl.href;
  else if (typeof moduleUrl === "string" && (/^[a-z][a-z0-9+.-]*:/i.test(moduleUrl) || moduleUrl.startsWith("/"))) url = moduleUrl;
  else throw new TypeError(`spawnBlocking() needs an absolute module URL or path (new URL("./x.ts", import.meta.url)), got ${JSON.stringify(moduleUrl)}`);
  if (typeof exportName !== "string" || exportName.length === 0) throw new TypeError(`spawnBlocking() needs an export name, got ${JSON.stringify(exportName)}`);
  return new Blocking<T>(url, exportName, args);
}

/**
 * Inside a function run by spawnBlocking: true once its caller gave up on it (the future
 * was cancelled). A long computation can check it and stop early; elsewhere it is false.
 *
 * @example
 * ```ts
 * export function crunch(n: number) {
 *   for (let i = 0; i < n; i++) { if (i % 1e6 === 0 && blockingCancelled()) return null; work(i); }
 * }
 * ```
 */
export function blockingCancelled(): boolean {
  const g = (globalThis as { __reelBlocking?: { cancelled(): boolean } }).__reelBlocking;
  return g !== undefined && g.cancelled();
}


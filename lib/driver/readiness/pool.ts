/**
 * The blocking-file pool for readiness backends: a few Bun Workers (worker.ts) run the
 * blocking calls; the runtime thread learns of completions through an eventfd it has
 * registered with its own driver, so a finished job wakes its task like any I/O event.
 *
 * Per runtime ({@link PoolClient}): an eventfd, registered while jobs are in flight (and
 * closed when none are, so idle programs hold no extra fd or registration); each job
 * counts in `driver.external`, which keeps blockOn's deadlock check quiet meanwhile.
 * The pool's own waker is stored in the eventfd's registration: when it fires, the client
 * drains the eventfd, clears readiness, then wakes every task whose job is done (clear
 * before scan, so a job finishing during the scan raises a new edge: no lost wake-up).
 *
 * A cancelled job cannot stop its blocking call: it is marked abandoned; when it finishes
 * an opened fd is closed and read bytes are dropped (the file still has them and the
 * File's position did not advance).
 *
 * Must never: block the runtime thread, wake a task before its job's result is stored, or
 * leave `external` raised for a finished job.
 */
import * as libc from "../../../ffi/libc.ts";
import * as ep from "../../../ffi/epoll.ts";
import { PENDING, BaseFuture, FutureStateError, type Context, type Poll, type Waker } from "../../future.ts";
import { READ_READY, type Driver, type ScheduledIo } from "../driver.ts";
import { currentDriver } from "../../current.ts";
import { READABLE } from "./poller.ts";
import { SysError, check } from "../../errors.ts";

/** Worker threads in the pool (this machine class has 2 cores). */
const WORKERS = 2;
/** Largest read/write one job moves. */
export const POOL_CHUNK = 1024 * 1024;

const workers: Worker[] = [];
let nextWorker = 0;
let started: Promise<void> | null = null;

/**
 * Starts the pool's Workers (idempotent); the Promise settles once each has loaded.
 * The first job starts them without waiting (jobs queue in the Worker); tests await it
 * up front so the Workers' own fds exist before their fd-leak checks.
 *
 * @example
 * ```ts
 * await startFsPool();
 * ```
 */
export function startFsPool(): Promise<void> {
  if (started !== null) return started;
  const ready: Promise<void>[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const w = new Worker(new URL("./pool_worker.ts", import.meta.url).href);
    ready.push(
      new Promise<void>((resolve) => {
        w.onmessage = () => {
          w.onmessage = null;
          resolve();
        };
      }),
    );
    w.unref();
    workers.push(w);
  }
  started = Promise.all(ready).then(() => undefined);
  return started;
}

/** What a job asks a worker to do (worker.ts's Job, minus the shared buffers). */
export interface JobRequest {
  op: "open" | "read" | "write" | "stat" | "fstat" | "fsync" | "close";
  fd?: number;
  path?: string;
  flags?: number;
  mode?: number;
  len?: number;
  pos?: number;
  datasync?: boolean;
  /** write: the bytes (copied into shared memory before posting). */
  data?: Uint8Array;
}

/** One job in flight. */
export class Job {
  done = false;
  abandoned = false;
  waker: Waker | null = null;
  readonly ctl = new SharedArrayBuffer(48);
  readonly state = new Int32Array(this.ctl, 0, 2);
  readonly stat = new Float64Array(this.ctl, 8, 5);
  data: SharedArrayBuffer | null = null;
  constructor(
    readonly op: JobRequest["op"],
    readonly client: PoolClient,
  ) {}

  get result(): number {
    return Atomics.load(this.state, 1);
  }
}

const clients = new WeakMap<Driver, PoolClient>();

/** A runtime's side of the pool: its eventfd, registration and in-flight jobs. */
class PoolClient {
  private efd = -1;
  private io: ScheduledIo | null = null;
  private readonly jobs = new Set<Job>();
  private readonly freeShared: SharedArrayBuffer[] = [];
  private readonly drainBuf = new Uint8Array(new ArrayBuffer(8));
  private readonly cx: Context = { waker: { wake: () => this.onReady() } };

  constructor(private readonly driver: Driver) {}

  submit(req: JobRequest): Job {
    void startFsPool();
    if (this.efd < 0) {
      this.efd = check(ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC), "eventfd");
      this.io = this.driver.register(this.efd, READABLE);
      this.driver.pollReady(this.io, READ_READY, this.cx);
    }
    const job = new Job(req.op, this);
    const len = req.op === "write" ? req.data!.byteLength : (req.len ?? 0);
    if (req.op === "read" || req.op === "write") job.data = this.takeShared(len);
    if (req.op === "write") new Uint8Array(job.data!, 0, len).set(req.data!);
    const msg = { op: req.op, fd: req.fd ?? -1, path: req.path ?? "", flags: req.flags ?? 0, mode: req.mode ?? 0, len, pos: req.pos ?? -1, datasync: req.datasync ?? false, ctl: job.ctl, data: job.data, efd: this.efd };
    this.jobs.add(job);
    this.driver.external++;
    workers[nextWorker++ % workers.length]!.postMessage(msg);
    return job;
  }

  /** Shared data memory for a job: chunk-sized buffers are reused (a 64 MB stream makes no garbage). */
  private takeShared(len: number): SharedArrayBuffer {
    if (len > POOL_CHUNK) return new SharedArrayBuffer(len);
    return this.freeShared.pop() ?? new SharedArrayBuffer(POOL_CHUNK);
  }

  /** Returns a finished job's data memory (nobody reads it after this). */
  giveBack(job: Job): void {
    const sab = job.data;
    job.data = null;
    if (sab !== null && sab.byteLength === POOL_CHUNK && this.freeShared.length < 4) this.freeShared.push(sab);
  }

  /** The eventfd fired: settle finished jobs, then re-arm or (idle) release the eventfd. */
  private onReady(): void {
    for (let round = 0; round < 1000; round++) {
      const io = this.io!;
      const tick = io.tick;
      libc.read(this.efd, this.drainBuf);
      this.driver.clearReadiness(io, READABLE, tick);
      for (const job of this.jobs) {
        if (Atomics.load(job.state, 0) !== 1) continue;
        this.jobs.delete(job);
        this.driver.external--;
        job.done = true;
        if (job.abandoned) settleAbandoned(job);
        if (job.abandoned) this.giveBack(job);
        const w = job.waker;
        job.waker = null;
        w?.wake();
      }
      if (this.jobs.size === 0) return this.idle();
      if (this.driver.pollReady(io, READ_READY, this.cx) === PENDING) return;
    }
  }

  private idle(): void {
    const io = this.io!;
    this.io = null;
    this.driver.deregister(io);
    libc.close(this.efd);
    this.efd = -1;
  }
}

/** A finished job nobody awaits: close what it opened; drop what it read. */
function settleAbandoned(job: Job): void {
  if (job.op === "open" && job.result >= 0) libc.close(job.result);
}

/**
 * A pool job as a future: resolves to the call's result (≥ 0) or throws SysError.
 *
 * @example
 * ```ts
 * const fd = yield* new PoolFuture({ op: "open", path: "/etc/hostname", flags: 0 });
 * ```
 */
export class PoolFuture extends BaseFuture<number> {
  private job: Job | null = null;
  private finished = false;

  constructor(
    private readonly req: JobRequest,
    /** read: where the bytes go, copied from shared memory in the poll that completes. */
    private readonly copyOut: Uint8Array | null = null,
  ) {
    super();
  }

  poll(cx: Context): Poll<number> {
    if (this.finished) throw new FutureStateError(`fs ${this.req.op} future polled after completion`);
    if (this.job === null) {
      const d = currentDriver();
      let c = clients.get(d);
      if (c === undefined) clients.set(d, (c = new PoolClient(d)));
      this.job = c.submit(this.req);
    }
    const job = this.job;
    if (!job.done) {
      job.waker = cx.waker;
      return PENDING;
    }
    this.finished = true;
    const r = job.result;
    if (r > 0 && this.copyOut !== null) this.copyOut.set(new Uint8Array(job.data!, 0, Math.min(r, this.copyOut.byteLength)));
    job.client.giveBack(job);
    if (r < 0) throw new SysError(-r, this.req.op === "fstat" ? "fstat" : this.req.op);
    return r;
  }

  /** The job (its stat fields), valid once it resolved. */
  get settled(): Job {
    return this.job!;
  }

  /** The blocking call cannot be stopped: the job is abandoned and settled when it ends. */
  override cancel(): void {
    const job = this.job;
    if (job !== null && !this.finished) {
      job.waker = null;
      // Done but never re-polled: settle now; still running: settle when it ends.
      if (job.done) {
        settleAbandoned(job);
        job.client.giveBack(job);
      } else job.abandoned = true;
    }
    this.finished = true;
  }
}

/**
 * The blocking-file pool of the readiness backends: a few Bun Workers (pool_worker.ts) run
 * the blocking calls; a runtime learns of completions through an eventfd registered with
 * its own driver, so a finished job wakes its task like any I/O event. files.ts builds
 * the FileFd interface on it.
 *
 * Per driver ({@link PoolClient}): an eventfd, registered while jobs are in flight (and
 * closed when none are, so idle programs hold no extra fd or registration); each job is
 * driver work until it is settled, which keeps blockOn's deadlock check quiet meanwhile.
 * The client's waker is stored in the eventfd's registration: when it fires, the client
 * drains the eventfd, clears readiness, then settles every finished job (clear before
 * scan, so a job finishing during the scan raises a new edge: no lost wake-up).
 *
 * A job's life, shared with pool_worker.ts through its `ctl` word: 0 queued → 3 running
 * (a worker claimed it) → 1 done → 4 released (the worker has written the eventfd and
 * touches nothing more). A job no worker has claimed can be abandoned here, 0 → 2: it
 * never runs. That is how a cancel or a file's close stops a queued call; a running one
 * cannot be stopped — its result is dropped when it ends (an opened fd is closed), and
 * its file's number stays pinned until then (files.ts, lib/driver/retire.ts).
 *
 * Must never: block the runtime thread (except the bounded wait in close(), and the
 * microseconds between a worker's "done" and "released"), wake a task before its job's
 * result is stored, close the eventfd while a worker may still write it, or leave a job
 * counted as work after it was settled.
 */
import * as libc from "../../../ffi/libc.ts";
import * as ep from "../../../ffi/epoll.ts";
import { PENDING, FutureStateError, type Context, type Poll, type Waker } from "../../future.ts";
import { READ_READY, type Registry, type ScheduledIo, type WorkCounter } from "../registry.ts";
import { READABLE } from "./poller.ts";
import { FILE_CHUNK, closedError, type FileFuture, type StatFields } from "../fd.ts";
import { SysError, check } from "../../errors.ts";

/** Worker threads in the pool (this machine class has 2 cores). */
const WORKERS = 2;
/** How long Runtime.close() waits for blocking calls still running. */
const CLOSE_WAIT_MS = 10_000;

// A job's `ctl` state word (see the module header; pool_worker.ts uses the same values).
const QUEUED = 0;
const DONE = 1;
const ABANDONED = 2;
const RUNNING = 3;
const RELEASED = 4;

const workers: Worker[] = [];
let nextWorker = 0;
let started: Promise<void> | null = null;

/**
 * Starts the pool's Workers (idempotent); the Promise settles once each has loaded.
 * The first job starts them without waiting (jobs queue in the Worker); tests await it
 * so a Worker's start-up is not counted against a test's fd check.
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
    // A pool Worker must not keep the process alive (Bun's Worker has unref).
    (w as unknown as { unref(): void }).unref();
    workers.push(w);
  }
  started = Promise.all(ready).then(() => undefined);
  return started;
}

/** What a job asks a worker to do (pool_worker.ts's Job, minus the shared buffers). */
export interface JobRequest {
  op: "open" | "read" | "write" | "stat" | "fstat" | "fsync";
  fd?: number;
  path?: string;
  flags?: number;
  mode?: number;
  len?: number;
  pos?: number;
  datasync?: boolean;
  /** write: the bytes (copied into shared memory when the job is submitted). */
  data?: Uint8Array;
}

/** Who is told when a job of theirs is settled: the file whose fd it names. */
export interface JobOwner {
  jobStarted(job: Job): void;
  jobDone(job: Job): void;
}

/** One job. */
export class Job {
  /** Settled on the runtime thread: the result is final, or the job never ran (`skipped`). */
  done = false;
  /** Abandoned before a worker took it: it never ran. */
  skipped = false;
  /** Its future is gone: the result is dropped when it arrives (an opened fd is closed). */
  orphaned = false;
  waker: Waker | null = null;
  readonly ctl = new SharedArrayBuffer(48);
  readonly state = new Int32Array(this.ctl, 0, 2);
  readonly stat = new Float64Array(this.ctl, 8, 5);
  data: SharedArrayBuffer | null = null;
  constructor(
    readonly op: JobRequest["op"],
    readonly owner: JobOwner | null,
  ) {}

  get result(): number {
    return Atomics.load(this.state, 1);
  }

  /** True while a worker is inside the blocking call. */
  get running(): boolean {
    return Atomics.load(this.state, 0) === RUNNING;
  }
}

/**
 * A driver's side of the pool: its eventfd, registration and jobs in flight.
 *
 * @example
 * ```ts
 * const client = new PoolClient(driver.registry, driver);
 * const job = client.submit({ op: "stat", path: "/etc/hostname" }, null);
 * // … the job's waker fires when it is settled …
 * client.close();
 * ```
 */
export class PoolClient {
  private efd = -1;
  private io: ScheduledIo | null = null;
  private readonly jobs = new Set<Job>();
  /** Settled jobs whose worker may still be writing the eventfd (state DONE, not RELEASED). */
  private readonly unreleased: Job[] = [];
  private readonly freeShared: SharedArrayBuffer[] = [];
  private readonly drainBuf = new Uint8Array(new ArrayBuffer(8));
  private readonly cx: Context = { waker: { wake: () => this.onReady() } };
  /** True while onReady settles jobs (it goes idle itself at the end). */
  private inReady = false;

  constructor(
    private readonly registry: Registry,
    private readonly work: WorkCounter,
  ) {}

  /** Posts a job to a worker. */
  submit(req: JobRequest, owner: JobOwner | null): Job {
    void startFsPool();
    if (this.efd < 0) {
      this.efd = check(ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC), "eventfd");
      this.io = this.registry.register(this.efd, READABLE);
      this.registry.pollReady(this.io, READ_READY, this.cx);
    }
    const job = new Job(req.op, owner);
    const len = req.op === "write" ? req.data!.byteLength : (req.len ?? 0);
    if (req.op === "read" || req.op === "write") job.data = this.takeShared(len);
    if (req.op === "write") new Uint8Array(job.data!, 0, len).set(req.data!);
    const msg = { op: req.op, fd: req.fd ?? -1, path: req.path ?? "", flags: req.flags ?? 0, mode: req.mode ?? 0, len, pos: req.pos ?? -1, datasync: req.datasync ?? false, ctl: job.ctl, data: job.data, efd: this.efd };
    this.jobs.add(job);
    this.work.addWork();
    owner?.jobStarted(job);
    workers[nextWorker++ % workers.length]!.postMessage(msg);
    return job;
  }

  /**
   * Abandons `job` if no worker has taken it: it will never run, and it is settled now
   * (skipped). Returns false when a worker already runs it (or ran it).
   */
  abandon(job: Job): boolean {
    if (job.done) return true;
    if (Atomics.compareExchange(job.state, 0, QUEUED, ABANDONED) !== QUEUED) return false;
    job.skipped = true;
    this.settle(job);
    // A skipped job never signals the eventfd: with nothing else in flight, go idle now.
    if (this.jobs.size === 0 && !this.inReady) this.idle();
    return true;
  }

  /** Shared data memory for a job: chunk-sized buffers are reused (a 64 MB stream makes no garbage). */
  private takeShared(len: number): SharedArrayBuffer {
    if (len > FILE_CHUNK) return new SharedArrayBuffer(len);
    return this.freeShared.pop() ?? new SharedArrayBuffer(FILE_CHUNK);
  }

  /** Returns a settled job's data memory (nobody reads it after this). */
  giveBack(job: Job): void {
    const sab = job.data;
    job.data = null;
    if (sab !== null && sab.byteLength === FILE_CHUNK && this.freeShared.length < 4) this.freeShared.push(sab);
  }

  /** Settles a job: no longer work, its owner told, its result dropped if orphaned, its waker woken. */
  private settle(job: Job): void {
    this.jobs.delete(job);
    this.work.doneWork();
    job.done = true;
    if (!job.skipped && Atomics.load(job.state, 0) === DONE) this.unreleased.push(job);
    job.owner?.jobDone(job);
    if (job.orphaned) this.dropResult(job);
    const w = job.waker;
    job.waker = null;
    w?.wake();
  }

  /** A settled job nobody will read: close what it opened, recycle its memory. */
  dropResult(job: Job): void {
    if (job.op === "open" && !job.skipped && job.result >= 0) libc.close(job.result);
    this.giveBack(job);
  }

  /** The eventfd fired: settle finished jobs, then re-arm or (idle) release the eventfd. */
  private onReady(): void {
    this.inReady = true;
    try {
      this.readyRounds();
    } finally {
      this.inReady = false;
    }
  }

  private readyRounds(): void {
    for (let round = 0; round < 1000; round++) {
      const io = this.io;
      if (io === null || io.closed) return;
      const tick = io.tick;
      libc.read(this.efd, this.drainBuf);
      this.registry.clearReadiness(io, READABLE, tick);
      for (const job of this.jobs) {
        const s = Atomics.load(job.state, 0);
        if (s === DONE || s === RELEASED) this.settle(job);
      }
      if (this.jobs.size === 0) return this.idle();
      if (this.registry.pollReady(io, READ_READY, this.cx) === PENDING) return;
    }
  }

  /** No job in flight: release the eventfd once no worker can still write it. */
  private idle(): void {
    for (const job of this.unreleased) {
      // The worker is between its eventfd write and "released": microseconds (see the header).
      while (Atomics.load(job.state, 0) === DONE) Atomics.wait(job.state, 0, DONE, 100);
    }
    this.unreleased.length = 0;
    const io = this.io;
    this.io = null;
    if (io !== null) this.registry.deregister(io);
    if (this.efd >= 0) libc.close(this.efd);
    this.efd = -1;
  }

  /**
   * The driver is closing: queued jobs are abandoned; running ones are waited for (at
   * most CLOSE_WAIT_MS in all) and settled; then the eventfd is released. A call still
   * running after that keeps the eventfd open (reported): its worker will write it.
   */
  close(): void {
    for (const job of [...this.jobs]) this.abandon(job);
    const deadline = Date.now() + CLOSE_WAIT_MS;
    for (const job of [...this.jobs]) {
      for (let left = deadline - Date.now(); job.running && left > 0; left = deadline - Date.now()) {
        Atomics.wait(job.state, 0, RUNNING, left);
      }
      if (!job.running) this.settle(job);
    }
    if (this.jobs.size > 0) {
      console.error(`reel: Runtime.close(): ${this.jobs.size} blocking file call(s) still running after ${CLOSE_WAIT_MS} ms; their eventfd stays open`);
      return;
    }
    this.idle();
  }
}

/** How a job's result becomes a future's value. */
export const AS_NUMBER = 0;
export const AS_STAT = 1;
export const AS_VOID = 2;

/**
 * A pool job as a future: the call's result (≥ 0), stat fields, or nothing; SysError for
 * a failed call; EBADF when its file was closed before the job ran.
 *
 * @example
 * ```ts
 * const f = new JobFuture<number>(client, { op: "open", path: "/etc/hostname", flags: 0 }, null, null, AS_NUMBER);
 * // poll f until it returns the fd
 * ```
 */
export class JobFuture<T> implements FileFuture<T> {
  private job: Job | null = null;
  private finished = false;

  constructor(
    private readonly client: PoolClient,
    private readonly req: JobRequest,
    private readonly owner: (JobOwner & { readonly fd: number }) | null,
    /** read: where the bytes go, copied from shared memory in the poll that completes. */
    private readonly copyOut: Uint8Array | null,
    private readonly as: typeof AS_NUMBER | typeof AS_STAT | typeof AS_VOID,
  ) {}

  poll(cx: Context): Poll<T> {
    if (this.finished) throw new FutureStateError(`fs ${this.req.op} future polled after completion`);
    if (this.job === null) {
      if (this.owner !== null && this.owner.fd < 0) {
        this.finished = true;
        throw closedError(this.req.op, "file");
      }
      this.job = this.client.submit(this.req, this.owner);
    }
    const job = this.job;
    if (!job.done) {
      job.waker = cx.waker;
      return PENDING;
    }
    this.finished = true;
    if (job.skipped) throw closedError(this.req.op, "file");
    const r = job.result;
    try {
      if (r > 0 && this.copyOut !== null) {
        if ((this.copyOut.buffer as ArrayBuffer).detached) throw new TypeError("The read buffer is detached (its ArrayBuffer was transferred)");
        this.copyOut.set(new Uint8Array(job.data!, 0, Math.min(r, this.copyOut.byteLength)));
      }
    } finally {
      this.client.giveBack(job);
    }
    if (r < 0) throw new SysError(-r, this.req.op === "fstat" ? "fstat" : this.req.op);
    if (this.as === AS_STAT) {
      const f = job.stat;
      return { size: f[0]!, mode: f[1]!, ino: f[2]!, blocks: f[3]!, mtimeMs: f[4]! } satisfies StatFields as T;
    }
    return (this.as === AS_VOID ? undefined : r) as T;
  }

  /** A queued job is abandoned (it never runs); a running one's result is dropped when it ends. */
  cancel(): void {
    const job = this.job;
    if (job !== null && !this.finished) {
      job.waker = null;
      if (job.done) this.client.dropResult(job);
      else if (!this.client.abandon(job)) job.orphaned = true;
      else this.client.giveBack(job);
    }
    this.finished = true;
  }
}

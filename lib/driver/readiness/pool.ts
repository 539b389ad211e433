/**
 * The blocking-call pool: a few Bun Workers (pool_worker.ts) run the blocking calls that
 * have no readiness (regular files, directory listings, readlink, realpath) and, on
 * dedicated Workers ("lanes"), the reads and writes of fds reel must not make
 * non-blocking (shared.ts). A runtime learns of completions through an eventfd bound to
 * its own driver's registry, so a finished job wakes its task like any I/O event. files.ts
 * builds the FileFd and PathOps interfaces on it; the io_uring driver uses it for the path
 * ops the ring has no opcode for.
 *
 * Per driver ({@link PoolClient}): an eventfd, bound while jobs are in flight (and closed
 * when none are, so idle programs hold no extra fd or registration); each job is driver
 * work until it is settled, which keeps blockOn's deadlock check quiet meanwhile. The
 * client's own waker is stored in the eventfd's readiness: when it fires, the client
 * drains the eventfd, clears readiness, then settles every finished job (clear before
 * scan, so a job finishing during the scan raises a new edge: no lost wake-up).
 *
 * A job's life, shared with pool_worker.ts through its `ctl` words: 0 queued → 3 running
 * (a worker claimed it) → 1 done → 4 released (the worker has written the eventfd and
 * touches nothing more). A job no worker has claimed can be abandoned here, 0 → 2: it
 * never runs. A running job can be *detached*, 3 → 5: the worker then neither writes the
 * eventfd nor reports, and closes the fds named in the job's ctl when its call returns
 * (then 5 → 6) —
 * how a shared fd whose read blocks forever (a terminal) is closed at once (shared.ts).
 * Otherwise a running call cannot be stopped: its result is dropped when it ends (an
 * opened fd is closed), and its file's number stays pinned until then (files.ts,
 * lib/driver/retire.ts).
 *
 * Order: jobs posted to one Worker run one after the other, in submission order. A file
 * sends all of its jobs to one Worker (its lane), which is how the pool keeps a file's
 * writes in issue order; path jobs go round-robin.
 *
 * Must never: block the runtime thread (except the bounded wait in close(), and the
 * microseconds between a worker's "done" and "released"), wake a task before its job's
 * result is stored, close the eventfd while a worker may still write it, or leave a job
 * counted as work after it was settled.
 */
import * as libc from "../../../ffi/libc.ts";
import * as ep from "../../../ffi/epoll.ts";
import { PENDING, FutureStateError, type Context, type Poll, type Waker } from "../../future.ts";
import { FILE_CHUNK, STAT_FIELD_COUNT, closedError, statFieldsFrom, type DirEntryFields, type FileFuture, type StatFields } from "../fd.ts";
import { READ_READY, type Registry, type ScheduledIo, type WorkCounter } from "../registry.ts";
import { READABLE } from "./poller.ts";
import { SysError, check } from "../../errors.ts";

/** Worker threads in the file pool (this machine class has 2 cores). */
export const POOL_WORKERS = 2;
/** How long Runtime.close() waits for blocking calls still running. */
const CLOSE_WAIT_MS = 10_000;
/** Largest variable-size result (a directory listing, a path) a job may return. */
const MAX_RESULT = 64 * 1024 * 1024;

// A job's `ctl` state word (see the module header; pool_worker.ts uses the same values).
const QUEUED = 0;
const DONE = 1;
const ABANDONED = 2;
const RUNNING = 3;
const RELEASED = 4;
const DETACHED = 5;
const DETACHED_ENDED = 6;

const workers: Worker[] = [];
let nextWorker = 0;
let started: Promise<void> | null = null;

function newWorker(ready: Promise<void>[]): Worker {
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
  return w;
}

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
  for (let i = 0; i < POOL_WORKERS; i++) workers.push(newWorker(ready));
  started = Promise.all(ready).then(() => undefined);
  return started;
}

/**
 * A Worker of its own (a lane) running the pool's job protocol: for calls that may block
 * for ever (a terminal read), which must not hold up file jobs. Lives for the process.
 *
 * @example
 * ```ts
 * const lane = dedicatedWorker();
 * client.submit({ op: "sread", fd, len: 4096 }, null, lane);
 * ```
 */
export function dedicatedWorker(): { worker: Worker; ready: Promise<void> } {
  const ready: Promise<void>[] = [];
  const worker = newWorker(ready);
  return { worker, ready: ready[0]! };
}

/** The ops a worker runs (pool_worker.ts implements each). */
export type JobOp =
  | "open" | "read" | "write" | "stat" | "lstat" | "fstat" | "fsync" | "ftruncate" | "truncate"
  | "mkdir" | "rename" | "unlink" | "rmdir" | "symlink" | "readlink" | "readdir" | "realpath"
  | "sread" | "swrite";

/** What a job asks a worker to do (pool_worker.ts's Job, minus the shared buffers). */
export interface JobRequest {
  op: JobOp;
  fd?: number;
  path?: string;
  /** rename's destination, symlink's link path. */
  path2?: string;
  flags?: number;
  mode?: number;
  len?: number;
  pos?: number;
  datasync?: boolean;
  /** write: the bytes (copied into shared memory when the job is submitted). */
  data?: Uint8Array;
}

/** Ops whose result is variable-size data the worker writes into a growable buffer. */
const VARIABLE = new Set<JobOp>(["readdir", "readlink", "realpath"]);

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
  /** Detached while running: the worker finishes it alone and reports nothing. */
  detached = false;
  /** Its future is gone: the result is dropped when it arrives (an opened fd is closed). */
  orphaned = false;
  /** Closing the client detaches this job instead of waiting for it (a call that may block for ever). */
  detachable = false;
  waker: Waker | null = null;
  readonly ctl = new SharedArrayBuffer(16 + 8 * STAT_FIELD_COUNT);
  readonly state = new Int32Array(this.ctl, 0, 4);
  readonly stat = new Float64Array(this.ctl, 16, STAT_FIELD_COUNT);
  data: SharedArrayBuffer | null = null;
  constructor(
    readonly op: JobOp,
    readonly owner: JobOwner | null,
  ) {}

  get result(): number {
    return Atomics.load(this.state, 1);
  }

  /** True while a worker is inside the blocking call. */
  get running(): boolean {
    return Atomics.load(this.state, 0) === RUNNING;
  }

  /** A detached job whose worker has returned from its call (and closed what it was handed). */
  get detachedEnded(): boolean {
    return Atomics.load(this.state, 0) === DETACHED_ENDED;
  }

  /** True once the worker stored the result (done or released). */
  get finished(): boolean {
    const s = Atomics.load(this.state, 0);
    return s === DONE || s === RELEASED;
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

  /** Jobs in flight (for tests). */
  get inFlight(): number {
    return this.jobs.size;
  }

  /**
   * Posts a job: to `lane` (a dedicated Worker, or the index of a pool Worker), else to the
   * next pool Worker.
   */
  submit(req: JobRequest, owner: JobOwner | null, lane: Worker | number = -1): Job {
    void startFsPool();
    if (this.efd < 0) this.bind();
    const job = new Job(req.op, owner);
    const len = req.op === "write" || req.op === "swrite" ? req.data!.byteLength : (req.len ?? 0);
    if (req.op === "read" || req.op === "write" || req.op === "sread" || req.op === "swrite") job.data = this.takeShared(len);
    else if (VARIABLE.has(req.op)) job.data = new SharedArrayBuffer(4096, { maxByteLength: MAX_RESULT });
    if (req.op === "write" || req.op === "swrite") new Uint8Array(job.data!, 0, len).set(req.data!);
    job.state[2] = -1;
    job.state[3] = -1;
    const msg = {
      op: req.op, fd: req.fd ?? -1, path: req.path ?? "", path2: req.path2 ?? "", flags: req.flags ?? 0, mode: req.mode ?? 0,
      len, pos: req.pos ?? -1, datasync: req.datasync ?? false, ctl: job.ctl, data: job.data, efd: this.efd,
    };
    this.jobs.add(job);
    this.work.addWork();
    owner?.jobStarted(job);
    const target = typeof lane === "number" ? workers[lane >= 0 ? lane % workers.length : nextWorker++ % workers.length]! : lane;
    target.postMessage(msg);
    return job;
  }

  /**
   * Makes the eventfd and registers it, its readiness waiting on this client's waker. On
   * io_uring the registration is a multishot poll op, which resolves the number when it
   * is issued: closing the number after deregister (which cancels or neuters it) is safe.
   */
  private bind(): void {
    this.efd = check(ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC), "eventfd");
    try {
      this.io = this.registry.register(this.efd, READABLE);
    } catch (err) {
      libc.close(this.efd);
      this.efd = -1;
      throw err;
    }
    this.registry.pollReady(this.io, READ_READY, this.cx);
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

  /**
   * Gives up `job` whatever its state. A queued one is abandoned. A running one is
   * detached — its worker closes `closeFds` (at most two) when the call returns and
   * reports nothing — and settled now. Returns true only in that case, when the worker took
   * `closeFds` over; otherwise (abandoned, finished, settled) the caller still owns them.
   */
  detach(job: Job, closeFds: readonly number[]): boolean {
    if (job.done || this.abandon(job)) return false;
    Atomics.store(job.state, 2, closeFds[0] ?? -1);
    Atomics.store(job.state, 3, closeFds[1] ?? -1);
    if (Atomics.compareExchange(job.state, 0, RUNNING, DETACHED) !== RUNNING) {
      Atomics.store(job.state, 2, -1);
      Atomics.store(job.state, 3, -1);
      return false; // it finished meanwhile: settled by the eventfd as usual
    }
    job.detached = true;
    job.orphaned = true;
    this.settle(job);
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
    if (sab !== null && !sab.growable && sab.byteLength === FILE_CHUNK && this.freeShared.length < 4) this.freeShared.push(sab);
  }

  /** Settles a job: no longer work, its owner told, its result dropped if orphaned, its waker woken. */
  private settle(job: Job): void {
    this.jobs.delete(job);
    this.work.doneWork();
    job.done = true;
    if (!job.skipped && !job.detached && Atomics.load(job.state, 0) === DONE) this.unreleased.push(job);
    job.owner?.jobDone(job);
    if (job.orphaned) this.dropResult(job);
    const w = job.waker;
    job.waker = null;
    w?.wake();
  }

  /** A settled job nobody will read: close what it opened, recycle its memory. */
  dropResult(job: Job): void {
    if (job.op === "open" && !job.skipped && !job.detached && job.result >= 0) libc.close(job.result);
    if (!job.detached) this.giveBack(job);
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
      for (const job of this.jobs) if (job.finished) this.settle(job);
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
   * The driver is closing: queued jobs are abandoned; detachable running ones are
   * detached; other running ones are waited for (at most CLOSE_WAIT_MS in all) and
   * settled; then the eventfd is released. A call still running after that keeps the
   * eventfd open (reported): its worker will write it.
   */
  close(): void {
    for (const job of [...this.jobs]) if (!this.abandon(job) && job.detachable) this.detach(job, []);
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
export const AS_STRING = 3;
export const AS_DIR = 4;
type As = typeof AS_NUMBER | typeof AS_STAT | typeof AS_VOID | typeof AS_STRING | typeof AS_DIR;

const decoder = new TextDecoder();

/** A variable-size result (`len` bytes of `sab`) as a string. */
function textOf(sab: SharedArrayBuffer, len: number): string {
  return decoder.decode(new Uint8Array(sab, 0, len).slice());
}

/** readdir's encoding (pool_worker.ts): per entry, one type byte, the name, a NUL. */
function dirOf(sab: SharedArrayBuffer, len: number): DirEntryFields[] {
  const bytes = new Uint8Array(sab, 0, len).slice();
  const out: DirEntryFields[] = [];
  for (let i = 0; i < len; ) {
    const end = bytes.indexOf(0, i + 1);
    out.push({ type: (bytes[i]! & 0xf) << 12, name: decoder.decode(bytes.subarray(i + 1, end)) });
    i = end + 1;
  }
  return out;
}

/** The syscall a pool op names in its errors. */
function syscallOf(op: JobOp): string {
  return op === "sread" ? "read" : op === "swrite" ? "write" : op;
}

/**
 * A pool job as a future: the call's result (≥ 0), stat fields, a string, directory
 * entries, or nothing; SysError for a failed call (naming `detail`, the path, if given);
 * EBADF when its file was closed before the job ran.
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
    private readonly owner: (JobOwner & { readonly fd: number; readonly lane?: number }) | null,
    /** read: where the bytes go, copied from shared memory in the poll that completes. */
    private readonly copyOut: Uint8Array | null,
    private readonly as: As,
  ) {}

  poll(cx: Context): Poll<T> {
    if (this.finished) throw new FutureStateError(`fs ${this.req.op} future polled after completion`);
    if (this.job === null) {
      if (this.owner !== null && this.owner.fd < 0) {
        this.finished = true;
        throw closedError(this.req.op, "file");
      }
      this.job = this.client.submit(this.req, this.owner, this.owner?.lane ?? -1);
    }
    const job = this.job;
    if (!job.done) {
      job.waker = cx.waker;
      return PENDING;
    }
    this.finished = true;
    // Its file was closed while the job was pending: the op fails with EBADF, as on
    // io_uring. (A call that a worker had claimed but not yet issued when the number was
    // pinned ran on the placeholder: its result describes /dev/null, never this file.)
    if (job.skipped || (this.owner !== null && this.owner.fd < 0)) {
      this.client.giveBack(job);
      throw closedError(this.req.op, "file");
    }
    const r = job.result;
    let value: unknown = r;
    try {
      if (r > 0 && this.copyOut !== null) {
        if ((this.copyOut.buffer as ArrayBuffer).detached) throw new TypeError("The read buffer is detached (its ArrayBuffer was transferred)");
        this.copyOut.set(new Uint8Array(job.data!, 0, Math.min(r, this.copyOut.byteLength)));
      }
      if (r >= 0 && this.as === AS_STRING) value = textOf(job.data!, r);
      else if (r >= 0 && this.as === AS_DIR) value = dirOf(job.data!, r);
    } finally {
      this.client.giveBack(job);
    }
    if (r < 0) throw new SysError(-r, syscallOf(this.req.op));
    if (this.as === AS_STAT) return statFieldsFrom(job.stat) satisfies StatFields as T;
    return (this.as === AS_VOID ? undefined : value) as T;
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

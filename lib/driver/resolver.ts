/**
 * The resolver pool: a few Bun Workers of its own (resolver_worker.ts) run getaddrinfo; a
 * runtime learns of finished lookups through an eventfd registered with its own driver
 * (through the per-fd interface, `driver.socket(efd).pollReady`), so a finished lookup
 * wakes its task like any I/O event. The file pool (readiness/pool.ts) is separate on
 * purpose: a resolver stuck on a dead DNS server must not starve file I/O. net/lookup.ts
 * reaches it as `driver.resolver`, so a backend that stands in for the system (the
 * simulator) can answer lookups itself.
 *
 * Sharing: per driver ({@link ResolverClient}), concurrent lookups of one name and family
 * share one job; its result goes to every waiter. Jobs are posted to every Worker and the
 * first idle one claims it (resolver_worker.ts), so a Worker blocked on a slow name never
 * holds another lookup behind it while a Worker is free.
 *
 * A job's life, shared with resolver_worker.ts through its `ctl` word: 0 queued → 3 running → 1
 * done → 4 released; the runtime may abandon a queued job (0 → 2: never runs) or detach a
 * running one (3 → 5: the Worker finishes getaddrinfo and writes nothing). That is how a
 * cancelled lookup leaks nothing: when its last waiter is gone the job is abandoned or
 * detached at once, and the eventfd needs to outlive it only if the Worker already said
 * "done" (then it waits the microseconds until "released").
 *
 * The wake-up fd is an eventfd (Linux; a pipe elsewhere, whose write end the Workers
 * write). The eventfd exists while jobs are in flight: made by the first submit, closed when the
 * last job is settled — from a future's poll or cancel, never from inside the driver's
 * dispatch (where io_uring could only pin the number) — or when the driver closes. Its
 * registration is driver work meanwhile, which keeps blockOn's deadlock check quiet
 * while a lookup runs. Results are data (addresses, or an error code): net/lookup.ts
 * turns them into LookupAddress lists and LookupError.
 *
 * Must never: block the runtime thread (except the microseconds between a Worker's "done"
 * and "released"), close the eventfd while a Worker may write it, wake a task before its
 * job's result is stored, or leave a job in flight with no waiter.
 */
import * as libc from "../../ffi/libc.ts";
import * as ep from "../../ffi/epoll.ts";
import { SYS } from "../../ffi/constants.ts";
import { ADDR_SLOT, GAI_BASE, gaiErrorName } from "../../ffi/netdb.ts";
import { decodeSockaddr } from "../../ffi/sockaddr.ts";
import { errnoName } from "../../ffi/errno.ts";
import { PENDING, type Context, type Waker } from "../future.ts";
import { DIR_READ, type IoFd } from "./fd.ts";
import type { Driver } from "./driver.ts";
import { check } from "../errors.ts";

/** Resolver Workers (getaddrinfo may block for seconds on a dead DNS server). */
export const RESOLVER_WORKERS = 4;
/** The most addresses one lookup reports. */
export const MAX_ADDRS = 32;

// A job's `ctl` state word (resolver_worker.ts uses the same values).
const QUEUED = 0;
const DONE = 1;
const ABANDONED = 2;
const RUNNING = 3;
const RELEASED = 4;
const DETACHED = 5;
/** The job states by name (for tests and debugging). */
export const JOB_STATES = { QUEUED, DONE, ABANDONED, RUNNING, RELEASED, DETACHED } as const;

/**
 * One address a lookup found.
 *
 * @example
 * ```ts
 * const [first] = yield* lookup("localhost"); // { address: "127.0.0.1", family: "IPv4" }
 * ```
 */
export interface LookupAddress {
  /** The IP address as text: "127.0.0.1", "::1" (a link-local IPv6 one with its interface index: "fe80::1%2"). */
  readonly address: string;
  /** "IPv4" or "IPv6" (as SocketAddr.family). */
  readonly family: "IPv4" | "IPv6";
}

/** The public code for a getaddrinfo failure (Node's names: ENOTFOUND for "no such name"). */
export function codeOf(r: number): string {
  if (r > -GAI_BASE) return errnoName(-r);
  const name = gaiErrorName(r);
  return name === "EAI_NONAME" || name === "EAI_NODATA" || name === "EAI_ADDRFAMILY" ? "ENOTFOUND" : name;
}

const workers: Worker[] = [];
let holds = 0;
let started: Promise<void> | null = null;

/**
 * Starts the resolver's Workers (idempotent); the Promise settles once each has loaded.
 * The first lookup starts them without waiting; tests await it so a Worker's start-up is
 * not counted against a test's fd check.
 *
 * @example
 * ```ts
 * await startResolver();
 * ```
 */
export function startResolver(): Promise<void> {
  if (started !== null) return started;
  const ready: Promise<void>[] = [];
  for (let i = 0; i < RESOLVER_WORKERS; i++) {
    const w = new Worker(new URL("./resolver_worker.ts", import.meta.url).href);
    ready.push(
      new Promise<void>((resolve) => {
        w.onmessage = () => {
          w.onmessage = null;
          resolve();
        };
      }),
    );
    (w as unknown as { unref(): void }).unref(); // a resolver Worker must not keep the process alive
    workers.push(w);
  }
  started = Promise.all(ready).then(() => undefined);
  return started;
}

/** Posts `msg` to every Worker: the first idle one claims it (worker.ts). */
function post(msg: object): void {
  void startResolver();
  for (const w of workers) w.postMessage(msg);
}

/** One getaddrinfo job, shared by the lookups of one name and family. */
export class Job {
  readonly ctl = new SharedArrayBuffer(12);
  readonly state = new Int32Array(this.ctl, 0, 3);
  readonly out = new SharedArrayBuffer(MAX_ADDRS * ADDR_SLOT);
  /** Its result is final (or it was given up); `result` holds it: the addresses, or an error code. */
  settled = false;
  result: LookupAddress[] | string | null = null;
  /** Lookups waiting on it, and their wakers. */
  waiters = 0;
  readonly wakers = new Set<Waker>();
  constructor(
    readonly key: string,
    readonly hostname: string,
  ) {}
}

/** Decodes a finished job's addresses (deduplicated, in getaddrinfo's order) or its error code. */
function decode(job: Job): LookupAddress[] | string {
  const r = Atomics.load(job.state, 1);
  if (r < 0) return codeOf(r);
  const bytes = new Uint8Array(job.out);
  const seen = new Set<string>();
  const out: LookupAddress[] = [];
  for (let i = 0; i < r; i++) {
    const at = i * ADDR_SLOT;
    const a = decodeSockaddr(bytes.subarray(at, at + ADDR_SLOT), bytes[at + ADDR_SLOT - 1]!);
    if (a === null || a.family === "unix") continue;
    // A link-local IPv6 address is only usable with its interface: keep it as "%index".
    const text = a.scopeId !== 0 ? `${a.address}%${a.scopeId}` : a.address;
    if (seen.has(text)) continue;
    seen.add(text);
    out.push({ address: text, family: a.family });
  }
  return out.length > 0 ? out : "ENOTFOUND";
}

/**
 * A runtime's side of the pool: its eventfd, registration and jobs in flight.
 *
 * @example
 * ```ts
 * const client = currentDriver().resolver;
 * const job = client.submit("localhost", 0);
 * // … job.wakers fire when job.settled …
 * client.leave(job, waker);
 * ```
 */
export class ResolverClient {
  /** The fd the runtime waits on (an eventfd; a pipe's read end where there is no eventfd). */
  private efd = -1;
  /** The fd Workers write: the eventfd itself, or the pipe's write end. */
  private wfd = -1;
  private readonly pair = new Int32Array(new ArrayBuffer(8));
  private io: IoFd | null = null;
  private readonly jobs = new Map<string, Job>();
  /** Settled jobs whose Worker may still be writing the eventfd (state DONE, not RELEASED). */
  private readonly unreleased: Job[] = [];
  private readonly drainBuf = new Uint8Array(new ArrayBuffer(8));
  private readonly cx: Context = { waker: { wake: () => this.onReady() } };

  constructor(private readonly driver: Driver) {}

  /** Jobs in flight (for tests). */
  get inFlight(): number {
    return this.jobs.size;
  }

  /** The job for `hostname` / `family` (an AF_* or 0), shared with lookups already waiting on it. */
  submit(hostname: string, family: number): Job {
    const key = `${family}:${hostname.toLowerCase()}`;
    const existing = this.jobs.get(key);
    if (existing !== undefined) {
      existing.waiters++;
      return existing;
    }
    this.open();
    const job = new Job(key, hostname);
    job.waiters = 1;
    this.jobs.set(key, job);
    post({ kind: "lookup", name: hostname, family, max: MAX_ADDRS, ctl: job.ctl, out: job.out, efd: this.wfd });
    return job;
  }

  /** @internal Tests: a job that blocks one Worker until `release()`. */
  hold(): { job: Job; release(): void } {
    this.open();
    const job = new Job(`hold:${holds++}`, "(hold)");
    job.waiters = 1;
    this.jobs.set(job.key, job);
    post({ kind: "hold", name: "", family: 0, max: 0, ctl: job.ctl, out: job.out, efd: this.wfd });
    return {
      job,
      release: () => {
        Atomics.store(job.state, 2, 1);
        Atomics.notify(job.state, 2);
      },
    };
  }

  private open(): void {
    if (this.io !== null) return;
    if (ep.HAVE_EPOLL) {
      this.efd = this.wfd = check(ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC), "eventfd", "resolver wake-up");
    } else {
      check(libc.pipe2(this.pair, SYS.O_NONBLOCK | SYS.O_CLOEXEC), "pipe2", "resolver wake-up");
      this.efd = this.pair[0]!;
      this.wfd = this.pair[1]!;
    }
    try {
      this.io = this.driver.socket(this.efd);
      if (this.io.pollReady(this.cx, DIR_READ) !== PENDING) this.onReady();
    } catch (err) {
      if (this.io !== null) this.io.close();
      else libc.close(this.efd);
      this.closeWriteEnd();
      this.io = null;
      this.efd = -1;
      throw err;
    }
  }

  private closeWriteEnd(): void {
    if (this.wfd >= 0 && this.wfd !== this.efd) libc.close(this.wfd);
    this.wfd = -1;
  }

  /**
   * The eventfd fired (called from the driver's dispatch: it only drains, settles and
   * wakes). Readiness is observed, then cleared, then the jobs are scanned: a job that
   * finishes during the scan raises a new edge, so no wake-up is lost.
   */
  private onReady(): void {
    for (let round = 0; round < 1000; round++) {
      const io = this.io;
      if (io === null || io.fd < 0) return;
      let r: number | typeof PENDING;
      try {
        r = io.pollReady(this.cx, DIR_READ);
      } catch {
        return; // its runtime is closing: the lookups' own polls see that
      }
      if (r === PENDING) return;
      libc.read(this.efd, this.drainBuf);
      io.clearReady(DIR_READ);
      for (const job of this.jobs.values()) {
        const s = Atomics.load(job.state, 0);
        if (s === DONE || s === RELEASED) this.settle(job, s);
      }
    }
  }

  /** A finished job: its result stored, its waiters woken; it leaves the in-flight table. */
  private settle(job: Job, s: number): void {
    this.jobs.delete(job.key);
    job.settled = true;
    job.result = decode(job);
    if (s === DONE) this.unreleased.push(job);
    for (const w of job.wakers) w.wake();
    job.wakers.clear();
  }

  /**
   * A lookup is done with `job` (it took the result, or it was cancelled). The last
   * waiter of an unfinished job gives it up: abandoned if queued, detached if running.
   */
  leave(job: Job, waker: Waker | null): void {
    if (waker !== null) job.wakers.delete(waker);
    if (--job.waiters > 0) return;
    if (!job.settled) this.giveUp(job);
    this.idleCheck();
  }

  private giveUp(job: Job): void {
    job.settled = true;
    this.jobs.delete(job.key);
    if (Atomics.compareExchange(job.state, 0, QUEUED, ABANDONED) === QUEUED) return;
    if (Atomics.compareExchange(job.state, 0, RUNNING, DETACHED) === RUNNING) return;
    // Done already: its Worker may still be writing the eventfd.
    if (Atomics.load(job.state, 0) === DONE) this.unreleased.push(job);
  }

  /**
   * The driver is closing: every job still in flight is given up (abandoned or detached)
   * and its waiters woken (their lookups then fail: the runtime is gone), then the eventfd
   * is released once no Worker can still write it.
   */
  close(): void {
    for (const job of [...this.jobs.values()]) {
      this.giveUp(job);
      job.result = "ECANCELED";
      for (const w of job.wakers) w.wake();
      job.wakers.clear();
    }
    this.idleCheck();
  }

  /** No job in flight: release the eventfd once no Worker can still write it. */
  private idleCheck(): void {
    if (this.jobs.size > 0 || this.io === null) return;
    for (const job of this.unreleased) {
      // The Worker is between its eventfd write and "released": microseconds (see the header).
      while (Atomics.load(job.state, 0) === DONE) Atomics.wait(job.state, 0, DONE, 100);
    }
    this.unreleased.length = 0;
    const io = this.io;
    this.io = null;
    this.closeWriteEnd();
    this.efd = -1;
    io.close();
  }
}


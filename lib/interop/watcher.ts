/**
 * Hosted mode's watcher: how a reel runtime that has returned to Bun's event loop learns
 * that its poll fd has become readable.
 *
 * One Worker per process (watcher-worker.ts) blocks in epoll_wait on an *outer* epoll. A
 * runtime that goes idle ("parks") arms its poller's fd in that epoll (EPOLLIN|EPOLLONESHOT);
 * when the fd becomes readable (an I/O event, or the driver's notify) the kernel reports it
 * once and disarms it, the worker bumps a counter in a SharedArrayBuffer, and the main
 * thread, waiting with `Atomics.waitAsync`, tells every parked runtime to run a slice.
 * One syscall per park (the re-arm), none per wake-up. Measured here: ~15–30 µs from
 * readiness to the main thread. (`JSCallback({threadsafe: true})` is not used: it crashed
 * 7 runs in 10 in this Bun.)
 *
 * Invariants: a parked runtime's fd is armed; readiness present before `park` is reported
 * at once (epoll checks it on arm). A runtime woken early (a timer, a Promise) stays armed:
 * at worst one spurious wake-up follows, which finds nobody parked or an idle slice. One
 * `waitAsync` is outstanding while anything is parked. The worker is unref'd unless a
 * parked runtime has I/O registrations (then, like a listening socket in Bun, it keeps the
 * process alive).
 *
 * Must never: read reel's events (the driver does, on the main thread), or spin (one-shot
 * arming: a reported fd is silent until it is re-armed by the next park).
 */
import * as ep from "../../ffi/epoll.ts";
import * as libc from "../../ffi/libc.ts";
import { EBADF, ENOENT } from "../../ffi/errno.ts";
import { check } from "../errors.ts";

/** Indices into the control array; watcher-worker.ts uses the same. */
const FIRED = 0;
const STOP = 1;
const ONESHOT_IN = ep.EPOLLIN | ep.EPOLLONESHOT;

/** A runtime waiting for its poll fd (hosted.ts's loop implements it). */
export interface Parked {
  /** The fd to watch: the poller's fd (epoll fd, io_uring fd). */
  readonly fd: number;
  /** Readiness came: leave the watcher (via `unpark`) and run or schedule a tick. */
  ready(): void;
  /** The watcher broke: reject whatever waits on this runtime. */
  fail(err: Error): void;
  /** True when the process must stay alive while this runtime is parked. */
  keepAlive(): boolean;
}

/** True when this platform has the epoll watcher; elsewhere hosted.ts polls on a timer. */
export const HAVE_WATCHER = ep.HAVE_EPOLL;

/** Bun's Worker, ref/unref spelled out: under a DOM lib, `Worker` is the DOM's, without them. */
type BunWorker = Worker & { ref(): void; unref(): void };

/** The process-wide watcher: the worker, the outer epoll and the parked set. */
class Watcher {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(16));
  private readonly outer: number;
  private readonly stopFd: number;
  private readonly worker: BunWorker;
  private readonly parked = new Set<Parked>();
  /** Runtimes whose fd is in the outer epoll (armed or disarmed by a report). */
  private readonly known = new Set<Parked>();
  /** True while an Atomics.waitAsync on FIRED is outstanding. */
  private waiting = false;
  /** The FIRED count the main thread has handled. */
  private seen = 0;
  private refd = false;
  readonly ready: Promise<void>;
  private stopped: Promise<void> | null = null;
  private readonly onFire = () => this.fired();

  constructor() {
    this.outer = check(ep.epollCreate(ep.EPOLL_CLOEXEC), "epoll_create1", "hosted watcher");
    const efd = ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC);
    if (efd < 0) {
      libc.close(this.outer);
      check(efd, "eventfd", "hosted watcher");
    }
    this.stopFd = efd;
    check(ep.epollCtl(this.outer, ep.EPOLL_CTL_ADD, efd, ep.EPOLLIN, 0xffff_ffff), "epoll_ctl", "hosted watcher stop fd");
    this.worker = new Worker(new URL("./watcher-worker.ts", import.meta.url).href) as BunWorker;
    this.worker.unref();
    let started!: () => void;
    this.ready = new Promise((resolve) => (started = resolve));
    this.worker.addEventListener("message", (e: MessageEvent) => {
      const msg = e.data as { error?: string; stopped?: boolean; started?: boolean };
      if (msg.started === true) started();
      if (msg.error !== undefined) this.broken(new Error(msg.error));
      // Out of epoll_wait for good: now terminating cannot catch it inside a native call.
      if (msg.stopped === true) this.worker.terminate();
    });
    this.worker.addEventListener("error", (e: ErrorEvent) => this.broken(new Error(`The hosted watcher thread failed: ${e.message}`)));
    this.worker.postMessage({ ctl: this.ctl.buffer, outer: this.outer });
  }

  /** Watches `p.fd`; `p.ready()` runs once it is readable (at once if it already is). */
  park(p: Parked): void {
    if (this.stopped !== null) throw new Error("The hosted watcher was stopped");
    const op = this.known.has(p) ? ep.EPOLL_CTL_MOD : ep.EPOLL_CTL_ADD;
    check(ep.epollCtl(this.outer, op, p.fd, ONESHOT_IN, 0), "epoll_ctl", `hosted watcher arm fd ${p.fd}`);
    this.known.add(p);
    this.parked.add(p);
    this.arm();
    this.updateRef();
  }

  /** `p` is no longer parked (woken, early or not). Its fd stays in the epoll. Idempotent. */
  unpark(p: Parked): void {
    if (this.parked.delete(p)) this.updateRef();
  }

  /** Removes `p.fd` from the outer epoll: the runtime stops being hosted. Idempotent. */
  forget(p: Parked): void {
    this.unpark(p);
    if (!this.known.delete(p)) return;
    const r = ep.epollCtl(this.outer, ep.EPOLL_CTL_DEL, p.fd, 0, 0);
    // ENOENT/EBADF: the fd was closed, which removed it from the epoll already.
    if (r < 0 && r !== -ENOENT && r !== -EBADF) check(r, "epoll_ctl", `hosted watcher del fd ${p.fd}`);
  }

  /** Ensures one waitAsync on FIRED is outstanding. */
  private arm(): void {
    if (this.waiting) return;
    this.waiting = true;
    const r = Atomics.waitAsync(this.ctl, FIRED, this.seen);
    if (r.async) r.value.then(this.onFire);
    else queueMicrotask(this.onFire);
  }

  /** The worker reported readiness: every parked runtime runs a slice. */
  private fired(): void {
    this.waiting = false;
    this.seen = Atomics.load(this.ctl, FIRED);
    // Which fd fired is not reported: a slice for a runtime that had nothing is harmless.
    for (const p of [...this.parked]) p.ready();
    if (this.parked.size > 0) this.arm();
  }

  /** Refs the worker while some parked runtime must keep the process alive. */
  private updateRef(): void {
    let want = false;
    for (const p of this.parked) if (p.keepAlive()) want = true;
    if (want === this.refd) return;
    this.refd = want;
    if (want) this.worker.ref();
    else this.worker.unref();
  }

  private broken(err: Error): void {
    if (instance === this) instance = null; // the next park starts a fresh watcher
    for (const p of [...this.known]) {
      this.forget(p);
      p.fail(err);
    }
  }

  /** Ends the worker and closes the outer epoll; parked runtimes are failed. */
  stop(): Promise<void> {
    if (this.stopped !== null) return this.stopped;
    this.broken(new Error("The hosted watcher was stopped"));
    this.stopped = new Promise<void>((resolve) => {
      this.worker.addEventListener("close", () => resolve(), { once: true });
    }).then(() => {
      libc.close(this.stopFd);
      libc.close(this.outer);
    });
    Atomics.store(this.ctl, STOP, 1);
    libc.write(this.stopFd, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
    return this.stopped;
  }
}

let instance: Watcher | null = null;

/**
 * @internal The process-wide watcher, started on first use (Linux: epoll).
 *
 * @example
 * ```ts
 * watcher().park(hostLoop); // hostLoop.ready() runs when its fd is readable
 * ```
 */
export function watcher(): Watcher {
  if (instance === null) instance = new Watcher();
  return instance;
}

/**
 * @internal The watcher if it was started, else null (detaching needs no new worker).
 *
 * @example
 * ```ts
 * existingWatcher()?.forget(hostLoop);
 * ```
 */
export function existingWatcher(): Watcher | null {
  return instance;
}

/**
 * Starts the watcher if needed and resolves once its worker runs. Tests call it before
 * counting fds: the worker and its epoll live for the whole process.
 *
 * @example
 * ```ts
 * await watcherReady();
 * const baseline = fdCount();
 * ```
 */
export function watcherReady(): Promise<void> {
  return watcher().ready;
}

/**
 * Stops the watcher thread and closes its fds; any runtime still parked is failed. The
 * next hosted run starts a new one.
 *
 * @example
 * ```ts
 * await stopWatcher(); // before a fd-leak check at exit
 * ```
 */
export function stopWatcher(): Promise<void> {
  const w = instance;
  instance = null;
  return w === null ? Promise.resolve() : w.stop();
}

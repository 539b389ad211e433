/**
 * The driver contract: what the executor turns and every I/O object talks to. A driver
 * owns the timer wheel and reads the clock once per turn; a backend (readiness/driver.ts
 * over epoll, poll or kqueue; uring/driver.ts over io_uring) adds the kernel interface and
 * hands out the per-fd interface (fd.ts): kernel → driver → waker.wake().
 *
 * One turn waits for events (at most until the next timer; not at all when asked for a
 * zero wait), records them, wakes the tasks that wait on them, then fires due timers.
 *
 * Time: every driver owns a {@link Clock} (time/clock.ts), the active one while its runtime
 * runs (enter/leave). A *frozen* clock — paused by time control, or the simulator's virtual
 * one — does not move by itself: a turn asked to wait (the executor is idle) first collects
 * what is ready without blocking, and if nothing was, moves the clock to the next timed
 * event ({@link Driver.nextTimedEvent}: the next timer, or the simulator's next network
 * event) instead of sleeping — tokio's auto-advance. With no timed event it waits for I/O
 * as usual (the simulator has none to wait for).
 *
 * Invariants:
 * - `pendingWork` counts what outside the run queue may still wake a task: registrations,
 *   ops in the kernel, jobs on a worker thread. Only the driver and its backend modules
 *   change it, through addWork()/doneWork(). With no pending work, no timer and no
 *   runnable task, nothing can ever wake a task (the executor's deadlock check).
 * - Wakers are only called (they enqueue), never polled from here.
 *
 * Must never: poll a future, block when asked for a zero timeout, drop an event silently,
 * or import the executor.
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 * Must never import: lib/driver/readiness/**, lib/driver/uring/**
 */
import { Clock, setActiveClock } from "../time/clock.ts";
import { TimerWheel } from "../time/wheel.ts";
import type { FileFd, FileFuture, IoFd, PathOps, StatFields } from "./fd.ts";
import { realSockets, type SocketApi } from "./sockets.ts";
import { ResolverClient } from "./resolver.ts";

/**
 * What a driver counts, for `runtime.metrics()`: plain counters, bumped on the paths that
 * already run (a turn, an event, an io_uring enter), never read on them.
 */
export class DriverStats {
  /** Driver turns (one wait for events each). */
  turns = 0;
  /** I/O events delivered (readiness events, or CQEs on io_uring). */
  events = 0;
  /** io_uring: SQEs handed to the kernel. */
  submitted = 0;
  /** io_uring: io_uring_enter calls made by turns. */
  enters = 0;
}

/**
 * The base of every backend's driver.
 *
 * @example
 * ```ts
 * const d = createDriver("epoll");
 * const io = d.socket(fd);   // the per-fd interface
 * d.turn(10);                // waits ≤ 10 ms, wakes whoever waits on io
 * io.close();
 * d.close();
 * ```
 */
export abstract class Driver {
  /** The backend's name: "epoll", "poll", "kqueue", "uring". */
  abstract readonly name: string;
  readonly wheel: TimerWheel;
  /** This driver's clock: what now() reads while its runtime runs (see the module header). */
  readonly clock: Clock;
  /** Counters for `runtime.metrics()` (see {@link DriverStats}). */
  readonly stats = new DriverStats();
  private work = 0;
  private closedFlag = false;
  private closers: (() => void)[] | null = null;
  private resolverClient: ResolverClient | null = null;

  /** @param clock the driver's clock: real time by default; the simulator passes a virtual one. */
  constructor(clock: Clock = new Clock()) {
    this.clock = clock;
    // The wheel starts at the clock's time, so deadlines made before the driver existed line up.
    this.wheel = new TimerWheel(Math.floor(clock.now()));
  }

  /** Its runtime starts running on this thread (current.ts): its clock becomes the active one. */
  enter(): void {
    setActiveClock(this.clock);
  }

  /** Its runtime stops running on this thread (current.ts). */
  leave(): void {
    setActiveClock(null);
  }

  /**
   * The non-I/O socket calls (create, bind, listen, options, names): the kernel's, unless
   * the backend stands in for it (the simulator). net/ asks the current driver for them.
   */
  get sockets(): SocketApi {
    return realSockets;
  }

  /**
   * Name lookups (getaddrinfo on the resolver pool, woken through this driver): the
   * system's, unless the backend stands in for it (the simulator). Made on first use.
   */
  get resolver(): ResolverClient {
    return this.resolverClient ?? (this.resolverClient = new ResolverClient(this));
  }

  /** Binds a pollable fd (a socket, a pipe) to this driver: the per-fd interface. `flags`: FD_DATAGRAM (fd.ts). */
  abstract socket(fd: number, flags?: number): IoFd;
  /** Binds a regular file's fd to this driver. */
  abstract file(fd: number): FileFd;
  /** Opens `path` (flags are O_* bits, O_CLOEXEC included): resolves to the fd. */
  abstract openFile(path: string, flags: number, mode: number): FileFuture<number>;
  /** stat of a path. */
  abstract statPath(path: string): FileFuture<StatFields>;
  /** The path operations (mkdir, rename, unlink, readDir, …): see {@link PathOps}. */
  abstract readonly paths: PathOps;
  /**
   * Binds an fd this process shares with others (an inherited stdin/stdout/stderr: a
   * terminal, a pipe, a file) *without* making it non-blocking — flipping O_NONBLOCK on a
   * shared open file would change it for the parent shell too. The backend reads and
   * writes it with what works on a blocking fd (io_uring ops; a dedicated Worker on the
   * readiness backends). The IoFd owns `fd` (pass a dup, not 0/1/2 themselves).
   */
  abstract inherited(fd: number): IoFd;
  /**
   * An fd that becomes readable when this driver has events to deliver, or -1 when the
   * backend has none. Hosted mode watches it while the runtime is idle.
   */
  abstract readonly watchFd: number;
  /** Waits for and delivers events; returns how many (see the module header). */
  protected abstract poll(timeoutMs: number): number;
  /** Releases the backend (after in-flight work was settled). */
  protected abstract shutdown(): void;
  /** Registrations currently live (for metrics and tests). */
  abstract get registrations(): number;

  /** Something that may wake a task later has started (see the module header). */
  addWork(): void {
    this.work++;
  }

  /** …and has ended. */
  doneWork(): void {
    this.work--;
  }

  /** Registrations, ops and jobs that may still wake a task. */
  get pendingWork(): number {
    return this.work;
  }

  /** Ops in a submission ring that a task waits for; null where the backend has no ring. */
  get ringInflight(): number | null {
    return null;
  }

  /**
   * One turn: wait for events for at most `maxWaitMs` (-1 = until something happens,
   * 0 = never block), capped by the next timer; wake their waiters; fire due timers.
   * Returns the number of I/O events delivered.
   */
  turn(maxWaitMs: number): number {
    const clock = this.clock;
    const n = clock.frozen ? this.turnFrozen(maxWaitMs) : this.poll(this.waitTimeout(maxWaitMs));
    this.stats.turns++;
    this.stats.events += n;
    if (this.wheel.size > 0) this.wheel.advance(Math.floor(clock.now()));
    return n;
  }

  /**
   * The executor ran a batch of polls and tasks are still ready: it turns the driver next
   * without waiting. Real time passed meanwhile; the simulator charges virtual CPU time here
   * (SimOptions.busyTurnMs), so its timers still fire under tasks that never go idle. A
   * paused clock (time control) does not move: as tokio's paused time, only idleness moves it.
   */
  busy(): void {}

  /**
   * A turn on a frozen clock: what is ready now; then, if nothing was and the caller would
   * wait, the clock jumps to the next timed event (at most `maxWaitMs` ahead) and what is
   * ready then is collected. With no timed event it waits for I/O (`maxWaitMs`).
   */
  private turnFrozen(maxWaitMs: number): number {
    const n = this.poll(0);
    if (n > 0 || maxWaitMs === 0) return n;
    const clock = this.clock;
    const t = clock.now();
    let next = this.nextTimedEvent();
    if (next < 0) return this.poll(maxWaitMs);
    if (maxWaitMs > 0 && next > t + maxWaitMs) next = t + maxWaitMs;
    if (next > t) this.clockJumped(t, next);
    return this.poll(0);
  }

  /**
   * The time of the next event that comes with time alone: the next timer (a time at which
   * the wheel fires or cascades something), or -1. The simulator adds its network's.
   */
  nextTimedEvent(): number {
    return this.wheel.size > 0 ? this.wheel.nextDeadline() : -1;
  }

  /** A frozen clock is moved from `from` to `to` because everything was idle (the simulator traces it). */
  protected clockJumped(_from: number, to: number): void {
    this.clock.advanceTo(to);
  }

  /**
   * Called before starting something that needs the real operating system — a child
   * process, a signal handler, a pipe, a thread of the blocking pool — named by `what`
   * ("Child processes are"). A backend that stands in for the kernel (the simulator)
   * throws RuntimeError ESIM naming it; the others do nothing.
   */
  requireOs(_what: string): void {}

  /**
   * For the executor's deadlock error: what this driver can say about why nothing can wake
   * a task (the simulator names its seed and virtual time); empty by default.
   */
  deadlockDetail(): string {
    return "";
  }

  /** The wait timeout: `maxWaitMs` capped by the next timer deadline. */
  protected waitTimeout(maxWaitMs: number): number {
    if (maxWaitMs === 0 || this.wheel.size === 0) return maxWaitMs;
    const next = this.wheel.nextDeadline();
    if (next < 0) return maxWaitMs;
    const d = Math.ceil(next - this.clock.now());
    if (d <= 0) return 0;
    const capped = d > 0x7fff_ffff ? 0x7fff_ffff : d;
    return maxWaitMs < 0 || capped < maxWaitMs ? capped : maxWaitMs;
  }

  /** True when something may still wake a task: pending work, or a timer. */
  hasWork(): boolean {
    return this.work > 0 || this.wheel.size > 0;
  }

  /**
   * Runs `fn` when this driver closes, before the backend is released (for clients bound
   * to the driver: a pool's eventfd, a signal pump, child watchers). Returns a function
   * that unregisters it. Each runs once; one that throws is reported, not propagated.
   */
  atClose(fn: () => void): () => void {
    const list = (this.closers ??= []);
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** True once close() ran. */
  get isClosed(): boolean {
    return this.closedFlag;
  }

  /**
   * Closes the backend. I/O objects still open keep their fds (their owners close them;
   * a close after this only closes the fd). Idempotent.
   */
  close(): void {
    if (this.closedFlag) return;
    const closers = this.closers ?? [];
    this.closers = null;
    for (const fn of closers.reverse()) {
      try {
        fn();
      } catch (err) {
        console.error("reel: a client of the driver failed to close:", err);
      }
    }
    this.resolverClient?.close(); // lookups still in flight are given up while the driver can deregister
    this.closedFlag = true;
    this.shutdown();
  }
}

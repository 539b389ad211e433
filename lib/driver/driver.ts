/**
 * The driver: a Poller, the registration slab, the timer wheel and the clock. One turn
 * waits for readiness (at most until the next timer), records it, and wakes the tasks
 * that wait on it: kernel → driver → waker.
 *
 * Invariants:
 * - A registration ({@link ScheduledIo}) lives in the slab under a token = index | gen << 20.
 *   The generation changes when the slot is freed, so an event that was already in the
 *   kernel's batch for a deregistered fd cannot touch the slot's next owner.
 * - Readiness is stored per registration with a `tick` that advances on every event. An op
 *   that hit EAGAIN clears readiness only if the tick it observed is still current, so a
 *   newer event is never cleared by an older observation (tokio's ScheduledIo).
 * - READ_CLOSED, WRITE_CLOSED and ERROR are final once seen: never cleared.
 * - Wakers are taken out of their slots before `wake()` (which only enqueues), so no table
 *   is mutated while being iterated.
 *
 * Must never: poll a future, block when asked for a zero timeout, or drop an event
 * silently (stale ones are the only events ignored, by design).
 */
import { PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { now } from "../time/clock.ts";
import { TimerWheel } from "../time/wheel.ts";
import { ERROR, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED, type Interest, type Poller } from "./readiness/poller.ts";

/** Readiness bits that let a reader make progress. */
export const READ_READY = READABLE | READ_CLOSED | ERROR;
/** Readiness bits that let a writer make progress. */
export const WRITE_READY = WRITABLE | WRITE_CLOSED | ERROR;

const INDEX_BITS = 20;
const INDEX_MASK = (1 << INDEX_BITS) - 1;
const GEN_MASK = 0x7ff; // 11 bits: the token stays a non-negative int32

/**
 * One fd's registration: its readiness and the tasks waiting on it. One reader and one
 * writer slot, as tokio's ScheduledIo; a second task storing into a taken slot wakes the
 * first so it re-polls and re-registers (no lost wake-up, at worst a spurious poll).
 */
export class ScheduledIo {
  readiness = 0;
  tick = 0;
  readWaker: Waker | null = null;
  writeWaker: Waker | null = null;
  /** Set by deregister: the fd is gone; waiters are woken and ops must fail. */
  closed = false;

  constructor(
    /** A valid fd that has not been closed while `closed` is false. */
    readonly fd: number,
    readonly token: number,
    readonly interest: Interest,
  ) {}
}

/**
 * What a driver counts, for `runtime.metrics()`: plain counters, bumped on the paths that
 * already run (a turn, an event, a registration, an io_uring enter), never read on them.
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
 * A Poller plus the slab, the timer wheel and the clock.
 *
 * @example
 * ```ts
 * const d = new Driver(new EpollPoller());
 * const io = d.register(fd, READABLE);
 * d.turn(10); // waits ≤ 10 ms, wakes whoever waits on io
 * d.deregister(io);
 * d.close();
 * ```
 */
export class Driver {
  readonly wheel: TimerWheel;
  /** Counters for `runtime.metrics()` (see {@link DriverStats}). */
  readonly stats = new DriverStats();
  private readonly slab: (ScheduledIo | null)[] = [];
  private readonly gens: number[] = [];
  private readonly free: number[] = [];
  /** Live registrations. */
  live = 0;
  /** Operations in flight elsewhere (a worker thread) that will call `poller.notify()`. */
  external = 0;

  constructor(readonly poller: Poller) {
    // The wheel shares reel's clock (time/clock.ts), so deadlines made before the driver existed line up.
    this.wheel = new TimerWheel(Math.floor(now()));
  }

  /** Registers `fd` with the poller; the fd must be non-blocking. */
  register(fd: number, interest: Interest = READABLE | WRITABLE): ScheduledIo {
    const index = this.free.length > 0 ? this.free.pop()! : this.slab.length;
    if (index > INDEX_MASK) throw new RangeError(`Too many registrations: ${index} (max ${INDEX_MASK})`);
    const gen = this.gens[index] ?? 0;
    const io = new ScheduledIo(fd, index | (gen << INDEX_BITS), interest);
    try {
      this.poller.register(fd, io.token, interest);
    } catch (err) {
      this.free.push(index);
      throw err;
    }
    this.slab[index] = io;
    this.gens[index] = gen;
    this.live++;
    return io;
  }

  /**
   * Removes a registration before its fd is closed; wakes its waiters (they will see
   * `closed`). Idempotent.
   */
  deregister(io: ScheduledIo): void {
    if (io.closed) return;
    io.closed = true;
    const index = io.token & INDEX_MASK;
    this.slab[index] = null;
    this.gens[index] = ((this.gens[index] ?? 0) + 1) & GEN_MASK;
    this.free.push(index);
    this.live--;
    try {
      this.poller.deregister(io.fd);
    } finally {
      this.wakeAll(io);
    }
  }

  /**
   * Readiness for `mask` (READ_READY or WRITE_READY): the ready bits, or PENDING after
   * storing the waker in the matching slot.
   */
  pollReady(io: ScheduledIo, mask: number, cx: Context): Poll<number> {
    const r = io.readiness & mask;
    if (r !== 0 || io.closed) return r;
    const w = cx.waker;
    if (mask === READ_READY) {
      const prev = io.readWaker;
      io.readWaker = w;
      if (prev !== null && prev !== w) prev.wake();
    } else {
      const prev = io.writeWaker;
      io.writeWaker = w;
      if (prev !== null && prev !== w) prev.wake();
    }
    return PENDING;
  }

  /**
   * Clears READABLE or WRITABLE after an op hit EAGAIN, if no event came since `tick`,
   * and re-arms level-triggered backends.
   */
  clearReadiness(io: ScheduledIo, bit: number, tick: number): void {
    if (io.tick !== tick || io.closed) return;
    io.readiness &= ~bit;
    this.poller.rearm(io.fd, io.token, io.interest);
  }

  /** Drops a task's interest (a cancelled op): forget its waker if it is still stored. */
  dropWaker(io: ScheduledIo, mask: number, w: Waker): void {
    if (mask === READ_READY) {
      if (io.readWaker === w) io.readWaker = null;
    } else if (io.writeWaker === w) io.writeWaker = null;
  }

  /**
   * One turn: wait for events for at most `maxWaitMs` (-1 = until something happens,
   * 0 = never block), capped by the next timer; record readiness and wake; fire timers.
   * Returns the number of I/O events delivered.
   */
  turn(maxWaitMs: number): number {
    const n = this.poller.wait(this.waitTimeout(maxWaitMs));
    this.stats.turns++;
    if (n > 0) {
      this.stats.events += n;
      this.dispatch(n);
    }
    if (this.wheel.size > 0) this.wheel.advance(Math.floor(now()));
    return n;
  }

  /** The poller timeout: `maxWaitMs` capped by the next timer deadline. */
  protected waitTimeout(maxWaitMs: number): number {
    if (maxWaitMs === 0 || this.wheel.size === 0) return maxWaitMs;
    const next = this.wheel.nextDeadline();
    if (next < 0) return maxWaitMs;
    const d = Math.ceil(next - now());
    if (d <= 0) return 0;
    const capped = d > 0x7fff_ffff ? 0x7fff_ffff : d;
    return maxWaitMs < 0 || capped < maxWaitMs ? capped : maxWaitMs;
  }

  protected dispatch(n: number): void {
    const { tokens, flags } = this.poller.events;
    const slab = this.slab;
    for (let i = 0; i < n; i++) {
      const token = tokens[i]!;
      const io = slab[token & INDEX_MASK];
      // A stale event: the slot was freed (and maybe reused) after the kernel queued it.
      if (io === undefined || io === null || io.token !== token) continue;
      const f = flags[i]!;
      io.readiness |= f;
      io.tick = (io.tick + 1) | 0;
      if ((f & READ_READY) !== 0 && io.readWaker !== null) {
        const w = io.readWaker;
        io.readWaker = null;
        w.wake();
      }
      if ((f & WRITE_READY) !== 0 && io.writeWaker !== null) {
        const w = io.writeWaker;
        io.writeWaker = null;
        w.wake();
      }
    }
  }

  private wakeAll(io: ScheduledIo): void {
    const r = io.readWaker;
    const w = io.writeWaker;
    io.readWaker = null;
    io.writeWaker = null;
    r?.wake();
    w?.wake();
  }

  /** True when something may still wake a task: a registration, a timer, or external work. */
  hasWork(): boolean {
    return this.live > 0 || this.wheel.size > 0 || this.external > 0;
  }

  /** Closes the poller. Registrations must have been dropped by their owners. */
  close(): void {
    this.poller.close();
  }
}

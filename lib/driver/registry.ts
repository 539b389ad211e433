/**
 * The readiness registry: one {@link ScheduledIo} per registered fd — its readiness and
 * the tasks waiting on it — in the generational slab, fed by a readiness source (a
 * Poller on epoll/poll/kqueue, the io_uring poll bridge on uring). kernel → registry →
 * waker: this is where readiness events become wake-ups.
 *
 * Invariants:
 * - Readiness is stored per registration with a `tick` that advances on every event. An op
 *   that hit EAGAIN clears readiness only if the tick it observed is still current, so a
 *   newer event is never cleared by an older observation (tokio's ScheduledIo).
 * - READ_CLOSED, WRITE_CLOSED and ERROR are final once seen: the registry never clears
 *   them (a datagram socket's per-fd layer does, on EAGAIN: its errors are not final —
 *   readiness/fd.ts).
 * - Wakers are taken out of their slots before `wake()` (which only enqueues), so no table
 *   is mutated while being iterated.
 * - Every registration counts as driver work (it may wake a task) until it is removed.
 *
 * Must never: poll a future, drop an event silently (stale ones are the only events
 * ignored, by design), or touch a registration's fd after `deregister`.
 */
import { PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { Slab } from "./slab.ts";
import { ERROR, READABLE, READ_CLOSED, READ_WRITE, WRITABLE, WRITE_CLOSED, type Events, type Interest } from "./events.ts";

/** Readiness bits that let a reader make progress. */
export const READ_READY = READABLE | READ_CLOSED | ERROR;
/** Readiness bits that let a writer make progress. */
export const WRITE_READY = WRITABLE | WRITE_CLOSED | ERROR;

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
  /** Set by the slab: index | generation << 20; -1 once removed. */
  token = 0;
  /** The first socket error an event carried (positive errno), 0 if none: final once set. */
  error = 0;

  constructor(
    /** A valid fd that has not been closed while `closed` is false. */
    readonly fd: number,
    readonly interest: Interest,
  ) {}
}

/** What feeds a registry: a Poller, or the io_uring poll bridge. */
export interface ReadinessSource {
  register(fd: number, token: number, interest: Interest): void;
  /** Resume reporting `interest` after readiness was cleared (level-triggered sources). */
  rearm(fd: number, token: number, interest: Interest): void;
  deregister(fd: number): void;
}

/** Where a registry counts its registrations as work (the driver). */
export interface WorkCounter {
  addWork(): void;
  doneWork(): void;
}

/**
 * Registrations over a readiness source.
 *
 * @example
 * ```ts
 * const reg = new Registry(poller, driver);
 * const io = reg.register(fd, READ_WRITE);
 * if (reg.pollReady(io, READ_READY, cx) === PENDING) return PENDING; // waker stored
 * reg.deregister(io);
 * ```
 */
export class Registry {
  private readonly slab = new Slab<ScheduledIo>("registrations");

  constructor(
    private readonly source: ReadinessSource,
    private readonly work: WorkCounter,
  ) {}

  /** Live registrations. */
  get size(): number {
    return this.slab.size;
  }

  /** Registers `fd` (non-blocking) with the source. */
  register(fd: number, interest: Interest = READ_WRITE): ScheduledIo {
    const io = this.slab.insert(() => new ScheduledIo(fd, interest));
    try {
      this.source.register(fd, io.token, interest);
    } catch (err) {
      this.slab.remove(io);
      throw err;
    }
    this.work.addWork();
    return io;
  }

  /**
   * Removes a registration before its fd is closed; wakes its waiters (they will see
   * `closed`). Idempotent.
   */
  deregister(io: ScheduledIo): void {
    if (io.closed) return;
    io.closed = true;
    this.slab.remove(io);
    this.work.doneWork();
    try {
      this.source.deregister(io.fd);
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
   * and re-arms level-triggered sources.
   */
  clearReadiness(io: ScheduledIo, bit: number, tick: number): void {
    if (io.tick !== tick || io.closed) return;
    io.readiness &= ~bit;
    this.source.rearm(io.fd, io.token, io.interest);
  }

  /** Drops a task's interest (a cancelled op): forget its waker if it is still stored. */
  dropWaker(io: ScheduledIo, mask: number, w: Waker): void {
    if (mask === READ_READY) {
      if (io.readWaker === w) io.readWaker = null;
    } else if (io.writeWaker === w) io.writeWaker = null;
  }

  /** Records `n` events from `events` and wakes their waiters. */
  dispatch(events: Events, n: number): void {
    const { tokens, flags, errors } = events;
    for (let i = 0; i < n; i++) {
      const io = this.slab.get(tokens[i]!);
      // A stale event: the slot was freed (and maybe reused) after the kernel queued it.
      if (io === undefined) continue;
      const f = flags[i]!;
      const e = errors[i]!;
      if (e !== 0 && io.error === 0) io.error = e;
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

  /** Wakers stored in registrations now (for leak checks: a cancelled op must leave none). */
  storedWakers(): number {
    let n = 0;
    this.slab.forEach((io) => {
      n += (io.readWaker !== null ? 1 : 0) + (io.writeWaker !== null ? 1 : 0);
    });
    return n;
  }

  /**
   * The driver is closing: every registration is marked closed (its owner's later close
   * only closes the fd) and its waiters are woken; the source is not called again.
   */
  closeAll(): void {
    this.slab.forEach((io) => {
      io.closed = true;
      this.slab.remove(io);
      this.work.doneWork();
      this.wakeAll(io);
    });
  }

  private wakeAll(io: ScheduledIo): void {
    const r = io.readWaker;
    const w = io.writeWaker;
    io.readWaker = null;
    io.writeWaker = null;
    r?.wake();
    w?.wake();
  }
}

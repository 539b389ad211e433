/**
 * The io_uring driver's readiness bridge: readiness through the ring, so the per-fd
 * `pollReady` (and everything built on readiness, like the AsyncFd pattern) works on the
 * uring backend. It is the registry's readiness source (lib/driver/registry.ts) inside
 * the uring driver, not a Poller: the driver's own turn collects its events.
 *
 * Each registered fd gets one multishot IORING_OP_POLL_ADD: the kernel posts a CQE on
 * every wake-up of the fd, which is the edge-like contract of the registry, so `rearm` is
 * a no-op. When the kernel ends a multishot poll (no CQE_F_MORE) it is re-armed; if it
 * ended with an error, the fd's waiters get ERROR. Events are collected during the reap
 * and handed to the registry by {@link ReadinessBridge.flush}.
 *
 * Hosted mode watches {@link ReadinessBridge.fd}: an eventfd the ring signals whenever a
 * completion is posted (IORING_REGISTER_EVENTFD), registered on first use.
 *
 * Must never: report events for an fd after deregister, or arm an op once the driver closed.
 * Must never import: lib/driver/readiness/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import * as libc from "../../../ffi/libc.ts";
import * as ep from "../../../ffi/epoll.ts";
import { POLLERR, POLLHUP } from "../../../ffi/poll.ts";
import { check } from "../../errors.ts";
import { ERROR, Events, READABLE, WRITABLE, fromPoll, toPoll, type Interest } from "../events.ts";
import type { ReadinessSource } from "../registry.ts";
import * as U from "../../../ffi/uring.ts";
import { K_PLAIN, type FdOwnerCount, type OpSink, type UringOp } from "./op.ts";
import type { UringDriver } from "./driver.ts";

const CAPACITY = 1024;

/** One registered fd: its registry token, interest, owner and armed poll op. */
interface Armed {
  readonly fd: number;
  readonly token: number;
  readonly interest: Interest;
  readonly owner: FdOwnerCount | null;
  op: UringOp | null;
}

/**
 * Readiness over io_uring poll ops.
 *
 * @example
 * ```ts
 * const d = new UringDriver();             // builds its bridge
 * const io = d.registry.register(fd);      // a multishot POLL_ADD
 * d.turn(10);                              // readiness arrives as a CQE
 * d.registry.deregister(io);               // cancels the poll op
 * ```
 */
export class ReadinessBridge implements ReadinessSource, OpSink {
  readonly events = new Events(CAPACITY);
  private count = 0;
  private readonly byFd = new Map<number, Armed>();
  /** The owner of the fd being registered (set around registry.register by registerFor). */
  private nextOwner: FdOwnerCount | null = null;
  private readonly counter = new Uint8Array(new ArrayBuffer(8));
  /** Hosted mode's watch fd: an eventfd, made at attach, registered with the ring on first use. */
  private hostFd = -1;
  private hostRegistered = false;

  constructor(private readonly driver: UringDriver) {}

  /**
   * The fd hosted mode watches: an eventfd the ring signals whenever a completion is
   * queued (the ring fd itself is not woken for DEFER_TASKRUN's deferred completions).
   * Registered on first access, so blockOn-only programs pay no drain per turn.
   */
  get fd(): number {
    if (!this.hostRegistered && this.hostFd >= 0 && !this.driver.ring.isClosed) {
      check(this.driver.ring.registerEventfd(this.hostFd), "io_uring_register", "IORING_REGISTER_EVENTFD");
      this.hostRegistered = true;
    }
    return this.hostFd;
  }

  /** Makes the hosted-mode eventfd (after the driver's constructor made the ring). */
  attach(): void {
    this.hostFd = check(ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC), "eventfd");
  }

  /** Drains the hosted-mode eventfd; called at the start of each turn, before reaping. */
  drainHost(): void {
    if (this.hostRegistered) libc.read(this.hostFd, this.counter);
  }

  /** Registers `fd` on behalf of `owner`, whose count its poll op joins (uring/owner.ts). */
  withOwner<T>(owner: FdOwnerCount, fn: () => T): T {
    this.nextOwner = owner;
    try {
      return fn();
    } finally {
      this.nextOwner = null;
    }
  }

  private arm(rec: Armed): void {
    const d = this.driver;
    const op = d.op(K_PLAIN, this, rec.owner);
    op.multishot = true;
    op.tag = rec.token;
    op.aux = rec;
    const w = d.sqe(op, U.OP_POLL_ADD, rec.fd, 0, U.POLL_ADD_MULTI, 0);
    d.ring.setOpFlags(w, toPoll(rec.interest) | POLLERR | POLLHUP);
    rec.op = op;
    this.byFd.set(rec.fd, rec);
  }

  register(fd: number, token: number, interest: Interest): void {
    this.arm({ fd, token, interest, owner: this.nextOwner, op: null });
  }

  rearm(_fd: number, _token: number, _interest: Interest): void {
    // Multishot poll reports every wake-up: nothing to re-arm (see the module header).
  }

  deregister(fd: number): void {
    const rec = this.byFd.get(fd);
    if (rec === undefined) return;
    this.byFd.delete(fd);
    if (rec.op !== null) this.driver.cancel(rec.op);
    rec.op = null;
  }

  /** Hands the events collected since the last flush to the registry. */
  flush(): void {
    const n = this.count;
    this.count = 0;
    if (n > 0) this.driver.dispatchBridge(n);
  }

  private push(token: number, flags: number): void {
    if (this.count === CAPACITY) this.flush();
    this.events.tokens[this.count] = token;
    this.events.flags[this.count] = flags;
    this.count++;
  }

  onCqe(op: UringOp, res: number, _flags: number, final: boolean): void {
    const rec = op.aux as Armed;
    if (res >= 0) this.push(rec.token, fromPoll(res));
    if (!final) return;
    // The kernel ended the multishot poll. Still registered: re-arm after a normal end,
    // or report an error (the fd went bad) so its waiters wake and see it.
    const d = this.driver;
    d.release(op);
    if (rec.op !== op || this.byFd.get(rec.fd) !== rec) return;
    rec.op = null;
    if (res >= 0 && !d.isClosed) {
      this.arm(rec);
      return;
    }
    this.byFd.delete(rec.fd);
    this.push(rec.token, READABLE | WRITABLE | ERROR);
  }

  close(): void {
    if (this.hostFd >= 0) libc.close(this.hostFd);
    this.hostFd = -1;
  }
}

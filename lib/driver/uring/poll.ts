/**
 * The io_uring driver's Poller: readiness through the ring, so `Driver.register` (and
 * everything built on readiness: IoSource.pollReady, other engineers' fd types) works on
 * the uring backend unchanged.
 *
 * Each registered fd gets one multishot IORING_OP_POLL_ADD (POLLIN|POLLOUT|POLLRDHUP):
 * the kernel posts a CQE on every wake-up of the fd, which is the edge-like contract of
 * poller.ts, so `rearm` is a no-op. When the kernel ends a multishot poll (no
 * CQE_F_MORE) it is re-armed. Readiness is collected into {@link Events} during the reap
 * and handed to Driver.dispatch, exactly as epoll's are.
 *
 * `notify()` writes an eventfd watched by a background multishot poll; the wake-up is
 * drained here and never reported.
 *
 * Must never: report the notify eventfd, or report events for an fd after deregister.
 */
import * as U from "../../../ffi/uring.ts";
import * as libc from "../../../ffi/libc.ts";
import * as ep from "../../../ffi/epoll.ts";
import { EAGAIN } from "../../../ffi/errno.ts";
import { POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDHUP } from "../../../ffi/poll.ts";
import { check } from "../../errors.ts";
import { ERROR, Events, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED, type Interest, type Poller } from "../readiness/poller.ts";
import { K_PLAIN, type OpSink, type UringOp } from "./op.ts";
import type { UringDriver } from "./driver.ts";

const CAPACITY = 1024;

function toPoll(interest: Interest): number {
  let m = POLLRDHUP | POLLERR | POLLHUP;
  if ((interest & READABLE) !== 0) m |= POLLIN | POLLPRI;
  if ((interest & WRITABLE) !== 0) m |= POLLOUT;
  return m;
}

/** Translates poll(2) revents into the portable bits (as epoll.ts does). */
function fromPoll(e: number): number {
  let f = 0;
  if ((e & (POLLIN | POLLPRI)) !== 0) f |= READABLE;
  if ((e & POLLOUT) !== 0) f |= WRITABLE;
  if ((e & POLLRDHUP) !== 0) f |= READABLE | READ_CLOSED;
  if ((e & POLLHUP) !== 0) f |= READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED;
  if ((e & POLLERR) !== 0) f |= READABLE | WRITABLE | ERROR;
  return f;
}

/**
 * Readiness over io_uring poll ops.
 *
 * @example
 * ```ts
 * const d = new UringDriver();           // builds its UringPoller
 * const io = d.register(fd, READABLE);   // a multishot POLL_ADD
 * d.turn(10);                            // readiness arrives as a CQE
 * d.deregister(io);                      // cancels the poll op
 * ```
 */
export class UringPoller implements Poller, OpSink {
  readonly name = "io_uring";
  readonly events = new Events(CAPACITY);
  private count = 0;
  private driver: UringDriver | null = null;
  private readonly byFd = new Map<number, UringOp>();
  private readonly interests = new Map<number, Interest>();
  private efd = -1;
  private notifyOp: UringOp | null = null;
  private readonly counter = new Uint8Array(new ArrayBuffer(8));
  private readonly one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

  /** Hosted mode's watch fd: an eventfd, made at attach, registered with the ring on first use. */
  private hostFd = -1;
  private hostRegistered = false;

  /**
   * The fd hosted mode watches: an eventfd the ring signals whenever a completion is
   * queued (the ring fd itself is not woken for DEFER_TASKRUN's deferred completions).
   * Registered on first access, so blockOn-only programs pay no drain per turn.
   */
  get fd(): number {
    if (!this.hostRegistered && this.hostFd >= 0 && !this.driver!.ring.isClosed) {
      check(this.driver!.ring.registerEventfd(this.hostFd), "io_uring_register", "IORING_REGISTER_EVENTFD");
      this.hostRegistered = true;
    }
    return this.hostFd;
  }

  /** Drains the hosted-mode eventfd; called at the start of each turn, before reaping. */
  drainHost(): void {
    if (this.hostRegistered) libc.read(this.hostFd, this.counter);
  }

  /** Binds to the driver (after its constructor ran) and arms the notify eventfd. */
  attach(d: UringDriver): void {
    this.driver = d;
    this.efd = check(ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC), "eventfd");
    this.hostFd = check(ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC), "eventfd");
    this.armNotify();
  }

  private armNotify(): void {
    const d = this.driver!;
    const op = d.op(K_PLAIN, this);
    op.multishot = true;
    op.background = true;
    const w = d.sqe(op, U.OP_POLL_ADD, this.efd, 0, U.POLL_ADD_MULTI, 0);
    d.ring.setOpFlags(w, POLLIN);
    this.notifyOp = op;
  }

  private arm(fd: number, token: number, interest: Interest): void {
    const d = this.driver!;
    const op = d.op(K_PLAIN, this);
    op.multishot = true;
    op.tag = token;
    const w = d.sqe(op, U.OP_POLL_ADD, fd, 0, U.POLL_ADD_MULTI, 0);
    d.ring.setOpFlags(w, toPoll(interest));
    this.byFd.set(fd, op);
    this.interests.set(fd, interest);
  }

  register(fd: number, token: number, interest: Interest): void {
    this.arm(fd, token, interest);
  }

  reregister(fd: number, token: number, interest: Interest): void {
    this.deregister(fd);
    this.arm(fd, token, interest);
  }

  rearm(_fd: number, _token: number, _interest: Interest): void {
    // Multishot poll reports every wake-up: nothing to re-arm (see the module header).
  }

  deregister(fd: number): void {
    const op = this.byFd.get(fd);
    if (op === undefined) return;
    this.byFd.delete(fd);
    this.interests.delete(fd);
    this.driver!.cancel(op);
  }

  /** Not used: UringDriver.turn waits in io_uring_enter and reaps through onCqe. */
  wait(_timeoutMs: number): number {
    return 0;
  }

  /** Events collected since the last take(). */
  take(): number {
    const n = this.count;
    this.count = 0;
    return n;
  }

  onCqe(op: UringOp, res: number, flags: number, final: boolean): void {
    const d = this.driver!;
    if (op === this.notifyOp) {
      libc.read(this.efd, this.counter);
      if (final) {
        d.release(op);
        if (!d.ring.isClosed && res !== -125) this.armNotify();
      }
      return;
    }
    if (res >= 0) {
      if (this.count === CAPACITY) d.flushBridge();
      this.events.tokens[this.count] = op.tag;
      this.events.flags[this.count] = fromPoll(res);
      this.count++;
    }
    if (!final) return;
    // The kernel ended the multishot poll. Still registered: re-arm after a normal end,
    // or report an error (the fd went bad) so its waiters wake and see it.
    const token = op.tag;
    let fd = -1;
    for (const [f, cur] of this.byFd) {
      if (cur === op) {
        fd = f;
        break;
      }
    }
    d.release(op);
    if (fd < 0) return;
    const interest = this.interests.get(fd)!;
    this.byFd.delete(fd);
    if (res >= 0) {
      this.arm(fd, token, interest);
      return;
    }
    this.interests.delete(fd);
    if (this.count === CAPACITY) d.flushBridge();
    this.events.tokens[this.count] = token;
    this.events.flags[this.count] = READABLE | WRITABLE | ERROR;
    this.count++;
  }

  notify(): void {
    const r = libc.write(this.efd, this.one);
    // EAGAIN: the counter is saturated, so a wake-up is already pending.
    if (r < 0 && r !== -EAGAIN) check(r, "write", "notify eventfd");
  }

  close(): void {
    if (this.efd >= 0) libc.close(this.efd);
    if (this.hostFd >= 0) libc.close(this.hostFd);
    this.efd = this.hostFd = -1;
  }
}

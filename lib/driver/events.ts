/**
 * Readiness, portably: the interest and event bits every backend reports in, the event
 * list a readiness source fills, and the translation of poll(2) revents into the bits
 * (used by the poll backend and by io_uring's poll bridge). Shared by the readiness
 * backends, the registry and the io_uring driver, so neither backend imports the other.
 *
 * Must never import: lib/driver/readiness/**, lib/driver/uring/**
 * Must never: hold state; it is constants, one buffer type and two pure functions.
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import * as pf from "../../ffi/poll.ts";

/** Interest and event bits. One set of bits serves both. */
export const READABLE = 1;
export const WRITABLE = 2;
/** Peer closed its write side (read returns EOF): reported with READABLE. */
export const READ_CLOSED = 4;
/** Our write side is closed or the connection reset (EPOLLHUP): reported with WRITABLE. */
export const WRITE_CLOSED = 8;
/** An error is pending on the socket (EPOLLERR): both directions are woken. */
export const ERROR = 16;

/** Both directions: the interest every socket is registered with. */
export const READ_WRITE = 3;

/** The interest an fd is registered with: READABLE, WRITABLE, or both (READ_WRITE). */
export type Interest = typeof READABLE | typeof WRITABLE | typeof READ_WRITE;

/**
 * The event list a backend fills: struct-of-arrays, allocated once, read by index.
 * Holding tokens and flags in typed arrays keeps a driver turn free of per-event objects.
 */
export class Events {
  readonly tokens: Int32Array;
  readonly flags: Uint8Array;
  /**
   * The socket error (a positive errno) an event carried, where the backend learns it with
   * the event (kqueue's EV_EOF fflags), else 0. A backend that writes it writes it for every
   * event it delivers; the others leave it all zeros.
   */
  readonly errors: Int32Array;
  constructor(readonly capacity: number) {
    this.tokens = new Int32Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.errors = new Int32Array(capacity);
  }
}

/**
 * pollfd.events for an armed interest (POLLRDHUP is 0 where the platform lacks it).
 *
 * @example
 * ```ts
 * toPoll(READ_WRITE); // POLLIN | POLLRDHUP | POLLOUT
 * ```
 */
export function toPoll(armed: number): number {
  let e = 0;
  if ((armed & READABLE) !== 0) e |= pf.POLLIN | pf.POLLRDHUP;
  if ((armed & WRITABLE) !== 0) e |= pf.POLLOUT;
  return e;
}

/**
 * Translates revents into the portable bits, as the epoll backend maps its bits.
 *
 * @example
 * ```ts
 * fromPoll(POLLIN | POLLHUP); // READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED
 * ```
 */
export function fromPoll(re: number): number {
  let f = 0;
  if ((re & (pf.POLLIN | pf.POLLPRI)) !== 0) f |= READABLE;
  if ((re & pf.POLLOUT) !== 0) f |= WRITABLE;
  if ((re & pf.POLLRDHUP) !== 0) f |= READABLE | READ_CLOSED;
  // HUP: both directions are done; wake readers (EOF) and writers (EPIPE).
  if ((re & pf.POLLHUP) !== 0) f |= READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED;
  // NVAL: the fd is not open (closed without deregister): every op will fail with EBADF.
  if ((re & (pf.POLLERR | pf.POLLNVAL)) !== 0) f |= READABLE | WRITABLE | ERROR;
  return f;
}

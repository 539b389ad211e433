/**
 * The Poller contract: what every readiness backend (epoll, kqueue, poll) provides to the
 * driver. Written before any backend, as mio's `sys` contract is.
 *
 * Semantics, which every backend must honour:
 *
 * - Registration is by fd with a caller-chosen 32-bit `token` (non-negative int32) that
 *   comes back with each event. A backend never interprets the token.
 * - Readiness is reported edge-like: once an event for a direction (read or write) has
 *   been delivered for an fd, the backend need not report that direction again until
 *   either the kernel sees a new edge (epoll EPOLLET, kqueue EV_CLEAR) or the driver calls
 *   `rearm(fd, token, interest)` after an operation hit EAGAIN. Edge backends make `rearm`
 *   a no-op; level backends (poll) use it to resume watching. The driver therefore always
 *   calls `rearm` when it clears readiness, whatever the backend.
 * - `wait(timeoutMs)` fills the poller's {@link Events} buffer and returns the count.
 *   timeoutMs: -1 blocks, 0 never blocks, n > 0 waits at most n ms. EINTR returns 0 (the
 *   one place it is retried is the driver's turn loop, which simply turns again).
 * - `notify()` wakes a blocked `wait` from any thread (an eventfd, EVFILT_USER, a pipe);
 *   the wake-up is consumed by the backend and never appears as an event.
 * - Errors are thrown as SysError; nothing is swallowed. `deregister` of an fd the
 *   kernel already dropped (closed) is not an error.
 * - `close()` releases the backend's own fds; using the poller afterwards throws.
 *
 * A backend must never wake tasks or touch the registration slab: it only reports.
 */

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

/** A readiness backend. See the module header for the contract. */
export interface Poller {
  /** "epoll", "kqueue", "poll", … */
  readonly name: string;
  /** The events filled by the last `wait`. */
  readonly events: Events;
  /**
   * An fd that becomes readable when this poller has events to deliver (epoll and kqueue
   * fds are themselves pollable), or -1 when the backend has none. Hosted mode watches it.
   */
  readonly fd: number;
  register(fd: number, token: number, interest: Interest): void;
  /** Resume reporting `interest` for fd after the driver cleared readiness (see header). */
  rearm(fd: number, token: number, interest: Interest): void;
  deregister(fd: number): void;
  wait(timeoutMs: number): number;
  notify(): void;
  close(): void;
}

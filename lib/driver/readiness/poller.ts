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
 * Must never import: lib/driver/uring/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */

export { READABLE, WRITABLE, READ_CLOSED, WRITE_CLOSED, ERROR, READ_WRITE, Events, type Interest } from "../events.ts";
import type { Events, Interest } from "../events.ts";

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

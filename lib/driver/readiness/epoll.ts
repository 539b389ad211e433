/**
 * The epoll backend (Linux): edge-triggered readiness behind the Poller contract.
 *
 * Each fd is registered once with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET (tokio's choice):
 * edges are never lost, so `rearm` is a no-op. An eventfd, registered level-triggered
 * under a reserved token, carries `notify()`; it is drained here and never reported.
 *
 * Events are read through one Uint32Array over the epoll_event array, allocated once; the
 * translation into the portable {@link Events} is a loop of integer ops.
 *
 * Must never: retry EINTR (the driver's turn does), or deliver the notify token.
 * Must never import: lib/driver/uring/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import * as ep from "../../../ffi/epoll.ts";
import * as libc from "../../../ffi/libc.ts";
import { EAGAIN, EBADF, EINTR, ENOENT } from "../../../ffi/errno.ts";
import { check } from "../../errors.ts";
import { ERROR, Events, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED, type Interest, type Poller } from "./poller.ts";

/** data.u32 of the eventfd's registration; driver tokens are non-negative int32s. */
const NOTIFY_TOKEN = 0xffff_ffff;
const CAPACITY = 1024;

function toEpoll(interest: Interest): number {
  let e = ep.EPOLLET | ep.EPOLLRDHUP;
  if ((interest & READABLE) !== 0) e |= ep.EPOLLIN;
  if ((interest & WRITABLE) !== 0) e |= ep.EPOLLOUT;
  return e;
}

/** Translates epoll's event bits into the portable ones. */
function fromEpoll(e: number): number {
  let f = 0;
  if ((e & (ep.EPOLLIN | ep.EPOLLPRI)) !== 0) f |= READABLE;
  if ((e & ep.EPOLLOUT) !== 0) f |= WRITABLE;
  if ((e & ep.EPOLLRDHUP) !== 0) f |= READABLE | READ_CLOSED;
  // HUP: both directions are done; wake readers (EOF) and writers (EPIPE).
  if ((e & ep.EPOLLHUP) !== 0) f |= READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED;
  if ((e & ep.EPOLLERR) !== 0) f |= READABLE | WRITABLE | ERROR;
  return f;
}

/**
 * An epoll instance with its notify eventfd.
 *
 * @example
 * ```ts
 * const p = new EpollPoller();
 * p.register(fd, 7, READ_WRITE);
 * const n = p.wait(100);
 * for (let i = 0; i < n; i++) console.log(p.events.tokens[i], p.events.flags[i]);
 * p.close();
 * ```
 */
export class EpollPoller implements Poller {
  readonly name = "epoll";
  readonly events = new Events(CAPACITY);
  readonly fd: number;
  private readonly efd: number;
  private readonly raw = new Uint32Array(new ArrayBuffer(CAPACITY * ep.EPOLL_EVENT_SIZE));
  /** Where a drain of the eventfd lands. */
  private readonly counter = new Uint8Array(new ArrayBuffer(8));
  /** The u64 1 that `notify()` adds to the eventfd. */
  private readonly one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  private closed = false;

  constructor() {
    this.fd = check(ep.epollCreate(ep.EPOLL_CLOEXEC), "epoll_create1");
    const efd = ep.eventfd(0, ep.EFD_NONBLOCK | ep.EFD_CLOEXEC);
    if (efd < 0) {
      libc.close(this.fd);
      check(efd, "eventfd");
    }
    this.efd = efd;
    check(ep.epollCtl(this.fd, ep.EPOLL_CTL_ADD, efd, ep.EPOLLIN, NOTIFY_TOKEN), "epoll_ctl", "notify eventfd");
  }

  register(fd: number, token: number, interest: Interest): void {
    check(ep.epollCtl(this.fd, ep.EPOLL_CTL_ADD, fd, toEpoll(interest), token), "epoll_ctl", `add fd ${fd}`);
  }

  rearm(_fd: number, _token: number, _interest: Interest): void {
    // Edge-triggered: the next edge is reported without re-arming.
  }

  deregister(fd: number): void {
    const r = ep.epollCtl(this.fd, ep.EPOLL_CTL_DEL, fd, 0, 0);
    // ENOENT/EBADF: the fd was already closed, which removed it from the epoll set.
    if (r < 0 && r !== -ENOENT && r !== -EBADF) check(r, "epoll_ctl", `del fd ${fd}`);
  }

  wait(timeoutMs: number): number {
    if (this.closed) throw new Error("EpollPoller used after close()");
    const raw = this.raw;
    const n = ep.epollWait(this.fd, raw, CAPACITY, timeoutMs);
    if (n < 0) {
      if (n === -EINTR) return 0;
      check(n, "epoll_wait");
    }
    const { tokens, flags } = this.events;
    const W = ep.EPOLL_EVENT_WORDS;
    const D = ep.EPOLL_DATA_WORD;
    let j = 0;
    for (let i = 0; i < n; i++) {
      const token = raw[i * W + D]!;
      if (token === NOTIFY_TOKEN) {
        libc.read(this.efd, this.counter); // drain: the wake-up itself is the whole message
        continue;
      }
      tokens[j] = token;
      flags[j] = fromEpoll(raw[i * W]!);
      j++;
    }
    return j;
  }

  notify(): void {
    const r = libc.write(this.efd, this.one);
    // EAGAIN: the counter is saturated, so a wake-up is already pending.
    if (r < 0 && r !== -EAGAIN) check(r, "write", "notify eventfd");
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.efd);
    libc.close(this.fd);
  }
}

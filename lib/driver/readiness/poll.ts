/**
 * The poll(2) backend: level-triggered poll() made to honour the edge-like Poller
 * contract. Portable (any POSIX system); on Linux it is the fallback that
 * `REEL_BACKEND=poll` forces so the same suites run on it.
 *
 * Emulating edges. Each registration keeps its *armed* interest. When an event for a
 * direction (read or write) is delivered, that direction is disarmed, so a level that
 * stays high is not reported again on every wait. The driver calls `rearm(fd, token,
 * interest)` whenever it clears readiness (an op hit EAGAIN, or a short read/write), which
 * arms the interest again: the next wait reports whatever is still (or newly) ready. The
 * driver re-arms the whole registered interest, not only the cleared direction, so a
 * direction that is still ready may be reported once more: a spurious event, harmless.
 *
 * Nothing armed. poll() reports POLLHUP, POLLERR and POLLNVAL even for `events == 0`, so
 * an fd whose directions are all disarmed would make every wait return at once while the
 * socket stays hung up: a busy loop. Such an fd is *parked*: its pollfd.fd is written as
 * `~fd` (negative), which poll() skips without reporting anything. This is safe because a
 * direction is only disarmed after its readiness was delivered: the driver holds those
 * bits (READ_CLOSED/WRITE_CLOSED/ERROR are final there) until an op clears them and
 * rearms, which un-parks the fd — a still-hung-up fd then reports once more. (mio's poll
 * selector instead drops an fd from its set after POLLHUP/POLLERR; parking keeps the
 * registration and its index, so deregister stays O(1) and uniform.)
 *
 * Layout. A dense pollfd array (ffi/poll.ts) with the notify pipe's read end at index 0
 * and an fd → index Map; per-index tokens and armed interest live in parallel arrays.
 * deregister swap-removes (O(1)). `notify()` writes a byte to a non-blocking self-pipe
 * (pipe2 on Linux/FreeBSD, pipe + fcntl on Darwin); wait() drains it and never reports it.
 *
 * Must never: report the notify pipe, deliver a disarmed direction, spin on a hung-up fd,
 * or retry EINTR (wait returns 0; the driver's turn simply turns again).
 * Must never import: lib/driver/uring/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import * as libc from "../../../ffi/libc.ts";
import * as pf from "../../../ffi/poll.ts";
import { SYS } from "../../../ffi/constants.ts";
import { EAGAIN, EBADF, EEXIST, EINTR } from "../../../ffi/errno.ts";
import { SysError, check } from "../../errors.ts";
import { Events, READABLE, WRITABLE, fromPoll, toPoll, type Interest } from "../events.ts";
import type { Poller } from "./poller.ts";

const CAPACITY = 1024;
/** Index of the notify pipe's read end in the pollfd array. */
const NOTIFY_INDEX = 0;

export { toPoll, fromPoll } from "../events.ts";

/**
 * A poll(2) set with its notify self-pipe.
 *
 * @example
 * ```ts
 * const p = new PollPoller();
 * p.register(fd, 7, READABLE);
 * const n = p.wait(100); // reports token 7 once fd is readable
 * // … read until EAGAIN, then:
 * p.rearm(fd, 7, READABLE);
 * p.close();
 * ```
 */
export class PollPoller implements Poller {
  readonly name = "poll";
  readonly events = new Events(CAPACITY);
  /** poll() has no pollable fd of its own. */
  readonly fd = -1;
  private readonly pfds = new pf.PollFds(64);
  /** Registered fd → its index in `pfds` (the notify pipe is not in the map). */
  private readonly index = new Map<number, number>();
  /** Per index: the real fd (pollfd.fd is ~fd while parked), token, armed interest. */
  private readonly fds: number[] = [];
  private readonly tokens: number[] = [];
  private readonly armed: number[] = [];
  private readonly wakeR: number;
  private readonly wakeW: number;
  private readonly drainBuf = new Uint8Array(new ArrayBuffer(64));
  private readonly one = new Uint8Array([1]);
  private closed = false;

  constructor() {
    const pair = new Int32Array(new ArrayBuffer(8));
    check(libc.pipe2(pair, SYS.O_NONBLOCK | SYS.O_CLOEXEC), "pipe2", "notify pipe");
    this.wakeR = pair[0]!;
    this.wakeW = pair[1]!;
    this.pfds.push(this.wakeR, pf.POLLIN);
    this.fds.push(this.wakeR);
    this.tokens.push(-1);
    this.armed.push(READABLE);
  }

  register(fd: number, token: number, interest: Interest): void {
    this.live();
    if (!Number.isInteger(fd) || fd < 0) throw new SysError(EBADF, "poll", undefined, `register fd ${fd}`);
    if (this.index.has(fd)) throw new SysError(EEXIST, "poll", undefined, `fd ${fd} is already registered`);
    const i = this.pfds.push(fd, 0);
    this.fds[i] = fd;
    this.index.set(fd, i);
    this.arm(i, token, interest);
  }

  rearm(fd: number, token: number, interest: Interest): void {
    const i = this.index.get(fd);
    // Not registered (already deregistered): nothing to resume.
    if (i !== undefined) this.arm(i, token, interest);
  }

  deregister(fd: number): void {
    const i = this.index.get(fd);
    // Unknown fd: already deregistered, as epoll's ENOENT — not an error.
    if (i === undefined) return;
    this.index.delete(fd);
    const from = this.pfds.swapRemove(i);
    if (from >= 0) {
      const moved = this.fds[from]!;
      this.fds[i] = moved;
      this.tokens[i] = this.tokens[from]!;
      this.armed[i] = this.armed[from]!;
      this.index.set(moved, i);
    }
    this.fds.length = this.tokens.length = this.armed.length = this.pfds.length;
  }

  wait(timeoutMs: number): number {
    this.live();
    const pfds = this.pfds;
    const n = pf.pollFds(pfds, timeoutMs);
    if (n < 0) {
      if (n === -EINTR) return 0;
      check(n, "poll");
    }
    if (n === 0) return 0;
    let left = n;
    if (pfds.revents(NOTIFY_INDEX) !== 0) {
      this.drain();
      left--;
    }
    return left > 0 ? this.collect(left) : 0;
  }

  notify(): void {
    this.live();
    const r = libc.write(this.wakeW, this.one);
    // EAGAIN: the pipe is full, so a wake-up is already pending.
    if (r < 0 && r !== -EAGAIN) check(r, "write", "notify pipe");
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.wakeR);
    libc.close(this.wakeW);
  }

  /** Number of registered fds (the notify pipe excluded). */
  get size(): number {
    return this.index.size;
  }

  /**
   * Copies up to `left` reported entries into `events`, disarming each delivered
   * direction. Entries past the Events capacity stay armed and are reported next wait.
   */
  private collect(left: number): number {
    const pfds = this.pfds;
    const { tokens, flags } = this.events;
    let j = 0;
    for (let i = 1; i < pfds.length && left > 0 && j < CAPACITY; i++) {
      const re = pfds.revents(i);
      if (re === 0) continue;
      left--;
      const f = fromPoll(re);
      if (f === 0) continue;
      tokens[j] = this.tokens[i]!;
      flags[j] = f;
      j++;
      this.arm(i, this.tokens[i]!, this.armed[i]! & ~(f & (READABLE | WRITABLE)));
    }
    return j;
  }

  /** Sets index i's token and armed interest; parks the entry when nothing is armed. */
  private arm(i: number, token: number, armed: number): void {
    const a = armed & (READABLE | WRITABLE);
    this.tokens[i] = token;
    this.armed[i] = a;
    const fd = this.fds[i]!;
    this.pfds.setEvents(i, toPoll(a));
    this.pfds.setFd(i, a === 0 ? ~fd : fd);
  }

  /** Empties the notify pipe (bounded: it holds at most the pipe buffer). */
  private drain(): void {
    for (let k = 0; k < 4096; k++) {
      const r = libc.read(this.wakeR, this.drainBuf);
      if (r < this.drainBuf.byteLength) return; // EAGAIN, error, or the last bytes
    }
  }

  private live(): void {
    if (this.closed) throw new Error("PollPoller used after close()");
  }
}

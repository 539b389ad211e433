/**
 * Bindings to poll(2) (Linux, macOS, FreeBSD), and the pollfd array it reads.
 *
 * `struct pollfd { int fd; short events; short revents; }` is 8 bytes on every platform
 * reel supports. {@link PollFds} keeps a dense array of them in one ArrayBuffer, read and
 * written through one Int32Array (fd at word 2i) and one Int16Array (events at half 4i+2,
 * revents at half 4i+3) made when the buffer is (re)allocated. The buffer grows by
 * doubling when it is full, never per call, and never shrinks.
 *
 * The bit values (POLLIN … POLLNVAL) are the same on Linux and the BSDs (poll.h);
 * POLLRDHUP exists only on Linux (0x2000, a GNU extension) and is 0 elsewhere, so or-ing it
 * into `events` is harmless there.
 *
 * Must never: throw (poll() returns a count or −errno), allocate per call, or keep the
 * array's pointer past the synchronous poll() that used it.
 * Must never import: lib/**
 */
import { dlopen } from "bun:ffi";
import { errno } from "./libc.ts";

export const POLLIN = 0x001;
export const POLLPRI = 0x002;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
/** Peer shut its write side (Linux only; 0 where the platform has no such bit). */
export const POLLRDHUP = process.platform === "linux" ? 0x2000 : 0;

/** sizeof(struct pollfd). */
export const POLLFD_SIZE = 8;

const LIBC =
  process.platform === "linux" ? "libc.so.6" : process.platform === "freebsd" ? "libc.so.7" : "libSystem.B.dylib";

// nfds_t is `unsigned long` in glibc and `unsigned int` on Darwin and FreeBSD.
const C = dlopen(LIBC, {
  poll: { args: ["ptr", process.platform === "linux" ? "u64" : "u32", "i32"], returns: "i32" },
}).symbols;

/**
 * A dense, growable array of struct pollfd.
 *
 * @example
 * ```ts
 * const fds = new PollFds();
 * const i = fds.push(pipeReadFd, POLLIN);
 * if (pollFds(fds, 100) > 0 && (fds.revents(i) & POLLIN) !== 0) console.log("readable");
 * ```
 */
export class PollFds {
  /** Number of entries in use; entries [0, length) are what poll() sees. */
  length = 0;
  /** fd of entry i at [2i]. */
  i32: Int32Array;
  /** events of entry i at [4i+2], revents at [4i+3]. */
  i16: Int16Array;

  constructor(capacity = 64) {
    const buf = new ArrayBuffer(Math.max(1, capacity) * POLLFD_SIZE);
    this.i32 = new Int32Array(buf);
    this.i16 = new Int16Array(buf);
  }

  /** How many entries fit before the buffer doubles. */
  get capacity(): number {
    return this.i32.length >> 1;
  }

  /** Appends an entry; returns its index. */
  push(fd: number, events: number): number {
    if (this.length === this.capacity) this.grow();
    const i = this.length++;
    this.i32[i * 2] = fd;
    this.i16[i * 4 + 2] = events;
    this.i16[i * 4 + 3] = 0;
    return i;
  }

  fd(i: number): number {
    return this.i32[i * 2]!;
  }

  setFd(i: number, fd: number): void {
    this.i32[i * 2] = fd;
  }

  events(i: number): number {
    return this.i16[i * 4 + 2]! & 0xffff;
  }

  setEvents(i: number, events: number): void {
    this.i16[i * 4 + 2] = events;
  }

  /** The kernel's answer for entry i after the last poll() (unsigned). */
  revents(i: number): number {
    return this.i16[i * 4 + 3]! & 0xffff;
  }

  /**
   * Removes entry i by moving the last entry into its place (O(1)); returns the index the
   * moved entry came from (== the old last index), or -1 when i was the last entry.
   */
  swapRemove(i: number): number {
    const last = --this.length;
    if (i === last) return -1;
    this.i32[i * 2] = this.i32[last * 2]!;
    this.i32[i * 2 + 1] = this.i32[last * 2 + 1]!; // events and revents together
    return last;
  }

  private grow(): void {
    const next = new ArrayBuffer(this.i32.byteLength * 2);
    new Int32Array(next).set(this.i32);
    this.i32 = new Int32Array(next);
    this.i16 = new Int16Array(next);
  }
}

/**
 * poll() over `fds[0, fds.length)`: the number of entries with revents ≠ 0, or −errno.
 * timeoutMs: -1 blocks, 0 returns at once, n > 0 waits at most n ms.
 *
 * @example
 * ```ts
 * const n = pollFds(fds, 0);
 * if (n === -EINTR) retry(); else if (n > 0) for (let i = 0; i < fds.length; i++) use(fds.revents(i));
 * ```
 */
export function pollFds(fds: PollFds, timeoutMs: number): number {
  // SAFETY: fds.i32 views an ArrayBuffer (not inline typed-array storage) that `fds` keeps
  // referenced; the kernel reads and writes it only during this synchronous call.
  const r = C.poll(fds.i32, fds.length, timeoutMs);
  return r < 0 ? -errno() : r;
}

/**
 * AsyncFd (tokio's name): readiness for any non-blocking fd the user has — an inotify
 * instance, a tty, a netlink socket, an eventfd, a pipe from elsewhere — so a task can
 * await `readable()` / `writable()` and then make its own syscall. It is the per-fd
 * interface's readiness half (IoFd.pollReady / clearReady) with nothing on top: epoll,
 * poll and kqueue report readiness directly; io_uring through its readiness bridge (a
 * multishot POLL_ADD per fd).
 *
 * The readiness-clearing rule reel uses inside: readiness stays set until an operation
 * hits EAGAIN; then the guard's `clearReady()` (or `tryIo` seeing −EAGAIN) clears it — but
 * only if no new event arrived since that readiness was observed, so a wake-up that came
 * meanwhile is never lost. Clearing when the fd is not drained means the next
 * `readable()` waits for a new event: call it only after EAGAIN.
 *
 * Ownership (the fd rule: one owner until close, and close is final): the AsyncFd owns the
 * fd from construction. `close()` deregisters and closes it; `intoInner()` deregisters it,
 * cancels reel's poll ops on it and gives the number back open — the caller owns it again
 * and closes it (tokio's `into_inner`). Until then the caller may read and write the fd
 * but must not close it: reel would deregister a number that may belong to someone else.
 *
 * Must never: close an fd after intoInner(), block, or consume data (it only waits).
 */
import { EAGAIN } from "../../ffi/errno.ts";
import { SYS } from "../../ffi/constants.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { currentDriverOrNull } from "../current.ts";
import { realSockets } from "../driver/sockets.ts";
import { DIR_READ, DIR_WRITE, closedError, type Direction } from "../driver/fd.ts";
import { ERROR, READ_CLOSED, WRITE_CLOSED } from "../driver/readiness/poller.ts";
import { SysError } from "../errors.ts";
import { IoSource } from "./source.ts";

/**
 * The readiness an AsyncFd reported: inspect it, do the I/O, and clear it after EAGAIN.
 *
 * @example
 * ```ts
 * const guard = yield* afd.readable();
 * const n = guard.tryIo((fd) => libc.read(fd, buf)); // null: it was not ready after all
 * ```
 */
export class AsyncFdReadyGuard {
  /** @internal */
  constructor(
    private readonly src: IoSource,
    private readonly dir: Direction,
    /** The readiness bits seen (lib/driver/registry.ts). */
    private readonly bits: number,
  ) {}

  /** The peer or the kernel closed this direction (EOF / hang-up). */
  get isClosed(): boolean {
    return (this.bits & (this.dir === DIR_READ ? READ_CLOSED : WRITE_CLOSED)) !== 0;
  }

  /** The fd reported an error condition (POLLERR / EV_ERROR). */
  get isError(): boolean {
    return (this.bits & ERROR) !== 0;
  }

  /** The I/O hit EAGAIN: forget this readiness, unless a newer event came meanwhile. */
  clearReady(): void {
    this.src.clearReady(this.dir);
  }

  /**
   * Runs `io(fd)`, a syscall wrapper returning its result (≥ 0) or −errno (reel's ffi
   * convention): the result; null after −EAGAIN (readiness is cleared: await again);
   * SysError for any other failure.
   */
  tryIo(io: (fd: number) => number): number | null {
    if (this.src.isClosed) throw closedError("tryIo");
    const r = io(this.src.fd);
    if (r >= 0) return r;
    if (r === -EAGAIN) {
      this.clearReady();
      return null;
    }
    throw new SysError(-r, "tryIo");
  }
}

/**
 * Readiness for a non-blocking fd the caller owns (see the module header for ownership).
 *
 * @example
 * ```ts
 * import { AsyncFd, blockOn } from "reel";
 * blockOn(function* () {
 *   const afd = new AsyncFd(fd);           // a non-blocking fd: inotify, eventfd, a tty…
 *   for (;;) {
 *     const guard = yield* afd.readable();
 *     const n = guard.tryIo((fd) => myRead(fd, buf)); // −errno convention
 *     if (n === null) continue;            // EAGAIN: readiness cleared, wait again
 *     if (n === 0) break;
 *   }
 *   afd.close();                            // or: const fd = afd.intoInner();
 * });
 * ```
 */
export class AsyncFd {
  private readonly src: IoSource;

  /** Takes ownership of `fd`, which must be open and non-blocking (O_NONBLOCK). */
  constructor(fd: number) {
    if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0) throw new TypeError(`Invalid fd ${String(fd)} for AsyncFd: expected an integer ≥ 0`);
    const flags = (currentDriverOrNull()?.sockets ?? realSockets).fdFlags(fd);
    if (flags < 0) throw new SysError(-flags, "fcntl", undefined, `AsyncFd(${fd})`);
    if ((flags & SYS.O_NONBLOCK) === 0) throw new TypeError(`AsyncFd(${fd}): the fd is in blocking mode; set O_NONBLOCK first (a blocking read would stall the runtime)`);
    this.src = new IoSource(fd);
  }

  /** The fd (-1 once closed or given back). */
  get fd(): number {
    return this.src.fd;
  }

  /** Waits until the fd is readable (or closed, or in error). Cancel-safe. */
  readable(): BaseFuture<AsyncFdReadyGuard> {
    return new Ready(this.src, DIR_READ);
  }

  /** Waits until the fd is writable (or closed, or in error). Cancel-safe. */
  writable(): BaseFuture<AsyncFdReadyGuard> {
    return new Ready(this.src, DIR_WRITE);
  }

  /**
   * Deregisters the fd and gives it back open: the caller owns it again (and closes it).
   * Pending readiness waits fail with EBADF. Throws EBADF if already closed or given back.
   */
  intoInner(): number {
    const fd = this.src.detach();
    if (fd < 0) throw closedError("intoInner", "fd");
    return fd;
  }

  /** Deregisters and closes the fd; pending waits fail with EBADF. Idempotent. */
  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A wait for one direction's readiness. */
class Ready extends BaseFuture<AsyncFdReadyGuard> {
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly src: IoSource,
    private readonly dir: Direction,
  ) {
    super();
  }

  poll(cx: Context): Poll<AsyncFdReadyGuard> {
    if (this.done) throw new FutureStateError(`${this.dir === DIR_READ ? "readable" : "writable"}() future polled after completion`);
    let r: Poll<number>;
    try {
      r = this.src.pollReady(cx, this.dir);
    } catch (e) {
      this.done = true;
      throw e;
    }
    if (r === PENDING) {
      this.waker = cx.waker;
      return PENDING;
    }
    this.done = true;
    this.waker = null;
    return new AsyncFdReadyGuard(this.src, this.dir, r);
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.src.dropWaker(this.dir, this.waker);
    this.waker = null;
  }
}

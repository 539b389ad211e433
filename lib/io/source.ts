/**
 * IoSource: the one owner of a socket's (or pipe's) fd above the driver. It holds the
 * number until the first operation binds it to the current runtime's driver, which hands
 * out the per-fd interface (lib/driver/fd.ts); from then on every op goes there. No code
 * above this line asks which backend it runs on.
 *
 * It adds what is the same on every backend: the coop budget (one unit per op), EBADF once
 * closed, and EFOREIGN when the fd is polled on a runtime other than the one it was bound
 * to (nothing there would ever wake it).
 *
 * Invariants: `fd` is a valid non-blocking fd owned by this source until `close()`, then
 * -1; after binding, the IoFd owns the number and `close()` is its close.
 *
 * Must never: block, close the number twice, or bind to a runtime other than the one
 * polling it.
 */
import { EINTR } from "../../ffi/errno.ts";
import { PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { currentDriver, currentDriverOrNull } from "../current.ts";
import { realSockets, type SocketApi } from "../driver/sockets.ts";
import { RuntimeError, SysError } from "../errors.ts";
import { proceed } from "../task/coop.ts";
import { NO_BUFS, SYSCALL, closedError, type Direction, type IoFd, type IoOp, type Msg, type MsgOp } from "../driver/fd.ts";

/**
 * A non-blocking fd and, once used, its per-fd interface.
 *
 * @example
 * ```ts
 * const src = new IoSource(fd);
 * // inside a future's poll:
 * const n = src.pollOp(cx, OP_READ, buf); // a byte count, or PENDING
 * src.close();
 * ```
 */
export class IoSource {
  private io: IoFd | null = null;
  /** Whose socket calls made the fd (the simulator's, or the kernel's): an unbound close goes there. */
  private readonly api: SocketApi = currentDriverOrNull()?.sockets ?? realSockets;

  constructor(
    /** A valid non-blocking fd owned by this source, or -1 once closed. */
    public fd: number,
    /** Passed to `driver.socket()` when bound: FD_DATAGRAM or 0 (lib/driver/fd.ts). */
    private readonly flags = 0,
  ) {}

  get isClosed(): boolean {
    return this.fd < 0;
  }

  /** The per-fd interface, bound on first use to the current runtime's driver. */
  private bound(syscall: string): IoFd {
    const io = this.io;
    if (io !== null) {
      // Bound to another (or a closed) runtime: nothing here would ever wake us.
      if (io.driver !== currentDriverOrNull()) throw foreignError(syscall);
      return io;
    }
    return (this.io = currentDriver().socket(this.fd, this.flags));
  }

  /**
   * Runs `op`: its result (≥ 0), or PENDING with the task's waker stored. Consumes one
   * unit of the coop budget.
   */
  pollOp(cx: Context, op: IoOp, buf: Uint8Array | null, bufs: readonly Uint8Array[] = NO_BUFS): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
    if (!proceed(cx)) return PENDING;
    return this.bound(SYSCALL[op]!).pollOp(cx, op, buf, bufs);
  }

  /**
   * Sends or receives up to `count` messages (see IoFd.pollMsg): how many moved, or
   * PENDING. Consumes one unit of the coop budget.
   */
  pollMsg(cx: Context, op: MsgOp, msgs: readonly Msg[], count: number, flags: number): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
    if (!proceed(cx)) return PENDING;
    return this.bound(SYSCALL[op]!).pollMsg(cx, op, msgs, count, flags);
  }

  /** The connect handshake (see IoFd.pollConnect). */
  pollConnect(cx: Context, sockaddr: Uint8Array, len: number, detail: string): Poll<void> {
    if (this.fd < 0) throw closedError("connect");
    return this.bound("connect").pollConnect(cx, sockaddr, len, detail);
  }

  /** Readiness alone (see IoFd.pollReady). */
  pollReady(cx: Context, dir: Direction): Poll<number> {
    if (this.fd < 0) throw closedError("poll");
    return this.bound("poll").pollReady(cx, dir);
  }

  /** Forgets the readiness the last pollReady saw for `dir` (after EAGAIN). */
  clearReady(dir: Direction): void {
    this.io?.clearReady(dir);
  }

  /** Forgets `waker` if a cancelled op left it (and cancels that op's in-flight work; `msgs`: a message op's array). */
  dropWaker(dir: Direction, waker: Waker | null, msgs?: readonly Msg[]): void {
    if (this.io !== null && waker !== null) this.io.dropWaker(dir, waker, msgs);
  }

  /**
   * Gives the fd back without closing it (see IoFd.detach): the caller owns the number
   * again. Waiting tasks fail with EBADF. -1 when already closed or detached.
   */
  detach(): number {
    const fd = this.fd;
    if (fd < 0) return -1;
    this.fd = -1;
    const io = this.io;
    return io !== null ? io.detach() : fd;
  }

  /** Closes the fd (through the driver once bound); idempotent. Waiting tasks fail with EBADF. */
  close(): void {
    const fd = this.fd;
    if (fd < 0) return;
    this.fd = -1;
    const io = this.io;
    if (io !== null) {
      io.close();
      return;
    }
    // Never bound: no driver holds it. The socket calls that made it close it — also outside
    // any runtime, or inside another: a simulated socket is not the kernel's.
    const r = this.api.close(fd);
    // EINTR on close still releases the fd on Linux and the BSDs: do not retry.
    if (r < 0 && r !== -EINTR) throw new SysError(-r, "close");
  }
}

/** The error for an op polled on a runtime other than the one its fd is bound to. */
function foreignError(syscall: string): RuntimeError {
  return new RuntimeError(
    `Cannot ${syscall}: this socket belongs to another reel runtime (or one that was closed); use it only on the runtime that first polled it`,
    "EFOREIGN",
  );
}

export { closedError };

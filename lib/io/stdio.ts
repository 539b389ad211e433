/**
 * The process's standard streams as reel streams: {@link stdin} (AsyncRead), {@link stdout}
 * and {@link stderr} (AsyncWrite).
 *
 * fds 0, 1 and 2 are shared with other processes — the terminal with the shell, a pipe
 * with the process at its other end, a file the shell opened — and O_NONBLOCK belongs to
 * the shared open file: setting it would change it under the parent shell (which then
 * fails its own reads with EAGAIN). reel never sets it. Each handle binds a close-on-exec
 * duplicate of the fd (same open file, flags untouched) to the running driver through
 * `driver.inherited()`, which reads and writes it with what works on a blocking fd:
 * io_uring ops on the uring backend (the kernel waits for a pipe or terminal itself, or
 * in an io-wq worker), and a Worker of its own on epoll, poll and kqueue
 * (lib/driver/readiness/shared.ts). Regular files (`< file`, `> file`) go the same way,
 * reading and writing at the file's shared position, as `cat` does.
 *
 * A handle is bound to one runtime at a time: used from another (or after its runtime
 * closed), it rebinds, and a runtime that closes closes its binding. `close()` closes the
 * duplicate, never fd 0/1/2 themselves.
 *
 * Cancel safety: a cancelled read loses no byte (the next read returns it); write is
 * cancel-safe only while its call has not started (a running write completes).
 *
 * Must never: set O_NONBLOCK on a descriptor it did not create, close fd 0, 1 or 2, or
 * block the thread.
 */
import * as libc from "../../ffi/libc.ts";
import * as proc from "../../ffi/process.ts";
import { PENDING, type BaseFuture, type Context, type Poll, type Waker } from "../future.ts";
import { currentDriver } from "../current.ts";
import { SysError } from "../errors.ts";
import { proceed } from "../task/coop.ts";
import { DIR_READ, DIR_WRITE, NO_BUFS, OP_READ, OP_WRITE, closedError, type IoFd } from "../driver/fd.ts";
import type { Driver } from "../driver/driver.ts";
import { emptyBuffer, read as readOp, readExact as readExactOp, write as writeOp, writeAll as writeAllOp } from "./stream.ts";

/** One standard fd, bound lazily (and per driver) as a duplicate through `driver.inherited()`. */
class StdioSource {
  private io: IoFd | null = null;
  private driver: Driver | null = null;
  private unhook: (() => void) | null = null;
  private closed = false;

  constructor(readonly target: 0 | 1 | 2) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** The IoFd for the running driver: the current binding, or a fresh duplicate. */
  private bound(): IoFd {
    const d = currentDriver();
    if (this.io !== null && this.driver === d && this.io.fd >= 0) return this.io;
    this.unbind();
    const fd = proc.dupAbove(this.target, 3);
    if (fd < 0) throw new SysError(-fd, "fcntl", undefined, `F_DUPFD_CLOEXEC of fd ${this.target}`);
    let io: IoFd;
    try {
      io = d.inherited(fd);
    } catch (err) {
      libc.close(fd); // never bound: nothing reel submitted names it
      throw err;
    }
    this.io = io;
    this.driver = d;
    this.unhook = d.atClose(() => this.unbind());
    return io;
  }

  /** Closes the binding (the duplicate); the handle stays usable and rebinds on its next op. */
  unbind(): void {
    const io = this.io;
    this.io = null;
    this.driver = null;
    const unhook = this.unhook;
    this.unhook = null;
    unhook?.();
    io?.close();
  }

  pollOp(cx: Context, op: typeof OP_READ | typeof OP_WRITE, buf: Uint8Array): Poll<number> {
    if (this.closed) throw closedError(op === OP_READ ? "read" : "write", "stream");
    if (!proceed(cx)) return PENDING;
    return this.bound().pollOp(cx, op, buf, NO_BUFS);
  }

  dropWaker(dir: typeof DIR_READ | typeof DIR_WRITE, waker: Waker): void {
    this.io?.dropWaker(dir, waker);
  }

  close(): void {
    this.closed = true;
    this.unbind();
  }
}

/**
 * The process's standard input as an AsyncRead (see the module header for how it is read
 * without touching the shared fd's flags).
 *
 * @example
 * ```ts
 * import { blockOn, stdin } from "reel";
 * blockOn(function* () {
 *   const input = stdin();
 *   const buf = new Uint8Array(4096);
 *   for (let n; (n = yield* input.read(buf)) > 0; ) console.log(`${n} bytes`);
 *   input.close();
 * });
 * ```
 */
export class Stdin {
  private readonly src = new StdioSource(0);

  /** Reads into `buf`: the count, 0 at end of input. Cancel-safe. */
  read(buf: Uint8Array): BaseFuture<number> {
    return readOp(this, buf);
  }

  /** Fills all of `buf`, or fails with UnexpectedEofError. Not cancel-safe. */
  readExact(buf: Uint8Array): BaseFuture<void> {
    return readExactOp(this, buf);
  }

  /** AsyncRead. */
  pollRead(cx: Context, buf: Uint8Array): Poll<number> {
    return buf.byteLength === 0 ? emptyBuffer(buf, "read") : this.src.pollOp(cx, OP_READ, buf);
  }

  /** AsyncRead: a read polled with `waker` was abandoned (its bytes go to the next read). */
  cancelRead(waker: Waker): void {
    this.src.dropWaker(DIR_READ, waker);
  }

  /** Closes this handle's duplicate of fd 0 (fd 0 itself stays open). Idempotent. */
  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Standard output or standard error as an AsyncWrite. Nothing is buffered in user space:
 * each write is one write(2) (wrap it in a BufWriter for many small writes).
 *
 * @example
 * ```ts
 * import { blockOn, stdout } from "reel";
 * blockOn(function* () {
 *   const out = stdout();
 *   yield* out.writeAll(new TextEncoder().encode("hello\n"));
 *   out.close();
 * });
 * ```
 */
export class StdWriter {
  private readonly src: StdioSource;

  /** @internal Use {@link stdout} or {@link stderr}. */
  constructor(target: 1 | 2) {
    this.src = new StdioSource(target);
  }

  /** Writes some of `buf`: the count. */
  write(buf: Uint8Array): BaseFuture<number> {
    return writeOp(this, buf);
  }

  /** Writes all of `buf`. Not cancel-safe. */
  writeAll(buf: Uint8Array): BaseFuture<void> {
    return writeAllOp(this, buf);
  }

  /** AsyncWrite. EPIPE once the reader of a pipe has gone (SIGPIPE is ignored under Bun). */
  pollWrite(cx: Context, buf: Uint8Array): Poll<number> {
    return buf.byteLength === 0 ? emptyBuffer(buf, "write") : this.src.pollOp(cx, OP_WRITE, buf);
  }

  /** AsyncWrite: nothing is buffered here. */
  pollFlush(_cx: Context): Poll<void> {
    if (this.src.isClosed) throw closedError("flush", "stream");
    return undefined;
  }

  /** AsyncWrite: closes this handle's duplicate (the fd itself stays open: the reader sees EOF when the process exits). */
  pollShutdown(_cx: Context): Poll<void> {
    this.close();
    return undefined;
  }

  /** AsyncWrite: a write polled with `waker` was abandoned. */
  cancelWrite(waker: Waker): void {
    this.src.dropWaker(DIR_WRITE, waker);
  }

  /** Closes this handle's duplicate (fd 1 or 2 itself stays open). Idempotent. */
  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A handle to the process's standard input (a fresh handle each call; each binds its own
 * duplicate of fd 0 on first use).
 *
 * @example
 * ```ts
 * const n = yield* stdin().read(buf);
 * ```
 */
export function stdin(): Stdin {
  return new Stdin();
}

/**
 * A handle to the process's standard output.
 *
 * @example
 * ```ts
 * yield* stdout().writeAll(new TextEncoder().encode("done\n"));
 * ```
 */
export function stdout(): StdWriter {
  return new StdWriter(1);
}

/**
 * A handle to the process's standard error.
 *
 * @example
 * ```ts
 * yield* stderr().writeAll(new TextEncoder().encode("warning\n"));
 * ```
 */
export function stderr(): StdWriter {
  return new StdWriter(2);
}

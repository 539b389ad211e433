/**
 * What every connected byte-stream socket shares (TCP and Unix streams), and what every
 * socket shares (listeners too): the fd's source, the local address, close; for streams,
 * the AsyncRead / AsyncWrite methods over the per-fd interface, one reused future of each
 * kind (read, write, writeAll, readExact: io/stream.ts's StreamOps), shutdown and the
 * peer's address. A subclass changes how it reads (a Unix stream reads through recvmsg,
 * so fds that arrive with bytes are kept) and what its close also releases.
 *
 * Invariants: every method checks the fd is still open before it touches the number
 * (closedError, EBADF); a zero-length buffer is 0 bytes, or a TypeError when it is empty
 * because its ArrayBuffer was detached (io/stream.ts emptyBuffer; never taken for EOF).
 *
 * Must never: block, or act on the fd's number after close().
 * Must never import: bun:ffi
 */
import { SYS } from "../../ffi/constants.ts";
import type { SocketAddr } from "../../ffi/sockaddr.ts";
import type { BaseFuture, Context, Poll, Waker } from "../future.ts";
import { DIR_READ, DIR_WRITE, OP_READ, OP_WRITE, closedError } from "../driver/fd.ts";
import { check } from "../errors.ts";
import type { IoSource } from "../io/source.ts";
import { StreamOps, emptyBuffer, type AsyncRead, type AsyncWrite } from "../io/stream.ts";
import { sockName, sockets } from "./socket.ts";

/**
 * How {@link StreamSocket.shutdown} closes the stream: one direction or both.
 *
 * @example
 * ```ts
 * const how: ShutdownHow = "write"; // send FIN, keep reading
 * stream.shutdown(how);
 * ```
 */
export type ShutdownHow = "read" | "write" | "both";

/**
 * The base of reel's sockets: the fd's source, its local address, and close (pending
 * operations then fail with EBADF; closing twice is a no-op).
 *
 * @example
 * ```ts
 * console.log(listener.localAddr.toString(), listener.fd);
 * listener.close();
 * ```
 */
export abstract class SocketBase {
  protected constructor(protected readonly src: IoSource) {}

  /** The bound address (with the real port when bound to port 0). */
  get localAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getsockname");
    return sockName(this.src.fd, false);
  }

  /** The socket's fd (-1 once closed). */
  get fd(): number {
    return this.src.fd;
  }

  /** Closes the fd and deregisters it; pending operations fail with EBADF. Idempotent. */
  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A connected byte-stream socket: read/write futures and the AsyncRead/AsyncWrite methods
 * every reel stream utility (BufReader, copy, Framed, split, web streams) takes.
 *
 * @example
 * ```ts
 * function* echo(s: StreamSocket) {
 *   const buf = new Uint8Array(16384);
 *   for (let n; (n = yield* s.read(buf)) > 0; ) yield* s.writeAll(buf.subarray(0, n));
 * }
 * ```
 */
export abstract class StreamSocket extends SocketBase implements AsyncRead, AsyncWrite {
  /** read/write/writeAll/readExact futures, reused once a `yield*` consumed them (io/stream.ts). */
  private readonly ops: StreamOps;

  protected constructor(src: IoSource) {
    super(src);
    this.ops = new StreamOps(this, this);
  }

  /** Reads into `buf`: the byte count, 0 at EOF (or for an empty buf). Cancel-safe. */
  read(buf: Uint8Array): BaseFuture<number> {
    return this.ops.read(buf);
  }

  /** Writes some of `buf`: the byte count (≥ 1 unless buf is empty). Cancel-safe (but see io_uring in the README). */
  write(buf: Uint8Array): BaseFuture<number> {
    return this.ops.write(buf);
  }

  /** Writes all of `buf`. Not cancel-safe: a cancelled writeAll may have written a prefix. */
  writeAll(buf: Uint8Array): BaseFuture<void> {
    return this.ops.writeAll(buf);
  }

  /** Fills all of `buf`, or fails with UnexpectedEofError. Not cancel-safe. */
  readExact(buf: Uint8Array): BaseFuture<void> {
    return this.ops.readExact(buf);
  }

  /** AsyncRead: one read attempt through the retry loop. */
  pollRead(cx: Context, buf: Uint8Array): Poll<number> {
    return buf.byteLength === 0 ? emptyBuffer(buf, "read") : this.src.pollOp(cx, OP_READ, buf);
  }

  /** AsyncWrite: one write attempt through the retry loop. */
  pollWrite(cx: Context, buf: Uint8Array): Poll<number> {
    return buf.byteLength === 0 ? emptyBuffer(buf, "write") : this.src.pollOp(cx, OP_WRITE, buf);
  }

  /** AsyncRead: a read polled with `waker` was abandoned (its io_uring op is cancelled). */
  cancelRead(waker: Waker): void {
    this.src.dropWaker(DIR_READ, waker);
  }

  /** AsyncWrite: a write polled with `waker` was abandoned (its io_uring op is cancelled). */
  cancelWrite(waker: Waker): void {
    this.src.dropWaker(DIR_WRITE, waker);
  }

  /** AsyncWrite: nothing is buffered in user space, so a flush is always done. */
  pollFlush(_cx: Context): Poll<void> {
    if (this.src.isClosed) throw closedError("flush");
    return undefined;
  }

  /** AsyncWrite: shuts down the write side (the peer reads EOF); the fd stays open. */
  pollShutdown(_cx: Context): Poll<void> {
    this.shutdown("write");
    return undefined;
  }

  /** Shuts down one direction or both; the fd stays open until close(). */
  shutdown(how: ShutdownHow = "write"): void {
    const h = how === "read" ? SYS.SHUT_RD : how === "write" ? SYS.SHUT_WR : how === "both" ? SYS.SHUT_RDWR : -1;
    if (h < 0) throw new TypeError(`Invalid shutdown direction "${String(how)}": expected "read", "write" or "both"`);
    if (this.src.isClosed) throw closedError("shutdown");
    check(sockets().shutdown(this.src.fd, h), "shutdown");
  }

  /** The peer's address. */
  get peerAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getpeername");
    return sockName(this.src.fd, true);
  }
}

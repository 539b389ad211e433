/**
 * Anonymous pipes as reel streams: {@link pipe} makes a fresh pipe, both ends non-blocking
 * and close-on-exec (reel's own, shared with nobody, so O_NONBLOCK is safe), and hands
 * them out as a {@link PipeReader} (AsyncRead) and a {@link PipeWriter} (AsyncWrite). A
 * child process's piped stdio (lib/process) is made of the same two types.
 *
 * Both sit on an IoSource (io/source.ts): the per-fd interface of the current driver,
 * readiness retry loop or io_uring ops, with the coop budget and EBADF after close.
 * Writes go out as writev(2) of one buffer: the readiness backends' plain write op is a
 * send(2) with MSG_NOSIGNAL, which a pipe refuses (ENOTSOCK); writev behaves on both, and
 * SIGPIPE is ignored by Bun, so a write to a pipe whose reader has gone fails with EPIPE.
 *
 * Cancel safety: read is cancel-safe (no byte is lost); write is cancel-safe on the
 * readiness backends and, as for sockets, not on io_uring; writeAll/readExact are not.
 *
 * Must never: block, leak an end on an error, or write to a pipe after close().
 */
import { SYS } from "../../ffi/constants.ts";
import * as libc from "../../ffi/libc.ts";
import type { BaseFuture, Context, Poll, Waker } from "../future.ts";
import { DIR_READ, DIR_WRITE, OP_READ, OP_WRITEV, closedError } from "../driver/fd.ts";
import { SysError } from "../errors.ts";
import { IoSource } from "./source.ts";
import { currentDriverOrNull } from "../current.ts";
import { emptyBuffer, read as readOp, readExact as readExactOp, write as writeOp, writeAll as writeAllOp } from "./stream.ts";

/**
 * The read end of a pipe: an AsyncRead.
 *
 * @example
 * ```ts
 * import { blockOn, pipe } from "reel";
 * blockOn(function* () {
 *   const [r, w] = pipe();
 *   yield* w.writeAll(new TextEncoder().encode("hi"));
 *   w.close();
 *   const buf = new Uint8Array(16);
 *   const n = yield* r.read(buf); // 2
 *   r.close();
 * });
 * ```
 */
export class PipeReader {
  /** @internal Use {@link pipe} (or a child's stdout/stderr). */
  constructor(protected readonly src: IoSource) {}

  /** Wraps `fd`, a non-blocking pipe read end this object then owns. */
  static fromFd(fd: number): PipeReader {
    return new PipeReader(new IoSource(fd));
  }

  /** The fd (-1 once closed). */
  get fd(): number {
    return this.src.fd;
  }

  /** Reads into `buf`: the count, 0 at EOF (every writer closed). Cancel-safe. */
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

  /** AsyncRead: a read polled with `waker` was abandoned. */
  cancelRead(waker: Waker): void {
    this.src.dropWaker(DIR_READ, waker);
  }

  /** Closes the read end; pending reads fail with EBADF. Idempotent. */
  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The write end of a pipe: an AsyncWrite. Closing it (or `shutdown()`) is how the reader
 * sees EOF.
 *
 * @example
 * ```ts
 * const [r, w] = pipe();
 * yield* w.writeAll(bytes);
 * w.close(); // r reads EOF after the bytes
 * ```
 */
export class PipeWriter {
  /** One-element buffer list for writev, reused by every poll. */
  private readonly one: Uint8Array[] = [new Uint8Array(0)];

  /** @internal Use {@link pipe} (or a child's stdin). */
  constructor(protected readonly src: IoSource) {}

  /** Wraps `fd`, a non-blocking pipe write end this object then owns. */
  static fromFd(fd: number): PipeWriter {
    return new PipeWriter(new IoSource(fd));
  }

  /** The fd (-1 once closed). */
  get fd(): number {
    return this.src.fd;
  }

  /** Writes some of `buf`: the count (≥ 1 unless buf is empty). */
  write(buf: Uint8Array): BaseFuture<number> {
    return writeOp(this, buf);
  }

  /** Writes all of `buf`. Not cancel-safe. */
  writeAll(buf: Uint8Array): BaseFuture<void> {
    return writeAllOp(this, buf);
  }

  /** AsyncWrite: one writev of `buf`. EPIPE once the reader has gone. */
  pollWrite(cx: Context, buf: Uint8Array): Poll<number> {
    if (buf.byteLength === 0) return emptyBuffer(buf, "write");
    this.one[0] = buf;
    try {
      return this.src.pollOp(cx, OP_WRITEV, null, this.one);
    } finally {
      this.one[0] = EMPTY;
    }
  }

  /** AsyncWrite: nothing is buffered in user space. */
  pollFlush(_cx: Context): Poll<void> {
    if (this.src.isClosed) throw closedError("flush", "pipe");
    return undefined;
  }

  /** AsyncWrite: closes the write end (the reader sees EOF). */
  pollShutdown(_cx: Context): Poll<void> {
    this.close();
    return undefined;
  }

  /** AsyncWrite: a write polled with `waker` was abandoned. */
  cancelWrite(waker: Waker): void {
    this.src.dropWaker(DIR_WRITE, waker);
  }

  /** Closes the write end; the reader sees EOF once every writer closed. Idempotent. */
  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

const EMPTY = new Uint8Array(0);

/**
 * A fresh pipe: `[reader, writer]`, both non-blocking and close-on-exec. Throws SysError
 * (EMFILE…) when the process is out of descriptors.
 *
 * @example
 * ```ts
 * import { blockOn, copy, pipe, spawn } from "reel";
 * blockOn(function* () {
 *   const [r, w] = pipe();
 *   spawn(function* () { yield* w.writeAll(new TextEncoder().encode("through a pipe\n")); w.close(); });
 *   const buf = new Uint8Array(64);
 *   const n = yield* r.read(buf);
 *   r.close();
 * });
 * ```
 */
export function pipe(): [PipeReader, PipeWriter] {
  currentDriverOrNull()?.requireOs("Pipes are"); // a simulation has sockets only
  const fds = new Int32Array(new ArrayBuffer(8));
  const r = libc.pipe2(fds, SYS.O_NONBLOCK | SYS.O_CLOEXEC);
  if (r < 0) throw new SysError(-r, "pipe2");
  return [PipeReader.fromFd(fds[0]!), PipeWriter.fromFd(fds[1]!)];
}

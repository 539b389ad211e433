/**
 * The byte-stream contracts, AsyncRead and AsyncWrite (tokio's traits, as interfaces), and
 * the generic futures over them: read, write, writeAll, readExact, flush, shutdown.
 *
 * Contracts (TcpStream, BufReader, BufWriter, the split halves all keep them):
 * - `pollRead(cx, buf)` reads into `buf`: n ≥ 1 bytes, 0 at end of stream (or for an empty
 *   `buf`), or PENDING with `cx.waker` stored where it will fire. Bytes are consumed only in
 *   the poll that reports them, so abandoning a pending read loses nothing.
 * - `pollWrite(cx, buf)` accepts n ≥ 1 bytes of `buf` (0 only for an empty `buf`) or PENDING.
 *   A writer that returns 0 for a non-empty buf can take no more: {@link WriteZeroError}.
 * - `pollFlush(cx)` completes when everything accepted has reached the underlying object.
 * - `pollShutdown(cx)` flushes, then closes the write direction (the peer reads EOF).
 * - Errors are thrown from the poll methods; one reader and one writer at a time (two tasks
 *   polling the same direction overwrite each other's waker, as tokio's ScheduledIo does).
 * - Optional `cancelRead(waker)` / `cancelWrite(waker)`: a future that polled this object
 *   with `waker` was abandoned while pending. A resource with work in flight for it (an
 *   io_uring op) takes it back here; the futures below call them on cancel.
 * - A buffer detached while its op is pending reads as length 0: the futures below fail
 *   with a TypeError then, never a false EOF or a short write.
 *
 * Cancel-safety of the futures here: `read`, `write`, `flush` and `shutdown` are cancel-safe
 * (cancelling loses no data: a flush or shutdown can simply be started again); `writeAll`
 * and `readExact` are not — a prefix may have moved when they are cancelled. Cancelling
 * leaves at most a stale waker in the resource, which costs one spurious wake-up.
 *
 * Must never: allocate per poll, or turn EOF into an error except where the caller asked
 * for an exact count (readExact → UnexpectedEofError).
 * Must never import: lib/driver/**, lib/net/**, lib/fs/**, lib/interop/**, lib/executor.ts
 * Must never import: ffi/**, bun:ffi
 */
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { UnexpectedEofError, checkBuffer } from "../errors.ts";

/**
 * A source of bytes polled by a task. See the module header for the contract.
 *
 * @example
 * ```ts
 * import { PENDING, type AsyncRead, type Context, type Poll } from "reel";
 * class Zeros implements AsyncRead {
 *   pollRead(_cx: Context, buf: Uint8Array): Poll<number> { buf.fill(0); return buf.length; }
 * }
 * ```
 */
export interface AsyncRead {
  pollRead(cx: Context, buf: Uint8Array): Poll<number>;
  /** A read polled with `waker` was abandoned while pending (see the module header). */
  cancelRead?(waker: Waker): void;
}

/**
 * A sink of bytes polled by a task. See the module header for the contract.
 *
 * @example
 * ```ts
 * import type { AsyncWrite, Context, Poll } from "reel";
 * class Discard implements AsyncWrite {
 *   pollWrite(_cx: Context, buf: Uint8Array): Poll<number> { return buf.length; }
 *   pollFlush(_cx: Context): Poll<void> { return undefined; }
 *   pollShutdown(_cx: Context): Poll<void> { return undefined; }
 * }
 * ```
 */
export interface AsyncWrite {
  pollWrite(cx: Context, buf: Uint8Array): Poll<number>;
  pollFlush(cx: Context): Poll<void>;
  pollShutdown(cx: Context): Poll<void>;
  /** A write polled with `waker` was abandoned while pending (see the module header). */
  cancelWrite?(waker: Waker): void;
}

/**
 * A writer accepted 0 bytes of a non-empty buffer: it can take no more (tokio's WriteZero).
 *
 * @example
 * ```ts
 * try { yield* writeAll(w, bytes); }
 * catch (e) { if (e instanceof WriteZeroError) console.log(`stuck after ${e.written} bytes`); }
 * ```
 */
export class WriteZeroError extends Error {
  override name = "WriteZeroError";
  readonly code = "EWRITEZERO";
  constructor(readonly written: number) {
    super(`The writer accepted no more bytes after ${written}`);
  }
}

/**
 * A frame, line or buffered item grew past its limit (a codec's max frame length, a
 * BufReader's max line). `.length` is the size seen (or announced), `.max` the limit.
 *
 * @example
 * ```ts
 * try { line = yield* lines.next(); }
 * catch (e) { if (e instanceof FrameTooLargeError) yield* lines.send(`too long (max ${e.max})`); }
 * ```
 */
export class FrameTooLargeError extends Error {
  override name = "FrameTooLargeError";
  readonly code = "EMSGSIZE";
  constructor(
    readonly length: number,
    readonly max: number,
    what = "frame",
  ) {
    super(`The ${what} is ${length} bytes or more, over the limit of ${max}`);
  }
}

const READ = 0;
const WRITE = 1;
const FLUSH = 2;
const SHUTDOWN = 3;
const WRITE_ALL = 4;
const READ_EXACT = 5;

const OP_NAMES = ["read", "write", "flush", "shutdown", "writeAll", "readExact"];

/** True when `buf`'s ArrayBuffer was detached (transferred). */
function isDetached(buf: Uint8Array): boolean {
  return (buf.buffer as ArrayBuffer).detached;
}

/** The TypeError for a buffer that is empty because its ArrayBuffer was detached. */
function detachedError(what: "read" | "write"): TypeError {
  return new TypeError(`The ${what} buffer is detached (its ArrayBuffer was transferred)`);
}

/**
 * A zero-length buffer's result for an AsyncRead/AsyncWrite poll: 0, or a TypeError when
 * it is empty because its ArrayBuffer was detached (transferred) — never taken for EOF.
 *
 * @example
 * ```ts
 * pollRead(cx, buf) { return buf.byteLength === 0 ? emptyBuffer(buf, "read") : this.src.pollOp(cx, OP_READ, buf); }
 * ```
 */
export function emptyBuffer(buf: Uint8Array, what: "read" | "write"): 0 {
  if (isDetached(buf)) throw detachedError(what);
  return 0;
}

/** One of the generic ops, named by a small integer so a poll allocates nothing. */
export class IoOp<T> extends BaseFuture<T> {
  private off = 0;
  private done = false;
  /** The waker of the last poll that returned PENDING (given back on cancel). */
  private waker: Waker | null = null;
  constructor(
    private readonly op: number,
    private readonly r: AsyncRead | null,
    private readonly w: AsyncWrite | null,
    private buf: Uint8Array | null,
  ) {
    super();
  }

  /**
   * Rearms this op for `buf` when a `yield*` consumed its result (BaseFuture.consumed):
   * the stream that made it hands it out again instead of allocating. False otherwise.
   */
  reuse(buf: Uint8Array): boolean {
    if (!this.done || !this.consumed) return false;
    this.buf = buf;
    this.off = 0;
    this.done = false;
    this.waker = null;
    this.rearm();
    return true;
  }

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError(`${OP_NAMES[this.op]}() future polled after completion`);
    const buf = this.buf;
    if (buf !== null && buf.byteLength === 0 && isDetached(buf)) {
      this.cancel();
      throw detachedError(this.op === READ || this.op === READ_EXACT ? "read" : "write");
    }
    let v: Poll<unknown>;
    try {
      v = this.step(cx);
    } catch (err) {
      this.done = true;
      this.waker = null;
      throw err;
    }
    if (v === PENDING) {
      this.waker = cx.waker;
      return PENDING;
    }
    this.done = true;
    this.waker = null;
    return v as T;
  }

  private step(cx: Context): Poll<unknown> {
    switch (this.op) {
      case READ:
        return this.r!.pollRead(cx, this.buf!);
      case WRITE:
        return this.w!.pollWrite(cx, this.buf!);
      case FLUSH:
        return this.w!.pollFlush(cx);
      case SHUTDOWN:
        return this.w!.pollShutdown(cx);
      default:
        return this.exact(cx);
    }
  }

  /** writeAll / readExact: single ops until the buffer is done. */
  private exact(cx: Context): Poll<void> {
    const buf = this.buf!;
    const len = buf.byteLength;
    while (this.off < len) {
      const rest = this.off === 0 ? buf : buf.subarray(this.off);
      const n = this.op === WRITE_ALL ? this.w!.pollWrite(cx, rest) : this.r!.pollRead(cx, rest);
      if (n === PENDING) return PENDING;
      if (n === 0) {
        this.done = true;
        if (this.op === WRITE_ALL) throw new WriteZeroError(this.off);
        throw new UnexpectedEofError(this.off, len);
      }
      this.off += n;
    }
    return undefined;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    const w = this.waker;
    this.waker = null;
    if (w === null) return;
    if (this.op === READ || this.op === READ_EXACT) this.r!.cancelRead?.(w);
    else this.w!.cancelWrite?.(w);
  }
}

/**
 * Reads into `buf` from any AsyncRead: the byte count, 0 at EOF. Cancel-safe.
 *
 * @example
 * ```ts
 * import { read } from "reel";
 * const n = yield* read(bufReader, new Uint8Array(4096));
 * ```
 */
export function read(r: AsyncRead, buf: Uint8Array): BaseFuture<number> {
  checkBuffer(buf, "read() buffer");
  return new IoOp<number>(READ, r, null, buf);
}

/**
 * Writes some of `buf` to any AsyncWrite: the count accepted. Cancel-safe.
 *
 * @example
 * ```ts
 * const n = yield* write(bufWriter, bytes);
 * ```
 */
export function write(w: AsyncWrite, buf: Uint8Array): BaseFuture<number> {
  checkBuffer(buf, "write() buffer");
  return new IoOp<number>(WRITE, null, w, buf);
}

/**
 * Writes all of `buf`; WriteZeroError if the writer stops accepting. Not cancel-safe.
 *
 * @example
 * ```ts
 * yield* writeAll(bufWriter, new TextEncoder().encode("hello\n"));
 * ```
 */
export function writeAll(w: AsyncWrite, buf: Uint8Array): BaseFuture<void> {
  checkBuffer(buf, "writeAll() buffer");
  return new IoOp<void>(WRITE_ALL, null, w, buf);
}

/**
 * Fills all of `buf`; UnexpectedEofError if the stream ends first. Not cancel-safe.
 *
 * @example
 * ```ts
 * const header = new Uint8Array(4);
 * yield* readExact(stream, header);
 * ```
 */
export function readExact(r: AsyncRead, buf: Uint8Array): BaseFuture<void> {
  checkBuffer(buf, "readExact() buffer");
  return new IoOp<void>(READ_EXACT, r, null, buf);
}

/**
 * Completes when everything written has reached the underlying object. Cancel-safe.
 *
 * @example
 * ```ts
 * yield* flush(bufWriter);
 * ```
 */
export function flush(w: AsyncWrite): BaseFuture<void> {
  return new IoOp<void>(FLUSH, null, w, null);
}

/**
 * Flushes, then closes the write direction: the peer reads EOF. Cancel-safe.
 *
 * @example
 * ```ts
 * yield* shutdown(bufWriter); // flushes the buffer, then shuts the socket's write side
 * ```
 */
export function shutdown(w: AsyncWrite): BaseFuture<void> {
  return new IoOp<void>(SHUTDOWN, null, w, null);
}

/**
 * True when `x` has the AsyncRead shape.
 *
 * @example
 * ```ts
 * if (isAsyncRead(x)) yield* read(x, buf);
 * ```
 */
export function isAsyncRead(x: unknown): x is AsyncRead {
  return typeof x === "object" && x !== null && typeof (x as AsyncRead).pollRead === "function";
}

/**
 * True when `x` has the AsyncWrite shape.
 *
 * @example
 * ```ts
 * if (isAsyncWrite(x)) yield* flush(x);
 * ```
 */
export function isAsyncWrite(x: unknown): x is AsyncWrite {
  return typeof x === "object" && x !== null && typeof (x as AsyncWrite).pollWrite === "function" &&
    typeof (x as AsyncWrite).pollFlush === "function" && typeof (x as AsyncWrite).pollShutdown === "function";
}

/**
 * @internal The four ops of one stream, each reusing the stream's last op of its kind once
 * a `yield*` consumed it (so `yield* stream.read(buf)` allocates nothing per call). A
 * stream keeps one of these; do not keep an op past its `yield*`.
 *
 * @example
 * ```ts
 * private readonly ops = new StreamOps(this, this);
 * read(buf: Uint8Array) { return this.ops.read(buf); }
 * ```
 */
export class StreamOps {
  private rd: IoOp<number> | null = null;
  private wr: IoOp<number> | null = null;
  private wa: IoOp<void> | null = null;
  private re: IoOp<void> | null = null;
  constructor(
    private readonly r: AsyncRead,
    private readonly w: AsyncWrite,
  ) {}

  read(buf: Uint8Array): IoOp<number> {
    checkBuffer(buf, "read() buffer");
    const o = this.rd;
    return o !== null && o.reuse(buf) ? o : (this.rd = new IoOp<number>(READ, this.r, null, buf));
  }

  write(buf: Uint8Array): IoOp<number> {
    checkBuffer(buf, "write() buffer");
    const o = this.wr;
    return o !== null && o.reuse(buf) ? o : (this.wr = new IoOp<number>(WRITE, null, this.w, buf));
  }

  writeAll(buf: Uint8Array): IoOp<void> {
    checkBuffer(buf, "writeAll() buffer");
    const o = this.wa;
    return o !== null && o.reuse(buf) ? o : (this.wa = new IoOp<void>(WRITE_ALL, null, this.w, buf));
  }

  readExact(buf: Uint8Array): IoOp<void> {
    checkBuffer(buf, "readExact() buffer");
    const o = this.re;
    return o !== null && o.reuse(buf) ? o : (this.re = new IoOp<void>(READ_EXACT, this.r, null, buf));
  }
}

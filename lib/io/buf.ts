/**
 * Buffered I/O: BufReader (readLine, readUntil, fillBuf/consume) and BufWriter (batches
 * small writes; flush). Both keep the AsyncRead/AsyncWrite contracts, so they stack.
 *
 * Cancel-safety, per operation (decided here, as tokio documents its own):
 * - BufReader `read`, `readUntil`, `readLine`: cancel-safe. Bytes stay in the reader's
 *   buffer until the delimiter is found, so a cancelled readLine (under `timeout`, or a
 *   `select`) loses nothing: the next call sees the partial line again. (tokio's
 *   `read_line` is not cancel-safe; this is possible here because the buffer, not the
 *   caller's string, holds the partial line — at the cost of the buffer growing to the
 *   longest line, bounded by `maxLength`.)
 * - BufWriter `write`: cancel-safe (bytes are taken only in the poll that reports them).
 *   `flush`/`shutdown`: cancel-safe (what was not written stays buffered; call again).
 *   `writeAll`: not cancel-safe (a prefix may have been buffered or written).
 *
 * Over-long lines: readUntil/readLine throw {@link FrameTooLargeError} once more than
 * `maxLength` bytes arrive without the delimiter; the bytes seen are discarded, and so is
 * the rest of that line when it arrives, so the next call returns the next whole line.
 *
 * Must never: read from the inner stream while buffered bytes can satisfy the caller, or
 * grow past `maxLength` + one read.
 * Must never import: lib/driver/**, lib/net/**, lib/fs/**, lib/interop/**, lib/executor.ts
 * Must never import: ffi/**, bun:ffi
 */
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { checkBuffer } from "../errors.ts";
import { ByteBuffer } from "./bytes.ts";
import { FrameTooLargeError, WriteZeroError, flush, read, shutdown, write, writeAll, type AsyncRead, type AsyncWrite } from "./stream.ts";

/**
 * Default buffer size of BufReader/BufWriter (tokio's is 8 KiB).
 *
 * @example
 * ```ts
 * import { BufReader, DEFAULT_BUF_SIZE, type TcpStream } from "reel";
 * const bulkReader = (stream: TcpStream) => new BufReader(stream, { capacity: 8 * DEFAULT_BUF_SIZE });
 * ```
 */
export const DEFAULT_BUF_SIZE = 8192;
/**
 * Default longest line (or readUntil segment) a BufReader accepts: 64 KiB.
 *
 * @example
 * ```ts
 * import { BufReader, DEFAULT_MAX_LINE, type TcpStream } from "reel";
 * // Lines up to twice the default before FrameTooLargeError.
 * const reader = (stream: TcpStream) => new BufReader(stream, { maxLength: 2 * DEFAULT_MAX_LINE });
 * ```
 */
export const DEFAULT_MAX_LINE = 64 * 1024;

const NEWLINE = 0x0a;
const CR = 0x0d;
const utf8 = new TextDecoder();

/**
 * Options for {@link BufReader}.
 *
 * @example
 * ```ts
 * import { BufReader, type TcpStream } from "reel";
 * function* printLines(stream: TcpStream) {
 *   // 64 KiB per read; a line over 1 MiB throws FrameTooLargeError and is skipped.
 *   const reader = new BufReader(stream, { capacity: 64 * 1024, maxLength: 1 << 20 });
 *   for (let line; (line = yield* reader.readLine()) !== null; ) console.log(line);
 * }
 * ```
 */
export interface BufReaderOptions {
  /** Bytes read from the inner stream at a time; default 8 KiB. */
  capacity?: number;
  /** Longest segment readUntil/readLine accept; default 64 KiB. */
  maxLength?: number;
}

/**
 * Buffers reads from an AsyncRead.
 *
 * @example
 * ```ts
 * import { BufReader, TcpStream, blockOn } from "reel";
 * blockOn(function* () {
 *   const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: 7000 });
 *   const r = new BufReader(s);
 *   let line: string | null;
 *   while ((line = yield* r.readLine()) !== null) console.log(line);
 *   s.close();
 * });
 * ```
 */
export class BufReader<R extends AsyncRead = AsyncRead> implements AsyncRead {
  /** @internal The buffered bytes (the live ones are not yet consumed). */
  readonly buf: ByteBuffer;
  readonly maxLength: number;
  /** A delimiter whose over-long segment is being discarded, or -1. */
  private skipTo = -1;
  private readonly chunk: number;

  constructor(
    readonly inner: R,
    options: BufReaderOptions = {},
  ) {
    this.chunk = options.capacity ?? DEFAULT_BUF_SIZE;
    this.buf = new ByteBuffer(this.chunk);
    this.maxLength = options.maxLength ?? DEFAULT_MAX_LINE;
    if (!Number.isInteger(this.maxLength) || this.maxLength < 1) throw new RangeError(`Invalid maxLength ${this.maxLength}: must be an integer ≥ 1`);
  }

  /** The bytes read from the inner stream and not consumed yet (a view). */
  get buffer(): Uint8Array {
    return this.buf.view();
  }

  /**
   * Reads once from the inner stream, appending to the buffer: the count, 0 at EOF, or
   * PENDING. Used by the line futures and by pollFillBuf.
   */
  pollFillMore(cx: Context): Poll<number> {
    const n = this.inner.pollRead(cx, this.buf.spare(this.chunk));
    if (n === PENDING) return PENDING;
    this.buf.commit(n);
    return n;
  }

  /** The buffered bytes, reading once if there are none: empty at EOF. Then `consume(n)`. */
  pollFillBuf(cx: Context): Poll<Uint8Array> {
    if (this.buf.length === 0 && this.pollFillMore(cx) === PENDING) return PENDING;
    return this.buf.view();
  }

  /** Marks `n` buffered bytes as used. */
  consume(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.buf.length) throw new RangeError(`Cannot consume ${n} bytes: ${this.buf.length} are buffered`);
    this.buf.consume(n);
  }

  /** AsyncRead: an abandoned read's waker goes back to the inner stream (see io/stream.ts). */
  cancelRead(waker: Waker): void {
    this.inner.cancelRead?.(waker);
  }

  /** AsyncRead: from the buffer, or straight from the inner stream for big reads on an empty buffer. */
  pollRead(cx: Context, out: Uint8Array): Poll<number> {
    if (out.byteLength === 0) return 0;
    if (this.buf.length === 0 && out.byteLength >= this.chunk) return this.inner.pollRead(cx, out);
    if (this.pollFillBuf(cx) === PENDING) return PENDING;
    const b = this.buf;
    const n = b.length < out.byteLength ? b.length : out.byteLength;
    out.set(b.data.subarray(b.start, b.start + n));
    b.consume(n);
    return n;
  }

  /** Reads into `out`: the count, 0 at EOF. Cancel-safe. */
  read(out: Uint8Array): BaseFuture<number> {
    return read(this, out);
  }

  /**
   * Reads through the next `delim` byte: the bytes including it; at EOF, what is left
   * (without a delimiter), then null. Cancel-safe. FrameTooLargeError past `maxLength`.
   */
  readUntil(delim: number, maxLength = this.maxLength): BaseFuture<Uint8Array | null> {
    if (!Number.isInteger(delim) || delim < 0 || delim > 255) throw new RangeError(`Invalid delimiter ${delim}: must be a byte 0-255`);
    return new ReadUntil<Uint8Array>(this, delim, maxLength, false);
  }

  /**
   * Reads the next line, without its "\n" or "\r\n", decoded as UTF-8; at EOF the last
   * unterminated line, then null. Cancel-safe. FrameTooLargeError past `maxLength`.
   */
  readLine(maxLength = this.maxLength): BaseFuture<string | null> {
    return new ReadUntil<string>(this, NEWLINE, maxLength, true);
  }

  /** @internal Discards what is buffered of an over-long segment; true when its end was found. */
  skipOverlong(delim: number): boolean {
    if (this.skipTo !== delim) return true;
    const i = this.buf.indexOf(delim);
    if (i < 0) {
      this.buf.clear();
      return false;
    }
    this.buf.consume(i + 1);
    this.skipTo = -1;
    return true;
  }

  /** @internal Starts discarding an over-long segment up to `delim`. */
  startSkip(delim: number): void {
    this.buf.clear();
    this.skipTo = delim;
  }
}

/** readUntil / readLine: scans the buffer, reading more until the delimiter or EOF. */
class ReadUntil<T extends Uint8Array | string> extends BaseFuture<T | null> {
  private scanned = 0;
  private done = false;
  private waker: Waker | null = null;
  constructor(
    private readonly r: BufReader,
    private readonly delim: number,
    private readonly max: number,
    private readonly text: boolean,
  ) {
    super();
  }

  poll(cx: Context): Poll<T | null> {
    if (this.done) throw new FutureStateError("readUntil()/readLine() future polled after completion");
    const b = this.r.buf;
    for (;;) {
      if (this.r.skipOverlong(this.delim)) {
        const i = b.indexOf(this.delim, this.scanned);
        if (i >= 0) return this.finish(i + 1, true);
        this.scanned = b.length;
        if (b.length > this.max) {
          const seen = b.length;
          this.done = true;
          this.r.startSkip(this.delim);
          throw new FrameTooLargeError(seen, this.max, this.text ? "line" : "segment");
        }
      }
      const n = this.r.pollFillMore(cx);
      if (n === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      if (n === 0) return this.finish(b.length, false);
    }
  }

  /** Takes `n` bytes off the buffer (or null at a clean EOF). */
  private finish(n: number, delimited: boolean): T | null {
    this.done = true;
    if (n === 0) return null;
    if (n - (delimited ? 1 : 0) > this.max) {
      this.r.consume(n);
      throw new FrameTooLargeError(n, this.max, this.text ? "line" : "segment");
    }
    const b = this.r.buf;
    if (!this.text) return b.take(n) as T;
    let end = delimited ? n - 1 : n;
    if (delimited && end > 0 && b.at(end - 1) === CR) end--;
    const line = utf8.decode(b.data.subarray(b.start, b.start + end));
    b.consume(n);
    return line as T;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    const w = this.waker;
    this.waker = null;
    if (w !== null) this.r.cancelRead(w);
  }
}

/**
 * Options for {@link BufWriter}.
 *
 * @example
 * ```ts
 * import { BufWriter, type TcpStream } from "reel";
 * function* sendAll(stream: TcpStream, lines: string[]) {
 *   const w = new BufWriter(stream, { capacity: 32 * 1024 }); // up to 32 KiB per write
 *   for (const line of lines) yield* w.writeAll(new TextEncoder().encode(`${line}\n`));
 *   yield* w.flush();
 * }
 * ```
 */
export interface BufWriterOptions {
  /** Buffer size: writes are batched up to this many bytes; default 8 KiB. */
  capacity?: number;
}

/**
 * Buffers writes to an AsyncWrite: small writes are copied into the buffer and written
 * together by `flush()` (or when the buffer fills). Always flush before dropping it.
 *
 * @example
 * ```ts
 * import { BufWriter } from "reel";
 * const w = new BufWriter(stream);
 * for (const line of lines) yield* w.writeAll(new TextEncoder().encode(line + "\n"));
 * yield* w.flush();
 * ```
 */
export class BufWriter<W extends AsyncWrite = AsyncWrite> implements AsyncWrite {
  /** @internal The bytes accepted and not yet written. */
  readonly buf: ByteBuffer;
  private readonly cap: number;

  constructor(
    readonly inner: W,
    options: BufWriterOptions = {},
  ) {
    this.cap = options.capacity ?? DEFAULT_BUF_SIZE;
    this.buf = new ByteBuffer(this.cap);
  }

  /** Bytes accepted but not yet written to the inner stream. */
  get buffered(): number {
    return this.buf.length;
  }

  /** Writes the buffer out to the inner stream (without flushing the inner stream). */
  pollFlushBuf(cx: Context): Poll<void> {
    const b = this.buf;
    while (b.length > 0) {
      const n = this.inner.pollWrite(cx, b.view());
      if (n === PENDING) return PENDING;
      if (n === 0) throw new WriteZeroError(0);
      b.consume(n);
    }
    return undefined;
  }

  /** AsyncWrite: buffers, writing the buffer out first when `data` does not fit. */
  pollWrite(cx: Context, data: Uint8Array): Poll<number> {
    checkBuffer(data, "BufWriter write buffer");
    const len = data.byteLength;
    if (len === 0) return 0;
    if (this.buf.length + len > this.cap && this.pollFlushBuf(cx) === PENDING) return PENDING;
    if (len >= this.cap) return this.inner.pollWrite(cx, data);
    const room = this.cap - this.buf.length;
    const n = len < room ? len : room;
    this.buf.append(n === len ? data : data.subarray(0, n));
    return n;
  }

  /** AsyncWrite: an abandoned write's waker goes back to the inner stream (see io/stream.ts). */
  cancelWrite(waker: Waker): void {
    this.inner.cancelWrite?.(waker);
  }

  /** AsyncWrite: writes the buffer out, then flushes the inner stream. */
  pollFlush(cx: Context): Poll<void> {
    if (this.pollFlushBuf(cx) === PENDING) return PENDING;
    return this.inner.pollFlush(cx);
  }

  /** AsyncWrite: writes the buffer out, then shuts the inner stream's write side. */
  pollShutdown(cx: Context): Poll<void> {
    if (this.pollFlushBuf(cx) === PENDING) return PENDING;
    return this.inner.pollShutdown(cx);
  }

  /** Writes some of `data` (usually into the buffer). Cancel-safe. */
  write(data: Uint8Array): BaseFuture<number> {
    return write(this, data);
  }

  /** Writes all of `data`. Not cancel-safe. */
  writeAll(data: Uint8Array): BaseFuture<void> {
    return writeAll(this, data);
  }

  /** Writes out everything buffered and flushes the inner stream. Cancel-safe. */
  flush(): BaseFuture<void> {
    return flush(this);
  }

  /** Flushes, then shuts the inner stream's write side. Cancel-safe. */
  shutdown(): BaseFuture<void> {
    return shutdown(this);
  }
}

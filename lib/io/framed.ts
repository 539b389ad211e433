/**
 * FramedRead, FramedWrite and Framed: a codec (codec.ts) over any AsyncRead/AsyncWrite.
 *
 * FramedRead keeps one ByteBuffer: `next()` decodes from it and reads more only when the
 * decoder needs more (so no read happens while a whole frame is buffered). At EOF the
 * decoder's `decodeEof` drains what is left, then `next()` returns null for good.
 *
 * FramedWrite encodes into a ByteBuffer and writes it out. `send(item)` = wait until the
 * buffer is under its high-water mark, encode, flush. `feed(item)` only encodes, so many
 * frames go out in one write on the next `flush()`.
 *
 * Cancel-safety: see codec.ts (next: safe; send: the item is either untaken or buffered;
 * flush/close: safe to call again).
 *
 * FramedRead (and Framed) are Streams (lib/stream/stream.ts) of frames: `each(framed)`,
 * `for await` in hosted mode, map/filter/take/timeout. `cancelNext()` has nothing to drop:
 * the only registration is the inner reader's waker in its driver slot, which may then
 * cause one spurious wake-up.
 *
 * Must never: drop buffered frames on cancel, or read past EOF.
 * Must never import: lib/driver/**, lib/net/**, lib/fs/**, lib/interop/**, lib/executor.ts
 * Must never import: ffi/**, bun:ffi
 */
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { StreamBase } from "../stream/stream.ts";
import { UnexpectedEofError } from "../errors.ts";
import { proceed } from "../task/coop.ts";
import { ByteBuffer } from "./bytes.ts";
import type { Decoder, Encoder } from "./codec.ts";
import { WriteZeroError, type AsyncRead, type AsyncWrite } from "./stream.ts";

/**
 * Options for {@link FramedRead}, {@link FramedWrite} and {@link Framed}.
 *
 * @example
 * ```ts
 * import { Framed, LinesCodec, type TcpStream } from "reel";
 * const lines = (stream: TcpStream) =>
 *   new Framed(stream, new LinesCodec(), { readCapacity: 16 * 1024, writeHighWaterMark: 256 * 1024 });
 * ```
 */
export interface FramedOptions {
  /** Read size and initial read buffer; default 8 KiB. */
  readCapacity?: number;
  /** `send` flushes first when this many bytes are buffered; default 64 KiB. */
  writeHighWaterMark?: number;
}

const READING = 0;
const DRAINING = 1; // EOF seen: decodeEof until null
const ENDED = 2;

/**
 * Frames read from an AsyncRead through a Decoder.
 *
 * @example
 * ```ts
 * import { FramedRead, LinesCodec } from "reel";
 * const lines = new FramedRead(stream, new LinesCodec());
 * for (let line; (line = yield* lines.next()) !== null; ) console.log(line);
 * ```
 */
export class FramedRead<T> extends StreamBase<T> {
  readonly buffer: ByteBuffer;
  private state = READING;
  private readonly chunk: number;

  constructor(
    readonly inner: AsyncRead,
    readonly decoder: Decoder<T>,
    options: FramedOptions = {},
  ) {
    super();
    this.chunk = options.readCapacity ?? 8192;
    this.buffer = new ByteBuffer(this.chunk);
  }

  /** The next frame, null once the stream ended, or PENDING. */
  pollNext(cx: Context): Poll<T | null> {
    const b = this.buffer;
    for (;;) {
      if (this.state === ENDED) return null;
      if (this.state === DRAINING) return this.drain();
      const frame = this.decoder.decode(b);
      if (frame !== null) return frame;
      if (!proceed(cx)) return PENDING;
      const n = this.inner.pollRead(cx, b.spare(this.chunk));
      if (n === PENDING) return PENDING;
      if (n === 0) this.state = DRAINING;
      else b.commit(n);
    }
  }

  private drain(): T | null {
    const b = this.buffer;
    const d = this.decoder;
    let frame: T | null;
    try {
      if (d.decodeEof !== undefined) frame = d.decodeEof(b);
      else {
        frame = d.decode(b);
        if (frame === null && b.length > 0) throw new UnexpectedEofError(b.length, b.length + 1);
      }
    } catch (err) {
      this.state = ENDED;
      b.clear();
      throw err;
    }
    if (frame === null) this.state = ENDED;
    return frame;
  }

  describe(): string {
    return `FramedRead (${this.buffer.length} bytes buffered${this.state === READING ? "" : ", at EOF"})`;
  }
}

/**
 * Frames written to an AsyncWrite through an Encoder.
 *
 * @example
 * ```ts
 * import { FramedWrite, LinesCodec } from "reel";
 * const out = new FramedWrite(stream, new LinesCodec());
 * out.feed("one");
 * out.feed("two");
 * yield* out.flush(); // both lines in one write
 * yield* out.send("three");
 * ```
 */
export class FramedWrite<T> {
  readonly buffer = new ByteBuffer(8192);
  private readonly hwm: number;

  constructor(
    readonly inner: AsyncWrite,
    readonly encoder: Encoder<T>,
    options: FramedOptions = {},
  ) {
    this.hwm = options.writeHighWaterMark ?? 64 * 1024;
  }

  /** Encodes `item` into the buffer without writing (throws what the encoder throws). */
  feed(item: T): void {
    this.encoder.encode(item, this.buffer);
  }

  /** Writes the buffer out (not flushing the inner stream). */
  pollWriteBuf(cx: Context, downTo = 0): Poll<void> {
    const b = this.buffer;
    while (b.length > downTo) {
      const n = this.inner.pollWrite(cx, b.view());
      if (n === PENDING) return PENDING;
      if (n === 0) throw new WriteZeroError(0);
      b.consume(n);
    }
    return undefined;
  }

  /** Room for another item: the buffer is under the high-water mark. */
  pollReady(cx: Context): Poll<void> {
    return this.buffer.length < this.hwm ? undefined : this.pollWriteBuf(cx, this.hwm - 1);
  }

  pollFlush(cx: Context): Poll<void> {
    if (this.pollWriteBuf(cx) === PENDING) return PENDING;
    return this.inner.pollFlush(cx);
  }

  pollClose(cx: Context): Poll<void> {
    if (this.pollWriteBuf(cx) === PENDING) return PENDING;
    return this.inner.pollShutdown(cx);
  }

  /** Encodes and writes `item`, then flushes. Cancel-safe (see codec.ts). */
  send(item: T): BaseFuture<void> {
    return new Send(this, item);
  }

  /** Writes out everything fed or sent. Cancel-safe. */
  flush(): BaseFuture<void> {
    return new Drain(this, false);
  }

  /** Flushes, then shuts the writer's write side (the peer reads EOF). Cancel-safe. */
  close(): BaseFuture<void> {
    return new Drain(this, true);
  }
}

class Send<T> extends BaseFuture<void> {
  private encoded = false;
  private done = false;
  constructor(
    private readonly w: FramedWrite<T>,
    private readonly item: T,
  ) {
    super();
  }
  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("send() future polled after completion");
    if (!this.encoded) {
      if (this.w.pollReady(cx) === PENDING) return PENDING;
      this.encoded = true;
      this.w.feed(this.item);
    }
    if (this.w.pollFlush(cx) === PENDING) return PENDING;
    this.done = true;
    return undefined;
  }
  override cancel(): void {
    this.done = true;
  }
}

class Drain extends BaseFuture<void> {
  private done = false;
  constructor(
    private readonly w: FramedWrite<unknown>,
    private readonly close: boolean,
  ) {
    super();
  }
  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("flush()/close() future polled after completion");
    const v = this.close ? this.w.pollClose(cx) : this.w.pollFlush(cx);
    if (v !== PENDING) this.done = true;
    return v;
  }
  override cancel(): void {
    this.done = true;
  }
}

/**
 * A codec over one stream in both directions: `next()` reads frames, `send()` writes them.
 *
 * @example
 * ```ts
 * import { Framed, LinesCodec, TcpStream } from "reel";
 * const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: 7000 });
 * const chat = new Framed(s, new LinesCodec());
 * yield* chat.send("hello");
 * console.log(yield* chat.next());
 * ```
 */
export class Framed<In, Out = In> extends StreamBase<In> {
  readonly reader: FramedRead<In>;
  readonly writer: FramedWrite<Out>;

  constructor(
    readonly stream: AsyncRead & AsyncWrite,
    codec: Decoder<In> & Encoder<Out>,
    options: FramedOptions = {},
  ) {
    super();
    this.reader = new FramedRead(stream, codec, options);
    this.writer = new FramedWrite(stream, codec, options);
  }

  pollNext(cx: Context): Poll<In | null> {
    return this.reader.pollNext(cx);
  }

  /** The next frame, or null at the end of the stream. Cancel-safe. */
  override next(): BaseFuture<In | null> {
    return this.reader.next();
  }

  describe(): string {
    return this.reader.describe();
  }

  /** Encodes without writing. */
  feed(item: Out): void {
    this.writer.feed(item);
  }

  /** Encodes, writes and flushes `item`. */
  send(item: Out): BaseFuture<void> {
    return this.writer.send(item);
  }

  /** Writes out everything fed. */
  flush(): BaseFuture<void> {
    return this.writer.flush();
  }

  /** Flushes, then shuts the stream's write side. */
  close(): BaseFuture<void> {
    return this.writer.close();
  }
}

/**
 * copy (reader → writer until EOF) and copyBidirectional (both ways at once, as a proxy
 * does), over any AsyncRead/AsyncWrite.
 *
 * Each direction is a {@link Transfer}: read into its buffer, write all of it, repeat; at
 * EOF flush (copy) or shut the writer's write side down (copyBidirectional, so the far peer
 * sees EOF too). While the reader is pending, the writer is flushed, so a buffered writer
 * never sits on bytes while the copy waits for more (tokio does the same).
 *
 * Cancel-safety: neither is cancel-safe — bytes read into a transfer's buffer and not yet
 * written are lost when it is cancelled. The streams stay usable.
 *
 * Must never: read more before the previous chunk is fully written (the buffer is the
 * backpressure), or spin: each round consumes a unit of the coop budget.
 * Must never import: lib/driver/**, lib/net/**, lib/fs/**, lib/interop/**, lib/executor.ts
 * Must never import: ffi/**, bun:ffi
 */
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { proceed } from "../task/coop.ts";
import { WriteZeroError, type AsyncRead, type AsyncWrite } from "./stream.ts";

/**
 * Default transfer buffer: 64 KiB, the echo example's read size.
 *
 * @example
 * ```ts
 * import { COPY_BUF_SIZE, copy, type TcpStream } from "reel";
 * function* bulk(from: TcpStream, to: TcpStream) {
 *   const bytes = yield* copy(from, to, 4 * COPY_BUF_SIZE); // bigger chunks for a bulk transfer
 *   console.log(`copied ${bytes} bytes`);
 * }
 * ```
 */
export const COPY_BUF_SIZE = 64 * 1024;

/** One direction of a copy. */
class Transfer {
  private readonly buf: Uint8Array;
  private pos = 0;
  private cap = 0;
  private eof = false;
  private needFlush = false;
  /** Bytes written so far. */
  amount = 0;

  constructor(
    private readonly r: AsyncRead,
    private readonly w: AsyncWrite,
    size: number,
    private readonly shutdownAtEof: boolean,
  ) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`Invalid copy buffer size ${size}: must be an integer ≥ 1`);
    this.buf = new Uint8Array(new ArrayBuffer(size));
  }

  /** Advances: the total once EOF was read, everything written and flushed (or shut down). */
  poll(cx: Context): Poll<number> {
    for (;;) {
      if (this.pos === this.cap && !this.eof) {
        if (!proceed(cx)) return PENDING;
        const n = this.r.pollRead(cx, this.buf);
        if (n === PENDING) {
          // Waiting for input: push out what a buffered writer holds meanwhile.
          if (this.needFlush && this.w.pollFlush(cx) !== PENDING) this.needFlush = false;
          return PENDING;
        }
        if (n === 0) this.eof = true;
        else {
          this.pos = 0;
          this.cap = n;
        }
      }
      while (this.pos < this.cap) {
        const chunk = this.pos === 0 && this.cap === this.buf.length ? this.buf : this.buf.subarray(this.pos, this.cap);
        const n = this.w.pollWrite(cx, chunk);
        if (n === PENDING) return PENDING;
        if (n === 0) throw new WriteZeroError(this.amount);
        this.pos += n;
        this.amount += n;
        this.needFlush = true;
      }
      if (this.eof) {
        const done = this.shutdownAtEof ? this.w.pollShutdown(cx) : this.w.pollFlush(cx);
        return done === PENDING ? PENDING : this.amount;
      }
    }
  }
}

class Copy extends BaseFuture<number> {
  private done = false;
  constructor(private readonly t: Transfer) {
    super();
  }
  poll(cx: Context): Poll<number> {
    if (this.done) throw new FutureStateError("copy() future polled after completion");
    const v = this.t.poll(cx);
    if (v !== PENDING) this.done = true;
    return v;
  }
  override cancel(): void {
    this.done = true;
  }
}

/**
 * Copies `reader` into `writer` until EOF, then flushes: the number of bytes copied.
 * Not cancel-safe (a chunk in flight is lost).
 *
 * @example
 * ```ts
 * import { copy } from "reel";
 * const n = yield* copy(upstream, client); // e.g. stream a response through
 * ```
 */
export function copy(reader: AsyncRead, writer: AsyncWrite, bufferSize = COPY_BUF_SIZE): BaseFuture<number> {
  return new Copy(new Transfer(reader, writer, bufferSize, false));
}

class CopyBidirectional extends BaseFuture<[number, number]> {
  private readonly ab: Transfer;
  private readonly ba: Transfer;
  private abDone = false;
  private baDone = false;
  private done = false;

  constructor(a: AsyncRead & AsyncWrite, b: AsyncRead & AsyncWrite, size: number) {
    super();
    this.ab = new Transfer(a, b, size, true);
    this.ba = new Transfer(b, a, size, true);
  }

  poll(cx: Context): Poll<[number, number]> {
    if (this.done) throw new FutureStateError("copyBidirectional() future polled after completion");
    try {
      if (!this.abDone && this.ab.poll(cx) !== PENDING) this.abDone = true;
      if (!this.baDone && this.ba.poll(cx) !== PENDING) this.baDone = true;
    } catch (err) {
      this.done = true;
      throw err;
    }
    if (!this.abDone || !this.baDone) return PENDING;
    this.done = true;
    return [this.ab.amount, this.ba.amount];
  }

  override cancel(): void {
    this.done = true;
  }
}

/**
 * Copies `a` → `b` and `b` → `a` at once until both directions reach EOF; when one side
 * ends, the other side's write direction is shut down (its peer sees EOF). Resolves with
 * [bytes a→b, bytes b→a]. The first error ends both. Not cancel-safe.
 *
 * @example
 * ```ts
 * import { TcpStream, copyBidirectional } from "reel";
 * const upstream = yield* TcpStream.connect({ hostname: "127.0.0.1", port: 8080 });
 * const [sent, received] = yield* copyBidirectional(client, upstream);
 * ```
 */
export function copyBidirectional(a: AsyncRead & AsyncWrite, b: AsyncRead & AsyncWrite, bufferSize = COPY_BUF_SIZE): BaseFuture<[number, number]> {
  return new CopyBidirectional(a, b, bufferSize);
}

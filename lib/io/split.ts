/**
 * split: a read half and a write half of one stream, for two tasks — one reading, one
 * writing (a chat client's reader loop beside its broadcast writer).
 *
 * The halves share the stream; nothing is locked. That is sound when the stream keeps
 * separate waker slots per direction, as TcpStream does (its registration has one reader
 * and one writer slot): the reading task's waker and the writing task's never collide.
 * A stream without that property must not be split across tasks.
 *
 * The halves do not own the fd: close the stream itself (or `reunite` the halves first)
 * once both tasks are done. `WriteHalf.shutdown()` shuts the write direction only.
 *
 * Must never: let a ReadHalf write or a WriteHalf read.
 * Must never import: lib/driver/**, lib/net/**, lib/fs/**, lib/interop/**, lib/executor.ts
 * Must never import: ffi/**, bun:ffi
 */
import type { BaseFuture, Context, Poll, Waker } from "../future.ts";
import { flush, read, readExact, shutdown, write, writeAll, type AsyncRead, type AsyncWrite } from "./stream.ts";

/** The stream both halves came from; identity ties the halves together for `reunite`. */
class Pair<S> {
  constructor(readonly stream: S) {}
}

/**
 * The reading half of a split stream.
 *
 * @example
 * ```ts
 * const [rd, wr] = split(stream);
 * const n = yield* rd.read(buf);
 * ```
 */
export class ReadHalf<S extends AsyncRead & AsyncWrite> implements AsyncRead {
  /** @internal */
  constructor(readonly pair: Pair<S>) {}

  pollRead(cx: Context, buf: Uint8Array): Poll<number> {
    return this.pair.stream.pollRead(cx, buf);
  }

  /** An abandoned read's waker goes back to the stream (see io/stream.ts). */
  cancelRead(waker: Waker): void {
    this.pair.stream.cancelRead?.(waker);
  }

  /** Reads into `buf`: the count, 0 at EOF. Cancel-safe. */
  read(buf: Uint8Array): BaseFuture<number> {
    return read(this, buf);
  }

  /** Fills `buf` or fails with UnexpectedEofError. Not cancel-safe. */
  readExact(buf: Uint8Array): BaseFuture<void> {
    return readExact(this, buf);
  }
}

/**
 * The writing half of a split stream.
 *
 * @example
 * ```ts
 * const [rd, wr] = split(stream);
 * yield* wr.writeAll(new TextEncoder().encode("hello\n"));
 * yield* wr.shutdown(); // the peer reads EOF; rd can still read
 * ```
 */
export class WriteHalf<S extends AsyncRead & AsyncWrite> implements AsyncWrite {
  /** @internal */
  constructor(readonly pair: Pair<S>) {}

  pollWrite(cx: Context, buf: Uint8Array): Poll<number> {
    return this.pair.stream.pollWrite(cx, buf);
  }

  /** An abandoned write's waker goes back to the stream (see io/stream.ts). */
  cancelWrite(waker: Waker): void {
    this.pair.stream.cancelWrite?.(waker);
  }

  pollFlush(cx: Context): Poll<void> {
    return this.pair.stream.pollFlush(cx);
  }

  pollShutdown(cx: Context): Poll<void> {
    return this.pair.stream.pollShutdown(cx);
  }

  /** Writes some of `buf`: the count. Cancel-safe. */
  write(buf: Uint8Array): BaseFuture<number> {
    return write(this, buf);
  }

  /** Writes all of `buf`. Not cancel-safe. */
  writeAll(buf: Uint8Array): BaseFuture<void> {
    return writeAll(this, buf);
  }

  /** Flushes the stream. Cancel-safe. */
  flush(): BaseFuture<void> {
    return flush(this);
  }

  /** Flushes, then shuts down the write direction. Cancel-safe. */
  shutdown(): BaseFuture<void> {
    return shutdown(this);
  }
}

/**
 * Splits a stream into a read half and a write half for use by two tasks.
 *
 * @example
 * ```ts
 * import { split, spawn } from "reel";
 * const [rd, wr] = split(stream);
 * spawn(function* () { const buf = new Uint8Array(1024); while ((yield* rd.read(buf)) > 0) {} });
 * yield* wr.writeAll(bytes);
 * ```
 */
export function split<S extends AsyncRead & AsyncWrite>(stream: S): [ReadHalf<S>, WriteHalf<S>] {
  const pair = new Pair(stream);
  return [new ReadHalf(pair), new WriteHalf(pair)];
}

/**
 * Puts two halves back together: the original stream. Throws TypeError when they come
 * from different `split` calls.
 *
 * @example
 * ```ts
 * const stream = reunite(rd, wr);
 * stream.close();
 * ```
 */
export function reunite<S extends AsyncRead & AsyncWrite>(r: ReadHalf<S>, w: WriteHalf<S>): S {
  if (r.pair !== w.pair) throw new TypeError("reunite(): the halves come from different split() calls");
  return r.pair.stream;
}

/**
 * Web Streams and async iteration over reel streams, for code living in Bun's world
 * (Bun.serve bodies, fetch, `for await`). Each operation is a reel future run through
 * `toPromise` — hosted `run()` from ordinary code — on the runtime the stream belongs to.
 *
 * - {@link toReadableStream}: `pull()` polls one read future, so the socket is read only
 *   when the consumer asks (highWaterMark 0: backpressure holds end to end). `cancel()`
 *   aborts a pending read and closes the stream (when it has `close()`).
 * - {@link toWritableStream}: `write(chunk)` resolves once all of it was written (so the
 *   WritableStream's own queue is the only buffer); `close()` flushes and shuts down the
 *   write side; `abort()` cancels a write in flight (the controller's signal) and closes
 *   the stream.
 * - {@link frames}: `for await (const line of frames(new FramedRead(s, new LinesCodec())))`.
 *   Breaking out of the loop cancels the pending `next()` (cancel-safe: nothing is lost)
 *   and leaves the stream open.
 * - Every reel Stream (lib/stream/stream.ts) is async-iterable the same way:
 *   `for await (const msg of rx)`. This module installs that on load
 *   ({@link streamIterator}).
 *
 * A reel stream registers with the driver of the runtime that first polls it, so pass the
 * same `runtime` here that serves the stream elsewhere (default: the running runtime when
 * created inside one, else the default runtime).
 *
 * Must never: read ahead of the consumer, or leave a pending reel future behind a
 * cancelled Web stream or a finished loop.
 */
import type { Future } from "../future.ts";
import { currentRuntime, defaultRuntimeInstance, type Runtime } from "../executor.ts";
import { NextFuture, checkStream, setHostIterator, type Stream } from "../stream/stream.ts";
import { read, shutdown, writeAll, type AsyncRead, type AsyncWrite } from "../io/stream.ts";
import { toPromise } from "./promise.ts";

/**
 * Options for the Web stream adapters.
 *
 * @example
 * ```ts
 * const readable = toReadableStream(stream, { chunkSize: 16384 } satisfies WebStreamOptions);
 * ```
 */
export interface WebStreamOptions {
  /** The runtime the stream is polled on (see the module header). */
  runtime?: Runtime;
  /** Bytes read per pull; default 16 KiB. */
  chunkSize?: number;
}

/** Something that can be closed (TcpStream): the adapters close it on cancel/abort. */
interface Closable {
  close?(): void;
}

function pick(options: WebStreamOptions): Runtime {
  return options.runtime ?? currentRuntime() ?? defaultRuntimeInstance();
}

/**
 * A ReadableStream of the bytes of `reader`: each pull is one read (a fresh chunk the
 * consumer owns). Ends at EOF; `cancel()` closes the reader.
 *
 * @example
 * ```ts
 * import { toReadableStream, run, TcpStream } from "reel";
 * const s = await run(TcpStream.connect({ hostname: "127.0.0.1", port: 7000 }));
 * for await (const chunk of toReadableStream(s)) console.log(chunk.length);
 * return new Response(toReadableStream(s)); // or stream it as an HTTP body
 * ```
 */
export function toReadableStream(reader: AsyncRead & Closable, options: WebStreamOptions = {}): ReadableStream<Uint8Array> {
  const runtime = pick(options);
  const size = options.chunkSize ?? 16 * 1024;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`Invalid chunkSize ${size}: must be an integer ≥ 1`);
  let inflight: AbortController | null = null;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const buf = new Uint8Array(size);
        inflight = new AbortController();
        let n: number;
        try {
          n = await toPromise(read(reader, buf), { runtime, signal: inflight.signal });
        } finally {
          inflight = null;
        }
        if (n === 0) controller.close();
        else controller.enqueue(buf.subarray(0, n));
      },
      cancel() {
        inflight?.abort(new DOMException("The ReadableStream was cancelled", "AbortError"));
        reader.close?.();
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * A WritableStream into `writer`: each chunk is written whole before the next is taken;
 * `close()` flushes and shuts down the write side; `abort()` closes the writer.
 *
 * @example
 * ```ts
 * import { toWritableStream } from "reel";
 * const res = await fetch("http://127.0.0.1:3000/big");
 * await res.body!.pipeTo(toWritableStream(socket)); // with backpressure
 * ```
 */
export function toWritableStream(writer: AsyncWrite & Closable, options: WebStreamOptions = {}): WritableStream<Uint8Array> {
  const runtime = pick(options);
  // The controller's signal fires as soon as abort() is called, even while a write is in
  // flight (the sink's abort() itself only runs after that write settles): it cancels the
  // pending reel future.
  let signal: AbortSignal | undefined;
  const runOne = (fut: Future<void>) => toPromise(fut, { runtime, signal });
  return new WritableStream<Uint8Array>({
    start(controller) {
      // WHATWG has it; this Bun's type declarations do not list it yet.
      signal = (controller as WritableStreamDefaultController & { readonly signal: AbortSignal }).signal;
    },
    write(chunk) {
      if (!(chunk instanceof Uint8Array)) throw new TypeError(`toWritableStream() accepts Uint8Array chunks, got ${typeof chunk}`);
      return runOne(writeAll(writer, chunk));
    },
    close() {
      return runOne(shutdown(writer));
    },
    abort() {
      writer.close?.();
    },
  });
}

/**
 * Anything with a `next()` future of items, null at the end (FramedRead, Framed).
 *
 * @example
 * ```ts
 * const lines: FrameSource<string> = new FramedRead(stream, new LinesCodec());
 * for await (const line of frames(lines)) console.log(line);
 * ```
 */
export interface FrameSource<T> {
  next(): Future<T | null>;
}

/**
 * An async iterator over a frame source: `for await (const frame of frames(src))`. Each
 * step is one `next()`; leaving the loop cancels a pending one (nothing is lost).
 *
 * @example
 * ```ts
 * import { FramedRead, LinesCodec, frames } from "reel";
 * for await (const line of frames(new FramedRead(socket, new LinesCodec()))) {
 *   if (line === "quit") break;
 * }
 * ```
 */
export function frames<T>(source: FrameSource<T>, options: { runtime?: Runtime } = {}): AsyncIterableIterator<T> {
  if (typeof source !== "object" || source === null || typeof source.next !== "function") {
    throw new TypeError(`frames() expects something with a next() future (FramedRead, Framed), got ${source === null ? "null" : typeof source}`);
  }
  return iterate(() => source.next(), pick(options));
}

/**
 * An async iterator over a reel Stream, each step one `pollNext` run as a future on
 * `runtime` (hosted mode from ordinary code); leaving the loop cancels a pending step
 * (the stream's `cancelNext()`: nothing is lost on cancel-safe streams). What
 * `for await (const v of stream)` uses.
 *
 * @example
 * ```ts
 * import { streamIterator } from "reel";
 * const it = streamIterator(rx);
 * const first = await it.next();
 * ```
 */
export function streamIterator<T>(stream: Stream<T>, options: { runtime?: Runtime } = {}): AsyncIterableIterator<T> {
  checkStream(stream, "streamIterator()");
  return iterate(() => new NextFuture(stream), pick(options));
}

function iterate<T>(step: () => Future<T | null>, runtime: Runtime): AsyncIterableIterator<T> {
  let inflight: AbortController | null = null;
  let ended = false;
  const it: AsyncIterableIterator<T> = {
    async next(): Promise<IteratorResult<T>> {
      if (ended) return { done: true, value: undefined };
      inflight = new AbortController();
      try {
        const v = await toPromise(step(), { runtime, signal: inflight.signal });
        if (v === null) ended = true;
        return v === null ? { done: true, value: undefined } : { done: false, value: v };
      } catch (err) {
        ended = true;
        throw err;
      } finally {
        inflight = null;
      }
    },
    async return(): Promise<IteratorResult<T>> {
      ended = true;
      inflight?.abort(new DOMException("The iteration was stopped", "AbortError"));
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}

// `for await (const v of stream)` on every StreamBase goes through streamIterator.
setHostIterator((s) => streamIterator(s));

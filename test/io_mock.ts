/**
 * In-memory AsyncRead/AsyncWrite for the stream and codec tests: a reader fed chunk by
 * chunk (pending in between, with the waker stored as a real stream would), and a writer
 * that accepts a bounded number of bytes per call and can be made to pend.
 */
import { PENDING, type Context, type Poll, type Waker } from "../lib/index.ts";
import type { AsyncRead, AsyncWrite } from "../lib/io/stream.ts";

/** A reader that returns its queued chunks, one per read (split to fit), then pends or EOFs. */
export class MockReader implements AsyncRead {
  private readonly chunks: Uint8Array[] = [];
  private eof = false;
  private waker: Waker | null = null;
  reads = 0;

  constructor(...chunks: (Uint8Array | string)[]) {
    for (const c of chunks) this.push(c);
  }

  push(c: Uint8Array | string): void {
    this.chunks.push(typeof c === "string" ? new TextEncoder().encode(c) : c);
    this.wake();
  }

  end(): void {
    this.eof = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }

  pollRead(cx: Context, buf: Uint8Array): Poll<number> {
    this.reads++;
    const c = this.chunks[0];
    if (c === undefined) {
      if (this.eof) return 0;
      this.waker = cx.waker;
      return PENDING;
    }
    const n = Math.min(c.length, buf.length);
    buf.set(c.subarray(0, n));
    if (n === c.length) this.chunks.shift();
    else this.chunks[0] = c.subarray(n);
    return n;
  }
}

/** A writer collecting bytes; `limit` caps bytes per write; `blocked` makes writes pend. */
export class MockWriter implements AsyncWrite {
  readonly written: number[] = [];
  writes = 0;
  flushes = 0;
  shutdowns = 0;
  blocked = false;
  private waker: Waker | null = null;

  constructor(private readonly limit = Infinity) {}

  unblock(): void {
    this.blocked = false;
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }

  pollWrite(cx: Context, buf: Uint8Array): Poll<number> {
    if (this.blocked) {
      this.waker = cx.waker;
      return PENDING;
    }
    this.writes++;
    const n = Math.min(buf.length, this.limit);
    for (let i = 0; i < n; i++) this.written.push(buf[i]!);
    return n;
  }

  pollFlush(cx: Context): Poll<void> {
    if (this.blocked) {
      this.waker = cx.waker;
      return PENDING;
    }
    this.flushes++;
    return undefined;
  }

  pollShutdown(_cx: Context): Poll<void> {
    this.shutdowns++;
    return undefined;
  }

  text(): string {
    return new TextDecoder().decode(new Uint8Array(this.written));
  }
}

/**
 * Whole-file helpers over lib/fs: readFile, writeFile, and {@link ChunkReader}, which
 * streams a file of any size (64 MB and beyond) through one reused chunk buffer.
 *
 * readFile and writeFile are hand-written state machines that own the file they open:
 * they close it when they finish, fail, or are cancelled — in cancel() itself, at once,
 * so no fd is left open whatever the caller does with cleanup (a layer that owns an fd
 * never relies on user cleanup to close it). An open still in flight when they are
 * cancelled is the driver's to settle: an fd it yields is closed.
 *
 * Must never: load a file whole unless asked to (readFile), hold more than one chunk per
 * ChunkReader, or leave the file it opened open.
 */
import { BaseFuture, FutureStateError, PENDING, gen, ready, type Context, type Future, type Poll } from "../future.ts";
import { checkBuffer } from "../errors.ts";
import { withSignalOption, type SignalOption } from "../cancel.ts";
import { CHUNK, open, type File } from "./file.ts";

const OPENING = 0;
const SIZING = 1;
const MOVING = 2;
const DONE = 3;

/** What ReadFile and WriteFile share: the file they own, their current op, and the close. */
abstract class Whole<T> extends BaseFuture<T> {
  protected step = OPENING;
  protected file: File | null = null;
  protected op: Future<unknown> | null = null;

  constructor(
    protected readonly path: string,
    private readonly flags: "r" | "w",
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.step === DONE) throw new FutureStateError("readFile()/writeFile() future polled after completion");
    try {
      if (this.step === OPENING) {
        const f = (this.op ??= open(this.path, this.flags)).poll(cx);
        if (f === PENDING) return PENDING;
        this.op = null;
        this.file = f as File;
        this.step = SIZING;
      }
      const v = this.advance(cx, this.file!);
      if (v === PENDING) return PENDING;
      this.finish();
      return v;
    } catch (err) {
      this.finish();
      throw err;
    }
  }

  /** The op loop once the file is open: the value, or PENDING. */
  protected abstract advance(cx: Context, f: File): Poll<T>;

  /** Polls `op` (made by `make` on first use) to its value. */
  protected await<U>(cx: Context, make: () => Future<U>): Poll<U> {
    const v = (this.op ??= make()).poll(cx) as Poll<U>;
    if (v !== PENDING) this.op = null;
    return v;
  }

  /** Closes the file (if open) and ends; a close error is thrown to the caller. */
  private finish(): void {
    this.step = DONE;
    this.op = null;
    const f = this.file;
    this.file = null;
    f?.close();
  }

  /** Cancels the op in flight and closes the file now. */
  override cancel(): void {
    if (this.step === DONE) return;
    const op = this.op;
    this.op = null;
    op?.cancel?.();
    this.finish();
  }
}

class ReadFile extends Whole<Uint8Array> {
  private out = new Uint8Array(0);
  private len = 0;

  protected advance(cx: Context, f: File): Poll<Uint8Array> {
    if (this.step === SIZING) {
      const st = this.await(cx, () => f.stat());
      if (st === PENDING) return PENDING;
      this.out = new Uint8Array(st.size > 0 ? st.size : CHUNK);
      this.step = MOVING;
    }
    for (;;) {
      if (this.len === this.out.length) {
        const grown = new Uint8Array(this.out.length * 2);
        grown.set(this.out);
        this.out = grown;
      }
      const len = this.len;
      const n = this.await(cx, () => f.read(this.out.subarray(len, Math.min(this.out.length, len + CHUNK)), len));
      if (n === PENDING) return PENDING;
      if (n === 0) break;
      this.len += n;
    }
    return this.len === this.out.length ? this.out : this.out.slice(0, this.len);
  }
}

class WriteFile extends Whole<void> {
  private off = 0;

  constructor(
    path: string,
    private readonly data: Uint8Array,
  ) {
    super(path, "w");
  }

  protected advance(cx: Context, f: File): Poll<void> {
    const data = this.data;
    while (this.off < data.byteLength) {
      const off = this.off;
      const n = this.await(cx, () => f.write(data.subarray(off, Math.min(off + CHUNK, data.byteLength)), off));
      if (n === PENDING) return PENDING;
      this.off += n;
    }
    return undefined;
  }
}

/**
 * Reads a whole file. Cancelling it (or aborting `opts.signal`) closes the file at once.
 *
 * @example
 * ```ts
 * const bytes = yield* readFile("config.json");
 * const ac = new AbortController();
 * const big = yield* readFile("big.bin", { signal: ac.signal }); // ac.abort() stops it
 * ```
 */
export function readFile(path: string, opts?: SignalOption): BaseFuture<Uint8Array> {
  return withSignalOption(new ReadFile(path, "r"), opts, "readFile()");
}

/**
 * Creates or truncates `path` and writes `data` to it. Cancelling it (or aborting
 * `opts.signal`) closes the file at once (a prefix of `data` may have been written).
 *
 * @example
 * ```ts
 * yield* writeFile("out.txt", new TextEncoder().encode("hello"));
 * ```
 */
export function writeFile(path: string, data: Uint8Array, opts?: SignalOption): BaseFuture<void> {
  checkBuffer(data, "writeFile() data");
  return withSignalOption(new WriteFile(path, data), opts, "writeFile()");
}

/**
 * Streams a file chunk by chunk; each chunk is a view into one reused buffer, valid
 * until the next `next()`.
 *
 * @example
 * ```ts
 * const r = yield* readChunks("big.bin");
 * for (let c; (c = yield* r.next()) !== null; ) hash.update(c);
 * yield* r.close();
 * ```
 */
export class ChunkReader {
  private readonly buf: Uint8Array;
  private pos = 0;

  constructor(
    private readonly file: File,
    chunkSize: number,
  ) {
    this.buf = new Uint8Array(chunkSize);
  }

  /** The next chunk, or null at end of file. */
  next(): BaseFuture<Uint8Array | null> {
    const self = this;
    return gen(function* () {
      const n = yield* self.file.read(self.buf, self.pos);
      self.pos += n;
      return n === 0 ? null : self.buf.subarray(0, n);
    });
  }

  /** Closes the file now (awaiting the returned future is optional). */
  close(): BaseFuture<void> {
    this.file.close();
    return ready(undefined);
  }

  [Symbol.dispose](): void {
    this.file.close();
  }
}

/**
 * Opens `path` for streaming in chunks of `chunkSize` (≤ 1 MiB) bytes.
 *
 * @example
 * ```ts
 * const r = yield* readChunks("big.bin", 1 << 20);
 * ```
 */
export function readChunks(path: string, chunkSize = CHUNK): BaseFuture<ChunkReader> {
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > CHUNK) {
    throw new RangeError(`Invalid chunk size ${chunkSize}: must be an integer 1-${CHUNK}`);
  }
  return gen(function* () {
    return new ChunkReader(yield* open(path, "r"), chunkSize);
  });
}

/**
 * Whole-file helpers over lib/fs: readFile, writeFile, and {@link ChunkReader}, which
 * streams a file of any size (64 MB and beyond) through one reused chunk buffer.
 *
 * Every helper opens, loops over ≤ 1 MiB ops, and closes in a `finally`, so an error or
 * a cancel (the gen adapter runs finally blocks) never leaks the fd.
 *
 * Must never: load a file whole unless asked to (readFile), or hold more than one chunk
 * per ChunkReader.
 */
import { BaseFuture, gen } from "../future.ts";
import { checkBuffer } from "../errors.ts";
import { open, type File } from "./file.ts";
import { CHUNK } from "../driver/uring/fs.ts";

/**
 * Reads a whole file.
 *
 * @example
 * ```ts
 * const bytes = yield* readFile("config.json");
 * ```
 */
export function readFile(path: string): BaseFuture<Uint8Array> {
  return gen(function* () {
    const f = yield* open(path, "r");
    try {
      const size = (yield* f.stat()).size;
      let out = new Uint8Array(size > 0 ? size : CHUNK);
      let len = 0;
      for (;;) {
        if (len === out.length) {
          const grown = new Uint8Array(out.length * 2);
          grown.set(out);
          out = grown;
        }
        const n = yield* f.read(out.subarray(len, Math.min(out.length, len + CHUNK)), len);
        if (n === 0) break;
        len += n;
      }
      return len === out.length ? out : out.slice(0, len);
    } finally {
      yield* closeQuietly(f);
    }
  });
}

/**
 * Creates or truncates `path` and writes `data` to it.
 *
 * @example
 * ```ts
 * yield* writeFile("out.txt", new TextEncoder().encode("hello"));
 * ```
 */
export function writeFile(path: string, data: Uint8Array): BaseFuture<void> {
  checkBuffer(data, "writeFile() data");
  return gen(function* () {
    const f = yield* open(path, "w");
    try {
      yield* f.writeAll(data, 0);
    } finally {
      yield* closeQuietly(f);
    }
  });
}

function* closeQuietly(f: File) {
  if (f.fd >= 0) yield* f.close();
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

  close(): BaseFuture<void> {
    const f = this.file;
    return gen(function* () {
      yield* closeQuietly(f);
    });
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

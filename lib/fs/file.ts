/**
 * Files as futures: open, read, write, stat, fsync, close, and linked writes (the
 * whole-file helpers are in whole.ts; lib/fs/index.ts is the surface).
 *
 * Backends: on io_uring each op is a ring op (openat, read, write, statx, fsync, close;
 * fs/uring_fs.ts) — real asynchronous file I/O. On the readiness backends regular files
 * are never "ready", so each op runs as a blocking call on a small Worker pool
 * (fs/pool.ts), as tokio does; the runtime thread is woken through its driver.
 *
 * Positions: a File tracks its own position and passes explicit offsets, so a read or
 * write whose future is cancelled never moves it (the bytes stay in the file). One op
 * moves at most 1 MiB; readFile/writeFile and the chunk reader loop over that, so a
 * 64 MB file streams through one chunk-sized buffer. Two writes to the same file are
 * not ordered unless linked: {@link File.writeLinked} chains them (IOSQE_IO_LINK on
 * io_uring; one after the other on the pool).
 *
 * Must never: hand the caller's buffer to the kernel or a Worker (data is copied through
 * owned or shared memory), leak an fd on an error or a cancel, or block the thread.
 */
import { BaseFuture, FutureStateError, PENDING, gen, type Context, type Poll } from "../future.ts";
import { currentDriver } from "../current.ts";
import { UringDriver } from "../driver/uring/driver.ts";
import { UringFuture, linked, type OpSpec } from "../driver/uring/ops.ts";
import { checkBuffer } from "../errors.ts";
import { PoolFuture, type JobRequest } from "../driver/readiness/pool.ts";
import { CHUNK, closeSpec, decodeStatx, fsyncSpec, openSpec, readSpec, statxSpec, writeSpec } from "../driver/uring/fs.ts";


const O_RDONLY = 0;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const O_CLOEXEC = 0o2000000;
const S_IFMT = 0o170000;

/** How to open: Node-style strings, or raw O_* bits. */
export type OpenFlags = "r" | "r+" | "w" | "w+" | "wx" | "a" | "a+" | number;

const FLAGS: Record<string, number> = {
  r: O_RDONLY,
  "r+": O_RDWR,
  w: O_WRONLY | O_CREAT | O_TRUNC,
  "w+": O_RDWR | O_CREAT | O_TRUNC,
  wx: O_WRONLY | O_CREAT | O_EXCL,
  a: O_WRONLY | O_CREAT | O_APPEND,
  "a+": O_RDWR | O_CREAT | O_APPEND,
};

function parseFlags(flags: OpenFlags): number {
  if (typeof flags === "number" && Number.isInteger(flags) && flags >= 0) return flags | O_CLOEXEC;
  const f = typeof flags === "string" ? FLAGS[flags] : undefined;
  if (f === undefined) throw new TypeError(`Invalid open flags ${JSON.stringify(flags)}: expected r, r+, w, w+, wx, a, a+ or O_* bits`);
  return f | O_CLOEXEC;
}

/** What stat() reports. */
export class Stats {
  constructor(
    readonly size: number,
    readonly mode: number,
    readonly ino: number,
    readonly blocks: number,
    readonly mtimeMs: number,
  ) {}
  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000;
  }
}

const OPEN = 0;
const READ = 1;
const WRITE = 2;
const STAT = 3;
const FSYNC = 4;
const CLOSE = 5;

/** One file op; picks the ring or the pool on its first poll. */
class FsOp<T> extends BaseFuture<T> {
  private inner: UringFuture | PoolFuture | null = null;
  private statOut: Uint8Array | null = null;
  private done = false;

  constructor(
    private readonly kind: number,
    private readonly file: File | null,
    private readonly path: string | null,
    private readonly buf: Uint8Array | null = null,
    private readonly pos = -1,
    private readonly arg = 0,
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError("fs future polled after completion");
    const inner = this.inner ?? this.start();
    const r = inner.poll(cx);
    if (r === PENDING) return PENDING;
    this.done = true;
    return this.finish(r);
  }

  private start(): UringFuture | PoolFuture {
    const d = currentDriver();
    const fd = this.file?.fd ?? -1;
    if (d instanceof UringDriver) {
      this.inner = new UringFuture(this.uringSpec(d, fd), this.kind === READ ? this.buf : null);
    } else {
      this.inner = new PoolFuture(this.poolRequest(fd), this.kind === READ ? this.buf : null);
    }
    return this.inner;
  }

  private uringSpec(d: UringDriver, fd: number): OpSpec {
    switch (this.kind) {
      case OPEN:
        return openSpec(this.path!, this.arg, 0o666);
      case READ:
        return readSpec(d.pool, fd, this.buf!.byteLength, this.pos);
      case WRITE:
        return writeSpec(d.pool, fd, this.buf!, this.pos);
      case STAT: {
        const [spec, out] = statxSpec(fd, this.file === null ? this.path : null);
        this.statOut = out;
        return spec;
      }
      case FSYNC:
        return fsyncSpec(fd, this.arg === 1);
      default:
        return closeSpec(fd);
    }
  }

  private poolRequest(fd: number): JobRequest {
    switch (this.kind) {
      case OPEN:
        return { op: "open", path: this.path!, flags: this.arg, mode: 0o666 };
      case READ:
        return { op: "read", fd, len: Math.min(this.buf!.byteLength, CHUNK), pos: this.pos };
      case WRITE:
        return { op: "write", fd, data: this.buf!.byteLength > CHUNK ? this.buf!.subarray(0, CHUNK) : this.buf!, pos: this.pos };
      case STAT:
        return this.file === null ? { op: "stat", path: this.path! } : { op: "fstat", fd };
      case FSYNC:
        return { op: "fsync", fd, datasync: this.arg === 1 };
      default:
        return { op: "close", fd };
    }
  }

  private finish(r: number): T {
    switch (this.kind) {
      case OPEN:
        return new File(r, this.path!) as T;
      case STAT: {
        if (this.statOut !== null) {
          const s = decodeStatx(this.statOut);
          return new Stats(s.size, s.mode, s.ino, s.blocks, s.mtimeMs) as T;
        }
        const f = (this.inner as PoolFuture).settled.stat;
        return new Stats(f[0]!, f[1]!, f[2]!, f[3]!, f[4]!) as T;
      }
      case READ:
      case WRITE:
        return r as T;
      default:
        return undefined as T;
    }
  }

  override cancel(): void {
    this.done = true;
    this.inner?.cancel();
  }
}

/**
 * An open file. Reads and writes without a position use (and advance) `position`.
 *
 * @example
 * ```ts
 * import * as fs from "reel/fs";
 * const f = yield* fs.open("/tmp/x", "w+");
 * yield* f.writeAll(new TextEncoder().encode("hello"));
 * const buf = new Uint8Array(5);
 * yield* f.read(buf, 0);
 * yield* f.close();
 * ```
 */
export class File {
  /** The offset the next position-less read or write uses. */
  position = 0;

  constructor(
    /** A valid fd owned by this File, or -1 once close() started. */
    public fd: number,
    readonly path: string,
  ) {}

  /** Reads up to buf.length (≤ 1 MiB) bytes: the count, 0 at end of file. */
  read(buf: Uint8Array, position?: number): BaseFuture<number> {
    checkBuffer(buf, "read() buffer");
    return this.advancing(new FsOp<number>(READ, this.open(), null, buf, position ?? this.position), position === undefined);
  }

  /** Writes up to buf.length (≤ 1 MiB) bytes: the count. */
  write(buf: Uint8Array, position?: number): BaseFuture<number> {
    checkBuffer(buf, "write() buffer");
    return this.advancing(new FsOp<number>(WRITE, this.open(), null, buf, position ?? this.position), position === undefined);
  }

  /** Writes all of buf (in ≤ 1 MiB ops). Not cancel-safe: a prefix may have been written. */
  writeAll(buf: Uint8Array, position?: number): BaseFuture<void> {
    checkBuffer(buf, "writeAll() buffer");
    const self = this;
    return gen(function* () {
      for (let off = 0; off < buf.byteLength; ) {
        const chunk = buf.subarray(off, Math.min(off + CHUNK, buf.byteLength));
        off += yield* self.write(chunk, position === undefined ? undefined : position + off);
      }
    });
  }

  /**
   * Writes each part in order: linked (IOSQE_IO_LINK) on io_uring, so the second starts
   * only after the first completed; one after the other on the pool. Parts ≤ 1 MiB.
   */
  writeLinked(parts: readonly { data: Uint8Array; position: number }[]): BaseFuture<number[]> {
    const self = this;
    return gen(function* () {
      const fd = self.open().fd;
      const d = currentDriver();
      if (!(d instanceof UringDriver)) {
        const out: number[] = [];
        for (const p of parts) out.push(yield* self.write(p.data, p.position));
        return out;
      }
      const futs = linked(parts.map((p) => writeSpec(d.pool, fd, p.data, p.position)));
      let i = 0;
      try {
        const out: number[] = [];
        for (; i < futs.length; i++) out.push(yield* futs[i]!);
        return out;
      } finally {
        // An error or a cancel: the chain's remaining ops are cancelled, never leaked.
        for (i++; i < futs.length; i++) futs[i]!.cancel();
      }
    });
  }

  stat(): BaseFuture<Stats> {
    return new FsOp<Stats>(STAT, this.open(), null);
  }

  /** fsync (or fdatasync with `datasync`). */
  sync(datasync = false): BaseFuture<void> {
    return new FsOp<void>(FSYNC, this.open(), null, null, -1, datasync ? 1 : 0);
  }

  /** Closes the fd (through the ring or the pool). Further ops throw EBADF. */
  close(): BaseFuture<void> {
    const op = new FsOp<void>(CLOSE, new File(this.open().fd, this.path), null);
    this.fd = -1;
    return op;
  }

  private open(): File {
    if (this.fd < 0) throw new TypeError(`File ${this.path} is closed`);
    return this;
  }

  private advancing(op: FsOp<number>, advance: boolean): BaseFuture<number> {
    if (!advance) return op;
    const self = this;
    return gen(function* () {
      const n = yield* op;
      self.position += n;
      return n;
    });
  }
}

/**
 * Opens `path`. Resolves to a {@link File}.
 *
 * @example
 * ```ts
 * const f = yield* open("data.bin", "r");
 * ```
 */
export function open(path: string, flags: OpenFlags = "r"): BaseFuture<File> {
  if (typeof path !== "string" || path.length === 0) throw new TypeError(`Invalid path ${JSON.stringify(path)}: must be a non-empty string`);
  return new FsOp<File>(OPEN, null, path, null, -1, parseFlags(flags));
}

/** `file.read(buf, position)`. @example `const n = yield* read(f, buf);` */
export function read(file: File, buf: Uint8Array, position?: number): BaseFuture<number> {
  return file.read(buf, position);
}

/** `file.write(buf, position)`. @example `const n = yield* write(f, bytes);` */
export function write(file: File, buf: Uint8Array, position?: number): BaseFuture<number> {
  return file.write(buf, position);
}

/** stat of a path or an open File. @example `const { size } = yield* stat("data.bin");` */
export function stat(target: string | File): BaseFuture<Stats> {
  if (target instanceof File) return target.stat();
  if (typeof target !== "string" || target.length === 0) throw new TypeError(`Invalid path ${JSON.stringify(target)}: must be a non-empty string`);
  return new FsOp<Stats>(STAT, null, target);
}

/** fsync an open File. @example `yield* fsync(f);` */
export function fsync(file: File, datasync = false): BaseFuture<void> {
  return file.sync(datasync);
}

/** Close an open File. @example `yield* close(f);` */
export function close(file: File): BaseFuture<void> {
  return file.close();
}


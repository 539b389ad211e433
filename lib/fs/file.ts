/**
 * Files as futures: open, read, write (positional: readAt, writeAt), stat, fsync,
 * setLen, close, and linked writes (the whole-file helpers are in whole.ts, the path
 * operations in paths.ts; lib/fs/index.ts is the surface).
 *
 * Backends: each op goes through the driver's per-file interface (lib/driver/fd.ts
 * FileFd): ring ops on io_uring — real asynchronous file I/O — and, on the readiness
 * backends, where regular files are never "ready", a blocking call on a small Worker pool
 * (as tokio does), the runtime thread woken through its driver. Nothing here asks which.
 *
 * Positions: a File tracks its own position and passes explicit offsets, so a read or
 * write whose future is cancelled never moves it (the bytes stay in the file). One op
 * moves at most 1 MiB; readFile/writeFile and the chunk reader loop over that, so a
 * 64 MB file streams through one chunk-sized buffer.
 *
 * Order: a file's mutations — writes, linked writes, setLen, sync — take effect in the
 * order they were issued (first polled), even when two of them are in flight at once
 * over one range: the driver queues them per file (lib/driver/fd.ts). Reads are not
 * ordered against writes still in flight. {@link File.writeLinked} submits several parts
 * as one chain (IOSQE_IO_LINK on io_uring).
 *
 * Errors: every SysError names the path (`open failed: ENOENT (/etc/nope)`).
 *
 * Closing: `close()` closes at the call, whether or not its future is awaited or
 * cancelled; pending ops of the file then fail with EBADF, and nothing reel submitted for
 * it can touch the number's next owner (the driver keeps that rule, see lib/driver/fd.ts).
 *
 * Must never: hand the caller's buffer to the kernel or a Worker (data is copied through
 * owned or shared memory), leak an fd on an error or a cancel, or block the thread.
 */
import { BaseFuture, FutureStateError, PENDING, gen, ready, type Context, type Poll } from "../future.ts";
import { currentDriver } from "../current.ts";
import { RuntimeError, SysError, checkBuffer } from "../errors.ts";
import { FILE_CHUNK, closedError, type FileFd, type FileFuture, type StatFields } from "../driver/fd.ts";
import type { Driver } from "../driver/driver.ts";

/** Largest read or write one op makes (a larger request is a short transfer). */
export const CHUNK = FILE_CHUNK;

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

/** S_IFMT type bits. */
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/**
 * What stat() / metadata() report: size, mode (type and permission bits), times in ms
 * since the epoch, and the identity fields. `birthtimeMs` is 0 where the filesystem does
 * not record it.
 *
 * @example
 * ```ts
 * const st = yield* fs.metadata("data.bin");
 * if (st.isFile()) console.log(`${st.size} bytes, mode ${(st.mode & 0o777).toString(8)}`);
 * ```
 */
export class Stats {
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly dev: number;
  readonly rdev: number;
  readonly atimeMs: number;
  readonly ctimeMs: number;
  readonly birthtimeMs: number;

  constructor(
    readonly size: number,
    readonly mode: number,
    readonly ino: number,
    readonly blocks: number,
    readonly mtimeMs: number,
    more: Partial<StatFields> = {},
  ) {
    this.nlink = more.nlink ?? 0;
    this.uid = more.uid ?? 0;
    this.gid = more.gid ?? 0;
    this.dev = more.dev ?? 0;
    this.rdev = more.rdev ?? 0;
    this.atimeMs = more.atimeMs ?? 0;
    this.ctimeMs = more.ctimeMs ?? 0;
    this.birthtimeMs = more.birthtimeMs ?? 0;
  }
  /** The permission bits (mode & 0o7777). */
  get permissions(): number {
    return this.mode & 0o7777;
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === S_IFREG;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR;
  }
  /** A symbolic link (only symlinkMetadata() can see one: metadata() follows links). */
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === S_IFLNK;
  }
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === S_IFIFO;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === S_IFSOCK;
  }
  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === S_IFCHR;
  }
  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === S_IFBLK;
  }
}

/**
 * `err` with `path` named in its message (a SysError from the driver names only the
 * syscall); anything else unchanged.
 *
 * @example
 * ```ts
 * try { … } catch (e) { throw withPath(e, "/etc/nope"); } // open failed: ENOENT (/etc/nope)
 * ```
 */
export function withPath(err: unknown, path: string | null): unknown {
  if (!(err instanceof SysError) || path === null || err.message.includes(path)) return err;
  const detail = /\((.*)\)$/.exec(err.message)?.[1];
  return new SysError(err.errno, err.syscall, err.code, detail !== undefined ? `${path}: ${detail}` : path);
}

const OPEN = 0;
const READ = 1;
const WRITE = 2;
const STAT = 3;
const FSYNC = 4;
const LINKED = 5;
const STAT_PATH = 6;
const TRUNCATE = 7;

/** One file op: asks the file's (or, for a path, the current) driver for it on its first poll. */
class FsOp<T> extends BaseFuture<T> {
  private inner: FileFuture<unknown> | null = null;
  private driver: Driver | null = null;
  private done = false;

  constructor(
    private readonly kind: number,
    private readonly file: File | null,
    private readonly path: string | null,
    private readonly buf: Uint8Array | null = null,
    private readonly pos = -1,
    private readonly arg = 0,
    private readonly parts: readonly { data: Uint8Array; position: number }[] | null = null,
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError("fs future polled after completion");
    let r: Poll<unknown>;
    try {
      const inner = this.inner ?? this.start();
      r = inner.poll(cx);
    } catch (err) {
      this.done = true;
      this.inner = null;
      throw withPath(err, this.path ?? this.file?.path ?? null);
    }
    if (r === PENDING) return PENDING;
    this.done = true;
    this.inner = null;
    if (this.kind === OPEN) return new File(this.driver!.file(r as number), this.path!) as T;
    if (this.kind === STAT || this.kind === STAT_PATH) return toStats(r as StatFields) as T;
    return r as T;
  }

  private start(): FileFuture<unknown> {
    if (this.file === null) {
      const d = (this.driver = currentDriver());
      // OPEN carries its flags in `arg` and its creation mode in `pos`.
      this.inner = this.kind === OPEN ? d.openFile(this.path!, this.arg, this.pos) : d.statPath(this.path!);
      return this.inner;
    }
    const h = this.file.handle();
    switch (this.kind) {
      case READ:
        return (this.inner = h.read(this.buf!, this.pos));
      case WRITE:
        return (this.inner = h.write(this.buf!, this.pos));
      case STAT:
        return (this.inner = h.stat());
      case FSYNC:
        return (this.inner = h.sync(this.arg === 1));
      case TRUNCATE:
        return (this.inner = h.truncate(this.arg));
      default:
        return (this.inner = h.writeLinked(this.parts!));
    }
  }

  override cancel(): void {
    this.done = true;
    const inner = this.inner;
    this.inner = null;
    inner?.cancel();
  }
}

/**
 * A {@link Stats} from the driver's fields.
 *
 * @example
 * ```ts
 * const st = toStats(fields);
 * ```
 */
export function toStats(f: StatFields): Stats {
  return new Stats(f.size, f.mode, f.ino, f.blocks, f.mtimeMs, f);
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

  /** @internal Made by open(); `h` is the driver's handle for the fd. */
  constructor(
    private readonly h: FileFd,
    readonly path: string,
  ) {}

  /** The fd (-1 once closed). */
  get fd(): number {
    return this.h.fd;
  }

  /** @internal The driver's handle, for an op on the runtime that opened the file. */
  handle(): FileFd {
    if (this.h.fd < 0) throw closedError("file op", "file");
    if (this.h.driver !== currentDriver()) {
      throw new RuntimeError(`Cannot use file ${this.path}: it belongs to another reel runtime (or one that was closed)`, "EFOREIGN");
    }
    return this.h;
  }

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

  /** Reads up to buf.length (≤ 1 MiB) bytes at `position` (pread): the count, 0 past the end. `position` is unchanged. */
  readAt(buf: Uint8Array, position: number): BaseFuture<number> {
    return this.read(buf, checkPosition(position, "readAt"));
  }

  /**
   * Writes up to buf.length (≤ 1 MiB) bytes at `position` (pwrite): the count. Writes to
   * one file land in issue order, even to overlapping ranges (see the module header).
   */
  writeAt(buf: Uint8Array, position: number): BaseFuture<number> {
    return this.write(buf, checkPosition(position, "writeAt"));
  }

  /** Truncates or extends the file to `len` bytes (ftruncate), ordered after the writes issued before it. */
  setLen(len: number): BaseFuture<void> {
    return new FsOp<void>(TRUNCATE, this.open(), null, null, -1, checkPosition(len, "setLen"));
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
    for (const p of parts) checkBuffer(p.data, "writeLinked() part");
    return new FsOp<number[]>(LINKED, this.open(), null, null, -1, 0, parts);
  }

  stat(): BaseFuture<Stats> {
    return new FsOp<Stats>(STAT, this.open(), null);
  }

  /** fsync (or fdatasync with `datasync`). */
  sync(datasync = false): BaseFuture<void> {
    return new FsOp<void>(FSYNC, this.open(), null, null, -1, datasync ? 1 : 0);
  }

  /**
   * Closes the file now, at the call (awaiting the returned future is optional); pending
   * ops fail with EBADF. Further ops throw. Closing twice is a no-op. Throws SysError if
   * close(2) itself fails.
   */
  close(): BaseFuture<void> {
    this.h.close();
    return ready(undefined);
  }

  [Symbol.dispose](): void {
    this.h.close();
  }

  private open(): File {
    if (this.h.fd < 0) throw new TypeError(`File ${this.path} is closed`);
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

/** Validates an offset or length: an integer 0 … 2^53. */
function checkPosition(n: number, what: string): number {
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new RangeError(`Invalid ${what}() position ${String(n)}: must be an integer ≥ 0`);
  return n;
}

/**
 * Opens `path` (`mode`: the permission bits a created file gets, before the umask).
 * Resolves to a {@link File}.
 *
 * @example
 * ```ts
 * const f = yield* open("data.bin", "r");
 * ```
 */
export function open(path: string, flags: OpenFlags = "r", mode = 0o666): BaseFuture<File> {
  if (typeof path !== "string" || path.length === 0) throw new TypeError(`Invalid path ${JSON.stringify(path)}: must be a non-empty string`);
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new RangeError(`Invalid open() mode ${String(mode)}: must be an integer 0-0o7777`);
  return new FsOp<File>(OPEN, null, path, null, mode, parseFlags(flags));
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
  return new FsOp<Stats>(STAT_PATH, null, target);
}

/** fsync an open File. @example `yield* fsync(f);` */
export function fsync(file: File, datasync = false): BaseFuture<void> {
  return file.sync(datasync);
}

/** Close an open File. @example `yield* close(f);` */
export function close(file: File): BaseFuture<void> {
  return file.close();
}


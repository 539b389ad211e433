/**
 * Path operations as futures: readDir, mkdir (recursive), remove, removeDir,
 * removeDirAll, rename, metadata, symlinkMetadata, copyFile, symlink, readLink,
 * canonicalize, truncate. Each goes through the current driver's {@link PathOps}
 * (lib/driver/fd.ts): io_uring ops where the kernel has them (mkdirat, renameat,
 * unlinkat, symlinkat, statx), the blocking pool otherwise (readdir, readlink, realpath,
 * truncate, and everything on epoll/poll/kqueue). Nothing here asks which.
 *
 * Errors: SysError with the path in the message (`rename failed: ENOENT (/a -> /b)`);
 * bad arguments are TypeError/RangeError naming the value.
 *
 * The compound operations (recursive mkdir, removeDirAll, copyFile) are generator
 * futures over the single ones: cancelling one stops it between steps (what was created,
 * removed or copied so far stays), and copyFile closes both files whatever happens.
 *
 * Must never: follow a symlink while removing a tree (a link is removed, not its target),
 * or leave a file it opened open.
 */
import { BaseFuture, FutureStateError, PENDING, gen, type Context, type Poll } from "../future.ts";
import { currentDriver } from "../current.ts";
import { SysError } from "../errors.ts";
import type { DirEntryFields, FileFuture, PathOps } from "../driver/fd.ts";
import { CHUNK, open, toStats, withPath, type File, type Stats } from "./file.ts";

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** One path op on the current driver: made at the first poll, its error naming `detail`. */
class PathFuture<T, U = T> extends BaseFuture<U> {
  private inner: FileFuture<T> | null = null;
  private done = false;

  constructor(
    private readonly make: (p: PathOps) => FileFuture<T>,
    private readonly detail: string,
    private readonly map: (v: T) => U = (v) => v as unknown as U,
  ) {
    super();
  }

  poll(cx: Context): Poll<U> {
    if (this.done) throw new FutureStateError("fs future polled after completion");
    let r: Poll<T>;
    try {
      r = (this.inner ??= this.make(currentDriver().paths)).poll(cx);
    } catch (err) {
      this.done = true;
      this.inner = null;
      throw withPath(err, this.detail);
    }
    if (r === PENDING) return PENDING;
    this.done = true;
    this.inner = null;
    return this.map(r);
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    const inner = this.inner;
    this.inner = null;
    inner?.cancel();
  }
}

function checkPath(path: unknown, what: string): string {
  if (typeof path !== "string" || path.length === 0) throw new TypeError(`Invalid ${what} ${JSON.stringify(path)}: must be a non-empty string`);
  if (path.includes("\0")) throw new TypeError(`Invalid ${what} ${JSON.stringify(path)}: contains a NUL byte`);
  return path;
}

/** The parent directory of `path` ("" when it has none to create). */
function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const i = trimmed.lastIndexOf("/");
  return i <= 0 ? "" : trimmed.slice(0, i);
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/**
 * One directory entry (from {@link readDir}). The type comes from the directory listing
 * itself where the filesystem reports it (no extra stat); use {@link symlinkMetadata} on
 * `path` when `isUnknown()` is true.
 *
 * @example
 * ```ts
 * for (const e of yield* fs.readDir("/tmp")) if (e.isDirectory()) console.log(e.path);
 * ```
 */
export class DirEntry {
  constructor(
    /** The entry's name (no directory part). */
    readonly name: string,
    /** The directory read joined with the name. */
    readonly path: string,
    /** S_IFMT type bits; 0 when the filesystem did not say. */
    readonly type: number,
  ) {}
  isFile(): boolean {
    return this.type === 0o100000;
  }
  isDirectory(): boolean {
    return this.type === S_IFDIR;
  }
  /** A symbolic link (not followed). */
  isSymbolicLink(): boolean {
    return this.type === S_IFLNK;
  }
  /** The listing did not report the type. */
  isUnknown(): boolean {
    return this.type === 0;
  }
}

/**
 * The entries of directory `path` ("." and ".." left out), in the order the filesystem
 * lists them.
 *
 * @example
 * ```ts
 * const names = (yield* fs.readDir("/etc")).map((e) => e.name);
 * ```
 */
export function readDir(path: string): BaseFuture<DirEntry[]> {
  const p = checkPath(path, "directory path");
  return new PathFuture((ops) => ops.readDir(p), p, (list: DirEntryFields[]) => list.map((e) => new DirEntry(e.name, joinPath(p, e.name), e.type)));
}

/**
 * Options for {@link mkdir}.
 *
 * @example
 * ```ts
 * const opts: MkdirOptions = { recursive: true, mode: 0o750 };
 * yield* fs.mkdir("/tmp/a/b", opts);
 * ```
 */
export interface MkdirOptions {
  /** Create missing parents too, and succeed if the directory exists (mkdir -p). Default false. */
  recursive?: boolean;
  /** Permission bits before the umask; default 0o777. */
  mode?: number;
}

/**
 * Creates directory `path`; with `recursive`, its missing parents too (and an existing
 * directory is not an error).
 *
 * @example
 * ```ts
 * yield* fs.mkdir("/tmp/a/b/c", { recursive: true });
 * ```
 */
export function mkdir(path: string, options: MkdirOptions = {}): BaseFuture<void> {
  const p = checkPath(path, "directory path");
  const mode = options.mode ?? 0o777;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new RangeError(`Invalid mkdir() mode ${String(mode)}: must be an integer 0-0o7777`);
  if (options.recursive !== true) return new PathFuture((ops) => ops.mkdir(p, mode), p);
  return gen(function* () {
    yield* mkdirAll(p, mode, 0);
  });
}

/** mkdir -p: create, or create the parent and retry; an existing directory is fine. */
function* mkdirAll(p: string, mode: number, depth: number): Generator<unknown, void, unknown> {
  if (depth > 4096) throw new RangeError(`mkdir() of ${p}: too many levels`);
  try {
    yield* new PathFuture((ops) => ops.mkdir(p, mode), p);
    return;
  } catch (err) {
    const code = err instanceof SysError ? err.code : "";
    if (code === "EEXIST") {
      if ((yield* metadata(p)).isDirectory()) return;
      throw err;
    }
    const parent = parentOf(p);
    if (code !== "ENOENT" || parent === "") throw err;
  }
  yield* mkdirAll(parentOf(p), mode, depth + 1);
  try {
    yield* new PathFuture((ops) => ops.mkdir(p, mode), p);
  } catch (err) {
    // Someone else made it meanwhile: as good as ours.
    if (!(err instanceof SysError && err.code === "EEXIST" && (yield* metadata(p)).isDirectory())) throw err;
  }
}

/**
 * Removes a file or symlink (unlink; a directory is EISDIR — use removeDir).
 *
 * @example
 * ```ts
 * yield* fs.remove("/tmp/old.log");
 * ```
 */
export function remove(path: string): BaseFuture<void> {
  const p = checkPath(path, "path");
  return new PathFuture((ops) => ops.unlink(p, false), p);
}

/**
 * Removes an empty directory (rmdir; ENOTEMPTY otherwise — see removeDirAll).
 *
 * @example
 * ```ts
 * yield* fs.removeDir("/tmp/empty");
 * ```
 */
export function removeDir(path: string): BaseFuture<void> {
  const p = checkPath(path, "directory path");
  return new PathFuture((ops) => ops.unlink(p, true), p);
}

/**
 * Removes a directory and everything under it. Symlinks are removed, never followed.
 *
 * @example
 * ```ts
 * yield* fs.removeDirAll("/tmp/build");
 * ```
 */
export function removeDirAll(path: string): BaseFuture<void> {
  const p = checkPath(path, "directory path");
  return gen(function* () {
    yield* removeTree(p, 0);
  });
}

function* removeTree(p: string, depth: number): Generator<unknown, void, unknown> {
  if (depth > 4096) throw new RangeError(`removeDirAll() of ${p}: too many levels`);
  for (const e of yield* readDir(p)) {
    const type = e.isUnknown() ? (yield* symlinkMetadata(e.path)).mode & S_IFMT : e.type;
    if (type === S_IFDIR) yield* removeTree(e.path, depth + 1);
    else yield* remove(e.path);
  }
  yield* removeDir(p);
}

/**
 * Renames `from` to `to`, replacing `to` if it exists (atomically, on one filesystem).
 *
 * @example
 * ```ts
 * yield* fs.rename("/tmp/out.tmp", "/tmp/out.json");
 * ```
 */
export function rename(from: string, to: string): BaseFuture<void> {
  const a = checkPath(from, "source path");
  const b = checkPath(to, "destination path");
  return new PathFuture((ops) => ops.rename(a, b), `${a} -> ${b}`);
}

/**
 * The metadata of `path`, following symlinks (stat).
 *
 * @example
 * ```ts
 * const { size, mtimeMs } = yield* fs.metadata("data.bin");
 * ```
 */
export function metadata(path: string): BaseFuture<Stats> {
  const p = checkPath(path, "path");
  return new PathFuture((ops) => ops.stat(p, true), p, toStats);
}

/**
 * The metadata of `path` itself, not following a symlink (lstat).
 *
 * @example
 * ```ts
 * if ((yield* fs.symlinkMetadata("current")).isSymbolicLink()) console.log("a link");
 * ```
 */
export function symlinkMetadata(path: string): BaseFuture<Stats> {
  const p = checkPath(path, "path");
  return new PathFuture((ops) => ops.stat(p, false), p, toStats);
}

/**
 * Creates symlink `path` pointing at `target` (which need not exist).
 *
 * @example
 * ```ts
 * yield* fs.symlink("releases/v2", "current");
 * ```
 */
export function symlink(target: string, path: string): BaseFuture<void> {
  const t = checkPath(target, "symlink target");
  const p = checkPath(path, "symlink path");
  return new PathFuture((ops) => ops.symlink(t, p), `${p} -> ${t}`);
}

/**
 * The target of symlink `path` (as stored, not resolved).
 *
 * @example
 * ```ts
 * const target = yield* fs.readLink("current"); // "releases/v2"
 * ```
 */
export function readLink(path: string): BaseFuture<string> {
  const p = checkPath(path, "symlink path");
  return new PathFuture((ops) => ops.readLink(p), p);
}

/**
 * The absolute path of `path` with every symlink, "." and ".." resolved (realpath).
 *
 * @example
 * ```ts
 * const abs = yield* fs.canonicalize("./current/../data");
 * ```
 */
export function canonicalize(path: string): BaseFuture<string> {
  const p = checkPath(path, "path");
  return new PathFuture((ops) => ops.realPath(p), p);
}

/**
 * Truncates or extends the file at `path` to `len` bytes.
 *
 * @example
 * ```ts
 * yield* fs.truncate("/tmp/log", 0);
 * ```
 */
export function truncate(path: string, len = 0): BaseFuture<void> {
  const p = checkPath(path, "path");
  if (typeof len !== "number" || !Number.isSafeInteger(len) || len < 0) throw new RangeError(`Invalid truncate() length ${String(len)}: must be an integer ≥ 0`);
  return new PathFuture((ops) => ops.truncate(p, len), p);
}

/**
 * Copies the contents of file `from` to `to` (created with `from`'s permission bits, or
 * truncated): the number of bytes copied. Both files are closed whatever happens.
 *
 * @example
 * ```ts
 * const n = yield* fs.copyFile("config.json", "config.json.bak");
 * ```
 */
export function copyFile(from: string, to: string): BaseFuture<number> {
  const a = checkPath(from, "source path");
  const b = checkPath(to, "destination path");
  return gen(function* () {
    const src: File = yield* open(a, "r");
    let dst: File | null = null;
    try {
      const st = yield* src.stat();
      if (st.isDirectory()) throw new SysError(21, "copyFile", "EISDIR", a);
      dst = yield* openWithMode(b, st.permissions);
      const buf = new Uint8Array(new ArrayBuffer(Math.min(CHUNK, Math.max(st.size, 4096))));
      let total = 0;
      for (;;) {
        const n = yield* src.read(buf, total);
        if (n === 0) break;
        yield* dst.writeAll(buf.subarray(0, n), total);
        total += n;
      }
      return total;
    } finally {
      src.close();
      dst?.close();
    }
  });
}

/** Opens `path` write-only, created with `mode` or truncated. */
function openWithMode(path: string, mode: number): BaseFuture<File> {
  const O_WRONLY = 1;
  const O_CREAT = 0o100;
  const O_TRUNC = 0o1000;
  return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

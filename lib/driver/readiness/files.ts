/**
 * Regular files on the readiness backends: the {@link FileFd} interface over the blocking
 * pool (pool.ts). Each op is a job a worker runs; the file tracks its jobs so that its
 * fd number is never released while a worker may still act on it. Also the path
 * operations on the pool ({@link PoolPaths}): every backend's readDir, readLink and
 * realPath, and all of them on the readiness backends.
 *
 * Order: a file sends every job to one pool Worker (its lane, chosen when it is opened),
 * which runs them one after the other in submission order — so two writes to one range
 * land in the order they were issued, and a truncate or fsync comes after the writes
 * issued before it.
 *
 * Closing, the one rule (lib/driver/fd.ts): `close()` abandons the file's queued jobs
 * (they never run; their futures fail with EBADF). If no worker is inside a call on the
 * fd, the fd is closed at once; otherwise the number is pinned (lib/driver/retire.ts: the
 * file is released now, the number stays taken by /dev/null) and released when the last
 * running call has ended. Either way a new open() can never get a number a worker is
 * about to use, so no byte reaches or leaves the wrong file.
 *
 * Must never: let a job run on a number after its file's close() returned, or release a
 * pinned number before the file's last running job has ended.
 */
import * as libc from "../../../ffi/libc.ts";
import { EINTR } from "../../../ffi/errno.ts";
import { FutureStateError, PENDING, type Context, type Poll } from "../../future.ts";
import { FILE_CHUNK, type DirEntryFields, type FileFd, type FileFuture, type PathOps, type StatFields } from "../fd.ts";
import type { Retirer } from "../retire.ts";
import type { Driver } from "../driver.ts";
import { SysError } from "../../errors.ts";
import { AS_DIR, AS_NUMBER, AS_STAT, AS_STRING, AS_VOID, JobFuture, POOL_WORKERS, type Job, type JobOwner, type JobRequest, type PoolClient } from "./pool.ts";

/** The next file's lane (pool Worker index): files are spread round-robin. */
let nextLane = 0;

/**
 * An open regular file on the pool.
 *
 * @example
 * ```ts
 * const f = new PoolFile(driver, client, retirer, fd);
 * const n = f.read(buf, 0); // a FileFuture<number>
 * f.close();
 * ```
 */
export class PoolFile implements FileFd, JobOwner {
  private readonly jobs = new Set<Job>();
  /** The number this file pinned at close, while its running jobs end; -1 otherwise. */
  private pinned = -1;
  /** The pool Worker that runs all of this file's jobs (see the module header). */
  readonly lane = nextLane++ % POOL_WORKERS;

  constructor(
    readonly driver: Driver,
    private readonly client: PoolClient,
    private readonly retirer: Retirer,
    /** A valid fd owned by this file, or -1 once closed. */
    public fd: number,
  ) {}

  read(buf: Uint8Array, pos: number): FileFuture<number> {
    const len = buf.byteLength < FILE_CHUNK ? buf.byteLength : FILE_CHUNK;
    return new JobFuture<number>(this.client, { op: "read", fd: this.fd, len, pos }, this, buf, AS_NUMBER);
  }

  write(data: Uint8Array, pos: number): FileFuture<number> {
    const part = data.byteLength > FILE_CHUNK ? data.subarray(0, FILE_CHUNK) : data;
    return new JobFuture<number>(this.client, { op: "write", fd: this.fd, data: part, pos }, this, null, AS_NUMBER);
  }

  writeLinked(parts: readonly { data: Uint8Array; position: number }[]): FileFuture<number[]> {
    return new Sequential(this, parts);
  }

  stat(): FileFuture<StatFields> {
    return new JobFuture<StatFields>(this.client, { op: "fstat", fd: this.fd }, this, null, AS_STAT);
  }

  sync(datasync: boolean): FileFuture<void> {
    return new JobFuture<void>(this.client, { op: "fsync", fd: this.fd, datasync }, this, null, AS_VOID);
  }

  truncate(len: number): FileFuture<void> {
    return new JobFuture<void>(this.client, { op: "ftruncate", fd: this.fd, len }, this, null, AS_VOID);
  }

  jobStarted(job: Job): void {
    this.jobs.add(job);
  }

  jobDone(job: Job): void {
    this.jobs.delete(job);
    if (this.pinned >= 0 && this.jobs.size === 0) {
      this.retirer.release(this.pinned);
      this.pinned = -1;
    }
  }

  /** Closes at once (see the module header). Idempotent. */
  close(): void {
    const fd = this.fd;
    if (fd < 0) return;
    this.fd = -1;
    let running = false;
    for (const job of [...this.jobs]) if (!this.client.abandon(job) && job.running) running = true;
    if (running) {
      this.retirer.pin(fd);
      this.pinned = fd;
      return;
    }
    const r = libc.close(fd);
    // EINTR on close still releases the fd on Linux and the BSDs: do not retry.
    if (r < 0 && r !== -EINTR) throw new SysError(-r, "close");
  }
}

/** writeLinked on the pool: each part is submitted once the one before it completed. */
class Sequential implements FileFuture<number[]> {
  private i = 0;
  private cur: FileFuture<number> | null = null;
  private readonly out: number[] = [];
  private done = false;

  constructor(
    private readonly file: PoolFile,
    private readonly parts: readonly { data: Uint8Array; position: number }[],
  ) {}

  poll(cx: Context): Poll<number[]> {
    if (this.done) throw new FutureStateError("writeLinked() future polled after completion");
    while (this.i < this.parts.length) {
      const p = this.parts[this.i]!;
      const cur = this.cur ?? (this.cur = this.file.write(p.data, p.position));
      let n: Poll<number>;
      try {
        n = cur.poll(cx);
      } catch (err) {
        this.done = true;
        throw err;
      }
      if (n === PENDING) return PENDING;
      this.out.push(n);
      this.cur = null;
      this.i++;
    }
    this.done = true;
    return this.out;
  }

  cancel(): void {
    this.done = true;
    this.cur?.cancel();
    this.cur = null;
  }
}

/**
 * open(path, flags, mode) on the pool: resolves to the fd (closed if it opened after a cancel).
 *
 * @example
 * ```ts
 * const fut = openOnPool(client, "/etc/hostname", O_RDONLY | O_CLOEXEC, 0o666);
 * ```
 */
export function openOnPool(client: PoolClient, path: string, flags: number, mode: number): FileFuture<number> {
  return new JobFuture<number>(client, { op: "open", path, flags, mode }, null, null, AS_NUMBER);
}

/**
 * stat(path) on the pool.
 *
 * @example
 * ```ts
 * const fut = statOnPool(client, "/etc/hostname");
 * ```
 */
export function statOnPool(client: PoolClient, path: string): FileFuture<StatFields> {
  return new JobFuture<StatFields>(client, { op: "stat", path }, null, null, AS_STAT);
}

/**
 * The path operations as pool jobs (round-robin over the pool's Workers).
 *
 * @example
 * ```ts
 * const paths = new PoolPaths(client);
 * const fut = paths.readDir("/tmp"); // a FileFuture<DirEntryFields[]>
 * ```
 */
export class PoolPaths implements PathOps {
  constructor(private readonly client: PoolClient) {}

  private job<T>(req: JobRequest, as: typeof AS_VOID | typeof AS_STAT | typeof AS_STRING | typeof AS_DIR): FileFuture<T> {
    return new JobFuture<T>(this.client, req, null, null, as);
  }

  mkdir(path: string, mode: number): FileFuture<void> {
    return this.job({ op: "mkdir", path, mode }, AS_VOID);
  }

  rename(from: string, to: string): FileFuture<void> {
    return this.job({ op: "rename", path: from, path2: to }, AS_VOID);
  }

  unlink(path: string, dir: boolean): FileFuture<void> {
    return this.job({ op: dir ? "rmdir" : "unlink", path }, AS_VOID);
  }

  symlink(target: string, path: string): FileFuture<void> {
    return this.job({ op: "symlink", path: target, path2: path }, AS_VOID);
  }

  readLink(path: string): FileFuture<string> {
    return this.job({ op: "readlink", path }, AS_STRING);
  }

  readDir(path: string): FileFuture<DirEntryFields[]> {
    return this.job({ op: "readdir", path }, AS_DIR);
  }

  realPath(path: string): FileFuture<string> {
    return this.job({ op: "realpath", path }, AS_STRING);
  }

  truncate(path: string, len: number): FileFuture<void> {
    return this.job({ op: "truncate", path, len }, AS_VOID);
  }

  stat(path: string, follow: boolean): FileFuture<StatFields> {
    return this.job({ op: follow ? "stat" : "lstat", path }, AS_STAT);
  }
}

/**
 * Regular files on the readiness backends: the {@link FileFd} interface over the blocking
 * pool (pool.ts). Each op is a job a worker runs; the file tracks its jobs so that its
 * fd number is never released while a worker may still act on it.
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
import { FILE_CHUNK, type FileFd, type FileFuture, type StatFields } from "../fd.ts";
import type { Retirer } from "../retire.ts";
import type { Driver } from "../driver.ts";
import { SysError } from "../../errors.ts";
import { AS_NUMBER, AS_STAT, AS_VOID, JobFuture, type Job, type JobOwner, type PoolClient } from "./pool.ts";

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

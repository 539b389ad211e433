/**
 * The path operations on the io_uring backend ({@link PathOps}): ring ops where this
 * kernel has the opcode — IORING_OP_MKDIRAT, RENAMEAT, UNLINKAT, SYMLINKAT and STATX
 * (probed at setup: 5.11–5.15 added them) — and the blocking pool (readiness/pool.ts) for
 * the rest: readdir, readlink, realpath and truncate of a path have no opcode, and a
 * kernel without one of the above falls back to the pool for it.
 *
 * Ownership: each path is a NUL-terminated ArrayBuffer-backed copy held by its op (`aux`)
 * until the CQE, as openat's is (files.ts).
 *
 * Must never: hand the kernel a pointer into a caller's string or array, or submit an
 * opcode the probe did not report.
 */
import { ptr } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import { PENDING, type Context, type Poll } from "../../future.ts";
import type { DirEntryFields, FileFuture, PathOps, StatFields } from "../fd.ts";
import { PoolPaths } from "../readiness/files.ts";
import type { UringDriver } from "./driver.ts";
import { cPath, statOnRing } from "./files.ts";
import { UringFuture, type OpSpec } from "./ops.ts";

/** A ring op whose result is not needed (0 on success). */
class Done implements FileFuture<void> {
  constructor(private readonly inner: UringFuture) {}
  poll(cx: Context): Poll<void> {
    return this.inner.poll(cx) === PENDING ? PENDING : undefined;
  }
  cancel(): void {
    this.inner.cancel();
  }
}

/** The address of an ArrayBuffer-backed path the op holds. */
function addr(p: Uint8Array): number {
  // SAFETY: `p` is ArrayBuffer-backed and becomes the op's aux, held until its CQE.
  return ptr(p) as number;
}

/**
 * Path ops for one uring driver.
 *
 * @example
 * ```ts
 * const paths = new UringPaths(driver);
 * const fut = paths.mkdir("/tmp/x", 0o777); // IORING_OP_MKDIRAT where the kernel has it
 * ```
 */
export class UringPaths implements PathOps {
  private pool: PoolPaths | null = null;

  constructor(private readonly d: UringDriver) {}

  private has(opcode: number): boolean {
    return this.d.caps.probe[opcode] === 1;
  }

  /** The pool, for what the ring cannot do. */
  private fallback(): PoolPaths {
    return (this.pool ??= new PoolPaths(this.d.poolClient()));
  }

  private op(spec: OpSpec): FileFuture<void> {
    return new Done(new UringFuture(this.d, spec));
  }

  mkdir(path: string, mode: number): FileFuture<void> {
    if (!this.has(U.OP_MKDIRAT)) return this.fallback().mkdir(path, mode);
    const p = cPath(path);
    return this.op({ opcode: U.OP_MKDIRAT, fd: U.AT_FDCWD, addr: addr(p), len: mode, aux: p, syscall: "mkdir" });
  }

  rename(from: string, to: string): FileFuture<void> {
    if (!this.has(U.OP_RENAMEAT)) return this.fallback().rename(from, to);
    const a = cPath(from);
    const b = cPath(to);
    return this.op({ opcode: U.OP_RENAMEAT, fd: U.AT_FDCWD, addr: addr(a), len: U.AT_FDCWD >>> 0, addr2: addr(b), aux: [a, b], syscall: "rename" });
  }

  unlink(path: string, dir: boolean): FileFuture<void> {
    if (!this.has(U.OP_UNLINKAT)) return this.fallback().unlink(path, dir);
    const p = cPath(path);
    return this.op({ opcode: U.OP_UNLINKAT, fd: U.AT_FDCWD, addr: addr(p), opFlags: dir ? U.AT_REMOVEDIR : 0, aux: p, syscall: dir ? "rmdir" : "unlink" });
  }

  symlink(target: string, path: string): FileFuture<void> {
    if (!this.has(U.OP_SYMLINKAT)) return this.fallback().symlink(target, path);
    const t = cPath(target);
    const p = cPath(path);
    return this.op({ opcode: U.OP_SYMLINKAT, fd: U.AT_FDCWD, addr: addr(t), addr2: addr(p), aux: [t, p], syscall: "symlink" });
  }

  readLink(path: string): FileFuture<string> {
    return this.fallback().readLink(path);
  }

  readDir(path: string): FileFuture<DirEntryFields[]> {
    return this.fallback().readDir(path);
  }

  realPath(path: string): FileFuture<string> {
    return this.fallback().realPath(path);
  }

  truncate(path: string, len: number): FileFuture<void> {
    return this.fallback().truncate(path, len);
  }

  stat(path: string, follow: boolean): FileFuture<StatFields> {
    return statOnRing(this.d, path, follow);
  }
}

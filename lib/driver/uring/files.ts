/**
 * Regular files on the io_uring backend: the {@link FileFd} interface as ring ops
 * (read, write, statx, fsync, linked writes), the path ops (openat, statx of a path), and
 * the SQE descriptions ({@link OpSpec}) with the owned memory each one needs.
 *
 * Ownership: every pointer handed to the kernel comes from memory the op holds (`buf` or
 * `aux`): a NUL-terminated path, a statx buffer, an owned data buffer. A write copies the
 * caller's bytes into its owned buffer when the op is made.
 *
 * Closing: a {@link UringFile} is an fd owner (owner.ts): close() rewrites its unsubmitted
 * SQEs into NOPs, cancels its ops in the kernel by fd, and closes the fd at once — or, when
 * an op a kernel worker runs cannot be stopped, or a linked write still waits for its turn
 * (the kernel resolves a link's fd only when it issues it), pins the number until the last
 * of them has completed. A pending op of a closed file fails with EBADF.
 *
 * Must never: pass a pointer into the caller's arrays, read past `len` of a buffer, or let
 * an op act on the number after close() returned.
 */
import { ptr } from "bun:ffi";
import * as U from "../../../ffi/uring.ts";
import { FutureStateError, PENDING, type Context, type Poll } from "../../future.ts";
import { FILE_CHUNK, closedError, type FileFd, type FileFuture, type StatFields } from "../fd.ts";
import { K_FD } from "./op.ts";
import type { BufferPool } from "./buf.ts";
import type { UringDriver } from "./driver.ts";
import { UringFdOwner } from "./owner.ts";
import { UringFuture, linked, type OpSpec } from "./ops.ts";

const encoder = new TextEncoder();

/** A NUL-terminated, ArrayBuffer-backed copy of `path`. */
export function cPath(path: string): Uint8Array {
  const bytes = encoder.encode(path);
  const out = new Uint8Array(new ArrayBuffer(bytes.length + 1));
  out.set(bytes);
  return out;
}

/** openat(AT_FDCWD, path, flags, mode): resolves to the fd (closed if cancelled after it opened). */
export function openSpec(path: string, flags: number, mode: number): OpSpec {
  const p = cPath(path);
  // SAFETY: `p` is ArrayBuffer-backed and becomes the op's aux (held until the CQE).
  return { opcode: U.OP_OPENAT, fd: U.AT_FDCWD, addr: ptr(p) as number, len: mode, opFlags: flags, aux: p, kind: K_FD, syscall: "openat" };
}

/** read(fd, ≤ FILE_CHUNK bytes, at pos or the current position when pos < 0) into an owned buffer. */
export function readSpec(pool: BufferPool, fd: number, len: number, pos: number): OpSpec {
  const n = len < FILE_CHUNK ? len : FILE_CHUNK;
  const ob = pool.get(n);
  return { opcode: U.OP_READ, fd, addr: ob.addr, len: n, off: pos, buf: ob, syscall: "read" };
}

/** write(fd, a copy of data's first ≤ FILE_CHUNK bytes, at pos or the current position when pos < 0). */
export function writeSpec(pool: BufferPool, fd: number, data: Uint8Array, pos: number): OpSpec {
  const n = data.byteLength < FILE_CHUNK ? data.byteLength : FILE_CHUNK;
  const ob = pool.get(n);
  ob.bytes.set(n === data.byteLength ? data : data.subarray(0, n));
  return { opcode: U.OP_WRITE, fd, addr: ob.addr, len: n, off: pos, buf: ob, syscall: "write" };
}

/** statx of `path`, or of `fd` itself when path is null (AT_EMPTY_PATH). */
export function statxSpec(fd: number, path: string | null): [OpSpec, Uint8Array] {
  const p = cPath(path ?? "");
  const out = new Uint8Array(new ArrayBuffer(U.STATX.size));
  const spec: OpSpec = {
    opcode: U.OP_STATX,
    fd: path === null ? fd : U.AT_FDCWD,
    // SAFETY: `p` is held as the op's aux until its CQE.
    addr: ptr(p) as number,
    len: U.STATX_BASIC_STATS,
    // SAFETY: `out` is held as the op's aux until its CQE.
    addr2: ptr(out) as number,
    opFlags: path === null ? U.AT_EMPTY_PATH : 0,
    aux: [p, out],
    syscall: "statx",
  };
  return [spec, out];
}

/** fsync / fdatasync. */
export function fsyncSpec(fd: number, datasync: boolean): OpSpec {
  return { opcode: U.OP_FSYNC, fd, opFlags: datasync ? 1 : 0, syscall: "fsync" };
}

/** Decodes the statx buffer (little-endian u64s as two u32 words). */
export function decodeStatx(b: Uint8Array): StatFields {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u64 = (o: number) => v.getUint32(o, true) + v.getUint32(o + 4, true) * 0x1_0000_0000;
  const sec = u64(U.STATX.mtimeSec);
  return {
    size: u64(U.STATX.fileSize),
    mode: v.getUint16(U.STATX.mode, true),
    ino: u64(U.STATX.ino),
    blocks: u64(U.STATX.blocks),
    mtimeMs: sec * 1000 + v.getUint32(U.STATX.mtimeNsec, true) / 1e6,
  };
}

/** A UringFuture whose result is mapped (stat fields, nothing). */
class Mapped<T> implements FileFuture<T> {
  constructor(
    private readonly inner: UringFuture,
    private readonly map: (r: number) => T,
  ) {}
  poll(cx: Context): Poll<T> {
    const r = this.inner.poll(cx);
    return r === PENDING ? PENDING : this.map(r);
  }
  cancel(): void {
    this.inner.cancel();
  }
}

/**
 * An open regular file on the ring.
 *
 * @example
 * ```ts
 * const f = driver.file(fd);  // a UringFile on the uring backend
 * const n = f.read(buf, 0);   // a FileFuture<number>
 * f.close();
 * ```
 */
export class UringFile extends UringFdOwner implements FileFd {
  read(buf: Uint8Array, pos: number): FileFuture<number> {
    const d = this.driver;
    return new UringFuture(d, readSpec(d.pool, this.fd, buf.byteLength, pos), buf, this);
  }

  write(data: Uint8Array, pos: number): FileFuture<number> {
    const d = this.driver;
    return new UringFuture(d, writeSpec(d.pool, this.fd, data, pos), null, this);
  }

  writeLinked(parts: readonly { data: Uint8Array; position: number }[]): FileFuture<number[]> {
    return new LinkedWrites(this, parts);
  }

  stat(): FileFuture<StatFields> {
    const [spec, out] = statxSpec(this.fd, null);
    return new Mapped(new UringFuture(this.driver, spec, null, this), () => decodeStatx(out));
  }

  sync(datasync: boolean): FileFuture<void> {
    return new Mapped(new UringFuture(this.driver, fsyncSpec(this.fd, datasync), null, this), () => undefined);
  }

  /** Closes at once (see the module header). Idempotent. */
  close(): void {
    this.release();
  }
}

/** writeLinked: the parts as one IOSQE_IO_LINK chain, submitted at the first poll. */
class LinkedWrites implements FileFuture<number[]> {
  private futs: UringFuture[] | null = null;
  private i = 0;
  private readonly out: number[] = [];
  private done = false;

  constructor(
    private readonly file: UringFile,
    private readonly parts: readonly { data: Uint8Array; position: number }[],
  ) {}

  poll(cx: Context): Poll<number[]> {
    if (this.done) throw new FutureStateError("writeLinked() future polled after completion");
    if (this.futs === null) {
      if (this.file.fd < 0) {
        this.done = true;
        throw closedError("write", "file");
      }
      const d = this.file.driver;
      this.futs = linked(this.parts.map((p) => writeSpec(d.pool, -1, p.data, p.position)), [], -1, this.file, d);
    }
    const futs = this.futs;
    try {
      for (; this.i < futs.length; this.i++) {
        const n = futs[this.i]!.poll(cx);
        if (n === PENDING) return PENDING;
        this.out.push(n);
      }
    } catch (err) {
      // An error ends the chain: the kernel cancelled the links after it; settle ours.
      this.cancel();
      throw err;
    }
    this.done = true;
    return this.out;
  }

  /** Cancels the links not yet completed (a running write cannot be taken back). */
  cancel(): void {
    this.done = true;
    const futs = this.futs;
    if (futs === null) return;
    for (let k = this.i; k < futs.length; k++) futs[k]!.cancel();
    this.i = futs.length;
  }
}

/**
 * open(path, flags, mode) as an OPENAT op: resolves to the fd (closed if it opened after
 * a cancel).
 *
 * @example
 * ```ts
 * const fut = openOnRing(driver, "/etc/hostname", O_RDONLY | O_CLOEXEC, 0o666);
 * ```
 */
export function openOnRing(d: UringDriver, path: string, flags: number, mode: number): FileFuture<number> {
  return new UringFuture(d, openSpec(path, flags, mode));
}

/**
 * stat(path) as a STATX op.
 *
 * @example
 * ```ts
 * const fut = statOnRing(driver, "/etc/hostname");
 * ```
 */
export function statOnRing(d: UringDriver, path: string): FileFuture<StatFields> {
  const [spec, out] = statxSpec(-1, path);
  return new Mapped(new UringFuture(d, spec), () => decodeStatx(out));
}

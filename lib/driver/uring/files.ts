/**
 * Regular files on the io_uring backend: the {@link FileFd} interface as ring ops
 * (read, write, statx, fsync, ftruncate, linked writes), the path ops (openat, statx of a
 * path), and the SQE descriptions ({@link OpSpec}) with the owned memory each one needs.
 *
 * Order: the kernel may run two ops of one batch on different io-wq workers, so two
 * writes to one range submitted together could land in either order. A file's mutations
 * (write, writeLinked, truncate, sync) therefore go through its {@link MutationQueue}:
 * each is submitted only once the one before it has completed — a wait, in issue (first
 * poll) order. A cancelled mutation that is already in the kernel keeps its place until
 * its CQE arrives, so a later write can never overtake it. Reads and stats are not queued.
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
import { FutureStateError, PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { FILE_CHUNK, closedError, type FileFd, type FileFuture, type StatFields } from "../fd.ts";
import { AS_VOID, JobFuture, type Job, type JobOwner } from "../readiness/pool.ts";
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

/** statx of `path` (lstat when `follow` is false), or of `fd` itself when path is null (AT_EMPTY_PATH). */
export function statxSpec(fd: number, path: string | null, follow = true): [OpSpec, Uint8Array] {
  const p = cPath(path ?? "");
  const out = new Uint8Array(new ArrayBuffer(U.STATX.size));
  const spec: OpSpec = {
    opcode: U.OP_STATX,
    fd: path === null ? fd : U.AT_FDCWD,
    // SAFETY: `p` is held as the op's aux until its CQE.
    addr: ptr(p) as number,
    len: U.STATX_BASIC_STATS | U.STATX_BTIME,
    // SAFETY: `out` is held as the op's aux until its CQE.
    addr2: ptr(out) as number,
    opFlags: path === null ? U.AT_EMPTY_PATH : follow ? 0 : U.AT_SYMLINK_NOFOLLOW,
    aux: [p, out],
    syscall: "statx",
  };
  return [spec, out];
}

/** fsync / fdatasync. */
export function fsyncSpec(fd: number, datasync: boolean): OpSpec {
  return { opcode: U.OP_FSYNC, fd, opFlags: datasync ? 1 : 0, syscall: "fsync" };
}

/** ftruncate(fd, len) (IORING_OP_FTRUNCATE, 6.9). */
export function ftruncateSpec(fd: number, len: number): OpSpec {
  return { opcode: U.OP_FTRUNCATE, fd, off: len, syscall: "ftruncate" };
}

/** glibc's makedev(major, minor), in doubles (what Node's stat reports as dev/rdev). */
function makedev(major: number, minor: number): number {
  return (major & 0xfff) * 256 + Math.floor(major / 4096) * 2 ** 44 + (minor & 0xff) + Math.floor(minor / 256) * 2 ** 20;
}

/** Decodes the statx buffer (little-endian u64s as two u32 words). */
export function decodeStatx(b: Uint8Array): StatFields {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u64 = (o: number) => v.getUint32(o, true) + v.getUint32(o + 4, true) * 0x1_0000_0000;
  // Timestamps: i64 seconds (reel's stay far below 2^53) and u32 nanoseconds.
  const ms = (sec: number, nsec: number) => (v.getUint32(sec, true) + v.getInt32(sec + 4, true) * 0x1_0000_0000) * 1000 + v.getUint32(nsec, true) / 1e6;
  const M = U.STATX_MORE;
  const hasBirth = (v.getUint32(U.STATX.mask, true) & U.STATX_BTIME) !== 0;
  return {
    size: u64(U.STATX.fileSize),
    mode: v.getUint16(U.STATX.mode, true),
    ino: u64(U.STATX.ino),
    blocks: u64(U.STATX.blocks),
    mtimeMs: ms(U.STATX.mtimeSec, U.STATX.mtimeNsec),
    nlink: v.getUint32(M.nlink, true),
    uid: v.getUint32(M.uid, true),
    gid: v.getUint32(M.gid, true),
    dev: makedev(v.getUint32(M.devMajor, true), v.getUint32(M.devMinor, true)),
    rdev: makedev(v.getUint32(M.rdevMajor, true), v.getUint32(M.rdevMinor, true)),
    atimeMs: ms(M.atimeSec, M.atimeNsec),
    ctimeMs: ms(M.ctimeSec, M.ctimeNsec),
    birthtimeMs: hasBirth ? ms(M.btimeSec, M.btimeNsec) : 0,
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
 * A file's mutation queue (see the module header): entrants run one at a time, in the
 * order they first asked for their turn. An entrant cancelled while its op is in the
 * kernel leaves that op here, polled with the queue's own waker, until it completes.
 *
 * @example
 * ```ts
 * const fut = new Ordered(file.mutations, () => new UringFuture(d, writeSpec(d.pool, file.fd, data, 0), null, file));
 * ```
 */
export class MutationQueue {
  private readonly queue: Ordered<unknown>[] = [];
  private readonly wakers = new Map<Ordered<unknown>, Waker>();
  /** A cancelled entrant's op, still in the kernel: the next entrant waits for it. */
  private abandoned: FileFuture<unknown> | null = null;
  private readonly cx: Context = { waker: { wake: () => this.wakeHead() } };

  /** Entrants queued or running (for tests). */
  get length(): number {
    return this.queue.length + (this.abandoned !== null ? 1 : 0);
  }

  /** True when `e` may start now; otherwise it is queued with `waker`. */
  turn(e: Ordered<unknown>, waker: Waker): boolean {
    if (!this.wakers.has(e)) this.queue.push(e);
    this.wakers.set(e, waker);
    if (this.abandoned !== null) {
      let r: unknown;
      try {
        r = this.abandoned.poll(this.cx);
      } catch {
        r = undefined; // its error belongs to nobody now: the op is over, that is all we need
      }
      if (r === PENDING) return false;
      this.abandoned = null;
    }
    return this.queue[0] === e;
  }

  /** `e` is finished (or gave up before it started): the next entrant's turn. */
  leave(e: Ordered<unknown>): void {
    const i = this.queue.indexOf(e);
    this.wakers.delete(e);
    if (i < 0) return;
    this.queue.splice(i, 1);
    if (i === 0) this.wakeHead();
  }

  /** `e` was cancelled while `inner` (its op) runs: `inner` keeps the queue until it ends. */
  abandon(e: Ordered<unknown>, inner: FileFuture<unknown>): void {
    let r: unknown;
    try {
      r = inner.poll(this.cx); // our waker replaces the cancelled task's
    } catch {
      r = undefined;
    }
    if (r === PENDING) this.abandoned = inner;
    this.leave(e);
  }

  /** The file closed: an abandoned op is cancelled (the owner settles it); entrants are woken to fail. */
  close(): void {
    const a = this.abandoned;
    this.abandoned = null;
    a?.cancel();
    for (const w of [...this.wakers.values()]) w.wake();
  }

  private wakeHead(): void {
    const h = this.queue[0];
    if (h !== undefined) this.wakers.get(h)?.wake();
  }
}

/** A mutation that waits for its turn in the file's {@link MutationQueue}, then runs `make()`'s op. */
export class Ordered<T> implements FileFuture<T> {
  private inner: FileFuture<T> | null = null;
  private done = false;

  constructor(
    private readonly q: MutationQueue,
    private readonly make: () => FileFuture<T>,
    private readonly what: string,
    /** Called if it is cancelled before it started (returns memory made for it). */
    private readonly onDrop: (() => void) | null = null,
  ) {}

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError(`${this.what} future polled after completion`);
    let r: Poll<T>;
    try {
      if (this.inner === null) {
        if (!this.q.turn(this as Ordered<unknown>, cx.waker)) return PENDING;
        this.inner = this.make();
      }
      r = this.inner.poll(cx);
    } catch (err) {
      this.finish();
      throw err;
    }
    if (r === PENDING) return PENDING;
    this.finish();
    return r;
  }

  private finish(): void {
    this.done = true;
    this.inner = null;
    this.q.leave(this as Ordered<unknown>);
  }

  cancel(): void {
    if (this.done) return;
    this.done = true;
    const inner = this.inner;
    this.inner = null;
    if (inner === null) {
      this.q.leave(this as Ordered<unknown>);
      this.onDrop?.();
    } else this.q.abandon(this as Ordered<unknown>, inner);
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
export class UringFile extends UringFdOwner implements FileFd, JobOwner {
  /** Mutations in issue order (see the module header). */
  readonly mutations = new MutationQueue();

  read(buf: Uint8Array, pos: number): FileFuture<number> {
    const d = this.driver;
    return new UringFuture(d, readSpec(d.pool, this.fd, buf.byteLength, pos), buf, this);
  }

  write(data: Uint8Array, pos: number): FileFuture<number> {
    const d = this.driver;
    // The bytes are copied now (the caller may reuse `data` at once); the SQE waits its turn.
    const spec = writeSpec(d.pool, this.fd, data, pos);
    return new Ordered(this.mutations, () => new UringFuture(d, spec, null, this), "write", () => d.pool.put(spec.buf!));
  }

  writeLinked(parts: readonly { data: Uint8Array; position: number }[]): FileFuture<number[]> {
    return new Ordered(this.mutations, () => new LinkedWrites(this, parts), "writeLinked()");
  }

  stat(): FileFuture<StatFields> {
    const [spec, out] = statxSpec(this.fd, null);
    return new Mapped(new UringFuture(this.driver, spec, null, this), () => decodeStatx(out));
  }

  sync(datasync: boolean): FileFuture<void> {
    return new Ordered(this.mutations, () => new Mapped(new UringFuture(this.driver, fsyncSpec(this.fd, datasync), null, this), () => undefined), "sync");
  }

  truncate(len: number): FileFuture<void> {
    const d = this.driver;
    return new Ordered(this.mutations, () => {
      if (d.caps.probe[U.OP_FTRUNCATE] === 1) return new Mapped(new UringFuture(d, ftruncateSpec(this.fd, len), null, this), () => undefined);
      // A kernel before 6.9: the pool, counted as an op on this fd until it has ended.
      return new JobFuture<void>(d.poolClient(), { op: "ftruncate", fd: this.fd, len }, this, null, AS_VOID);
    }, "truncate");
  }

  /** A pool job on this fd (truncate before 6.9) counts like a kernel op: the number stays pinned until it ends. */
  jobStarted(_job: Job): void {
    this.opStarted();
  }

  jobDone(_job: Job): void {
    this.opFinished();
  }

  /** Closes at once (see the module header). Idempotent. */
  close(): void {
    if (this.fd < 0) return;
    this.release();
    this.mutations.close();
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
export function statOnRing(d: UringDriver, path: string, follow = true): FileFuture<StatFields> {
  const [spec, out] = statxSpec(-1, path, follow);
  return new Mapped(new UringFuture(d, spec), () => decodeStatx(out));
}

/**
 * The per-fd interface: what every backend hands out for a descriptor, so that no caller
 * (net/, fs/, io/) ever asks which backend it runs on. `driver.socket(fd)` gives an
 * {@link IoFd} (sockets, pipes, anything pollable); `driver.file(fd)` a {@link FileFd}
 * (regular files); `driver.openFile()`/`driver.statPath()` the path operations.
 *
 * The readiness implementations (readiness/fd.ts, readiness/files.ts) run the
 * "wait until ready → try the syscall → EAGAIN? wait again" loop and a blocking-file
 * pool; the io_uring ones (uring/socket.ts, uring/files.ts) submit ops and read CQEs.
 *
 * Ownership (the rule the implementations keep, each in its own module): an IoFd or
 * FileFd owns its fd number from creation until `close()`. `close()` takes effect at once
 * for the caller — pending ops fail with EBADF, a peer sees FIN, a port is free to bind —
 * and the number is not released to the process until nothing reel submitted for it (a
 * queued SQE, a linked chain, a pool job) can still act on it. `detach()` is the one
 * other way out: the fd is deregistered and every op on it cancelled, and the number goes
 * back to the caller still open (AsyncFd.intoInner).
 *
 * Messages (sendmsg / recvmsg with an address and ancillary data, one or a batch) go
 * through `pollMsg` with {@link Msg} descriptors: the readiness backends run
 * sendmsg/recvmsg (sendmmsg/recvmmsg for a batch where they exist), io_uring one
 * SENDMSG/RECVMSG SQE per message, submitted together.
 *
 * Must never: import a backend (backends import this), or name a backend in a signature.
 */
import { ptr } from "bun:ffi";
import type { Context, Poll, Waker } from "../future.ts";
import type { Driver } from "./driver.ts";
import { SOCKADDR_MAX } from "../../ffi/sockaddr.ts";
import { EBADF } from "../../ffi/errno.ts";
import { SysError } from "../errors.ts";

/** read(2) / recv: into one buffer. */
export const OP_READ = 0;
/** write(2) / send with MSG_NOSIGNAL: from one buffer. */
export const OP_WRITE = 1;
/** accept4: the result is the new fd; the peer's address is left in {@link acceptAddr}. */
export const OP_ACCEPT = 2;
/** readv: scattered over a list of buffers. */
export const OP_READV = 3;
/** writev: gathered from a list of buffers. */
export const OP_WRITEV = 4;

/** The operations an IoFd runs. */
export type IoOp = typeof OP_READ | typeof OP_WRITE | typeof OP_ACCEPT | typeof OP_READV | typeof OP_WRITEV;

/** recvmsg (recvmmsg for a batch): data, the source address and ancillary data; only through pollMsg. */
export const OP_RECVMSG = 5;
/** sendmsg (sendmmsg for a batch): data to an address (or the connected peer), with ancillary data; only through pollMsg. */
export const OP_SENDMSG = 6;
/** The message operations of {@link IoFd.pollMsg}. */
export type MsgOp = typeof OP_RECVMSG | typeof OP_SENDMSG;

/** The syscall each op names in its errors. */
export const SYSCALL: readonly string[] = ["read", "write", "accept4", "readv", "writev", "recvmsg", "sendmsg"];

/** Waiting to read (or accept). */
export const DIR_READ = 0;
/** Waiting to write (or for a connect to finish). */
export const DIR_WRITE = 1;
/** A direction of an fd: the read side or the write side. */
export type Direction = typeof DIR_READ | typeof DIR_WRITE;

/** The direction an op waits on. */
export function directionOf(op: IoOp): Direction {
  return op === OP_READ || op === OP_ACCEPT || op === OP_READV ? DIR_READ : DIR_WRITE;
}

/**
 * Where OP_ACCEPT leaves the peer's sockaddr, and its length in {@link acceptAddrLen}.
 * Only valid until the next accept on this thread: the caller decodes it at once.
 */
export const acceptAddr = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
/** The length of the sockaddr in {@link acceptAddr}. */
export const acceptAddrLen = new Uint32Array(new ArrayBuffer(4));

/** An empty buffer list, for ops on one buffer. */
export const NO_BUFS: readonly Uint8Array[] = [];

/** `driver.socket(fd, FD_DATAGRAM)`: a datagram socket (a receive is one whole message; a shorter buffer truncates it). */
export const FD_DATAGRAM = 1;

/** The most messages one pollMsg call moves. */
export const MSG_MAX_BATCH = 64;

const EMPTY = new Uint8Array(0);

/**
 * One message for {@link IoFd.pollMsg}: the caller fills the inputs, the op the outputs.
 * Reused across calls (no allocation per message). Nothing here is held by the kernel
 * past the op: io_uring copies `buf`, `addr` and `control` into memory it owns.
 *
 * @example
 * ```ts
 * const m = new Msg();
 * m.buf = data;
 * m.addrLen = encodeIPv4(m.addr, parseIPv4("127.0.0.1")!, 9000);
 * const k = io.pollMsg(cx, OP_SENDMSG, [m], 1, 0); // 1 once sent, or PENDING
 * ```
 */
export class Msg {
  /** In: the data to send, or the buffer a receive fills (the caller's). */
  buf: Uint8Array = EMPTY;
  /** In (send): the destination sockaddr (`addrLen` bytes; 0 = the connected peer). Out (recv): the source. */
  readonly addr = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
  // SAFETY: `addr` views its own ArrayBuffer, kept alive by this Msg: its address is stable.
  /** `addr`'s address, taken once (the readiness backends hand it to sendmsg/recvmsg). */
  readonly addrPtr = ptr(this.addr) as number;
  addrLen = 0;
  /** In (send): ancillary data (`controlLen` bytes). In (recv): room for it; out: `controlLen` received. ArrayBuffer-backed, or null. */
  control: Uint8Array | null = null;
  controlLen = 0;
  /** Out: bytes sent, or bytes placed in `buf` by a receive. */
  len = 0;
  /** Out (recv): the message's full length when the platform reports it (≥ len), else len. */
  size = 0;
  /** Out (recv): MSG_TRUNC (the datagram did not fit `buf`), MSG_CTRUNC (ancillary data was cut). */
  flags = 0;
}

/**
 * A pollable descriptor bound to a driver.
 *
 * @example
 * ```ts
 * const io = driver.socket(fd);
 * // inside a future's poll:
 * const n = io.pollOp(cx, OP_READ, buf, NO_BUFS); // a byte count, or PENDING
 * io.close();
 * ```
 */
export interface IoFd {
  /** The fd number while open; -1 once closed. */
  readonly fd: number;
  /** The driver this fd is bound to (its ops are only valid there). */
  readonly driver: Driver;
  /**
   * Runs `op`: its result (≥ 0), or PENDING with `cx.waker` stored where it will fire.
   * Throws SysError for a failure (never EAGAIN, never EINTR) and EBADF once closed.
   */
  pollOp(cx: Context, op: IoOp, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number>;
  /**
   * The non-blocking connect handshake to `sockaddr` (`len` bytes, ArrayBuffer-backed):
   * undefined once connected, PENDING meanwhile; throws SysError("connect") naming `detail`.
   */
  pollConnect(cx: Context, sockaddr: Uint8Array, len: number, detail: string): Poll<void>;
  /**
   * Sends or receives `count` (1 … {@link MSG_MAX_BATCH}) messages: how many were moved
   * (≥ 1; a batch may stop early, the rest untouched), or PENDING with the waker stored.
   * `flags` are the syscall's (MSG_TRUNC, MSG_CMSG_CLOEXEC); sends add MSG_NOSIGNAL.
   * A receive on a stream socket returns a message of len 0 at EOF. Throws SysError
   * ("recvmsg" / "sendmsg") and EBADF once closed. A receive is cancel-safe (a message
   * that arrives for a cancelled receive is kept for the next one); a send is on the
   * readiness backends only. A send in flight belongs to its `msgs` array: re-poll with
   * the same array for its result; another array is another send.
   */
  pollMsg(cx: Context, op: MsgOp, msgs: readonly Msg[], count: number, flags: number): Poll<number>;
  /**
   * Readiness alone (no syscall): the ready bits for `dir` (READ_READY / WRITE_READY of
   * lib/driver/registry.ts), or PENDING with the waker stored.
   */
  pollReady(cx: Context, dir: Direction): Poll<number>;
  /** After an op on this fd hit EAGAIN: forget `dir`'s readiness seen by the last pollReady. */
  clearReady(dir: Direction): void;
  /**
   * A pending op of `dir` was abandoned: forget `waker` (and cancel its in-flight op). For
   * a message op, `msgs` is the array it was polled with (it names the op exactly where
   * one task has several pending).
   */
  dropWaker(dir: Direction, waker: Waker | null, msgs?: readonly Msg[]): void;
  /** Closes (see the module header). Idempotent. Throws SysError only for close(2)'s own error. */
  close(): void;
  /**
   * Stops using the fd without closing it: deregistered, every op on it cancelled (and
   * reaped where the kernel allows), waiters woken with EBADF. Returns the number, which
   * the caller owns again; -1 if already closed or detached.
   */
  detach(): number;
}

/** What a file's stat reports (times in ms since the epoch; birthtimeMs 0 where unknown). */
export interface StatFields {
  size: number;
  mode: number;
  ino: number;
  blocks: number;
  mtimeMs: number;
  nlink: number;
  uid: number;
  gid: number;
  dev: number;
  rdev: number;
  atimeMs: number;
  ctimeMs: number;
  birthtimeMs: number;
}

/** The number of fields of {@link StatFields}, in the order {@link statFieldsFrom} reads them. */
export const STAT_FIELD_COUNT = 13;

/**
 * StatFields from a flat array in the order of the interface (how the pool's shared
 * memory carries them).
 *
 * @example
 * ```ts
 * const st = statFieldsFrom(new Float64Array(sharedStat)); // size, mode, ino, …
 * ```
 */
export function statFieldsFrom(f: ArrayLike<number>): StatFields {
  return {
    size: f[0]!, mode: f[1]!, ino: f[2]!, blocks: f[3]!, mtimeMs: f[4]!, nlink: f[5]!, uid: f[6]!,
    gid: f[7]!, dev: f[8]!, rdev: f[9]!, atimeMs: f[10]!, ctimeMs: f[11]!, birthtimeMs: f[12]!,
  };
}

/** One directory entry: its name and its type bits (S_IFMT of st_mode; 0 when unknown). */
export interface DirEntryFields {
  name: string;
  type: number;
}

/**
 * The path operations of a driver (`driver.paths`): io_uring ops where the kernel has
 * them (mkdirat, renameat, unlinkat, symlinkat, statx), the blocking pool otherwise.
 * Every future fails with SysError naming the syscall; the fs layer adds the path.
 *
 * @example
 * ```ts
 * const fut = driver.paths.mkdir("/tmp/x", 0o777); // poll it until it is ready
 * ```
 */
export interface PathOps {
  /** mkdir(path, mode): one level (EEXIST if it exists). */
  mkdir(path: string, mode: number): FileFuture<void>;
  /** rename(from, to): replaces `to` atomically. */
  rename(from: string, to: string): FileFuture<void>;
  /** unlink(path), or rmdir(path) when `dir` (an empty directory). */
  unlink(path: string, dir: boolean): FileFuture<void>;
  /** symlink(target, path): `path` names `target`. */
  symlink(target: string, path: string): FileFuture<void>;
  /** readlink(path): the target. */
  readLink(path: string): FileFuture<string>;
  /** The entries of a directory (not "." or ".."), in the order the kernel lists them. */
  readDir(path: string): FileFuture<DirEntryFields[]>;
  /** realpath(path): absolute, no symlinks, no "." or "..". */
  realPath(path: string): FileFuture<string>;
  /** truncate(path, len). */
  truncate(path: string, len: number): FileFuture<void>;
  /** stat (follow = true) or lstat (false) of a path. */
  stat(path: string, follow: boolean): FileFuture<StatFields>;
}

/** A future the driver hands out for a file op: polled by the fs layer, cancellable. */
export interface FileFuture<T> {
  poll(cx: Context): Poll<T>;
  cancel(): void;
}

/** Largest read or write one file op makes (a larger request is a short transfer). */
export const FILE_CHUNK = 1024 * 1024;

/**
 * A regular file bound to a driver. Offsets are explicit (`pos` ≥ 0), or -1 for the
 * file's own position.
 *
 * Ordering: the file's mutations — write, writeLinked, truncate, sync — take effect in
 * the order they were first polled (submitted): each starts only after the previous one
 * completed (a per-file queue on io_uring; one worker per file on the pool). Reads and
 * stats are not ordered.
 *
 * @example
 * ```ts
 * const f = driver.file(fd);
 * const n = f.read(buf, 0);  // a FileFuture<number>: poll it until it is ready
 * f.close();
 * ```
 */
export interface FileFd {
  /** The fd number while open; -1 once closed. */
  readonly fd: number;
  /** The driver this file is bound to (its ops are only valid there). */
  readonly driver: Driver;
  /** Reads up to min(buf.length, FILE_CHUNK) bytes at `pos` into `buf`. */
  read(buf: Uint8Array, pos: number): FileFuture<number>;
  /** Writes up to min(data.length, FILE_CHUNK) bytes of `data` at `pos` (copied at the call). */
  write(data: Uint8Array, pos: number): FileFuture<number>;
  /** Writes each part in order, each starting only after the previous one completed. */
  writeLinked(parts: readonly { data: Uint8Array; position: number }[]): FileFuture<number[]>;
  stat(): FileFuture<StatFields>;
  sync(datasync: boolean): FileFuture<void>;
  /** ftruncate(len): the file's size becomes `len` (ordered with the file's writes). */
  truncate(len: number): FileFuture<void>;
  /** Closes (see the module header): at once, whatever is pending. Idempotent. */
  close(): void;
}

/**
 * The error of an op on a closed fd.
 *
 * @example
 * ```ts
 * if (this.fd < 0) throw closedError("read");
 * ```
 */
export function closedError(syscall: string, what = "socket"): SysError {
  return new SysError(EBADF, syscall, "EBADF", `the ${what} was closed`);
}

/**
 * An fd registered with the driver, and the one readiness retry loop every non-blocking
 * operation goes through (async-io's pattern, tokio's PollEvented):
 *
 *     loop: wait until ready → try the syscall → EAGAIN? clear readiness (if no newer
 *           event), retry → otherwise return the result or throw SysError
 *
 * The operation is named by a small integer, not a closure, so a poll allocates nothing.
 * A short read or write also clears readiness (the socket was drained or filled), saving
 * the EAGAIN round trip on the next call, as tokio does.
 *
 * Invariants: `fd` is a valid non-blocking fd until `close()`; after `close()` it is -1
 * and every op throws EBADF ("the socket was closed"). The registration is made lazily on
 * the first op, on the runtime that polls it.
 *
 * Must never: block, retry anything but EAGAIN and EINTR, or hide an error.
 */
import * as libc from "../../../ffi/libc.ts";
import { SYS } from "../../../ffi/constants.ts";
import { EAGAIN, EBADF, EINTR } from "../../../ffi/errno.ts";
import { SOCKADDR_MAX } from "../../../ffi/sockaddr.ts";
import { PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { Driver, READ_READY, WRITE_READY, type ScheduledIo } from "../driver.ts";
import { currentDriver } from "../../current.ts";
import { READABLE, WRITABLE } from "./poller.ts";
import { RuntimeError, SysError } from "../../errors.ts";
import { proceed } from "../../task/coop.ts";
import { UringDriver } from "../uring/driver.ts";
import { UringSocket } from "../uring/socket.ts";

/** The operations the retry loop can run. */
export const OP_READ = 0;
export const OP_WRITE = 1;
export const OP_ACCEPT = 2;
export const OP_READV = 3;
export const OP_WRITEV = 4;

const SYSCALL = ["read", "write", "accept4", "readv", "writev"] as const;

/** Flags for send(): no SIGPIPE where the platform has MSG_NOSIGNAL (Darwin uses SO_NOSIGPIPE). */
const SEND_FLAGS = SYS.MSG_NOSIGNAL > 0 ? SYS.MSG_NOSIGNAL : 0;
const ACCEPT_FLAGS = SYS.SOCK_NONBLOCK > 0 ? SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC : 0;

/**
 * Where OP_ACCEPT leaves the peer's sockaddr. Only valid until the next accept on this
 * thread: the caller decodes it at once.
 */
export const acceptAddr = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
const acceptAddrLen = new Uint32Array(new ArrayBuffer(4));
const NO_BUFS: Uint8Array[] = [];

/** Runs one non-blocking syscall; returns its result or −errno. */
function attempt(op: number, fd: number, buf: Uint8Array | null, bufs: readonly Uint8Array[]): number {
  switch (op) {
    case OP_READ:
      return libc.read(fd, buf!);
    case OP_WRITE:
      return SEND_FLAGS !== 0 ? libc.send(fd, buf!, SEND_FLAGS) : libc.write(fd, buf!);
    case OP_ACCEPT:
      acceptAddrLen[0] = SOCKADDR_MAX;
      return libc.accept4(fd, acceptAddr, acceptAddrLen, ACCEPT_FLAGS);
    case OP_READV:
      return libc.readv(fd, bufs);
    default:
      return libc.writev(fd, bufs);
  }
}

/** The bytes an op asked for, for the short-transfer check (accept: none). */
function wanted(op: number, buf: Uint8Array | null, bufs: readonly Uint8Array[]): number {
  if (op === OP_READ || op === OP_WRITE) return buf!.byteLength;
  if (op === OP_ACCEPT) return -1;
  let n = 0;
  const k = bufs.length < libc.IOV_BATCH ? bufs.length : libc.IOV_BATCH;
  for (let i = 0; i < k; i++) n += bufs[i]!.byteLength;
  return n;
}

/**
 * A non-blocking fd plus its (lazy) driver registration.
 *
 * @example
 * ```ts
 * const src = new IoSource(fd);
 * // inside a future's poll:
 * const n = src.pollOp(cx, OP_READ, buf); // a byte count, or PENDING
 * ```
 */
export class IoSource {
  private io: ScheduledIo | null = null;
  private driver: Driver | null = null;
  /** 0: not yet bound to a driver; 1: readiness (epoll, poll, kqueue); 2: io_uring (`ur`). */
  private mode = 0;
  /** On the io_uring backend: the completion-based ops of this fd. */
  private ur: UringSocket | null = null;

  constructor(
    /** A valid non-blocking fd owned by this source, or -1 once closed. */
    public fd: number,
  ) {}

  get isClosed(): boolean {
    return this.fd < 0;
  }

  /** Binds to the current runtime's driver: io_uring sockets submit ops instead of waiting for readiness. */
  private bind(): void {
    const d = currentDriver();
    if (d instanceof UringDriver) {
      this.ur = new UringSocket(d, this.fd);
      this.mode = 2;
    } else this.mode = 1;
  }

  /** The io_uring half, or null on a readiness backend (binds on first use). */
  uring(): UringSocket | null {
    if (this.mode === 0) this.bind();
    return this.ur;
  }

  /** The registration, made on first use with the current runtime's driver. */
  registration(): ScheduledIo {
    if (this.io === null) {
      if (this.fd < 0) throw closedError("register");
      this.driver = currentDriver();
      this.io = this.driver.register(this.fd, READABLE | WRITABLE);
    }
    return this.io;
  }

  /**
   * Runs `op` through the readiness retry loop: its result (≥ 0), or PENDING with the
   * task's waker stored. Consumes one unit of the coop budget.
   */
  pollOp(cx: Context, op: number, buf: Uint8Array | null, bufs: readonly Uint8Array[] = NO_BUFS): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
    if (!proceed(cx)) return PENDING;
    if (this.mode !== 1) {
      if (this.mode === 0) this.bind();
      if (this.ur !== null) {
        if (this.ur.driver !== currentDriver()) throw foreignError(SYSCALL[op]!);
        return this.ur.pollOp(cx, op, buf, bufs, acceptAddr);
      }
    }
    const io = this.io ?? this.registration();
    const driver = this.driver!;
    // Registered with another (or a closed) runtime: nothing here would ever wake us.
    if (driver !== currentDriver()) throw foreignError(SYSCALL[op]!);
    const mask = op === OP_READ || op === OP_ACCEPT || op === OP_READV ? READ_READY : WRITE_READY;
    const bit = mask === READ_READY ? READABLE : WRITABLE;
    for (;;) {
      if (driver.pollReady(io, mask, cx) === PENDING) return PENDING;
      if (io.closed) throw closedError(SYSCALL[op]!);
      const tick = io.tick;
      const r = attempt(op, this.fd, buf, bufs);
      if (r >= 0) {
        // A short transfer drained (or filled) the socket: skip the next EAGAIN round trip.
        if (r < wanted(op, buf, bufs)) driver.clearReadiness(io, bit, tick);
        return r;
      }
      if (r === -EAGAIN) {
        driver.clearReadiness(io, bit, tick);
        continue;
      }
      if (r === -EINTR) continue;
      throw new SysError(-r, SYSCALL[op]!);
    }
  }

  /**
   * Waits until `mask` readiness (READ_READY / WRITE_READY) without running a syscall;
   * returns the ready bits. Used by connect (writable = the handshake finished).
   */
  pollReady(cx: Context, mask: number): Poll<number> {
    if (this.fd < 0) throw closedError("poll");
    const io = this.io ?? this.registration();
    if (this.driver !== currentDriver()) throw foreignError("poll");
    return this.driver!.pollReady(io, mask, cx);
  }

  /** Forgets `waker` if a cancelled op left it in the registration. */
  dropWaker(mask: number, waker: Waker | null): void {
    if (this.ur !== null) this.ur.dropWaker(mask === READ_READY, waker);
    if (waker !== null && this.io !== null) this.driver!.dropWaker(this.io, mask, waker);
  }

  /** Deregisters and closes the fd; idempotent. Waiting tasks are woken and fail with EBADF. */
  close(): void {
    const fd = this.fd;
    if (fd < 0) return;
    this.fd = -1;
    try {
      // io_uring: cancel the fd's ops (their buffers stay with the driver until their CQEs).
      this.ur?.close();
      if (this.io !== null) this.driver!.deregister(this.io);
    } finally {
      this.io = null;
      const r = libc.close(fd);
      // EINTR on close still releases the fd on Linux and the BSDs: do not retry.
      if (r < 0 && r !== -EINTR) throw new SysError(-r, "close");
    }
  }
}

/** The error for an op polled on a runtime other than the one its fd is registered with. */
function foreignError(syscall: string): RuntimeError {
  return new RuntimeError(
    `Cannot ${syscall}: this socket belongs to another reel runtime (or one that was closed); use it only on the runtime that first polled it`,
    "EFOREIGN",
  );
}

/** The error for an op on a closed source. */
export function closedError(syscall: string): SysError {
  return new SysError(EBADF, syscall, "EBADF", "the socket was closed");
}

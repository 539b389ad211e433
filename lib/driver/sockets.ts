/**
 * The socket calls that are not I/O: create, bind, listen, options, names, shutdown,
 * close of an fd no driver holds. They are synchronous in every backend, so they are not
 * part of the per-fd interface; but a driver that stands in for the kernel (the
 * simulator) must answer them too, so net/ makes them through the current driver's
 * {@link SocketApi} — the real one (libc) everywhere else, and outside any runtime.
 *
 * Every call returns its result (≥ 0) or −errno, as ffi/ does; net/ turns failures into
 * SysError. Darwin's missing SOCK_NONBLOCK/CLOEXEC and MSG_NOSIGNAL are made up here with
 * fcntl and SO_NOSIGPIPE, so every socket handed out is non-blocking, close-on-exec and
 * SIGPIPE-free.
 *
 * The Unix-socket file calls (socketFileId, unlink) are here too: a listener removes the
 * file it created through the same backend that created it.
 *
 * Must never: throw, block, or leave a half-set-up socket open on a failure.
 */
import { lstatSync } from "node:fs";
import * as libc from "../../ffi/libc.ts";
import { SYS } from "../../ffi/constants.ts";

/**
 * The non-I/O socket calls of a backend.
 *
 * @example
 * ```ts
 * const api = socketApi();
 * const fd = api.socket(SYS.AF_INET, SYS.SOCK_STREAM, 0); // non-blocking, close-on-exec
 * if (fd < 0) throw new SysError(-fd, "socket");
 * ```
 */
export interface SocketApi {
  /** A new non-blocking, close-on-exec socket (SIGPIPE-free), or −errno. */
  socket(domain: number, type: number, protocol: number): number;
  /** An accepted (or otherwise received) fd made non-blocking etc. where flags could not; −errno closes it. */
  adopt(fd: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  listen(fd: number, backlog: number): number;
  setsockoptInt(fd: number, level: number, name: number, value: number): number;
  getsockoptInt(fd: number, level: number, name: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): number;
  getsockname(fd: number, addr: Uint8Array, len: Uint32Array): number;
  getpeername(fd: number, addr: Uint8Array, len: Uint32Array): number;
  shutdown(fd: number, how: number): number;
  /** Closes an fd that no driver holds (set-up failed, or never used). */
  close(fd: number): number;
  /** A connected pair of new non-blocking, close-on-exec sockets into `fds`: 0 or −errno (none left open). */
  socketpair(domain: number, type: number, protocol: number, fds: Int32Array): number;
  /** getsockopt into `out` (a struct option: ucred, xucred): the option's length or −errno. */
  getsockopt(fd: number, level: number, name: number, out: Uint8Array): number;
  /** The identity ("dev:ino") of the socket file at `path`, or null when there is none (or it is not a socket). */
  socketFileId(path: string): string | null;
  /** unlink(2) of a socket file: 0 or −errno. */
  unlink(path: string): number;
  /** fcntl(F_GETFL): the fd's status flags (O_NONBLOCK, …) or −errno. */
  fdFlags(fd: number): number;
}

const HAS_SOCK_FLAGS = SYS.SOCK_NONBLOCK > 0;

/** Darwin: the flags socket()/accept4() cannot set; 0 or −errno (the fd is then closed). */
function prepare(fd: number): number {
  if (HAS_SOCK_FLAGS) return fd;
  let r = libc.fcntl(fd, SYS.F_GETFL, 0);
  if (r >= 0) r = libc.fcntl(fd, SYS.F_SETFL, r | SYS.O_NONBLOCK);
  if (r >= 0) r = libc.fcntl(fd, SYS.F_SETFD, SYS.FD_CLOEXEC);
  if (r >= 0 && SYS.SO_NOSIGPIPE > 0) r = libc.setsockoptInt(fd, SYS.SOL_SOCKET, SYS.SO_NOSIGPIPE, 1);
  if (r < 0) {
    libc.close(fd);
    return r;
  }
  return fd;
}

/**
 * The kernel's socket calls, through libc.
 *
 * @example
 * ```ts
 * const fd = realSockets.socket(SYS.AF_INET6, SYS.SOCK_DGRAM, 0);
 * ```
 */
export const realSockets: SocketApi = {
  socket(domain, type, protocol) {
    const fd = libc.socket(domain, type | (HAS_SOCK_FLAGS ? SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC : 0), protocol);
    return fd < 0 ? fd : prepare(fd);
  },
  adopt: prepare,
  bind: (fd, addr, len) => libc.bind(fd, addr, len),
  listen: (fd, backlog) => libc.listen(fd, backlog),
  setsockoptInt: (fd, level, name, value) => libc.setsockoptInt(fd, level, name, value),
  getsockoptInt: (fd, level, name) => libc.getsockoptInt(fd, level, name),
  setsockopt: (fd, level, name, value) => libc.setsockopt(fd, level, name, value),
  getsockname: (fd, addr, len) => libc.getsockname(fd, addr, len),
  getpeername: (fd, addr, len) => libc.getpeername(fd, addr, len),
  shutdown: (fd, how) => libc.shutdown(fd, how),
  close: (fd) => libc.close(fd),
  socketpair(domain, type, protocol, fds) {
    const r = libc.socketpair(domain, type | (HAS_SOCK_FLAGS ? SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC : 0), protocol, fds);
    if (r < 0) return r;
    const a = prepare(fds[0]!);
    if (a < 0) {
      libc.close(fds[1]!);
      return a;
    }
    const b = prepare(fds[1]!);
    if (b < 0) libc.close(fds[0]!);
    return b < 0 ? b : 0;
  },
  getsockopt: (fd, level, name, out) => libc.getsockoptBuf(fd, level, name, out),
  socketFileId(path) {
    try {
      const st = lstatSync(path, { throwIfNoEntry: false });
      return st !== undefined && st.isSocket() ? `${st.dev}:${st.ino}` : null;
    } catch {
      return null; // unreadable (EACCES, ENOTDIR): not a file this process can tell is its own
    }
  },
  unlink: (path) => libc.unlink(new TextEncoder().encode(`${path}\0`)),
  fdFlags: (fd) => libc.fcntl(fd, SYS.F_GETFL, 0),
};

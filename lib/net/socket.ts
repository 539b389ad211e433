/**
 * Creating sockets the way reel needs them: non-blocking, close-on-exec, and with no
 * SIGPIPE. Linux and FreeBSD do it with socket()/accept4() flags and MSG_NOSIGNAL on
 * send; Darwin has neither, so the flags are set with fcntl and SO_NOSIGPIPE afterwards.
 *
 * Must never: leak the fd when a later setup step fails (it is closed before throwing).
 */
import * as libc from "../../ffi/libc.ts";
import { SYS } from "../../ffi/constants.ts";
import { SOCKADDR_MAX, decodeSockaddr, type SocketAddr } from "../../ffi/sockaddr.ts";
import { EINVAL } from "../../ffi/errno.ts";
import { check, SysError } from "../errors.ts";

const HAS_SOCK_FLAGS = SYS.SOCK_NONBLOCK > 0;

/** Closes `fd` and rethrows `err`: the one cleanup path for failed setup. */
export function closeAndThrow(fd: number, err: unknown): never {
  libc.close(fd);
  throw err;
}

/** Makes an fd from accept()/socket() non-blocking, close-on-exec and SIGPIPE-free where flags could not. */
export function prepareFd(fd: number): number {
  if (HAS_SOCK_FLAGS) return fd;
  try {
    const fl = check(libc.fcntl(fd, SYS.F_GETFL, 0), "fcntl", "F_GETFL");
    check(libc.fcntl(fd, SYS.F_SETFL, fl | SYS.O_NONBLOCK), "fcntl", "F_SETFL O_NONBLOCK");
    check(libc.fcntl(fd, SYS.F_SETFD, SYS.FD_CLOEXEC), "fcntl", "F_SETFD FD_CLOEXEC");
    if (SYS.SO_NOSIGPIPE > 0) check(libc.setsockoptInt(fd, SYS.SOL_SOCKET, SYS.SO_NOSIGPIPE, 1), "setsockopt", "SO_NOSIGPIPE");
  } catch (err) {
    closeAndThrow(fd, err);
  }
  return fd;
}

/** A new non-blocking, close-on-exec stream socket of `domain`. */
export function streamSocket(domain: number): number {
  const flags = HAS_SOCK_FLAGS ? SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC : 0;
  const fd = check(libc.socket(domain, SYS.SOCK_STREAM | flags, 0), "socket");
  return prepareFd(fd);
}

/** setsockopt of an int option, throwing SysError naming the option. */
export function setIntOption(fd: number, level: number, name: number, value: number, label: string): void {
  check(libc.setsockoptInt(fd, level, name, value), "setsockopt", label);
}

/** getsockopt of an int option, throwing SysError naming the option. */
export function getIntOption(fd: number, level: number, name: number, label: string): number {
  return check(libc.getsockoptInt(fd, level, name), "getsockopt", label);
}

const nameBuf = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
const nameLen = new Uint32Array(new ArrayBuffer(4));

/** getsockname/getpeername decoded; throws SysError on failure. */
export function sockName(fd: number, peer: boolean): SocketAddr {
  nameLen[0] = SOCKADDR_MAX;
  const r = peer ? libc.getpeername(fd, nameBuf, nameLen) : libc.getsockname(fd, nameBuf, nameLen);
  const call = peer ? "getpeername" : "getsockname";
  check(r, call);
  const addr = decodeSockaddr(nameBuf, nameLen[0]!);
  if (addr === null) throw new SysError(EINVAL, call, undefined, "unknown address family");
  return addr;
}

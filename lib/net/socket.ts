/**
 * Socket set-up for net/: the current backend's non-I/O socket calls
 * (lib/driver/sockets.ts) with failures turned into SysError. Outside any runtime (a
 * listener bound before blockOn) they are the kernel's.
 *
 * Must never: leak the fd when a later setup step fails (it is closed before throwing).
 */
import { SOCKADDR_MAX, decodeSockaddr, type SocketAddr } from "../../ffi/sockaddr.ts";
import { EINVAL } from "../../ffi/errno.ts";
import { currentDriverOrNull } from "../current.ts";
import { realSockets, type SocketApi } from "../driver/sockets.ts";
import { check, SysError } from "../errors.ts";

/**
 * The socket calls of the current runtime's backend (the kernel's outside any runtime).
 *
 * @example
 * ```ts
 * check(sockets().listen(fd, 128), "listen");
 * ```
 */
export function sockets(): SocketApi {
  return currentDriverOrNull()?.sockets ?? realSockets;
}

/** Closes `fd` and rethrows `err`: the one cleanup path for failed setup. */
export function closeAndThrow(fd: number, err: unknown): never {
  sockets().close(fd);
  throw err;
}

/** An fd from accept() made non-blocking, close-on-exec and SIGPIPE-free where flags could not. */
export function prepareFd(fd: number): number {
  return check(sockets().adopt(fd), "fcntl", "accepted socket flags");
}

/** A new non-blocking, close-on-exec socket of `domain` and `type` (default a stream). */
export function newSocket(domain: number, type: number, protocol = 0): number {
  return check(sockets().socket(domain, type, protocol), "socket");
}

/** setsockopt of an int option, throwing SysError naming the option. */
export function setIntOption(fd: number, level: number, name: number, value: number, label: string): void {
  check(sockets().setsockoptInt(fd, level, name, value), "setsockopt", label);
}

/** getsockopt of an int option, throwing SysError naming the option. */
export function getIntOption(fd: number, level: number, name: number, label: string): number {
  return check(sockets().getsockoptInt(fd, level, name), "getsockopt", label);
}

const nameBuf = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
const nameLen = new Uint32Array(new ArrayBuffer(4));

/** getsockname/getpeername decoded; throws SysError on failure. */
export function sockName(fd: number, peer: boolean): SocketAddr {
  nameLen[0] = SOCKADDR_MAX;
  const api = sockets();
  const r = peer ? api.getpeername(fd, nameBuf, nameLen) : api.getsockname(fd, nameBuf, nameLen);
  const call = peer ? "getpeername" : "getsockname";
  check(r, call);
  const addr = decodeSockaddr(nameBuf, nameLen[0]!);
  if (addr === null) throw new SysError(EINVAL, call, undefined, "unknown address family");
  return addr;
}

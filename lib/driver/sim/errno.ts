/**
 * The errno numbers the simulator answers with, for this platform: the ones ffi/errno.ts
 * exports, and the socket-call ones it does not (looked up by name in its tables), so a
 * simulated failure carries the same `.code` and `.errno` a real one would here.
 *
 * Must never: hard-code a number (they differ between Linux and the BSDs).
 * Must never import: lib/**, bun:ffi
 */
import { DARWIN_ERRNO, FREEBSD_ERRNO, LINUX_ERRNO } from "../../../ffi/errno.ts";

export {
  EAGAIN, EALREADY, EBADF, ECONNREFUSED, ECONNRESET, EINVAL, EISCONN, ENOTCONN, EPIPE, ETIMEDOUT, ENOTSOCK, ENOENT,
} from "../../../ffi/errno.ts";

const TABLE = process.platform === "linux" ? LINUX_ERRNO : process.platform === "freebsd" ? FREEBSD_ERRNO : DARWIN_ERRNO;

function num(name: string): number {
  for (const k in TABLE) if (TABLE[k as unknown as number] === name) return Number(k);
  throw new Error(`errno ${name} is not known on ${process.platform}`);
}

/** bind: the address is in use. */
export const EADDRINUSE = num("EADDRINUSE");
/** bind/connect: not an address of this host (or no ephemeral port left). */
export const EADDRNOTAVAIL = num("EADDRNOTAVAIL");
/** An address of the wrong family for the socket. */
export const EAFNOSUPPORT = num("EAFNOSUPPORT");
/** A socket type the simulator does not implement (yet). */
export const EPROTONOSUPPORT = num("EPROTONOSUPPORT");
/** A datagram larger than the protocol allows. */
export const EMSGSIZE = num("EMSGSIZE");
/** sendmsg on an unconnected UDP socket without an address. */
export const EDESTADDRREQ = num("EDESTADDRREQ");
/** A Unix datagram to a socket connected to another one. */
export const EPERM = num("EPERM");
/** listen() on a datagram socket. */
export const EOPNOTSUPP = num("EOPNOTSUPP");
/** A socket option the simulator does not know. */
export const ENOPROTOOPT = num("ENOPROTOOPT");

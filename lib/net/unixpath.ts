/**
 * Unix socket addresses and files, for UnixListener/UnixStream (unix.ts) and UnixDatagram
 * (unix_dgram.ts): encoding a path (a RangeError naming its length when it does not fit
 * sun_path; Linux abstract names "\0name"), the socket file a bind made — removed at
 * close only while the path still names that same file (device and inode) — and the
 * socketpair both pair() constructors use.
 *
 * Must never: remove a file it did not create, or leave a half-set-up socket open.
 */
import { SYS } from "../../ffi/constants.ts";
import { EADDRINUSE } from "../../ffi/errno.ts";
import { SOCKADDR_MAX, SocketAddr, encodeUnix } from "../../ffi/sockaddr.ts";
import { SysError, check } from "../errors.ts";
import { sockets } from "./socket.ts";

/** Encodes `path` as a sockaddr_un into `out`: its length. TypeError / RangeError for a bad path. */
export function encodePath(path: unknown, out: Uint8Array, what: string): number {
  if (typeof path !== "string") throw new TypeError(`Invalid Unix socket path for ${what}: expected a string, got ${path === null ? "null" : typeof path}`);
  if (path.length === 0) throw new TypeError(`Invalid Unix socket path for ${what}: the empty string`);
  if (path.charCodeAt(0) === 0 && SYS.platform !== "linux") throw new TypeError(`Invalid Unix socket path for ${what}: abstract names ("\\0…") exist on Linux only`);
  const len = encodeUnix(out, path);
  if (len < 0) {
    const bytes = new TextEncoder().encode(path).length;
    const room = SYS.SUN_PATH_MAX - (path.charCodeAt(0) === 0 ? 0 : 1);
    throw new RangeError(`Unix socket path for ${what} is ${bytes} bytes long; sun_path holds at most ${room} (${path.slice(0, 40)}${path.length > 40 ? "…" : ""})`);
  }
  return len;
}

/** A Unix datagram destination as a path: a string, or a Unix SocketAddr. */
export function unixTarget(addr: unknown): unknown {
  if (!(addr instanceof SocketAddr)) return addr;
  if (addr.family !== "unix") throw new TypeError(`Invalid Unix datagram destination ${addr.toString()}: an ${addr.family} address`);
  return addr.address;
}

/** True for a Linux abstract name (no file). */
export function isAbstract(path: string): boolean {
  return path.charCodeAt(0) === 0;
}

/** A socket file this process created at `path`, removed when its socket closes (see the module header). */
export class SocketFile {
  constructor(
    readonly path: string,
    private readonly id: string | null,
  ) {}

  /** Binds `fd` to `path`; a file already there is an EADDRINUSE that says so. */
  static bind(fd: number, path: string, what: string): SocketFile {
    const sa = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
    const len = encodePath(path, sa, what);
    const api = sockets();
    const r = api.bind(fd, sa, len);
    if (r === -EADDRINUSE && !isAbstract(path) && api.socketFileId(path) !== null) {
      throw new SysError(EADDRINUSE, "bind", "EADDRINUSE", `${path}: a socket file is already there — in use, or stale (left by a process that exited without removing it; remove it if nothing serves it)`);
    }
    check(r, "bind", isAbstract(path) ? `abstract name ${JSON.stringify(path.slice(1))}` : path);
    return new SocketFile(path, isAbstract(path) ? null : api.socketFileId(path));
  }

  /** Removes the file if it is still the one bind() created. */
  remove(): void {
    if (this.id === null) return;
    const api = sockets();
    if (api.socketFileId(this.path) === this.id) api.unlink(this.path);
  }
}

/** socketpair(AF_UNIX, type): two fds, non-blocking and close-on-exec. */
export function pairFds(type: number): [number, number] {
  const fds = new Int32Array(new ArrayBuffer(8));
  check(sockets().socketpair(SYS.AF_UNIX, type, 0, fds), "socketpair");
  return [fds[0]!, fds[1]!];
}

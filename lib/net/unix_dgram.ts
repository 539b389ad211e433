/**
 * UnixDatagram: Unix datagram sockets (bound to a path or an abstract name, unbound, or
 * one of a pair) over the same datagram machinery as UDP (dgram.ts): sendTo/recvFrom,
 * connect + send/recv, batches, truncation reported (TruncatedError). A bound socket's
 * file is removed when it closes (unixpath.ts).
 *
 * Must never: block, or remove a file it did not create.
 */
import { SYS } from "../../ffi/constants.ts";
import { SocketAddr } from "../../ffi/sockaddr.ts";
import type { BaseFuture } from "../future.ts";
import { FD_DATAGRAM, closedError } from "../driver/fd.ts";
import { IoSource } from "../io/source.ts";
import { SocketBase } from "./stream_socket.ts";
import { DatagramConnect, DgramCore, type Datagram, type OutDatagram } from "./dgram.ts";
import { closeAndThrow, newSocket, sockName } from "./socket.ts";
import { SocketFile, encodePath, pairFds, unixTarget } from "./unixpath.ts";

/**
 * A Unix datagram socket: bound to a path, unbound, or one of a pair.
 *
 * @example
 * ```ts
 * import { UnixDatagram, blockOn } from "reel";
 * blockOn(function* () {
 *   const server = UnixDatagram.bind("/tmp/app.dgram");
 *   const client = UnixDatagram.unbound();
 *   yield* client.sendTo(new TextEncoder().encode("ping"), "/tmp/app.dgram");
 *   const buf = new Uint8Array(64);
 *   const [n] = yield* server.recvFrom(buf);
 *   client.close();
 *   server.close(); // removes /tmp/app.dgram
 * });
 * ```
 */
export class UnixDatagram extends SocketBase {
  private readonly core: DgramCore;

  private constructor(
    src: IoSource,
    private readonly file: SocketFile | null,
    /** A pair's ends are connected from the start; connect() connects the others. */
    private connected = false,
  ) {
    super(src);
    this.core = new DgramCore(src, (addr, out) => encodePath(unixTarget(addr), out, "a Unix datagram send"));
  }

  /** A datagram socket bound to `path` (or an abstract name). */
  // `override`: the class (a Function) already has Function.prototype.bind, which this shadows.
  static override bind(path: string): UnixDatagram {
    const fd = newSocket(SYS.AF_UNIX, SYS.SOCK_DGRAM);
    let file: SocketFile;
    try {
      file = SocketFile.bind(fd, path, "UnixDatagram.bind()");
    } catch (err) {
      closeAndThrow(fd, err);
    }
    return new UnixDatagram(new IoSource(fd, FD_DATAGRAM), file);
  }

  /** An unbound datagram socket (it can send; replies to it cannot be addressed). */
  static unbound(): UnixDatagram {
    return new UnixDatagram(new IoSource(newSocket(SYS.AF_UNIX, SYS.SOCK_DGRAM), FD_DATAGRAM), null);
  }

  /** Two connected datagram sockets (socketpair). */
  static pair(): [UnixDatagram, UnixDatagram] {
    const [a, b] = pairFds(SYS.SOCK_DGRAM);
    return [new UnixDatagram(new IoSource(a, FD_DATAGRAM), null, true), new UnixDatagram(new IoSource(b, FD_DATAGRAM), null, true)];
  }

  /** Sends `buf` as one datagram to `path`. */
  sendTo(buf: Uint8Array, path: string | SocketAddr): BaseFuture<number> {
    return this.core.sendTo(buf, path);
  }

  /** Receives one datagram: `[bytes, source]` (source "" for an unbound sender). TruncatedError when it did not fit. */
  recvFrom(buf: Uint8Array): BaseFuture<[number, SocketAddr]> {
    return this.core.recvFrom(buf);
  }

  /** Up to 64 datagrams in one call (sendmmsg; one linked SQE chain on io_uring): how many went out (≥ 1). */
  sendMany(msgs: readonly OutDatagram<string | SocketAddr>[]): BaseFuture<number> {
    return this.core.sendMany(msgs, this.connected);
  }

  /** Up to bufs.length (≤ 64) datagrams in one call: at least one; datagram i is in bufs[i]. Cancel-safe. */
  recvMany(bufs: readonly Uint8Array[]): BaseFuture<Datagram[]> {
    return this.core.recvMany(bufs);
  }

  /** Sets the default destination (and receives only from it). */
  connect(path: string): BaseFuture<void> {
    return new DatagramConnect(this.src, (out) => encodePath(path, out, "UnixDatagram.connect()"), path, () => (this.connected = true));
  }

  send(buf: Uint8Array): BaseFuture<number> {
    return this.core.sendTo(buf, null);
  }

  recv(buf: Uint8Array): BaseFuture<number> {
    return this.core.recv(buf);
  }

  /** The connected peer's address (ENOTCONN when not connected). */
  get peerAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getpeername");
    return sockName(this.src.fd, true);
  }

  /** Closes the socket and removes its socket file (if still the one it made). Idempotent. */
  override close(): void {
    if (this.src.isClosed) return;
    try {
      this.file?.remove();
    } finally {
      this.src.close();
    }
  }
}


/**
 * TCP: TcpListener and TcpStream over the per-fd interface (io/source.ts → the driver's
 * IoFd), the same on every backend.
 *
 * Every operation is a hand-written future: accept and connect here; read, write,
 * writeAll and readExact are io/stream.ts's generic futures over TcpStream's AsyncRead /
 * AsyncWrite, one of each kind per stream, reused once a `yield*` has consumed it (so
 * `yield* stream.read(buf)` allocates nothing; do not keep such a future past its yield*). Each stores its task's waker while pending and gives it back on cancel(),
 * so an abandoned op leaves nothing behind (on io_uring, its op is cancelled).
 *
 * Connect is the non-blocking handshake (connect() → EINPROGRESS → wait writable →
 * SO_ERROR on readiness backends; a CONNECT op on io_uring). Writes use MSG_NOSIGNAL
 * (SO_NOSIGPIPE on Darwin): a peer that has gone gives EPIPE, never a SIGPIPE death.
 *
 * Cancel safety (as tokio documents it): accept and read are cancel-safe (nothing is
 * consumed until they complete); write is cancel-safe (bytes are written only in the poll
 * that reports them); writeAll and readExact are not: bytes already moved are lost to the
 * caller when they are cancelled midway. connect cancelled closes its socket.
 *
 * Must never: block, or leak an fd on any error path.
 */
import { SYS } from "../../ffi/constants.ts";
import type { SocketAddr } from "../../ffi/sockaddr.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { DIR_WRITE, closedError } from "../driver/fd.ts";
import { check, checkPort } from "../errors.ts";
import { IoSource } from "../io/source.ts";
import { isHostName, resolve, type HostPort, type Resolved } from "./addr.ts";
import { HappyConnect } from "./happy.ts";
import { withSignalOption, type SignalOption } from "../cancel.ts";
import type { StreamBase } from "../stream/stream.ts";
import { AcceptFuture, Incoming, ListenerBase } from "./accept.ts";
import { closeAndThrow, newSocket, setIntOption, sockets } from "./socket.ts";
import { StreamSocket } from "./stream_socket.ts";

/**
 * Options for {@link TcpListener.bind}.
 *
 * @example
 * ```ts
 * const opts: BindOptions = { hostname: "::1", port: 0, backlog: 1024, reusePort: true };
 * const listener = TcpListener.bind(opts);
 * ```
 */
export interface BindOptions extends HostPort {
  /** listen() backlog; default 1024 (tokio's). */
  backlog?: number;
  /** SO_REUSEADDR; default true (as tokio on Unix). */
  reuseAddr?: boolean;
  /** SO_REUSEPORT; default false. */
  reusePort?: boolean;
}

/**
 * Options for {@link TcpStream.connect}: where to, and an AbortSignal that cancels it.
 *
 * @example
 * ```ts
 * const opts: ConnectOptions = { hostname: "db.internal", port: 5432, signal: AbortSignal.timeout(2000) };
 * const s = yield* TcpStream.connect(opts);
 * ```
 */
export interface ConnectOptions extends HostPort, SignalOption {}

/**
 * A listening TCP socket.
 *
 * @example
 * ```ts
 * import { TcpListener, blockOn, spawn } from "reel";
 * blockOn(function* () {
 *   const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
 *   console.log("listening on", listener.localAddr.toString());
 *   const [stream, peer] = yield* listener.accept();
 *   console.log("connection from", peer.toString());
 *   stream.close();
 *   listener.close();
 * });
 * ```
 */
export class TcpListener extends ListenerBase {
  private constructor(src: IoSource) {
    super(src);
  }

  /** Binds and listens. Port 0 picks a free port: read it from `localAddr`. */
  // `override`: the class (a Function) already has Function.prototype.bind, which this shadows.
  static override bind(opts: BindOptions): TcpListener {
    const addr = resolve(opts, "TcpListener.bind()");
    const backlog = opts.backlog ?? 1024;
    if (!Number.isInteger(backlog) || backlog < 0) throw new RangeError(`Invalid backlog ${backlog}: must be an integer ≥ 0`);
    const fd = newSocket(addr.domain, SYS.SOCK_STREAM);
    try {
      if (opts.reuseAddr ?? true) setIntOption(fd, SYS.SOL_SOCKET, SYS.SO_REUSEADDR, 1, "SO_REUSEADDR");
      if (opts.reusePort ?? false) setIntOption(fd, SYS.SOL_SOCKET, SYS.SO_REUSEPORT, 1, "SO_REUSEPORT");
      check(sockets().bind(fd, addr.sockaddr, addr.length), "bind", `${opts.hostname ?? "127.0.0.1"}:${opts.port}`);
      check(sockets().listen(fd, backlog), "listen");
    } catch (err) {
      closeAndThrow(fd, err);
    }
    return new TcpListener(new IoSource(fd));
  }

  /**
   * Waits for a connection: the new stream and the peer's address. Cancel-safe: a
   * connection that arrives after the cancel waits in the backlog for the next accept.
   * Aborting `opts.signal` cancels the wait and throws the signal's reason.
   */
  accept(opts?: SignalOption): BaseFuture<[TcpStream, SocketAddr]> {
    return withSignalOption(new AcceptFuture(this.src, wrapTcp), opts, "TcpListener.accept()");
  }

  /**
   * The accepted connections as a stream of values: each `next()` accepts one. The stream
   * ends (null) once the listener is closed, so a loop over it stops when the listener
   * does; an accept error (EMFILE, …) is thrown from that `next()` and the stream can be
   * polled again. Cancel-safe, as accept().
   *
   * @example
   * ```ts
   * const conns = listener.incoming();
   * for (let s; (s = yield* conns.next()) !== null; ) spawn(handle(s));
   * ```
   */
  incoming(): StreamBase<TcpStream> {
    return new Incoming(this.src, wrapTcp);
  }
}

/** Wraps an accepted fd. */
function wrapTcp(fd: number): TcpStream {
  return new TcpStream(new IoSource(fd));
}

/**
 * A connected TCP stream.
 *
 * @example
 * ```ts
 * import { TcpStream, blockOn } from "reel";
 * blockOn(function* () {
 *   const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: 7000 });
 *   yield* s.writeAll(new TextEncoder().encode("ping\n"));
 *   const buf = new Uint8Array(64);
 *   const n = yield* s.read(buf);
 *   console.log(new TextDecoder().decode(buf.subarray(0, n)));
 *   s.close();
 * });
 * ```
 */
export class TcpStream extends StreamSocket {
  /** @internal Use TcpStream.connect or TcpListener.accept. */
  constructor(src: IoSource) {
    super(src);
  }

  /**
   * Connects (the non-blocking handshake); fails with SysError ECONNREFUSED etc. An IP
   * literal is connected to directly; a host name (including "localhost") is looked up
   * and its addresses raced Happy-Eyeballs style (IPv6 first, IPv4 250 ms later or as
   * soon as IPv6 fails; the first to connect wins, the others are closed). A failed lookup
   * is a LookupError. Aborting `opts.signal` cancels the attempt (every socket it opened
   * is closed) and throws the signal's reason.
   */
  static connect(opts: ConnectOptions): BaseFuture<TcpStream> {
    return withSignalOption(new Connect(opts), opts, "TcpStream.connect()");
  }

  /** TCP_NODELAY: send small writes at once (no Nagle). */
  setNoDelay(on = true): void {
    if (this.src.isClosed) throw closedError("setsockopt");
    setIntOption(this.src.fd, SYS.IPPROTO_TCP, SYS.TCP_NODELAY, on ? 1 : 0, "TCP_NODELAY");
  }

}

/** The non-blocking connect handshake (or, for a host name, Happy Eyeballs: happy.ts). */
class Connect extends BaseFuture<TcpStream> {
  private src: IoSource | null = null;
  private addr: Resolved | null = null;
  private waker: Waker | null = null;
  private happy: HappyConnect | null = null;
  private done = false;
  constructor(private readonly opts: HostPort) {
    super();
  }

  poll(cx: Context): Poll<TcpStream> {
    if (this.done) throw new FutureStateError("connect() future polled after completion");
    try {
      if (this.happy === null && this.src === null && isHostName(this.opts?.hostname)) {
        this.happy = new HappyConnect(this.opts.hostname!, checkPort(this.opts.port, "port for TcpStream.connect()"));
      }
      if (this.happy !== null) {
        const s = this.happy.poll(cx);
        if (s === PENDING) return PENDING;
        this.done = true;
        this.happy = null;
        return new TcpStream(s);
      }
      const src = this.src ?? this.start();
      const addr = this.addr!;
      if (src.pollConnect(cx, addr.sockaddr, addr.length, this.detail()) === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      this.done = true;
      this.src = null;
      return new TcpStream(src);
    } catch (e) {
      this.fail();
      throw e;
    }
  }

  /** Creates the socket; the handshake starts at the first pollConnect. */
  private start(): IoSource {
    const addr = resolve(this.opts, "TcpStream.connect()");
    const fd = newSocket(addr.domain, SYS.SOCK_STREAM);
    this.addr = addr;
    return (this.src = new IoSource(fd));
  }

  /** "host:port", for connect errors. */
  private detail(): string {
    return `${this.opts.hostname ?? "127.0.0.1"}:${this.opts.port}`;
  }

  private fail(): void {
    this.done = true;
    this.happy?.cancel();
    this.happy = null;
    const src = this.src;
    this.src = null;
    src?.close();
  }

  /** Abandons the handshake and closes the socket. */
  override cancel(): void {
    if (this.done) return;
    this.src?.dropWaker(DIR_WRITE, this.waker);
    this.fail();
  }
}


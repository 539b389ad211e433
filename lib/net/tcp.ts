/**
 * TCP: TcpListener and TcpStream over the readiness retry loop (io/source.ts).
 *
 * Every operation is a hand-written future: accept, connect, read, write, writeAll,
 * readExact. Each stores its task's waker in the fd's registration while pending and
 * removes it on cancel(), so an abandoned op leaves nothing behind.
 *
 * Connect is the non-blocking handshake: connect() → EINPROGRESS → wait writable →
 * getsockopt(SO_ERROR) decides. Writes use MSG_NOSIGNAL (SO_NOSIGPIPE on Darwin): a peer
 * that has gone gives EPIPE as an error, never a SIGPIPE death.
 *
 * Cancel safety (as tokio documents it): accept and read are cancel-safe (nothing is
 * consumed until they complete); write is cancel-safe (bytes are written only in the poll
 * that reports them); writeAll and readExact are not: bytes already moved are lost to the
 * caller when they are cancelled midway. connect cancelled closes its socket.
 *
 * Must never: block, or leak an fd on any error path.
 */
import { SYS } from "../../ffi/constants.ts";
import { EINPROGRESS, EINTR } from "../../ffi/errno.ts";
import * as libc from "../../ffi/libc.ts";
import { decodeSockaddr, type SocketAddr } from "../../ffi/sockaddr.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { READ_READY, WRITE_READY } from "../driver/driver.ts";
import { SysError, UnexpectedEofError, check, checkBuffer } from "../errors.ts";
import { IoSource, OP_ACCEPT, OP_READ, OP_WRITE, acceptAddr, closedError } from "../driver/readiness/source.ts";
import { resolve, type HostPort, type Resolved } from "./addr.ts";
import { closeAndThrow, getIntOption, prepareFd, setIntOption, sockName, streamSocket } from "./socket.ts";

/**
 * What TcpListener and TcpStream share: the fd's source, its local address, and close
 * (pending operations then fail with EBADF; closing twice is a no-op).
 */
abstract class SocketBase {
  protected constructor(protected readonly src: IoSource) {}

  /** The bound address (with the real port when bound to port 0). */
  get localAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getsockname");
    return sockName(this.src.fd, false);
  }

  /** The socket's fd (-1 once closed). */
  get fd(): number {
    return this.src.fd;
  }

  /** Closes the fd and deregisters it; pending operations fail with EBADF. Idempotent. */
  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options for {@link TcpListener.bind}. */
export interface BindOptions extends HostPort {
  /** listen() backlog; default 1024 (tokio's). */
  backlog?: number;
  /** SO_REUSEADDR; default true (as tokio on Unix). */
  reuseAddr?: boolean;
  /** SO_REUSEPORT; default false. */
  reusePort?: boolean;
}

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
export class TcpListener extends SocketBase {
  private constructor(src: IoSource) {
    super(src);
  }

  /** Binds and listens. Port 0 picks a free port: read it from `localAddr`. */
  // `override`: the class (a Function) already has Function.prototype.bind, which this shadows.
  static override bind(opts: BindOptions): TcpListener {
    const addr = resolve(opts, "TcpListener.bind()");
    const backlog = opts.backlog ?? 1024;
    if (!Number.isInteger(backlog) || backlog < 0) throw new RangeError(`Invalid backlog ${backlog}: must be an integer ≥ 0`);
    const fd = streamSocket(addr.domain);
    try {
      if (opts.reuseAddr ?? true) setIntOption(fd, SYS.SOL_SOCKET, SYS.SO_REUSEADDR, 1, "SO_REUSEADDR");
      if (opts.reusePort ?? false) setIntOption(fd, SYS.SOL_SOCKET, SYS.SO_REUSEPORT, 1, "SO_REUSEPORT");
      check(libc.bind(fd, addr.sockaddr, addr.length), "bind", `${opts.hostname ?? "127.0.0.1"}:${opts.port}`);
      check(libc.listen(fd, backlog), "listen");
    } catch (err) {
      closeAndThrow(fd, err);
    }
    return new TcpListener(new IoSource(fd));
  }

  /** Waits for a connection: the new stream and the peer's address. Cancel-safe. */
  accept(): BaseFuture<[TcpStream, SocketAddr]> {
    return new Accept(this.src);
  }

}

class Accept extends BaseFuture<[TcpStream, SocketAddr]> {
  private waker: Waker | null = null;
  private done = false;
  constructor(private readonly src: IoSource) {
    super();
  }

  poll(cx: Context): Poll<[TcpStream, SocketAddr]> {
    if (this.done) throw new FutureStateError("accept() future polled after completion");
    const fd = this.src.pollOp(cx, OP_ACCEPT, null);
    if (fd === PENDING) {
      this.waker = cx.waker;
      return PENDING;
    }
    this.done = true;
    this.waker = null;
    // Decode before anything else can accept into the shared scratch buffer.
    const peer = decodeSockaddr(acceptAddr, acceptAddr.length);
    return [new TcpStream(new IoSource(prepareFd(fd))), peer!];
  }

  override cancel(): void {
    this.done = true;
    this.src.dropWaker(READ_READY, this.waker);
    this.waker = null;
  }
}

/** How {@link TcpStream.shutdown} closes the stream: one direction or both. */
export type ShutdownHow = "read" | "write" | "both";

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
export class TcpStream extends SocketBase {
  /** @internal Use TcpStream.connect or TcpListener.accept. */
  constructor(src: IoSource) {
    super(src);
  }

  /** Connects (the non-blocking handshake); fails with SysError ECONNREFUSED etc. */
  static connect(opts: HostPort): BaseFuture<TcpStream> {
    return new Connect(opts);
  }

  /** Reads into `buf`: the byte count, 0 at EOF (or for an empty buf). Cancel-safe. */
  read(buf: Uint8Array): BaseFuture<number> {
    checkBuffer(buf, "read() buffer");
    return new ReadWrite(this.src, OP_READ, buf);
  }

  /** Writes some of `buf`: the byte count (≥ 1 unless buf is empty). Cancel-safe. */
  write(buf: Uint8Array): BaseFuture<number> {
    checkBuffer(buf, "write() buffer");
    return new ReadWrite(this.src, OP_WRITE, buf);
  }

  /** Writes all of `buf`. Not cancel-safe: a cancelled writeAll may have written a prefix. */
  writeAll(buf: Uint8Array): BaseFuture<void> {
    checkBuffer(buf, "writeAll() buffer");
    return new Exact(this.src, OP_WRITE, buf);
  }

  /** Fills all of `buf`, or fails with UnexpectedEofError. Not cancel-safe. */
  readExact(buf: Uint8Array): BaseFuture<void> {
    checkBuffer(buf, "readExact() buffer");
    return new Exact(this.src, OP_READ, buf);
  }

  /** AsyncRead: one read attempt through the retry loop. */
  pollRead(cx: Context, buf: Uint8Array): Poll<number> {
    return buf.byteLength === 0 ? emptyBuffer(buf, OP_READ) : this.src.pollOp(cx, OP_READ, buf);
  }

  /** AsyncWrite: one write attempt through the retry loop. */
  pollWrite(cx: Context, buf: Uint8Array): Poll<number> {
    return buf.byteLength === 0 ? emptyBuffer(buf, OP_WRITE) : this.src.pollOp(cx, OP_WRITE, buf);
  }

  /** AsyncWrite: nothing is buffered in user space, so a flush is always done. */
  pollFlush(_cx: Context): Poll<void> {
    if (this.src.isClosed) throw closedError("flush");
    return undefined;
  }

  /** AsyncWrite: shuts down the write side (the peer reads EOF); the fd stays open. */
  pollShutdown(_cx: Context): Poll<void> {
    this.shutdown("write");
    return undefined;
  }

  /** Shuts down one direction or both; the fd stays open until close(). */
  shutdown(how: ShutdownHow = "write"): void {
    const h = how === "read" ? SYS.SHUT_RD : how === "write" ? SYS.SHUT_WR : how === "both" ? SYS.SHUT_RDWR : -1;
    if (h < 0) throw new TypeError(`Invalid shutdown direction "${String(how)}": expected "read", "write" or "both"`);
    if (this.src.isClosed) throw closedError("shutdown");
    check(libc.shutdown(this.src.fd, h), "shutdown");
  }

  /** TCP_NODELAY: send small writes at once (no Nagle). */
  setNoDelay(on = true): void {
    if (this.src.isClosed) throw closedError("setsockopt");
    setIntOption(this.src.fd, SYS.IPPROTO_TCP, SYS.TCP_NODELAY, on ? 1 : 0, "TCP_NODELAY");
  }

  /** The peer's address. */
  get peerAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getpeername");
    return sockName(this.src.fd, true);
  }
}

/** True when `buf`'s ArrayBuffer was detached (transferred) after the op was created. */
function isDetached(buf: Uint8Array): boolean {
  return (buf.buffer as ArrayBuffer).detached;
}

/** A zero-length buffer's result: 0, or TypeError if it is empty because it was detached (not EOF). */
function emptyBuffer(buf: Uint8Array, op: number): 0 {
  if (isDetached(buf)) throw detachedError(op);
  return 0;
}

function detachedError(op: number): TypeError {
  return new TypeError(`The ${op === OP_READ ? "read" : "write"} buffer is detached (its ArrayBuffer was transferred)`);
}

/**
 * What read/write and writeAll/readExact share: the stream, the op, the buffer, and the
 * waker stored while pending, which cancel() takes back out of the registration.
 */
abstract class StreamOp<T> extends BaseFuture<T> {
  protected waker: Waker | null = null;
  protected done = false;
  constructor(
    protected readonly src: IoSource,
    protected readonly op: number,
    protected readonly buf: Uint8Array,
  ) {
    super();
  }

  override cancel(): void {
    this.done = true;
    this.src.dropWaker(this.op === OP_READ ? READ_READY : WRITE_READY, this.waker);
    this.waker = null;
  }

  /** A buffer detached while pending also has length 0: an error, not a silent EOF. */
  protected failIfDetached(): void {
    if (!isDetached(this.buf)) return;
    this.cancel();
    throw detachedError(this.op);
  }
}

/** One read or write: the result of a single successful syscall. */
class ReadWrite extends StreamOp<number> {
  poll(cx: Context): Poll<number> {
    if (this.done) throw new FutureStateError("read()/write() future polled after completion");
    if (this.buf.byteLength === 0) {
      this.failIfDetached();
      this.done = true;
      return 0;
    }
    const n = this.src.pollOp(cx, this.op, this.buf);
    if (n === PENDING) {
      this.waker = cx.waker;
      return PENDING;
    }
    this.done = true;
    return n;
  }
}

/** writeAll / readExact: loops single ops until the buffer is done. */
class Exact extends StreamOp<void> {
  private off = 0;

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("writeAll()/readExact() future polled after completion");
    const len = this.buf.byteLength;
    if (len === 0) this.failIfDetached();
    while (this.off < len) {
      const rest = this.off === 0 ? this.buf : this.buf.subarray(this.off);
      const n = this.src.pollOp(cx, this.op, rest);
      if (n === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      if (n === 0 && this.op === OP_READ) {
        this.done = true;
        throw new UnexpectedEofError(this.off, len);
      }
      this.off += n;
    }
    this.done = true;
    return undefined;
  }
}

/** The non-blocking connect handshake. */
class Connect extends BaseFuture<TcpStream> {
  private src: IoSource | null = null;
  private addr: Resolved | null = null;
  private waker: Waker | null = null;
  private done = false;
  constructor(private readonly opts: HostPort) {
    super();
  }

  poll(cx: Context): Poll<TcpStream> {
    if (this.done) throw new FutureStateError("connect() future polled after completion");
    try {
      const src = this.src ?? this.start();
      const ur = src.uring();
      if (ur !== null) {
        // io_uring: the CONNECT op's CQE is the handshake's result.
        const addr = this.addr!;
        if (ur.pollConnect(cx, addr.sockaddr, addr.length, this.detail()) === PENDING) {
          this.waker = cx.waker;
          return PENDING;
        }
        this.done = true;
        this.src = null;
        return new TcpStream(src);
      }
      if (src.pollReady(cx, WRITE_READY) === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      // Writable (or error/hang-up): SO_ERROR says whether the handshake succeeded.
      const err = getIntOption(src.fd, SYS.SOL_SOCKET, SYS.SO_ERROR, "SO_ERROR");
      if (err !== 0) throw new SysError(err, "connect", undefined, `${this.opts.hostname ?? "127.0.0.1"}:${this.opts.port}`);
      this.done = true;
      this.src = null;
      return new TcpStream(src);
    } catch (e) {
      this.fail();
      throw e;
    }
  }

  /** Creates the socket and starts connect(); returns the source to wait on. */
  private start(): IoSource {
    const addr = resolve(this.opts, "TcpStream.connect()");
    const fd = streamSocket(addr.domain);
    this.addr = addr;
    const src = new IoSource(fd);
    if (src.uring() !== null) {
      this.src = src;
      return src;
    }
    let r = libc.connect(fd, addr.sockaddr, addr.length);
    while (r === -EINTR) r = libc.connect(fd, addr.sockaddr, addr.length);
    if (r < 0 && r !== -EINPROGRESS) {
      closeAndThrow(fd, new SysError(-r, "connect", undefined, this.detail()));
    }
    this.src = src;
    return src;
  }

  /** "host:port", for connect errors. */
  private detail(): string {
    return `${this.opts.hostname ?? "127.0.0.1"}:${this.opts.port}`;
  }

  private fail(): void {
    this.done = true;
    const src = this.src;
    this.src = null;
    src?.close();
  }

  /** Abandons the handshake and closes the socket. */
  override cancel(): void {
    if (this.done) return;
    this.src?.dropWaker(WRITE_READY, this.waker);
    this.fail();
  }
}


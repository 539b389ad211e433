/**
 * Accepting connections, once for every listener kind: the accept future
 * (`listener.accept()`) and the stream of connections (`listener.incoming()`), both over
 * the per-fd interface's OP_ACCEPT. A listener passes `wrap`, which turns an accepted
 * (already non-blocking, close-on-exec) fd into its stream type.
 *
 * Invariants: an accepted fd is wrapped in the poll that accepted it (owned from then
 * on, never leaked); the peer's address is decoded before anything else can accept into
 * the shared scratch buffer. Both are cancel-safe: a cancel only forgets the waker, and a
 * connection that arrives later waits in the kernel's backlog for the next accept.
 *
 * Must never: act on the listener's fd after it is closed (incoming() ends instead).
 * Must never import: bun:ffi
 */
import { SocketAddr, decodeSockaddr } from "../../ffi/sockaddr.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { DIR_READ, OP_ACCEPT, acceptAddr, acceptAddrLen } from "../driver/fd.ts";
import type { IoSource } from "../io/source.ts";
import { StreamBase } from "../stream/stream.ts";
import { closeAndThrow, prepareFd } from "./socket.ts";
import { SocketBase } from "./stream_socket.ts";

/** The peer of an unnamed Unix socket (accept reports no address for it). */
const UNNAMED = new SocketAddr("unix", "", 0);

/**
 * One accept attempt: the new fd, made non-blocking and close-on-exec (the caller owns
 * it; an fd that cannot be prepared is closed, not leaked), or PENDING with `cx.waker`
 * stored. The peer's raw address is in the shared scratch buffer until the next accept.
 *
 * @example
 * ```ts
 * const fd = pollAcceptFd(listenerSrc, cx); // PENDING, or an fd the caller now owns
 * ```
 */
export function pollAcceptFd(src: IoSource, cx: Context): Poll<number> {
  const fd = src.pollOp(cx, OP_ACCEPT, null);
  if (fd === PENDING) return PENDING;
  try {
    return prepareFd(fd);
  } catch (err) {
    closeAndThrow(fd, err);
  }
}

/** One accept attempt: the wrapped stream and its peer, or PENDING with the waker stored. */
function pollAccept<S>(src: IoSource, cx: Context, wrap: (fd: number) => S): Poll<[S, SocketAddr]> {
  const fd = pollAcceptFd(src, cx);
  if (fd === PENDING) return PENDING;
  // Decoded before anything else can accept into the shared scratch buffer.
  const peer = decodeSockaddr(acceptAddr, acceptAddrLen[0]!) ?? UNNAMED;
  return [wrap(fd), peer];
}

/**
 * `listener.accept()`: one connection and its peer's address.
 *
 * @example
 * ```ts
 * const [stream, peer] = yield* new AcceptFuture(src, (fd) => new TcpStream(new IoSource(fd)));
 * ```
 */
export class AcceptFuture<S> extends BaseFuture<[S, SocketAddr]> {
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly src: IoSource,
    private readonly wrap: (fd: number) => S,
  ) {
    super();
  }

  poll(cx: Context): Poll<[S, SocketAddr]> {
    if (this.done) throw new FutureStateError("accept() future polled after completion");
    const r = pollAccept(this.src, cx, this.wrap);
    if (r === PENDING) {
      this.waker = cx.waker;
      return PENDING;
    }
    this.done = true;
    this.waker = null;
    return r;
  }

  override cancel(): void {
    this.done = true;
    this.src.dropWaker(DIR_READ, this.waker);
    this.waker = null;
  }

  override describe(): string {
    return `accept fd ${this.src.fd}`;
  }
}

/**
 * `listener.incoming()`: accepts once per `pollNext`; ends (null) once the listener is
 * closed. An accept error is thrown from that poll and the stream can be polled again.
 *
 * @example
 * ```ts
 * const conns = new Incoming(src, (fd) => new TcpStream(new IoSource(fd)));
 * for (let s; (s = yield* conns.next()) !== null; ) spawn(handle(s));
 * ```
 */
export class Incoming<S> extends StreamBase<S> {
  private waker: Waker | null = null;
  constructor(
    private readonly src: IoSource,
    private readonly wrap: (fd: number) => S,
  ) {
    super();
  }

  pollNext(cx: Context): Poll<S | null> {
    this.waker = null;
    if (this.src.isClosed) return null;
    const r = pollAccept(this.src, cx, this.wrap);
    if (r === PENDING) {
      this.waker = cx.waker;
      return PENDING;
    }
    return r[0];
  }

  override cancelNext(): void {
    if (this.waker !== null && !this.src.isClosed) this.src.dropWaker(DIR_READ, this.waker);
    this.waker = null;
  }

  describe(): string {
    return `incoming on fd ${this.src.fd}`;
  }
}

/**
 * The base of the listeners (TcpListener, UnixListener): what a server that owns one
 * (net/listen.ts) accepts through, without a stream object or an address per connection.
 *
 * @example
 * ```ts
 * const fd = listener.pollAcceptFd(cx); // PENDING, or an fd the caller now owns
 * ```
 */
export abstract class ListenerBase extends SocketBase {
  /**
   * @internal One accept attempt: the new fd, made non-blocking and close-on-exec (the
   * caller owns it), or PENDING with `cx.waker` stored. Throws SysError as accept() does.
   */
  pollAcceptFd(cx: Context): Poll<number> {
    return pollAcceptFd(this.src, cx);
  }

  /** @internal Forgets the waker a {@link ListenerBase.pollAcceptFd} left (its server stopped accepting). */
  dropAcceptWaker(waker: Waker | null): void {
    this.src.dropWaker(DIR_READ, waker);
  }
}

/**
 * Unix domain stream sockets: UnixListener / UnixStream (SOCK_STREAM), over the per-fd
 * interface like TCP, on every backend (UnixDatagram is unix_dgram.ts).
 *
 * Paths (unixpath.ts): a filesystem path, or on Linux an abstract name ("\0name": no
 * file, gone with the last socket). A path longer than sun_path is a RangeError naming
 * its length. The socket file a listener created is removed when it closes — only if
 * the path still names that same file (its device and inode), so a file some other
 * process put there since is left alone. Binding over an existing file fails with
 * EADDRINUSE whose message says the file is there (often a stale one from a process that
 * died without removing it).
 *
 * File descriptors (SCM_RIGHTS): `sendFds` sends fds with at least one byte of data;
 * `recvFds` receives bytes and the fds that came with them. A stream's every read goes
 * through recvmsg with room for ancillary data, so fds that arrive with bytes taken by
 * `read()` are never lost: they wait in the stream and the next `recvFds` returns them
 * (a stream closed with fds waiting closes them). Received fds are close-on-exec where
 * the platform can say so at receipt (MSG_CMSG_CLOEXEC: Linux, FreeBSD), and belong to
 * the caller.
 *
 * Peer credentials: SO_PEERCRED on Linux; LOCAL_PEERCRED (and LOCAL_PEERPID on macOS)
 * on the BSDs — written to their ABI, not run here.
 *
 * Must never: block, remove a file it did not create, leak a received fd, or leave a
 * half-set-up socket open.
 */
import { NET, SYS } from "../../ffi/constants.ts";
import { EAGAIN } from "../../ffi/errno.ts";
import { SOCKADDR_MAX, SocketAddr } from "../../ffi/sockaddr.ts";
import { MAX_FDS_PER_MSG, decodeRights, encodeRights, rightsSpace } from "../../ffi/cmsg.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { DIR_READ, DIR_WRITE, Msg, OP_RECVMSG, OP_SENDMSG, closedError } from "../driver/fd.ts";
import { SysError, check, checkBuffer } from "../errors.ts";
import { IoSource } from "../io/source.ts";
import { sleep, type Sleep } from "../time/sleep.ts";
import { TruncatedError } from "./dgram.ts";
import { SocketFile, encodePath, isAbstract, pairFds } from "./unixpath.ts";
import { closeAndThrow, newSocket, sockets } from "./socket.ts";
import { AcceptFuture, Incoming, ListenerBase } from "./accept.ts";
import { withSignalOption, type SignalOption } from "../cancel.ts";
import type { StreamBase } from "../stream/stream.ts";
import { StreamSocket } from "./stream_socket.ts";
import { emptyBuffer } from "../io/stream.ts";

/**
 * The peer's credentials at connect time: its process, user and group.
 *
 * @example
 * ```ts
 * const { pid, uid } = stream.peerCred();
 * if (uid !== process.getuid!()) stream.close();
 * ```
 */
export interface PeerCred {
  /** The peer's process id (-1 where the platform does not report it). */
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * A Unix stream socket listening at a path (or an abstract name).
 *
 * @example
 * ```ts
 * import { UnixListener, blockOn } from "reel";
 * blockOn(function* () {
 *   const listener = UnixListener.bind("/tmp/app.sock");
 *   const [stream] = yield* listener.accept();
 *   console.log("peer", stream.peerCred());
 *   stream.close();
 *   listener.close(); // removes /tmp/app.sock
 * });
 * ```
 */
export class UnixListener extends ListenerBase {
  private constructor(
    src: IoSource,
    private readonly file: SocketFile,
  ) {
    super(src);
  }

  /** Binds and listens at `path`; EADDRINUSE when a file is already there. */
  // `override`: the class (a Function) already has Function.prototype.bind, which this shadows.
  static override bind(path: string, opts: { backlog?: number } = {}): UnixListener {
    const backlog = opts.backlog ?? 1024;
    if (!Number.isInteger(backlog) || backlog < 0) throw new RangeError(`Invalid backlog ${backlog}: must be an integer ≥ 0`);
    const fd = newSocket(SYS.AF_UNIX, SYS.SOCK_STREAM);
    let file: SocketFile | null = null;
    try {
      file = SocketFile.bind(fd, path, "UnixListener.bind()");
      check(sockets().listen(fd, backlog), "listen");
    } catch (err) {
      file?.remove();
      closeAndThrow(fd, err);
    }
    return new UnixListener(new IoSource(fd), file!);
  }

  /**
   * Waits for a connection: the stream and the peer's address (usually unnamed: "").
   * Cancel-safe. Aborting `opts.signal` cancels the wait and throws the signal's reason.
   */
  accept(opts?: SignalOption): BaseFuture<[UnixStream, SocketAddr]> {
    return withSignalOption(new AcceptFuture(this.src, wrapUnix), opts, "UnixListener.accept()");
  }

  /**
   * The accepted connections as a stream of values; it ends (null) once the listener is
   * closed. As {@link TcpListener.incoming}.
   *
   * @example
   * ```ts
   * const conns = listener.incoming();
   * for (let s; (s = yield* conns.next()) !== null; ) spawn(handle(s));
   * ```
   */
  incoming(): StreamBase<UnixStream> {
    return new Incoming(this.src, wrapUnix);
  }

  /** The path (or abstract name) this listener is bound to. */
  get path(): string {
    return this.file.path;
  }

  /** Closes the listener and removes its socket file (if it is still the one it made). Idempotent. */
  override close(): void {
    if (this.src.isClosed) return;
    try {
      this.file.remove();
    } finally {
      this.src.close();
    }
  }
}

/** Wraps an accepted fd. */
function wrapUnix(fd: number): UnixStream {
  return new UnixStream(new IoSource(fd));
}

/** Room for one SCM_RIGHTS message of the most fds one can carry. */
const CONTROL_ROOM = rightsSpace(MAX_FDS_PER_MSG);
const STREAM_RECV_FLAGS = NET.MSG_CMSG_CLOEXEC;

/**
 * A connected Unix stream socket.
 *
 * @example
 * ```ts
 * import { UnixStream, blockOn } from "reel";
 * blockOn(function* () {
 *   const [a, b] = UnixStream.pair();
 *   yield* a.writeAll(new TextEncoder().encode("hi"));
 *   const buf = new Uint8Array(2);
 *   yield* b.readExact(buf);
 *   a.close();
 *   b.close();
 * });
 * ```
 */
export class UnixStream extends StreamSocket {
  /** Fds that arrived with bytes read by read(): handed out by the next recvFds. */
  private readonly fdQueue: number[] = [];
  private readonly rx = new Msg();
  private readonly rxArr: readonly Msg[] = [this.rx];

  /** @internal Use UnixStream.connect, UnixStream.pair or UnixListener.accept. */
  constructor(src: IoSource) {
    super(src);
    this.rx.control = new Uint8Array(new ArrayBuffer(CONTROL_ROOM));
  }

  /** Connects to a listener at `path`: ECONNREFUSED (nobody listens), ENOENT (no such file). */
  static connect(path: string): BaseFuture<UnixStream> {
    return new UnixConnect(path);
  }

  /** Two connected streams (socketpair). */
  static pair(): [UnixStream, UnixStream] {
    const [a, b] = pairFds(SYS.SOCK_STREAM);
    return [new UnixStream(new IoSource(a)), new UnixStream(new IoSource(b))];
  }

  /**
   * Sends `buf` (at least one byte) with `fds` attached (SCM_RIGHTS, ≤ 253): the bytes
   * sent; the fds travel with the first of them. The fds stay open here (the peer gets
   * its own copies). Not cancel-safe on io_uring (as write).
   */
  sendFds(buf: Uint8Array, fds: readonly number[]): BaseFuture<number> {
    return new SendFds(this.src, buf, fds);
  }

  /**
   * Receives bytes into `buf` and the fds that came with them (plus any that arrived
   * with bytes taken by read()): `[bytes, fds]`; `[0, …]` at EOF. The fds are the
   * caller's to close. Cancel-safe.
   */
  recvFds(buf: Uint8Array): BaseFuture<[number, number[]]> {
    return new RecvFds(this, buf);
  }

  /** AsyncRead: one recvmsg (fds that arrive are queued for recvFds, so read() loses none). */
  override pollRead(cx: Context, buf: Uint8Array): Poll<number> {
    return buf.byteLength === 0 ? emptyBuffer(buf, "read") : this.pollRecvMsg(cx, buf);
  }

  /** @internal One recvmsg into `buf`; fds go to the queue. */
  pollRecvMsg(cx: Context, buf: Uint8Array): Poll<number> {
    const m = this.rx;
    m.buf = buf;
    let r: Poll<number>;
    try {
      r = this.src.pollMsg(cx, OP_RECVMSG, this.rxArr, 1, STREAM_RECV_FLAGS);
    } finally {
      m.buf = EMPTY;
    }
    if (r === PENDING) return PENDING;
    if (m.controlLen > 0) decodeRights(m.control!, m.controlLen, this.fdQueue);
    if ((m.flags & NET.MSG_CTRUNC) !== 0) {
      throw new TruncatedError(m.len, -1, null, "ancillary data (SCM_RIGHTS fds)");
    }
    return m.len;
  }

  /** @internal Takes the queued fds. */
  takeFds(): number[] {
    return this.fdQueue.splice(0);
  }

  /** AsyncRead: a read polled with `waker` was abandoned (its recvmsg op is named by its Msg array). */
  override cancelRead(waker: Waker): void {
    this.src.dropWaker(DIR_READ, waker, this.rxArr);
  }

  /** The peer's process, user and group (SO_PEERCRED / LOCAL_PEERCRED), as of connect. */
  peerCred(): PeerCred {
    if (this.src.isClosed) throw closedError("getsockopt");
    return peerCredOf(this.src.fd);
  }

  /** Closes the stream (and any received fds still waiting for recvFds). Idempotent. */
  override close(): void {
    for (const fd of this.fdQueue.splice(0)) sockets().close(fd);
    this.src.close();
  }
}

const EMPTY = new Uint8Array(0);

/** The credentials of the peer of `fd` (see the module header for the platforms). */
function peerCredOf(fd: number): PeerCred {
  const api = sockets();
  if (NET.SO_PEERCRED > 0) {
    const b = new Uint8Array(new ArrayBuffer(12));
    check(api.getsockopt(fd, SYS.SOL_SOCKET, NET.SO_PEERCRED, b), "getsockopt", "SO_PEERCRED");
    const w = new Int32Array(b.buffer);
    return { pid: w[0]!, uid: w[1]! >>> 0, gid: w[2]! >>> 0 };
  }
  // struct xucred: cr_version, cr_uid, cr_ngroups (short), cr_groups[16]; FreeBSD adds cr_pid at 80.
  const x = new Uint8Array(new ArrayBuffer(96));
  const n = check(api.getsockopt(fd, NET.SOL_LOCAL, NET.LOCAL_PEERCRED, x), "getsockopt", "LOCAL_PEERCRED");
  const w = new Int32Array(x.buffer);
  let pid = -1;
  if (NET.LOCAL_PEERPID > 0) {
    const p = new Uint8Array(new ArrayBuffer(4));
    if (api.getsockopt(fd, NET.SOL_LOCAL, NET.LOCAL_PEERPID, p) >= 0) pid = new Int32Array(p.buffer)[0]!;
  } else if (n >= 84) pid = w[20]!;
  return { pid, uid: w[1]! >>> 0, gid: w[3]! >>> 0 };
}

/**
 * Connect to a Unix path (the handshake through the per-fd interface). A listener whose
 * backlog is full makes a non-blocking Unix connect fail with EAGAIN (not EINPROGRESS: no
 * event will say when there is room), so that is retried after a backoff — 1 ms, doubling
 * to 64 ms — as a blocking connect would wait; wrap it in timeout() to bound the wait.
 */
class UnixConnect extends BaseFuture<UnixStream> {
  private src: IoSource | null = null;
  private readonly sa = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
  private len = 0;
  private waker: Waker | null = null;
  private backoff: Sleep | null = null;
  private delay = 1;
  private done = false;
  constructor(private readonly path: string) {
    super();
  }

  poll(cx: Context): Poll<UnixStream> {
    if (this.done) throw new FutureStateError("connect() future polled after completion");
    try {
      if (this.src === null) {
        this.len = encodePath(this.path, this.sa, "UnixStream.connect()");
        this.src = new IoSource(newSocket(SYS.AF_UNIX, SYS.SOCK_STREAM));
      }
      if (this.backoff !== null) {
        if (this.backoff.poll(cx) === PENDING) return PENDING;
        this.backoff = null;
      }
      const detail = isAbstract(this.path) ? `abstract name ${JSON.stringify(this.path.slice(1))}` : this.path;
      let r: Poll<void>;
      try {
        r = this.src.pollConnect(cx, this.sa, this.len, detail);
      } catch (e) {
        if (!(e instanceof SysError) || e.errno !== EAGAIN) throw e;
        // The backlog is full: try again later (see the class comment).
        this.backoff = sleep(this.delay);
        this.delay = Math.min(this.delay * 2, 64);
        return this.poll(cx);
      }
      if (r === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      this.done = true;
      const s = this.src;
      this.src = null;
      return new UnixStream(s);
    } catch (e) {
      this.fail();
      throw e;
    }
  }

  private fail(): void {
    this.done = true;
    this.backoff?.cancel();
    this.backoff = null;
    const s = this.src;
    this.src = null;
    s?.close();
  }

  override cancel(): void {
    if (this.done) return;
    this.src?.dropWaker(DIR_WRITE, this.waker);
    this.fail();
  }
}

/** sendmsg of bytes with SCM_RIGHTS. */
class SendFds extends BaseFuture<number> {
  private m: Msg | null = null;
  private arr: readonly Msg[] | null = null;
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly src: IoSource,
    private readonly buf: Uint8Array,
    private readonly fds: readonly number[],
  ) {
    super();
  }

  poll(cx: Context): Poll<number> {
    if (this.done) throw new FutureStateError("sendFds() future polled after completion");
    try {
      if (this.m === null) this.prepare();
      const r = this.src.pollMsg(cx, OP_SENDMSG, this.arr!, 1, 0);
      if (r === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      this.done = true;
      return this.m!.len;
    } catch (e) {
      this.done = true;
      throw e;
    }
  }

  private prepare(): void {
    checkBuffer(this.buf, "The buffer for sendFds()");
    if (this.buf.byteLength === 0) throw new RangeError("sendFds() needs at least one byte of data to carry the fds");
    const fds = this.fds;
    if (!Array.isArray(fds)) throw new TypeError("sendFds() takes an array of fds");
    if (fds.length > MAX_FDS_PER_MSG) throw new RangeError(`sendFds() of ${fds.length} fds: one message carries at most ${MAX_FDS_PER_MSG}`);
    for (const fd of fds) if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`Invalid fd ${String(fd)} for sendFds(): expected an integer ≥ 0`);
    const m = new Msg();
    m.buf = this.buf;
    m.control = new Uint8Array(new ArrayBuffer(rightsSpace(Math.max(fds.length, 1))));
    m.controlLen = fds.length === 0 ? 0 : encodeRights(m.control, fds);
    this.m = m;
    this.arr = [m];
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    if (this.arr !== null) this.src.dropWaker(DIR_WRITE, this.waker, this.arr);
  }
}

/** recvmsg of bytes and fds. */
class RecvFds extends BaseFuture<[number, number[]]> {
  private waker: Waker | null = null;
  private done = false;
  constructor(
    private readonly stream: UnixStream,
    private readonly buf: Uint8Array,
  ) {
    super();
  }

  poll(cx: Context): Poll<[number, number[]]> {
    if (this.done) throw new FutureStateError("recvFds() future polled after completion");
    checkBuffer(this.buf, "The buffer for recvFds()");
    let r: Poll<number>;
    try {
      r = this.buf.byteLength === 0 ? 0 : this.stream.pollRecvMsg(cx, this.buf);
    } catch (e) {
      this.done = true;
      throw e;
    }
    if (r === PENDING) {
      this.waker = cx.waker;
      return PENDING;
    }
    this.done = true;
    this.waker = null;
    return [r, this.stream.takeFds()];
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    if (this.waker !== null) this.stream.cancelRead(this.waker);
  }
}

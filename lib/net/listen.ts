/**
 * listen(): a handler-style server in Bun.listen's shape — `{ open, data, drain, end,
 * close, error }` called per connection — over TCP (`hostname`/`port`) or a Unix stream
 * socket (`unix`, as Bun's), on reel's per-fd interface, on every backend.
 *
 * One task serves the whole server (named "listen HOST:PORT", a child of the task that
 * called listen()). Each connection is a small state machine (net/conn.ts) that is its own
 * waker: a ready connection goes on the server's ready list and wakes the task, whose
 * poll accepts what is pending, then steps each ready connection. An idle connection is
 * its object, its IoSource and the driver's registration: no task, no generator, no
 * buffer. All connections share one read buffer, lent to data() for the call only.
 *
 * Lifetimes (the task tree): `server.stop()` closes the listener — no more connections —
 * and the task completes once the open ones have closed; `server.stop(true)` (or the
 * `signal` aborting) closes them all now. Cancelling the task (its parent failing or
 * halting, `blockOn` returning) does the same: every connection is closed, its `close`
 * handler called, before the cancel returns. A handler that throws closes its connection
 * and goes to `error(conn, err)`; without an `error` handler (or when it throws too), the
 * server fails with that error — closing everything — so no error passes silently. I/O
 * errors (a reset peer) go to `error` when there is one and end only that connection.
 * Accept errors follow serve()'s policy (net/serve.ts): back off on EMFILE & co, skip a
 * dead connection.
 *
 * Must never: touch a connection after it closed, let one connection stop the others on
 * an I/O error, or outlive its task with an fd open.
 */
import type { SocketAddr } from "../../ffi/sockaddr.ts";
import { spawn } from "../executor.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { IoSource } from "../io/source.ts";
import type { JoinHandle } from "../task/task.ts";
import { sleep, type Sleep } from "../time/sleep.ts";
import type { TimerWheel } from "../time/wheel.ts";
import type { Clock } from "../time/clock.ts";
import { currentDriver } from "../current.ts";
import { TcpConn, type ConnHost } from "./conn.ts";
import { acceptFailure } from "./serve.ts";
import { sockets } from "./socket.ts";
import { TcpListener, type BindOptions } from "./tcp.ts";
import { UnixListener } from "./unix.ts";
import type { ListenerBase } from "./accept.ts";
import { SYS } from "../../ffi/constants.ts";

export { TcpConn } from "./conn.ts";

/**
 * The handlers of a {@link listen} server, as Bun.listen's `socket` object. All optional.
 *
 * @example
 * ```ts
 * const echo: SocketHandler = { data(conn, bytes) { conn.write(bytes); } };
 * ```
 */
export interface SocketHandler<D = undefined> {
  /** A connection was accepted. */
  open?(conn: TcpConn<D>): void;
  /**
   * Bytes arrived. `bytes` is lent: it views the server's one read buffer and is valid
   * only during this call (the next read overwrites it) — copy it (`bytes.slice()`) to
   * keep it. Passing it to `conn.write()` is fine: what is queued is copied.
   */
  data?(conn: TcpConn<D>, bytes: Uint8Array): void;
  /** The queue has emptied after a `write()` took less than it was given. */
  drain?(conn: TcpConn<D>): void;
  /** The peer closed its side (EOF). The connection then ends: queued bytes go out, then it closes. */
  end?(conn: TcpConn<D>): void;
  /** The connection closed (either side, or the server stopping); `err` when an error ended it. */
  close?(conn: TcpConn<D>, err?: Error): void;
  /** An I/O error (a SysError: ECONNRESET, EPIPE…) or a handler's exception; `close` follows. */
  error?(conn: TcpConn<D>, err: Error): void;
  /** The idle timeout set by `conn.timeout(seconds)` passed; the connection closes after this (unless it calls `conn.timeout()` again, or `conn.end(bytes)` to say goodbye first). */
  timeout?(conn: TcpConn<D>): void;
}

/**
 * What every {@link listen} server takes, over TCP or a Unix socket: the handlers and the
 * buffers' sizes.
 *
 * @example
 * ```ts
 * const common: ServerOptions = { socket: { data(c, b) { c.write(b); } }, maxBuffered: 64 * 1024 };
 * ```
 */
export interface ServerOptions<D = undefined> {
  socket: SocketHandler<D>;
  /** Aborting it stops the server as `stop(true)` does. */
  signal?: AbortSignal;
  /** Bytes a connection may queue before `write()` takes less than given; default 1 MiB. */
  maxBuffered?: number;
  /** Size of the one read buffer shared by all connections; default 64 KiB. */
  readBufferSize?: number;
}

/**
 * Options for a TCP {@link listen} server: where to bind (as TcpListener.bind) and the handlers.
 *
 * @example
 * ```ts
 * const opts: ListenOptions = { hostname: "127.0.0.1", port: 0, socket: { data(c, b) { c.write(b); } } };
 * ```
 */
export interface ListenOptions<D = undefined> extends BindOptions, ServerOptions<D> {
  /** TCP_NODELAY on accepted connections; default true (as Bun). */
  noDelay?: boolean;
}

/**
 * Options for a {@link listen} server on a Unix stream socket (Bun.listen's `unix`): the
 * path (or a Linux abstract name starting with "\0") to bind, as UnixListener.bind; the
 * socket file is removed when the server stops.
 *
 * @example
 * ```ts
 * const opts: UnixListenOptions = { unix: "/tmp/app.sock", socket: { data(c, b) { c.write(b); } } };
 * ```
 */
export interface UnixListenOptions<D = undefined> extends ServerOptions<D> {
  unix: string;
  /** listen() backlog; default 1024. */
  backlog?: number;
}

/** Connections stepped per poll of the server's task before it yields to the others. */
const STEPS_PER_POLL = 1024;
/** Accepts per poll. */
const ACCEPTS_PER_POLL = 64;
/** Size of the pooled queue buffers, and how many the pool keeps. */
const QUEUE_BUF = 16 * 1024;
const POOL_MAX = 64;
/** data() views of the read buffer are cached up to this length (no allocation per message). */
const VIEW_CACHE_MAX = 16 * 1024;

/**
 * A running {@link listen} server.
 *
 * @example
 * ```ts
 * const server = listen({ port: 0, socket: { data(c, b) { c.write(b); } } });
 * console.log(`listening on ${server.localAddr}`);
 * server.stop(true);
 * yield* server.closed(); // the task has ended, every connection closed
 * ```
 */
export class TcpServer<D = undefined> {
  /** @internal */
  constructor(
    private readonly core: ServerCore<D>,
    private readonly task: JoinHandle<void>,
    /** The bound host (as given, default "127.0.0.1"); "" for a Unix socket server. */
    readonly hostname: string,
    /** The bound port (the real one when asked for 0); 0 for a Unix socket server. */
    readonly port: number,
    private readonly addr: SocketAddr,
    /** The socket's path (or abstract name) for a Unix socket server, else null. */
    readonly unix: string | null = null,
  ) {}

  /** The bound address. */
  get localAddr(): SocketAddr {
    return this.addr;
  }

  /** The listening socket's fd, -1 once stopped. */
  get fd(): number {
    return this.core.listenerFd;
  }

  /** Connections open now. */
  get connections(): number {
    return this.core.conns.size;
  }

  /**
   * Stops accepting (the port is released at once). With `closeActive`, every open
   * connection is closed now (its `close` handler runs); without, they go on and the
   * server's task ends when the last one closes. Idempotent.
   */
  stop(closeActive = false): void {
    this.core.stop(closeActive);
  }

  /**
   * Replaces the handlers (Bun's `listener.reload({ socket })`): every call from now on —
   * for new connections and the ones already open — goes to `socket`'s. Throws TypeError
   * when `socket` is not an object.
   *
   * @example
   * ```ts
   * server.reload({ socket: { data(conn, bytes) { conn.write(bytes.reverse()); } } });
   * ```
   */
  reload(opts: { socket: SocketHandler<D> }): void {
    if (typeof opts !== "object" || opts === null || typeof opts.socket !== "object" || opts.socket === null) {
      throw new TypeError("reload() needs { socket: { open?, data?, drain?, end?, close?, error?, timeout? } }");
    }
    this.core.reload(opts.socket);
  }

  /** Waits until the server's task has ended (stopped, and every connection closed); throws its failure. */
  closed(): JoinHandle<void> {
    return this.task;
  }

  [Symbol.dispose](): void {
    this.stop(true);
  }
}

/**
 * The server's task and the connections' host: accepts, steps ready connections, owns the
 * listener, the read buffer and the queue pool.
 */
class ServerCore<D> extends BaseFuture<void> implements ConnHost<D>, EventListenerObject {
  readonly conns = new Set<TcpConn<D>>();
  readonly readBuf: Uint8Array;
  readonly maxBuffered: number;
  // Handlers: set at construction and by reload() (one call per message: bound once).
  onData: SocketHandler<D>["data"] = undefined;
  onDrain: SocketHandler<D>["drain"] = undefined;
  onEnd: SocketHandler<D>["end"] = undefined;
  onClose: SocketHandler<D>["close"] = undefined;
  onTimeout: SocketHandler<D>["timeout"] = undefined;
  private readonly wheel: TimerWheel;
  private readonly clock: Clock;
  private onOpen: SocketHandler<D>["open"] = undefined;
  private onError: SocketHandler<D>["error"] = undefined;
  private readonly views: (Uint8Array | undefined)[] = [];
  private readonly pool: Uint8Array[] = [];
  private readyList: TcpConn<D>[] = [];
  private spare: TcpConn<D>[] = [];
  private waker: Waker | null = null;
  private listening = true;
  private failure: unknown = null;
  private backoff: Sleep | null = null;
  private delay = 0;
  private inBurst = false;
  private done = false;
  private readonly signal: AbortSignal | null;
  private hooked = false;

  constructor(
    private readonly listener: ListenerBase,
    opts: ServerOptions<D>,
    private readonly noDelay: boolean,
  ) {
    super();
    this.reload(opts.socket);
    const driver = currentDriver();
    this.wheel = driver.wheel;
    this.clock = driver.clock;
    this.maxBuffered = positiveInt(opts.maxBuffered, 1024 * 1024, "maxBuffered");
    // SAFETY: handed to read(2)/recv on the readiness backends only for the length of one
    // synchronous call; io_uring copies into it from its own buffers. Never kernel-held.
    this.readBuf = new Uint8Array(new ArrayBuffer(positiveInt(opts.readBufferSize, 64 * 1024, "readBufferSize")));
    this.signal = opts.signal ?? null;
  }

  get listenerFd(): number {
    return this.listener.fd;
  }

  /** Sets every handler, bound once (at construction, and by {@link TcpServer.reload}). */
  reload(h: SocketHandler<D>): void {
    this.onOpen = h.open?.bind(h);
    this.onData = h.data?.bind(h);
    this.onDrain = h.drain?.bind(h);
    this.onEnd = h.end?.bind(h);
    this.onClose = h.close?.bind(h);
    this.onTimeout = h.timeout?.bind(h);
    this.onError = h.error?.bind(h);
  }

  // ---- ConnHost ----

  ready(conn: TcpConn<D>): void {
    this.readyList.push(conn);
    if (this.readyList.length === 1) this.wakeTask();
  }

  forget(conn: TcpConn<D>): void {
    this.conns.delete(conn);
    if (!this.listening && this.conns.size === 0) this.wakeTask();
  }

  wheelNow(): number {
    return this.wheel.elapsed;
  }

  clockNow(): number {
    return this.clock.now();
  }

  view(n: number): Uint8Array {
    if (n > VIEW_CACHE_MAX) return this.readBuf.subarray(0, n);
    return this.views[n] ?? (this.views[n] = this.readBuf.subarray(0, n));
  }

  takeBuf(n: number): Uint8Array {
    if (n <= QUEUE_BUF) return this.pool.pop() ?? new Uint8Array(QUEUE_BUF);
    let size = QUEUE_BUF * 2;
    while (size < n) size *= 2;
    return new Uint8Array(size);
  }

  putBuf(buf: Uint8Array): void {
    if (buf.byteLength === QUEUE_BUF && this.pool.length < POOL_MAX) this.pool.push(buf);
  }

  failed(conn: TcpConn<D>, err: unknown, fromHandler: boolean): void {
    const e = err instanceof Error ? err : new Error(`a handler threw ${String(err)}`);
    const onError = this.onError;
    if (onError !== undefined) {
      try {
        onError(conn, e);
        return;
      } catch (again) {
        this.fail(again);
        return;
      }
    }
    if (fromHandler) this.fail(err);
  }

  // ---- the task ----

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("listen() server task polled after completion");
    this.waker = cx.waker;
    const signal = this.signal;
    if (signal !== null && !this.hooked) {
      this.hooked = true;
      signal.addEventListener("abort", this);
    }
    if (this.failure === null && signal?.aborted === true) this.stop(true);
    if (this.failure !== null) return this.finishFailed();
    if (this.listening) this.acceptSome(cx);
    this.stepReady();
    if (this.failure !== null) return this.finishFailed();
    if (!this.listening && this.conns.size === 0 && this.readyList.length === 0) {
      this.finish();
      return undefined;
    }
    return PENDING;
  }

  /** The signal's abort: wake the task, whose poll stops the server. */
  handleEvent(): void {
    this.wakeTask();
  }

  stop(closeActive: boolean): void {
    if (this.listening) {
      this.listening = false;
      this.backoff?.cancel();
      this.backoff = null;
      this.listener.dropAcceptWaker(this.waker);
      this.listener.close();
    }
    if (closeActive) for (const c of [...this.conns]) c.close();
    this.wakeTask();
  }

  override cancel(): void {
    if (this.done) return;
    this.stop(true);
    this.finish();
  }

  override describe(): string {
    return `listen ${this.listening ? `accepting on fd ${this.listener.fd}` : "stopped"}, ${this.conns.size} connection(s)`;
  }

  private wakeTask(): void {
    this.waker?.wake();
  }

  /** A handler failed with no error handler to take it: the server fails (closing everything). */
  private fail(err: unknown): void {
    if (this.failure === null) this.failure = err ?? new Error("null thrown");
    this.wakeTask();
  }

  private finishFailed(): never {
    this.stop(true);
    this.finish();
    throw this.failure;
  }

  private finish(): void {
    this.done = true;
    this.waker = null;
    this.readyList.length = 0;
    if (this.hooked) this.signal!.removeEventListener("abort", this);
  }

  /** Accepts pending connections (bounded), each opened and stepped once. */
  private acceptSome(cx: Context): void {
    if (this.backoff !== null) {
      if (this.backoff.poll(cx) === PENDING) return;
      this.backoff = null;
    }
    for (let i = 0; i < ACCEPTS_PER_POLL && this.listening; i++) {
      let fd: Poll<number>;
      try {
        fd = this.listener.pollAcceptFd(cx);
      } catch (err) {
        if (!this.acceptFailed(err, cx)) return;
        continue;
      }
      if (fd === PENDING) return;
      this.inBurst = false;
      this.delay = 0;
      this.open(fd);
    }
    this.wakeTask(); // more may be pending: come back after the others
  }

  /** One accepted fd: a connection, its `open` handler, then its first step (via the ready list). */
  private open(fd: number): void {
    if (this.noDelay) sockets().setsockoptInt(fd, SYS.IPPROTO_TCP, SYS.TCP_NODELAY, 1); // best effort, as Bun
    const conn = new TcpConn<D>(this, new IoSource(fd));
    this.conns.add(conn);
    const onOpen = this.onOpen;
    if (onOpen !== undefined) {
      try {
        onOpen(conn);
      } catch (err) {
        this.failed(conn, err, true);
        conn.closeWith(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
    conn.wake();
  }

  /** Handles an accept error (serve()'s policy): true to keep accepting now. */
  private acceptFailed(err: unknown, cx: Context): boolean {
    let kind;
    try {
      kind = acceptFailure(err, this.listener.fd < 0);
    } catch (fatal) {
      this.fail(fatal);
      return false;
    }
    if (kind === "closed") {
      this.listening = false;
      return false;
    }
    if (!this.inBurst) {
      this.inBurst = true;
      console.error(`reel listen(): accept failed (${(err as Error).message}); retrying, further errors of this burst are not logged`);
    }
    if (kind === "skip") return true;
    this.delay = this.delay === 0 ? 1 : Math.min(this.delay * 2, 1000);
    this.backoff = sleep(this.delay);
    if (this.backoff.poll(cx) === PENDING) return false;
    this.backoff = null;
    return true;
  }

  /** Steps the connections that were ready when this began (bounded); later wakes wait for the next poll. */
  private stepReady(): void {
    let steps = 0;
    while (this.readyList.length > 0 && steps < STEPS_PER_POLL) {
      const list = this.readyList;
      this.readyList = this.spare;
      for (let i = 0; i < list.length; i++) list[i]!.step();
      steps += list.length;
      list.length = 0;
      this.spare = list;
    }
    if (this.readyList.length > 0) this.wakeTask();
  }
}

function positiveInt(v: number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`Invalid listen() ${what} ${String(v)}: must be an integer ≥ 1`);
  return v;
}

/**
 * Starts a handler-style server (Bun.listen's shape) in a task of its own, a child of
 * the calling task: binds now (port 0 picks a free one; `unix: path` binds a Unix stream
 * socket instead, removed again when the server stops), then calls the handlers as
 * connections come and go. Inside a runtime (blockOn/run) only. Throws TypeError when
 * given both `unix` and `hostname`/`port`.
 *
 * @example
 * ```ts
 * import { blockOn, listen } from "reel";
 * blockOn(function* () {
 *   const server = listen({
 *     hostname: "127.0.0.1",
 *     port: 7000,
 *     socket: {
 *       data(conn, bytes) { conn.write(bytes); }, // echo; `bytes` is lent for this call
 *       close(conn, err) { if (err) console.error("connection ended:", err.message); },
 *     },
 *   });
 *   console.log(`listening on ${server.localAddr}`);
 *   yield* server.closed(); // serves until stop() (or the task is cancelled)
 * });
 * // The same on a Unix socket: listen({ unix: "/tmp/echo.sock", socket: { … } })
 * ```
 */
export function listen<D = undefined>(opts: ListenOptions<D> | UnixListenOptions<D>): TcpServer<D> {
  if (typeof opts !== "object" || opts === null || typeof opts.socket !== "object" || opts.socket === null) {
    throw new TypeError("listen() needs { socket: { open?, data?, drain?, end?, close?, error? } }");
  }
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) {
    throw new TypeError(`listen() option signal must be an AbortSignal, got ${typeof opts.signal}`);
  }
  const unix = "unix" in opts && opts.unix !== undefined ? opts.unix : null;
  if (unix !== null) {
    if (typeof unix !== "string") throw new TypeError(`listen() option unix must be a path string, got ${typeof unix}`);
    const o = opts as Partial<ListenOptions<D>>;
    if (o.hostname !== undefined || o.port !== undefined) throw new TypeError("listen() takes either unix or hostname/port, not both");
  }
  const listener: ListenerBase = unix !== null ? UnixListener.bind(unix, { backlog: (opts as UnixListenOptions<D>).backlog }) : TcpListener.bind(opts as ListenOptions<D>);
  let core: ServerCore<D>;
  let task: JoinHandle<void>;
  let addr: SocketAddr;
  try {
    addr = listener.localAddr;
    // TCP_NODELAY means nothing on a Unix socket.
    core = new ServerCore(listener, opts, unix === null && ((opts as ListenOptions<D>).noDelay ?? true));
    task = spawn(core, { name: `listen ${unix ?? addr}` });
  } catch (err) {
    listener.close();
    throw err;
  }
  if (unix !== null) return new TcpServer(core, task, "", 0, addr, (listener as UnixListener).path);
  return new TcpServer(core, task, (opts as ListenOptions<D>).hostname ?? "127.0.0.1", addr.port, addr);
}

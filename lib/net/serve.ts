/**
 * serve(): the accept loop of a TCP server, with the fault handling every server needs
 * and that `TcpListener.accept()` deliberately leaves to its caller.
 *
 * `accept()` reports every failure as a typed SysError (as tokio's does); what to do about
 * it is a policy, and this module is that policy in one place:
 *
 * - Out of descriptors or kernel memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the pending
 *   connections stay queued in the kernel. serve() reports the error once per burst (a run
 *   of failures with no successful accept in between), sleeps — 1 ms, doubling up to 1 s —
 *   and tries again, so it picks the queue up as soon as connections close and free fds.
 *   Retrying at once would spin at 100% CPU on an error that cannot clear by itself.
 * - A connection that died before it was accepted (ECONNABORTED, EPROTO, EPERM, and the
 *   network errors Linux's accept(2) says to treat like EAGAIN): reported once per burst,
 *   skipped, and accepting continues at once.
 * - The listener was closed (EBADF): serve() completes.
 * - Anything else (EINVAL: not listening; a bug): serve() fails with that error.
 *
 * Each accepted connection runs in its own task: one slow, stuck or failing client never
 * holds up the others. The task closes the stream when the handler finishes, throws or is
 * aborted (after the handler's own cleanup: a `finally` that yields is driven to the end),
 * so a handler cannot leak the fd; a handler's error goes to `onError` and ends only that
 * connection.
 *
 * Lifetimes: the connection tasks are descendants of the task running serve() (a group
 * node of the task tree, "serve fd N"). Cancelling serve() — aborting its task, a
 * timeout()/select() around it, or `{ signal }` aborting — stops accepting and halts every
 * connection, each running its cleanup; serve()'s cancel hands that teardown to its
 * canceller, so `yield* withSignal(serve(...), signal)` returns only once every connection
 * has closed: the basis of a graceful shutdown. When the listener is closed, serve()
 * completes and its running connections go on, adopted by the task that ran it.
 *
 * Invariants: at most one accept or one backoff sleep is pending; `delay` is 0 outside a
 * burst. Must never: close the listener (its owner does), retry a resource error without
 * backing off, or let one connection's error stop the loop.
 */
import { BaseFuture, Cleanup, FutureStateError, PENDING, cancelOf, describeFuture, genOf, handOut, isFuture, type Context, type Future, type Poll, type Waker } from "../future.ts";
import { Group } from "../task/tree.ts";
import { GroupDrain, scopeHost, type ScopeHost } from "../task/scope.ts";
import { SysError } from "../errors.ts";
import { sleep, type Sleep } from "../time/sleep.ts";
import type { SocketAddr } from "../../ffi/sockaddr.ts";
import type { TcpListener, TcpStream } from "./tcp.ts";

/**
 * Handles one accepted connection: a generator function (its generator is run as a task)
 * or a function returning a Future. serve() closes `stream` when it is done.
 *
 * @example
 * ```ts
 * const hello: ConnectionHandler = function* (stream, peer) {
 *   yield* stream.writeAll(new TextEncoder().encode(`hello ${peer.address}\n`));
 * };
 * ```
 */
export type ConnectionHandler = (stream: TcpStream, peer: SocketAddr) => Future<void> | Generator<unknown, void, unknown>;

/**
 * Where an error reported to {@link ServeOptions.onError} came from.
 *
 * @example
 * ```ts
 * const onError = (err: unknown, source: ServeErrorSource) => { if (source === "accept") metrics.acceptErrors++; };
 * ```
 */
export type ServeErrorSource = "accept" | "connection";

/**
 * Options for {@link serve}.
 *
 * @example
 * ```ts
 * yield* serve(listener, handler, { onError: (e, src) => log.warn(src, e), maxBackoffMs: 250 });
 * ```
 */
export interface ServeOptions {
  /**
   * Receives retried accept errors (the first of each burst) and errors thrown by
   * connection handlers. Default: one line on stderr (a peer that reset or went away,
   * ECONNRESET/EPIPE in a handler, is not logged).
   */
  onError?: (err: unknown, source: ServeErrorSource) => void;
  /** First backoff after a resource error, in ms; default 1. */
  minBackoffMs?: number;
  /** Longest backoff, in ms; default 1000. */
  maxBackoffMs?: number;
  /**
   * Aborting it stops serve() as cancelling does — no more accepts, every connection
   * halted with its cleanup — and then serve() completes normally (it does not throw).
   */
  signal?: AbortSignal;
}

/** Accept errors that exhaust a resource: back off, the queue waits in the kernel. */
const RESOURCE = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"]);
/** Accept errors that belong to one dead connection: skip it (accept(2), "Error handling"). */
const PER_CONNECTION = new Set([
  "ECONNABORTED", "ECONNRESET", "EPROTO", "EPERM", "ETIMEDOUT", "ENETDOWN", "ENOPROTOOPT",
  "EHOSTDOWN", "ENONET", "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "EINTR",
]);

/**
 * The accept-error policy (see the module header), shared with listen(): "closed" when the
 * listener was closed (EBADF after close), "resource" for errors to back off from, "skip"
 * for one dead connection; anything else is rethrown.
 *
 * @example
 * ```ts
 * const kind = acceptFailure(err, listener.fd < 0); // throws for a fatal error
 * if (kind === "resource") backoff = sleep(delay);
 * ```
 */
export function acceptFailure(err: unknown, listenerClosed: boolean): "closed" | "resource" | "skip" {
  const code = err instanceof SysError ? err.code : "";
  if (code === "EBADF" && listenerClosed) return "closed";
  if (RESOURCE.has(code)) return "resource";
  if (PER_CONNECTION.has(code)) return "skip";
  throw err;
}

function defaultOnError(err: unknown, source: ServeErrorSource): void {
  const code = err instanceof SysError ? err.code : "";
  if (source === "connection" && (code === "ECONNRESET" || code === "EPIPE")) return;
  const what = source === "accept" ? `accept failed (${code}); retrying with backoff, further errors of this burst are not logged` : "a connection handler failed";
  console.error(`reel serve(): ${what}:`, err);
}

function checkBackoff(ms: number | undefined, fallback: number, what: string): number {
  if (ms === undefined) return fallback;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 1) throw new RangeError(`serve() ${what} must be a finite number ≥ 1 ms, got ${String(ms)}`);
  return ms;
}

const ACCEPTING = 0;
const DRAINING = 1; // stopped (signal or fatal error): waiting for the halted connections
const DONE = 2;

/** The accept loop (see the module header). */
class Serve extends BaseFuture<void> implements EventListenerObject {
  private accepting: BaseFuture<[TcpStream, SocketAddr]> | null = null;
  private backoff: Sleep | null = null;
  /** The current backoff in ms; 0 outside a burst. */
  private delay = 0;
  /** True while a burst of accept errors is running (its first error was reported). */
  private inBurst = false;
  private phase = ACCEPTING;
  /** DRAINING after a fatal accept error: thrown once the connections are gone. */
  private failure: unknown = null;
  /** The connections' node in the task tree (made on the first poll). */
  private group: Group | null = null;
  private host: ScopeHost | null = null;
  private waker: Waker | null = null;
  private listening = false;
  private readonly onError: (err: unknown, source: ServeErrorSource) => void;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly signal: AbortSignal | null;

  constructor(
    private readonly listener: TcpListener,
    private readonly handler: ConnectionHandler,
    opts: ServeOptions,
  ) {
    super();
    this.onError = opts.onError ?? defaultOnError;
    this.minMs = checkBackoff(opts.minBackoffMs, 1, "minBackoffMs");
    this.maxMs = Math.max(this.minMs, checkBackoff(opts.maxBackoffMs, 1000, "maxBackoffMs"));
    if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) {
      throw new TypeError(`serve() option signal must be an AbortSignal, got ${typeof opts.signal}`);
    }
    this.signal = opts.signal ?? null;
  }

  poll(cx: Context): Poll<void> {
    if (this.phase === DONE) throw new FutureStateError("serve() future polled after completion");
    this.waker = cx.waker;
    if (this.group === null) {
      const host = (this.host = scopeHost("serve()"));
      this.group = new Group(host, host.attachNode(), `serve fd ${this.listener.fd}`, false);
    }
    if (this.phase === DRAINING) return this.pollDrain(cx);
    if (this.signal !== null) {
      if (this.signal.aborted) return this.stop(cx, null);
      if (!this.listening) {
        this.listening = true;
        this.signal.addEventListener("abort", this);
      }
    }
    // Bounded: accept consumes the coop budget, and answers PENDING once it is spent.
    for (;;) {
      if (this.backoff !== null) {
        if (this.backoff.poll(cx) === PENDING) return PENDING;
        this.backoff = null;
      }
      const acc = this.accepting ?? (this.accepting = this.listener.accept());
      let conn: Poll<[TcpStream, SocketAddr]>;
      try {
        conn = acc.poll(cx);
      } catch (err) {
        this.accepting = null;
        let more: boolean;
        try {
          more = this.failed(err);
        } catch (fatal) {
          return this.stop(cx, fatal);
        }
        if (more) continue;
        // The listener was closed: done; running connections go on under our parent.
        this.finish();
        this.group.dissolve();
        return undefined;
      }
      if (conn === PENDING) return PENDING;
      this.accepting = null;
      this.inBurst = false;
      this.delay = 0;
      this.host!.spawnIn(this.group, new Connection(conn[0], this.handler, conn[1], this.onError));
    }
  }

  /** The abort event: wake the task so its next poll sees `signal.aborted`. */
  handleEvent(): void {
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }

  /** Handles an accept error: true to keep accepting, false when the listener is closed; throws otherwise. */
  private failed(err: unknown): boolean {
    const kind = acceptFailure(err, this.listener.fd < 0);
    if (kind === "closed") return false;
    const resource = kind === "resource";
    if (!this.inBurst) {
      this.inBurst = true;
      this.onError(err, "accept");
    }
    if (resource) {
      this.delay = this.delay === 0 ? this.minMs : Math.min(this.delay * 2, this.maxMs);
      this.backoff = sleep(this.delay);
    }
    return true;
  }

  /** Stops accepting and halts every connection; `failure` is thrown once they are gone. */
  private stop(cx: Context, failure: unknown): Poll<void> {
    this.stopAccepting();
    this.failure = failure;
    this.phase = DRAINING;
    this.group!.haltAll();
    return this.pollDrain(cx);
  }

  private pollDrain(cx: Context): Poll<void> {
    const g = this.group!;
    if (g.liveTasks > 0) {
      g.waker = cx.waker;
      return PENDING;
    }
    this.finish();
    g.close();
    if (this.failure !== null) throw this.failure;
    return undefined;
  }

  private stopAccepting(): void {
    this.accepting?.cancel();
    this.backoff?.cancel();
    this.accepting = null;
    this.backoff = null;
    if (this.listening) {
      this.listening = false;
      this.signal!.removeEventListener("abort", this);
    }
  }

  private finish(): void {
    this.stopAccepting();
    this.phase = DONE;
    this.waker = null;
  }

  /** Stops accepting and halts the connections; their cleanup goes to the canceller. */
  override cancel(): Cleanup | void {
    if (this.phase === DONE) return;
    this.finish();
    const g = this.group;
    if (g === null) return;
    g.haltAll();
    if (g.liveTasks === 0) {
      g.close();
      return;
    }
    return handOut(new GroupDrain(g, null));
  }

  override describe(): string {
    const n = this.group?.liveTasks ?? 0;
    if (this.phase === DRAINING) return `serve: stopping, ${n} connection(s) to halt`;
    const what = this.backoff !== null ? `backing off ${this.delay} ms after accept errors` : `accept on fd ${this.listener.fd}`;
    return `serve (${n} connection(s)): ${what}`;
  }
}

/**
 * One connection's task: runs the handler, reports its error, always closes the stream —
 * after the handler's own cleanup when it is cancelled.
 */
class Connection extends BaseFuture<void> {
  private inner: Future<void> | null = null;
  private done = false;
  constructor(
    private readonly stream: TcpStream,
    private readonly handler: ConnectionHandler,
    private readonly peer: SocketAddr,
    private readonly onError: (err: unknown, source: ServeErrorSource) => void,
  ) {
    super();
  }

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("serve() connection task polled after completion");
    let failure: unknown = null;
    try {
      const fut = this.inner ?? (this.inner = start(this.handler, this.stream, this.peer));
      if (fut.poll(cx) === PENDING) return PENDING;
    } catch (err) {
      failure = err === null ? new Error("null thrown") : err;
    }
    this.inner = null;
    this.done = true;
    this.stream.close(); // first: a throwing onError must not leak the fd
    if (failure !== null) this.onError(failure, "connection");
    return undefined;
  }

  /** Cancels the handler; the stream closes once its cleanup (if any) has finished. */
  override cancel(): Cleanup | void {
    if (this.done) return;
    this.done = true;
    const fut = this.inner;
    this.inner = null;
    let c: Cleanup | null = null;
    try {
      if (fut !== null) c = cancelOf(fut);
    } finally {
      if (c === null) this.stream.close();
    }
    if (c !== null) return handOut(new CloseAfter(c, this.stream));
  }

  override describe(): string {
    return `connection from ${String(this.peer)} → ${describeFuture(this.inner)}`;
  }
}

/** A cancelled connection's cleanup: the handler's, then the stream is closed (always). */
class CloseAfter extends Cleanup {
  constructor(
    private readonly first: Cleanup,
    private readonly stream: TcpStream,
  ) {
    super();
  }
  protected step(cx: Context): Poll<void> {
    if (this.first.poll(cx) === PENDING) return PENDING;
    this.stream.close();
    return undefined;
  }
  protected abandon(): void {
    try {
      this.first.cancel();
    } finally {
      this.stream.close();
    }
  }
  override describe(): string {
    return `closing connection after ${describeFuture(this.first)}`;
  }
}

/** A handler's result as a Future: generators are driven by the gen adapter (named after the handler). */
function start(handler: ConnectionHandler, stream: TcpStream, peer: SocketAddr): Future<void> {
  const r = handler(stream, peer);
  if (isFuture(r)) return r;
  if (typeof r === "object" && r !== null && typeof (r as Generator).next === "function") return genOf(r as Generator<unknown, void, unknown>, handler);
  throw new TypeError(`serve() handler must return a Future or be a generator function, got ${r === null ? "null" : typeof r}`);
}

/**
 * Accepts connections on `listener` until it is closed, running `handler` in a task of
 * its own for each; resource errors (EMFILE…) are logged once per burst and retried with
 * backoff, so the server keeps serving once descriptors free up. Completes when the
 * listener is closed (running connections go on); cancelling it, or aborting
 * `opts.signal`, stops accepting and halts every connection, each running its cleanup.
 *
 * @example
 * ```ts
 * import { TcpListener, blockOn, serve } from "reel";
 * blockOn(function* () {
 *   const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 7000 });
 *   yield* serve(listener, function* (stream) {
 *     const buf = new Uint8Array(65536);
 *     for (let n; (n = yield* stream.read(buf)) > 0; ) yield* stream.writeAll(buf.subarray(0, n));
 *   });
 * });
 * ```
 */
export function serve(listener: TcpListener, handler: ConnectionHandler, opts: ServeOptions = {}): BaseFuture<void> {
  if (typeof handler !== "function") throw new TypeError(`serve() handler must be a function, got ${typeof handler}`);
  return new Serve(listener, handler, opts);
}

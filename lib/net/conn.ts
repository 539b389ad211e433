/**
 * TcpConn: one connection of a handler-style server (net/listen.ts), a state machine with
 * no task, no generator and no buffer of its own while idle.
 *
 * The connection is its own Waker and Context: every op it polls stores the connection
 * itself as the waker, and `wake()` puts it on its server's ready list (once: the QUEUED
 * bit) and wakes the server's one task, which calls {@link TcpConn.step} for each ready
 * connection:
 *
 *     step: flush the outgoing queue (drain() when a short write() asked for it; end()
 *           closes once it is empty) → read into the server's one read buffer → data()
 *           → read again … until the read is PENDING (the waker is stored) or a few reads
 *           were served (fairness), EOF (end() then close) or an error (error() then close)
 *
 * Writes: `write()` tries the kernel at once when nothing is queued or in flight. What it
 * does not take is copied into the outgoing queue (a buffer taken from the server's pool
 * when needed and given back once empty), bounded by the server's `maxBuffered`; the
 * return value counts the bytes sent or queued. On io_uring a send is an op in flight:
 * the queue keeps its bytes until the CQE says how many went, so the head of the queue is
 * always exactly what the op in flight (or the next attempt) sends.
 *
 * Idle timeout (`conn.timeout(seconds)`, Bun's): the connection keeps the wheel time of its
 * last activity (bytes received, or a write()) — one store per message, no clock read and
 * no timer re-armed per message; the wheel's time is current then, since the connection's
 * own timer is in it — and one Sleep polled with the connection as its waker.
 * When that fires, the step looks at the last activity: still active, the Sleep is
 * re-armed for the rest of the period; idle for the whole period, the `timeout` handler
 * runs and the connection closes (unless the handler armed a new period or called end()).
 *
 * Ownership: the connection owns its fd until close(); close() closes it through the
 * driver (the fd rule of lib/driver/fd.ts), and nothing touches the number afterwards
 * (every path checks CLOSED first). Handlers are called only from step() and close();
 * a handler that throws closes its connection (see net/listen.ts for where the error goes).
 *
 * Must never: hand data() a buffer that outlives the call, call a handler after close(),
 * or keep a buffer while the queue is empty.
 */
import { SYS } from "../../ffi/constants.ts";
import type { SocketAddr } from "../../ffi/sockaddr.ts";
import { OP_READ, OP_WRITE, closedError } from "../driver/fd.ts";
import { PENDING, type Context, type Waker } from "../future.ts";
import { SysError } from "../errors.ts";
import type { IoSource } from "../io/source.ts";
import { resetBudget } from "../task/coop.ts";
import { sleepUntil, type Sleep } from "../time/sleep.ts";
import { setIntOption, sockName, sockets } from "./socket.ts";

/** On the server's ready list. */
const QUEUED = 1;
/** close() ran: nothing may touch the fd or call a handler. */
const CLOSED = 2;
/** end() ran: close once the queue is empty; no more reads or writes. */
const ENDING = 4;
/** A write is in flight (io_uring) or waits for writability (readiness): the queue's head is its bytes. */
const WRITING = 8;
/** A write() returned less than it was given: call drain() once the queue is empty. */
const WANT_DRAIN = 16;

/** Reads served per step before the connection goes to the back of the line. */
const READS_PER_STEP = 4;

const encoder = new TextEncoder();

/**
 * What a connection needs from its server (net/listen.ts): the handlers, the lent read
 * buffer, the queue pool, and where to report.
 */
export interface ConnHost<D> {
  /** A connection became ready: queue it and wake the server's task. */
  ready(conn: TcpConn<D>): void;
  /** The connection closed: forget it. */
  forget(conn: TcpConn<D>): void;
  /** The read buffer lent to data(), and a view of its first `n` bytes. */
  readonly readBuf: Uint8Array;
  view(n: number): Uint8Array;
  /** A queue buffer of at least `n` bytes, and back once empty. */
  takeBuf(n: number): Uint8Array;
  putBuf(buf: Uint8Array): void;
  readonly maxBuffered: number;
  /** Handlers (any may be absent). */
  readonly onData: ((conn: TcpConn<D>, bytes: Uint8Array) => void) | undefined;
  readonly onDrain: ((conn: TcpConn<D>) => void) | undefined;
  readonly onEnd: ((conn: TcpConn<D>) => void) | undefined;
  readonly onClose: ((conn: TcpConn<D>, err?: Error) => void) | undefined;
  readonly onTimeout: ((conn: TcpConn<D>) => void) | undefined;
  /**
   * The timer wheel's time (whole ms, as of the last driver turn): the activity stamps.
   * Cheap, and current while the connection's own timer is in the wheel (a wheel with
   * timers moves every turn).
   */
  wheelNow(): number;
  /** The clock's time now (ms): where a new idle period starts. */
  clockNow(): number;
  /** A handler threw, or an I/O error ended the connection: report it (error() or the server). */
  failed(conn: TcpConn<D>, err: unknown, fromHandler: boolean): void;
}

/**
 * One connection of a {@link listen} server, handed to every handler. Valid until its
 * `close` handler has run; its methods are no-ops (write returns -1) after that.
 *
 * @example
 * ```ts
 * import { listen } from "reel";
 * listen({ port: 0, socket: {
 *   data(conn, bytes) { if (conn.write(bytes) < bytes.length) conn.close(); },
 * } });
 * ```
 */
export class TcpConn<D = undefined> implements Waker, Context {
  /** Whatever the handlers want to keep per connection (Bun's `socket.data`); starts undefined. */
  data: D = undefined as D;
  private flags = 0;
  /** The outgoing queue: bytes [head, tail) of `out`, or null when empty. */
  private out: Uint8Array | null = null;
  private head = 0;
  private tail = 0;
  /** The idle timeout in ms (0: none), the wheel time of the last activity, and its timer. */
  private idleMs = 0;
  private lastActive = 0;
  private timer: Sleep | null = null;

  /** @internal Made by the server on accept. */
  constructor(
    private readonly host: ConnHost<D>,
    private readonly src: IoSource,
  ) {}

  /** The waker is the connection itself (Context). */
  get waker(): Waker {
    return this;
  }

  /** Waker: schedule a step (once until it runs). */
  wake(): void {
    if ((this.flags & (QUEUED | CLOSED)) !== 0) return;
    this.flags |= QUEUED;
    this.host.ready(this);
  }

  /** The fd while open, -1 once closed. */
  get fd(): number {
    return this.src.fd;
  }

  /** True once closed (by either side). */
  get isClosed(): boolean {
    return (this.flags & CLOSED) !== 0;
  }

  /** Bytes accepted by write() and not yet taken by the kernel. */
  get buffered(): number {
    return this.tail - this.head;
  }

  /** The peer's address (getpeername). */
  get remoteAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getpeername");
    return sockName(this.src.fd, true);
  }

  /** The local address (getsockname). */
  get localAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getsockname");
    return sockName(this.src.fd, false);
  }

  /** TCP_NODELAY (the server sets it on accept unless told not to). TCP only: a Unix socket has none (SysError). */
  setNoDelay(on = true): void {
    if (this.src.isClosed) throw closedError("setsockopt");
    setIntOption(this.src.fd, SYS.IPPROTO_TCP, SYS.TCP_NODELAY, on ? 1 : 0, "TCP_NODELAY");
  }

  /**
   * Sends `bytes` (a string is sent as UTF-8): the number of bytes taken — sent, or queued
   * to go out in order — which is less than asked only when the queue is at the server's
   * `maxBuffered` (then `drain` is called once it has emptied; send the rest from there).
   * -1 once closed or ended. `bytes` may be the buffer data() was lent: what is queued is
   * copied.
   */
  write(bytes: Uint8Array | string): number {
    if ((this.flags & (CLOSED | ENDING)) !== 0) return -1;
    const b = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
    const len = b.byteLength;
    if (len === 0) return 0;
    if (this.idleMs !== 0) this.lastActive = this.host.wheelNow();
    if ((this.flags & WRITING) !== 0 || this.tail > this.head) return this.enqueue(b, 0);
    // Never offer the kernel more than the queue could hold: on io_uring the op in flight
    // must stay a prefix of the queue.
    const max = this.host.maxBuffered;
    let r;
    try {
      r = this.src.pollOp(this, OP_WRITE, len <= max ? b : b.subarray(0, max));
    } catch (err) {
      this.ioFailed(err);
      return -1;
    }
    if (r === PENDING) {
      // Readiness: nothing went (the waker is stored). io_uring: a copy of the head of `b`
      // is in flight. Either way `b` heads the queue, as the invariant wants.
      this.flags |= WRITING;
      return this.enqueue(b, 0);
    }
    if (r === len) return len;
    const n = r + this.enqueue(b, r);
    this.flush();
    return n;
  }

  /**
   * Sends `bytes` if given, then closes the connection once everything queued has gone
   * (at once when nothing is queued). The `close` handler follows.
   */
  end(bytes?: Uint8Array | string): void {
    if ((this.flags & (CLOSED | ENDING)) !== 0) return;
    if (bytes !== undefined) this.write(bytes);
    if ((this.flags & CLOSED) !== 0) return;
    this.flags |= ENDING;
    if (this.tail === this.head && (this.flags & WRITING) === 0) this.close();
  }

  /**
   * Sets an idle timeout (Bun's `socket.timeout`): once `seconds` pass with no bytes
   * received and no write(), the `timeout` handler runs and the connection closes at
   * once (queued bytes are dropped) — unless the handler called `timeout()` again (a new
   * period starts) or `end(bytes?)` (it closes once those have gone). Calling it again
   * starts the period over; 0 turns it off. Fractions are fine (rounded up to whole ms).
   * A no-op once closed.
   */
  timeout(seconds: number): void {
    if (typeof seconds !== "number" || !(seconds >= 0) || !Number.isFinite(seconds)) {
      throw new RangeError(`Invalid timeout ${String(seconds)}: must be a finite number of seconds ≥ 0`);
    }
    if ((this.flags & CLOSED) !== 0) return;
    this.timer?.cancel();
    this.timer = null;
    this.idleMs = Math.ceil(seconds * 1000);
    if (this.idleMs === 0) return;
    // The clock, not the wheel: with no timer in it the wheel's time may be far behind.
    this.lastActive = this.host.clockNow();
    this.armTimer(this.lastActive + this.idleMs);
  }

  /** Arms the idle timer for `deadline` (wheel time), the connection its waker. */
  private armTimer(deadline: number): void {
    const t = (this.timer = sleepUntil(deadline));
    t.poll(this); // registers it (PENDING: the deadline is at least a turn away)
  }

  /** The idle timer fired: re-arm for the rest of the period, or time out. */
  private timerFired(): void {
    this.timer = null;
    const deadline = this.lastActive + this.idleMs;
    if (deadline > this.host.wheelNow()) return this.armTimer(deadline);
    this.idleMs = 0;
    if (!this.call(this.host.onTimeout)) return; // threw: reported and closed
    // The handler may have started a new period (timeout() again), ended (end(): it closes
    // once its bytes have gone) or closed already.
    if ((this.flags & (CLOSED | ENDING)) === 0 && this.idleMs === 0) this.close();
  }

  /** Closes now: queued bytes are dropped, the fd is closed, then the `close` handler runs. Idempotent. */
  close(): void {
    this.closeWith(undefined);
  }

  /** @internal Closes and reports `err` (if any) to the close handler. */
  closeWith(err: Error | undefined): void {
    if ((this.flags & CLOSED) !== 0) return;
    this.flags |= CLOSED;
    this.timer?.cancel();
    this.timer = null;
    this.release();
    this.host.forget(this);
    let closeErr: unknown = null;
    try {
      this.src.close();
    } catch (e) {
      closeErr = e; // close(2)'s own error: the fd is gone all the same
    }
    const onClose = this.host.onClose;
    if (onClose !== undefined) {
      try {
        onClose(this, err);
      } catch (e) {
        this.host.failed(this, e, true);
      }
    }
    if (closeErr !== null) this.host.failed(this, closeErr, false);
  }

  /** @internal One step of the state machine (see the module header); called by the server. */
  step(): void {
    this.flags &= ~QUEUED;
    if ((this.flags & CLOSED) !== 0) return;
    resetBudget(); // each connection gets a task's budget: the server bounds the steps per poll
    if (this.timer !== null && this.timer.isElapsed) {
      this.timerFired();
      if ((this.flags & CLOSED) !== 0) return;
    }
    if ((this.flags & WRITING) !== 0 || this.tail > this.head) this.flush();
    // Reading goes on while a send is in flight, until the queue is full: then the peer's
    // own flow control holds it back, and the step after the queue empties reads again.
    if ((this.flags & (CLOSED | ENDING)) === 0 && this.tail - this.head < this.host.maxBuffered) this.readSome();
  }

  /** Reads and hands the bytes to data() until PENDING, EOF, an error or the per-step limit. */
  private readSome(): void {
    const host = this.host;
    for (let i = 0; i < READS_PER_STEP; i++) {
      let n;
      try {
        n = this.src.pollOp(this, OP_READ, host.readBuf);
      } catch (err) {
        this.ioFailed(err);
        return;
      }
      if (n === PENDING) return;
      if (n === 0) {
        this.peerEnded();
        return;
      }
      if (this.idleMs !== 0) this.lastActive = host.wheelNow();
      const onData = host.onData;
      if (onData !== undefined) {
        try {
          onData(this, host.view(n));
        } catch (err) {
          host.failed(this, err, true);
          this.closeWith(asError(err));
          return;
        }
      }
      if ((this.flags & (CLOSED | ENDING)) !== 0) return;
    }
    this.wake(); // more may be waiting: come back after the others
  }

  /** EOF from the peer: the `end` handler, then end() (close once the queue has gone). */
  private peerEnded(): void {
    if (this.call(this.host.onEnd)) this.end();
  }

  /** Calls a handler that takes only the connection: false when it threw (then reported and closed). */
  private call(handler: ((conn: TcpConn<D>) => void) | undefined): boolean {
    if (handler === undefined) return true;
    try {
      handler(this);
      return true;
    } catch (err) {
      this.host.failed(this, err, true);
      this.closeWith(asError(err));
      return false;
    }
  }

  /**
   * Sends from the queue until it is empty or the kernel pushes back (the waker stored).
   * Once empty: drain() if a write() came up short, close if end() was called.
   */
  private flush(): void {
    while (this.tail > this.head) {
      let r;
      try {
        r = this.src.pollOp(this, OP_WRITE, this.out!.subarray(this.head, this.tail));
      } catch (err) {
        this.ioFailed(err);
        return;
      }
      if (r === PENDING) {
        this.flags |= WRITING;
        return;
      }
      this.head += r;
    }
    this.flags &= ~WRITING;
    this.release();
    if ((this.flags & ENDING) !== 0) {
      this.close();
      return;
    }
    if ((this.flags & WANT_DRAIN) !== 0) {
      this.flags &= ~WANT_DRAIN;
      this.call(this.host.onDrain);
    }
  }

  /** Copies `b[from..]` behind the queue, up to maxBuffered: how many bytes it took. */
  private enqueue(b: Uint8Array, from: number): number {
    const want = b.byteLength - from;
    const room = this.host.maxBuffered - (this.tail - this.head);
    const n = want <= room ? want : room > 0 ? room : 0;
    if (n < want) this.flags |= WANT_DRAIN;
    if (n === 0) return 0;
    let out = this.out;
    if (out === null) {
      out = this.out = this.host.takeBuf(n);
      this.head = this.tail = 0;
    } else if (this.tail + n > out.byteLength) {
      out = this.grow(n);
    }
    out.set(from === 0 && n === want ? b : b.subarray(from, from + n), this.tail);
    this.tail += n;
    return n;
  }

  /** Makes room for `n` more bytes: moves the queue to the front, or to a bigger buffer. */
  private grow(n: number): Uint8Array {
    const old = this.out!;
    const used = this.tail - this.head;
    // SAFETY: moving queued bytes is safe on io_uring too: an op in flight sends a copy.
    if (used + n <= old.byteLength) {
      old.copyWithin(0, this.head, this.tail);
    } else {
      let size = old.byteLength * 2;
      while (size < used + n) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(old.subarray(this.head, this.tail));
      this.host.putBuf(old);
      this.out = bigger;
    }
    this.head = 0;
    this.tail = used;
    return this.out!;
  }

  /** Gives the queue's buffer back to the server's pool. */
  private release(): void {
    const out = this.out;
    if (out === null) return;
    this.out = null;
    this.head = this.tail = 0;
    this.host.putBuf(out);
  }

  /** An I/O error (ECONNRESET, EPIPE, …): error() is told, then the connection closes with it. */
  private ioFailed(err: unknown): void {
    if ((this.flags & CLOSED) !== 0) return;
    this.host.failed(this, err, false);
    this.closeWith(asError(err));
  }

  /** Shuts down the write side (the peer reads EOF); reading goes on. */
  shutdown(): void {
    if (this.src.isClosed) throw closedError("shutdown");
    const r = sockets().shutdown(this.src.fd, SYS.SHUT_WR);
    if (r < 0) throw new SysError(-r, "shutdown");
  }
}

/** `err` as an Error for the close handler (a thrown non-Error is wrapped). */
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(`a handler threw ${String(err)}`);
}

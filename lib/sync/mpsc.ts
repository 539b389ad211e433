/**
 * Multi-producer, single-consumer channels (tokio's `mpsc`): `channel(capacity)` with
 * backpressure, and `unboundedChannel()`.
 *
 * Shape: senders share one `Chan` (a ring queue of messages) with the receiver. The bounded
 * channel's free slots are a {@link Semaphore}: a send first acquires a slot (waiting, in
 * FIFO order, while the channel is full), then pushes; a receive shifts and releases the
 * slot, which the semaphore hands straight to the oldest waiting sender. Every push wakes
 * the parked receive futures (normally one).
 *
 * Closing: the channel closes for the receiver when every sender handle is closed (JS has
 * no Drop: call `close()` or use `using`), or when the receiver closes it. Then:
 * - `recv()` returns the messages still queued, then `null`.
 * - sends throw {@link SendError} carrying the value; senders parked for capacity are woken
 *   and fail the same way.
 *
 * Cancel safety (as tokio documents it):
 * - `recv()` is cancel-safe: nothing is taken from the queue until it completes.
 * - `send()` is cancel-safe in the sense that a cancelled send has certainly not sent its
 *   value (it is still the caller's); it does lose its place among waiting senders. A slot
 *   that had been handed to it is passed on to the next waiting sender.
 *
 * Both ops consume the task's coop budget, so a task draining a full channel still yields.
 *
 * Reuse: `yield* rx.recv()` and `yield* tx.send(v)` allocate nothing in the steady state —
 * a future whose result a `yield*` took is handed out again by the next call on the same
 * handle (BaseFuture.consumed). So do not keep one past its `yield*` (polling or
 * cancelling a completed future was never meaningful).
 *
 * The Receiver is a Stream (lib/stream/stream.ts): `pollNext`, `next()`, `each(rx)`,
 * `for await` in hosted mode, map/filter/take/timeout. Cancel-safe as recv().
 *
 * Must never: lose a message or a slot, or hold a reference to a received message.
 */
import { FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { StreamBase } from "../stream/stream.ts";
import { proceed } from "../task/coop.ts";
import { SendError, checkCount } from "./errors.ts";
import { Queue } from "../task/queue.ts";
import { MAX_PERMITS, PermitWaiter, Semaphore } from "./semaphore.ts";
import { WaitList, Waiter } from "./waitlist.ts";

/** @internal The state the senders and the receiver share. */
class Chan<T> {
  readonly queue: Queue<T>;
  senders = 1;
  rxClosed = false;
  readonly recvWaiters = new WaitList<Recv<T>>();

  constructor(
    /** Free slots (bounded channels only). */
    readonly sem: Semaphore | null,
  ) {
    this.queue = new Queue<T>(sem === null ? 16 : Math.min(sem.availablePermits, 1024));
  }

  /** True when recv() will return null once the queue is empty. */
  get closed(): boolean {
    return this.senders === 0 || this.rxClosed;
  }

  push(v: T): void {
    this.queue.push(v);
    this.recvWaiters.wakeAll();
  }

  /** Takes the oldest message (queue must be non-empty) and frees its slot. */
  take(): T {
    const v = this.queue.shift() as T;
    this.sem?.release(1);
    return v;
  }

  dropSender(): void {
    if (--this.senders === 0) this.recvWaiters.wakeAll();
  }
}

/** What both sender kinds share: the handle count and close(). */
abstract class SenderHandle<T> implements Disposable {
  private open = true;
  constructor(protected readonly chan: Chan<T>) {}

  /** True once the receiver closed the channel: sends will fail. */
  get isClosed(): boolean {
    return this.chan.rxClosed;
  }

  /**
   * Closes this handle. When the last sender handle closes, the receiver gets the queued
   * messages, then `null`. Idempotent.
   */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.chan.dropSender();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Throws SendError when this handle or the channel is closed. */
  protected check(value: T): void {
    if (!this.open) throw new SendError(value, "Cannot send: this sender handle was closed");
    if (this.chan.rxClosed) throw new SendError(value);
  }

  /** Registers one more handle on the channel (for clone()). */
  protected addHandle(): Chan<T> {
    if (!this.open) throw new SendError(undefined, "Cannot clone a closed sender handle");
    this.chan.senders++;
    return this.chan;
  }
}

/**
 * The sending half of a bounded channel. Clone it for more producers; close each clone.
 *
 * @example
 * ```ts
 * const [tx, rx] = channel<string>(16);
 * yield* tx.send("job"); // waits while 16 messages are queued
 * tx.close();
 * ```
 */
export class Sender<T> extends SenderHandle<T> {
  /**
   * Sends `value`, waiting (FIFO among senders) while the channel is full. Throws
   * SendError carrying the value if the channel is or becomes closed. Cancel-safe: a
   * cancelled send did not send.
   */
  send(value: T): Send<T> {
    this.check(value);
    const s = this.spare;
    if (s !== null && s.reuse(value)) return s;
    return (this.spare = new Send(this.chan, value));
  }

  /** The last send() future: handed out again once a `yield*` consumed it (see Send.reuse). */
  private spare: Send<T> | null = null;

  /** Sends now if a slot is free (and no sender waits ahead): true; false when full. */
  trySend(value: T): boolean {
    this.check(value);
    if (!this.chan.sem!.tryTake(1)) return false;
    this.chan.push(value);
    return true;
  }

  /** Free slots right now. */
  get capacity(): number {
    return this.chan.sem!.availablePermits;
  }

  /** Number of send() futures parked waiting for capacity (for tests and diagnostics). */
  get waiterCount(): number {
    return this.chan.sem!.waiterCount;
  }

  /** Another handle to the same channel; it must be closed too. */
  clone(): Sender<T> {
    return new Sender(this.addHandle());
  }
}

/**
 * The sending half of an unbounded channel: `send` never waits.
 *
 * @example
 * ```ts
 * const [tx, rx] = unboundedChannel<number>();
 * tx.send(1); tx.send(2);
 * ```
 */
export class UnboundedSender<T> extends SenderHandle<T> {
  /** Queues `value`; throws SendError carrying it if the channel is closed. */
  send(value: T): void {
    this.check(value);
    this.chan.push(value);
  }

  /** Another handle to the same channel; it must be closed too. */
  clone(): UnboundedSender<T> {
    return new UnboundedSender(this.addHandle());
  }
}

/**
 * The receiving half of an mpsc channel (bounded or not).
 *
 * @example
 * ```ts
 * for (let msg; (msg = yield* rx.recv()) !== null; ) handle(msg);
 * // null: every sender closed and the queue is drained
 * ```
 */
export class Receiver<T> extends StreamBase<T> implements Disposable {
  /** The recv() a pending pollNext parked (the stream side's one waiter). */
  private slot: Recv<T> | null = null;

  /** @internal Use channel() or unboundedChannel(). */
  constructor(private readonly chan: Chan<T>) {
    super();
  }

  /** Stream: the next message, PENDING, or null once closed and drained. Cancel-safe. */
  pollNext(cx: Context): Poll<T | null> {
    const r = (this.slot ??= new Recv(this.chan));
    const v = r.poll(cx);
    if (v !== PENDING) this.slot = null;
    return v;
  }

  /** Stream: leaves the waiter list a pending pollNext joined. */
  override cancelNext(): void {
    this.slot?.cancel();
    this.slot = null;
  }

  /** Stream: the same as recv(). */
  override next(): Recv<T> {
    return this.recv();
  }

  describe(): string {
    return describeChan(this.chan);
  }

  /**
   * The next message, waiting for one; `null` once the channel is closed and drained
   * (so do not send `null` itself). Cancel-safe.
   */
  recv(): Recv<T> {
    const r = this.spare;
    if (r !== null && r.reuse()) return r;
    return (this.spare = new Recv(this.chan));
  }

  /** The last recv() future: handed out again once a `yield*` consumed it (see Recv.reuse). */
  private spare: Recv<T> | null = null;

  /** The next message if one is queued, else null (check `isClosed` to tell why). */
  tryRecv(): T | null {
    return this.chan.queue.length > 0 ? this.chan.take() : null;
  }

  /**
   * Closes the channel from the receiving side: sends fail from now on (waiting senders
   * are woken with SendError); messages already queued can still be received. Idempotent.
   */
  close(): void {
    const c = this.chan;
    if (c.rxClosed) return;
    c.rxClosed = true;
    c.sem?.close();
    c.recvWaiters.wakeAll();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** True when no more messages can arrive (all senders closed, or close() was called). */
  get isClosed(): boolean {
    return this.chan.closed;
  }

  /** Messages queued now. */
  get length(): number {
    return this.chan.queue.length;
  }

  /** Number of parked recv() futures (for tests and diagnostics). */
  get waiterCount(): number {
    return this.chan.recvWaiters.length;
  }
}

/**
 * The future of {@link Receiver.recv}: the next message, or null when closed and drained.
 *
 * @example
 * ```ts
 * const msg = yield* rx.recv();
 * ```
 */
export class Recv<T> extends Waiter<T | null> {
  private done = false;
  constructor(private readonly chan: Chan<T>) {
    super();
  }

  poll(cx: Context): Poll<T | null> {
    if (this.done) throw new FutureStateError("recv() future polled after completion");
    if (!proceed(cx)) return PENDING;
    const c = this.chan;
    if (c.queue.length > 0 || c.closed) {
      c.recvWaiters.remove(this);
      this.waker = null;
      this.done = true;
      return c.queue.length > 0 ? c.take() : null;
    }
    this.waker = cx.waker;
    if (this.wList === null) c.recvWaiters.push(this);
    return PENDING;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.waker = null;
    this.chan.recvWaiters.remove(this);
  }

  /**
   * @internal Rearms this future for the next recv() when a `yield*` consumed its result
   * (so `yield* rx.recv()` allocates nothing); false when it may still be held or live.
   */
  reuse(): boolean {
    if (!this.done || !this.consumed || this.wList !== null) return false;
    this.done = false;
    this.waker = null;
    this.rearm();
    return true;
  }

  override describe(): string {
    return `mpsc recv (${describeChan(this.chan)})`;
  }
}

function describeChan(c: Chan<unknown>): string {
  const cap = c.sem === null ? "unbounded" : `${c.queue.length} queued, ${c.sem.availablePermits} free`;
  return `channel: ${cap}, ${c.senders} sender(s)${c.closed ? ", closed" : ""}`;
}

/**
 * The future of {@link Sender.send}: acquire a slot, then push.
 *
 * @example
 * ```ts
 * yield* tx.send(msg); // waits while the channel is full
 * ```
 */
export class Send<T> extends PermitWaiter<void> {
  private value: T | undefined;
  private done = false;
  constructor(
    private readonly chan: Chan<T>,
    value: T,
  ) {
    super(1);
    this.value = value;
  }

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("send() future polled after completion");
    const c = this.chan;
    if (c.rxClosed) {
      const v = this.value as T;
      this.cancel();
      throw new SendError(v);
    }
    if (!proceed(cx)) return PENDING;
    if (!c.sem!.pollAcquire(this, cx)) return PENDING;
    this.done = true;
    const v = this.value as T;
    this.value = undefined;
    c.push(v);
    return undefined;
  }

  /** Gives up: unparks, or passes on a slot already handed to this send. */
  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.value = undefined;
    this.chan.sem!.dropWaiter(this);
  }

  /** @internal Rearms this future for the next send() of `value` once a `yield*` consumed it (as Recv.reuse). */
  reuse(value: T): boolean {
    if (!this.done || !this.consumed || this.wList !== null) return false;
    this.done = false;
    this.granted = false;
    this.waker = null;
    this.value = value;
    this.rearm();
    return true;
  }

  override describe(): string {
    return `mpsc send (channel full: ${this.chan.sem!.waiterCount} sender(s) waiting)`;
  }
}

/**
 * A bounded mpsc channel of `capacity` messages: `send` waits while it is full.
 *
 * @example
 * ```ts
 * import { blockOn, channel, spawn } from "reel";
 * blockOn(function* () {
 *   const [tx, rx] = channel<number>(8);
 *   spawn(function* () { for (let i = 0; i < 100; i++) yield* tx.send(i); tx.close(); });
 *   let sum = 0;
 *   for (let v; (v = yield* rx.recv()) !== null; ) sum += v;
 *   return sum; // 4950
 * });
 * ```
 */
export function channel<T>(capacity: number): [Sender<T>, Receiver<T>] {
  checkCount(capacity, "channel() capacity", 1, MAX_PERMITS);
  const chan = new Chan<T>(new Semaphore(capacity));
  return [new Sender(chan), new Receiver(chan)];
}

/**
 * An unbounded mpsc channel: `send` never waits (memory is the only limit).
 *
 * @example
 * ```ts
 * import { unboundedChannel } from "reel";
 * const [tx, rx] = unboundedChannel<string>();
 * tx.send("log line");
 * const line = yield* rx.recv(); // "log line"
 * ```
 */
export function unboundedChannel<T>(): [UnboundedSender<T>, Receiver<T>] {
  const chan = new Chan<T>(null);
  return [new UnboundedSender(chan), new Receiver(chan)];
}

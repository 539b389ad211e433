/**
 * broadcast: multi-producer, multi-consumer; every receiver sees every value (tokio's
 * `broadcast`). A ring of `capacity` slots; a send never waits — it overwrites the oldest
 * slot, and a receiver that had not read it yet *lags*.
 *
 * Sequence numbers: value k (0, 1, 2, …) lives in slot k % capacity; `tail` is the next k.
 * A receiver holds `pos`, the next k it wants. The oldest k still kept is tail − capacity.
 * - pos < tail − capacity: the receiver lagged. recv() throws {@link LaggedError} with the
 *   number missed and moves pos to the oldest kept value (the next recv() gets it).
 * - pos < tail: the value is there; take it.
 * - otherwise: wait (or return null once every sender is closed).
 *
 * Each slot counts the receivers that still have to read it and drops its value when the
 * count reaches 0, so a value is not kept alive after everyone has seen it.
 *
 * Cancel safety: `recv()` is cancel-safe: the position only moves when it completes.
 * A BroadcastReceiver is a Stream (lib/stream/stream.ts): a lagging one's `pollNext`
 * throws LaggedError once (the position moved to the oldest value kept) and goes on.
 * Closing: when every sender handle is closed, receivers drain what they have not seen,
 * then get `null`. Sending with no open receiver throws {@link SendError}.
 *
 * Must never: skip a value without reporting the lag, or block a sender.
 */
import { FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { StreamBase } from "../stream/stream.ts";
import { proceed } from "../task/coop.ts";
import { LaggedError, SendError, checkCount } from "./errors.ts";
import { WaitList, Waiter } from "./waitlist.ts";

/** @internal The ring and counters all handles share. */
class Shared<T> {
  readonly buf: (T | undefined)[];
  /** Receivers that still have to read each slot's current value. */
  readonly rem: Int32Array;
  tail = 0;
  senders = 1;
  receivers = 1;
  readonly waiters = new WaitList<BroadcastRecv<T>>();

  constructor(readonly cap: number) {
    this.buf = new Array<T | undefined>(cap).fill(undefined);
    this.rem = new Int32Array(cap);
  }

  /** The oldest sequence number still kept. */
  get oldest(): number {
    return this.tail > this.cap ? this.tail - this.cap : 0;
  }

  /** A receiver is done with value `k`: drop it when nobody else needs it. */
  release(k: number): void {
    const i = k % this.cap;
    const r = this.rem[i]! - 1;
    this.rem[i] = r;
    if (r === 0) this.buf[i] = undefined;
  }
}

/**
 * The sending half of a {@link broadcast} channel. Clone it for more producers; close each.
 *
 * @example
 * ```ts
 * const [tx, rx1] = broadcast<string>(64);
 * const rx2 = tx.subscribe();
 * tx.send("hello"); // both rx1 and rx2 will receive it
 * ```
 */
export class BroadcastSender<T> implements Disposable {
  private open = true;
  /** @internal Use broadcast(). */
  constructor(private readonly shared: Shared<T>) {}

  /**
   * Sends `value` to every receiver; returns how many there are. Never waits. Throws
   * SendError carrying the value when no receiver is open (or this handle is closed).
   */
  send(value: T): number {
    const s = this.shared;
    if (!this.open) throw new SendError(value, "Cannot send: this sender handle was closed");
    if (s.receivers === 0) throw new SendError(value, "Cannot send: no receiver is open");
    const i = s.tail % s.cap;
    s.buf[i] = value;
    s.rem[i] = s.receivers;
    s.tail++;
    s.waiters.wakeAll();
    return s.receivers;
  }

  /** A new receiver that sees values sent from now on. */
  subscribe(): BroadcastReceiver<T> {
    this.shared.receivers++;
    return new BroadcastReceiver(this.shared, this.shared.tail);
  }

  /** Another sender handle; close it too. */
  clone(): BroadcastSender<T> {
    if (!this.open) throw new SendError(undefined, "Cannot clone a closed sender handle");
    this.shared.senders++;
    return new BroadcastSender(this.shared);
  }

  /** Open receivers. */
  get receiverCount(): number {
    return this.shared.receivers;
  }

  /** Closes this handle; when the last closes, receivers drain and then get null. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    if (--this.shared.senders === 0) this.shared.waiters.wakeAll();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A receiving half of a {@link broadcast} channel: its own position in the stream.
 *
 * @example
 * ```ts
 * for (;;) {
 *   let v;
 *   try { v = yield* rx.recv(); } catch (e) { if (e instanceof LaggedError) continue; throw e; }
 *   if (v === null) break; // all senders closed
 *   handle(v);
 * }
 * ```
 */
export class BroadcastReceiver<T> extends StreamBase<T> implements Disposable {
  /** @internal Next sequence number to read. */
  pos: number;
  /** @internal */
  open = true;
  private slot: BroadcastRecv<T> | null = null;
  /** @internal Use broadcast() or subscribe(). */
  constructor(
    private readonly shared: Shared<T>,
    pos: number,
  ) {
    super();
    this.pos = pos;
  }

  /** Stream: the next value, PENDING, or null once every sender is closed; LaggedError once after a lag. */
  pollNext(cx: Context): Poll<T | null> {
    const r = (this.slot ??= new BroadcastRecv(this.shared, this));
    let v: Poll<T | null>;
    try {
      v = r.poll(cx);
    } catch (err) {
      this.slot = null; // a lag: the recv ended itself; the next pollNext goes on
      throw err;
    }
    if (v !== PENDING) this.slot = null;
    return v;
  }

  /** Stream: leaves the waiter list a pending pollNext joined. */
  override cancelNext(): void {
    this.slot?.cancel();
    this.slot = null;
  }

  /** Stream: the same as recv(). */
  override next(): BroadcastRecv<T> {
    return this.recv();
  }

  describe(): string {
    return `broadcast: ${this.length} unread, ${this.shared.senders} sender(s)`;
  }

  /**
   * The next value, waiting for one; null once every sender is closed and this receiver
   * has seen everything. Throws LaggedError if values were overwritten unseen. Cancel-safe.
   */
  recv(): BroadcastRecv<T> {
    return new BroadcastRecv(this.shared, this);
  }

  /** The next value if there is one, else null; throws LaggedError like recv(). */
  tryRecv(): T | null {
    const v = this.step();
    return v === EMPTY ? null : v;
  }

  /** A new receiver at the current end of the stream (tokio's resubscribe). */
  resubscribe(): BroadcastReceiver<T> {
    this.shared.receivers++;
    return new BroadcastReceiver(this.shared, this.shared.tail);
  }

  /** Values sent but not yet read by this receiver (at most the capacity). */
  get length(): number {
    const s = this.shared;
    return s.tail - Math.max(this.pos, s.oldest);
  }

  /** Number of parked recv() futures of all receivers (for tests and diagnostics). */
  get waiterCount(): number {
    return this.shared.waiters.length;
  }

  /** True when every sender is closed (recv() returns null once drained). */
  get isClosed(): boolean {
    return this.shared.senders === 0;
  }

  /** Leaves the channel: unread values are released for this receiver. Idempotent. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    const s = this.shared;
    s.receivers--;
    for (let k = Math.max(this.pos, s.oldest); k < s.tail; k++) s.release(k);
    this.pos = s.tail;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal One read attempt: a value, EMPTY (nothing yet), or throws LaggedError. */
  step(): T | typeof EMPTY {
    const s = this.shared;
    if (!this.open) return EMPTY;
    const oldest = s.oldest;
    if (this.pos < oldest) {
      const missed = oldest - this.pos;
      this.pos = oldest;
      throw new LaggedError(missed);
    }
    if (this.pos === s.tail) return EMPTY;
    const k = this.pos++;
    const v = s.buf[k % s.cap] as T;
    s.release(k);
    return v;
  }
}

const EMPTY: unique symbol = Symbol("reel.broadcast.EMPTY");

/**
 * The future of {@link BroadcastReceiver.recv}.
 *
 * @example
 * ```ts
 * const v = yield* rx.recv(); // null once every sender is closed
 * ```
 */
export class BroadcastRecv<T> extends Waiter<T | null> {
  private done = false;
  constructor(
    private readonly shared: Shared<T>,
    private readonly rx: BroadcastReceiver<T>,
  ) {
    super();
  }

  poll(cx: Context): Poll<T | null> {
    if (this.done) throw new FutureStateError("broadcast recv() future polled after completion");
    if (!proceed(cx)) return PENDING;
    let v: T | typeof EMPTY;
    try {
      v = this.rx.step();
    } catch (err) {
      this.cancel();
      throw err;
    }
    if (v !== EMPTY || this.shared.senders === 0 || !this.rx.open) {
      this.cancel();
      return v === EMPTY ? null : v;
    }
    this.waker = cx.waker;
    if (this.wList === null) this.shared.waiters.push(this);
    return PENDING;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.waker = null;
    this.shared.waiters.remove(this);
  }

  override describe(): string {
    return `broadcast recv (${this.rx.length} unread, ${this.shared.senders} sender(s))`;
  }
}

/**
 * A broadcast channel keeping the last `capacity` values: `[sender, firstReceiver]`.
 * More receivers come from `sender.subscribe()`.
 *
 * @example
 * ```ts
 * import { blockOn, broadcast, spawn } from "reel";
 * blockOn(function* () {
 *   const [tx, rx] = broadcast<number>(16);
 *   const rx2 = tx.subscribe();
 *   tx.send(1);
 *   return [yield* rx.recv(), yield* rx2.recv()]; // [1, 1]
 * });
 * ```
 */
export function broadcast<T>(capacity: number): [BroadcastSender<T>, BroadcastReceiver<T>] {
  checkCount(capacity, "broadcast() capacity", 1, 1 << 24);
  const shared = new Shared<T>(capacity);
  return [new BroadcastSender(shared), new BroadcastReceiver(shared, 0)];
}

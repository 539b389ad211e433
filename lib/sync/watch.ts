/**
 * watch: a single value that many receivers observe; they are told when it changes but
 * only ever see the latest (tokio's `watch`) — config reloads, shutdown flags, progress.
 *
 * The value carries a version, bumped by every send. Each receiver remembers the version
 * it last marked seen; `changed()` completes as soon as the current version is newer
 * (marking it seen), else parks until a send. Intermediate values may be skipped: that is
 * the point of watch.
 *
 * Closing: the sender's `close()` wakes all; `changed()` then throws {@link RecvError} once
 * the latest value has been seen (an unseen last value is still reported first).
 * `send()` with no open receiver throws {@link SendError} (use `sendReplace` to update
 * regardless).
 *
 * Cancel safety: `changed()` is cancel-safe: it marks the version seen only when it
 * completes.
 *
 * A WatchReceiver is a Stream (lib/stream/stream.ts) of the values it has not seen: each
 * `pollNext` waits for a change and returns the latest value (marking it seen); the value
 * current at subscribe time counts as seen (read it with `borrow()`); the stream ends
 * (null) once the sender is closed and the last value was seen.
 *
 * Must never: report the same version twice to one receiver, or miss a version change.
 */
import { FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { StreamBase } from "../stream/stream.ts";
import { RecvError, SendError } from "./errors.ts";
import { WaitList, Waiter } from "./waitlist.ts";

/** @internal The value and its version, shared by the sender and every receiver. */
class Cell<T> {
  version = 0;
  txClosed = false;
  receivers = 1;
  readonly waiters = new WaitList<Changed<T>>();
  constructor(public value: T) {}
}

/**
 * The sending half of a {@link watch} channel.
 *
 * @example
 * ```ts
 * const [tx, rx] = watch("starting");
 * tx.send("ready");
 * ```
 */
export class WatchSender<T> implements Disposable {
  /** @internal Use watch(). */
  constructor(private readonly cell: Cell<T>) {}

  /** Replaces the value and notifies receivers; throws SendError if none is open. */
  send(value: T): void {
    if (this.cell.receivers === 0) throw new SendError(value, "Cannot send: no watch receiver is open");
    this.sendReplace(value);
  }

  /** Replaces the value even with no receivers; returns the previous value. */
  sendReplace(value: T): T {
    const c = this.cell;
    if (c.txClosed) throw new SendError(value, "Cannot send: the watch sender was closed");
    const old = c.value;
    c.value = value;
    c.version++;
    c.waiters.wakeAll();
    return old;
  }

  /** The current value. */
  borrow(): T {
    return this.cell.value;
  }

  /** A new receiver; the current value counts as already seen. */
  subscribe(): WatchReceiver<T> {
    this.cell.receivers++;
    return new WatchReceiver(this.cell, this.cell.version);
  }

  /** Open receivers. */
  get receiverCount(): number {
    return this.cell.receivers;
  }

  /** Closes the channel: receivers see the last value, then changed() throws RecvError. */
  close(): void {
    if (this.cell.txClosed) return;
    this.cell.txClosed = true;
    this.cell.waiters.wakeAll();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A receiving half of a {@link watch} channel.
 *
 * @example
 * ```ts
 * for (;;) {
 *   yield* rx.changed();          // throws RecvError once the sender is closed
 *   apply(rx.borrowAndUpdate());
 * }
 * ```
 */
export class WatchReceiver<T> extends StreamBase<T> implements Disposable {
  /** @internal The version last marked seen. */
  seen: number;
  private open = true;
  private slot: Changed<T> | null = null;
  /** @internal Use watch() or subscribe(). */
  constructor(
    private readonly cell: Cell<T>,
    seen: number,
  ) {
    super();
    this.seen = seen;
  }

  /** Stream: the next unseen value (marked seen), PENDING, or null once the sender closed. */
  pollNext(cx: Context): Poll<T | null> {
    const c = (this.slot ??= new Changed(this.cell, this));
    let r: Poll<void>;
    try {
      r = c.poll(cx);
    } catch (err) {
      this.slot = null;
      if (err instanceof RecvError) return null; // closed, and the last value was seen
      throw err;
    }
    if (r === PENDING) return PENDING;
    this.slot = null;
    return this.cell.value;
  }

  /** Stream: leaves the waiter list a pending pollNext joined. */
  override cancelNext(): void {
    this.slot?.cancel();
    this.slot = null;
  }

  describe(): string {
    return `watch: version ${this.cell.version}, seen ${this.seen}${this.cell.txClosed ? ", sender closed" : ""}`;
  }

  /** The current value, without marking it seen. */
  borrow(): T {
    return this.cell.value;
  }

  /** The current value, marking it seen. */
  borrowAndUpdate(): T {
    this.seen = this.cell.version;
    return this.cell.value;
  }

  /** True if a value newer than the last one seen was sent. */
  get hasChanged(): boolean {
    return this.cell.version !== this.seen;
  }

  /**
   * Completes when a value newer than the last seen is available (marking it seen); throws
   * RecvError once the sender is closed and nothing new is left. Cancel-safe.
   */
  changed(): Changed<T> {
    return new Changed(this.cell, this);
  }

  /** Another receiver with the same seen version. */
  clone(): WatchReceiver<T> {
    this.cell.receivers++;
    return new WatchReceiver(this.cell, this.seen);
  }

  /** True once the sender was closed. */
  get isClosed(): boolean {
    return this.cell.txClosed;
  }

  /** Number of parked changed() futures of all receivers (for tests and diagnostics). */
  get waiterCount(): number {
    return this.cell.waiters.length;
  }

  /** Leaves the channel (the sender's receiverCount drops). Idempotent. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.cell.receivers--;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The future of {@link WatchReceiver.changed}.
 *
 * @example
 * ```ts
 * yield* rx.changed();
 * ```
 */
export class Changed<T> extends Waiter<void> {
  private done = false;
  constructor(
    private readonly cell: Cell<T>,
    private readonly rx: WatchReceiver<T>,
  ) {
    super();
  }

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("changed() future polled after completion");
    const c = this.cell;
    if (c.version !== this.rx.seen || c.txClosed) {
      this.cancel();
      if (c.version === this.rx.seen) throw new RecvError("Cannot wait for a change: the watch sender was closed");
      this.rx.seen = c.version;
      return undefined;
    }
    this.waker = cx.waker;
    if (this.wList === null) c.waiters.push(this);
    return PENDING;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.waker = null;
    this.cell.waiters.remove(this);
  }

  override describe(): string {
    return `watch changed (version ${this.cell.version}, seen ${this.rx.seen})`;
  }
}

/**
 * A watch channel holding `initial`: `[sender, receiver]`. The initial value counts as seen.
 *
 * @example
 * ```ts
 * import { blockOn, spawn, watch } from "reel";
 * blockOn(function* () {
 *   const [tx, rx] = watch(0);
 *   spawn(function* () { tx.send(1); tx.send(2); });
 *   yield* rx.changed();
 *   return rx.borrowAndUpdate(); // 2: only the latest value is seen
 * });
 * ```
 */
export function watch<T>(initial: T): [WatchSender<T>, WatchReceiver<T>] {
  const cell = new Cell(initial);
  return [new WatchSender(cell), new WatchReceiver(cell, 0)];
}

/**
 * oneshot: a channel for exactly one value (tokio's `oneshot`), the usual way to send a
 * reply back to a requesting task.
 *
 * - `tx.send(v)` never waits. It throws {@link SendError} carrying `v` if the receiver was
 *   closed, or if this sender already sent or was closed.
 * - `rx.recv()` waits for the value; it throws {@link RecvError} if the sender is closed
 *   without sending (tokio's `RecvError`), or if the value was already received.
 * - JS has no Drop: close the side you abandon (`close()` or `using`) so the other side
 *   learns about it.
 *
 * Cancel safety: `recv()` is cancel-safe — the value stays in the channel until a recv()
 * completes, so a new recv() after a cancelled one still gets it.
 *
 * Must never: deliver the value twice, or leave a parked recv() behind when either side
 * closes.
 */
import { FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { RecvError, SendError } from "./errors.ts";
import { WaitList, Waiter } from "./waitlist.ts";

const EMPTY = 0; // nothing sent yet
const FULL = 1; // a value waits for the receiver
const TAKEN = 2; // the receiver got it
const DROPPED = 3; // the sender closed without sending

/** @internal The shared state of one oneshot channel. */
class Slot<T> {
  state = EMPTY;
  value: T | undefined = undefined;
  rxClosed = false;
  readonly waiters = new WaitList<OneshotRecv<T>>();
}

/**
 * The sending half of a {@link oneshot} channel.
 *
 * @example
 * ```ts
 * const [tx, rx] = oneshot<number>();
 * tx.send(42);
 * ```
 */
export class OneshotSender<T> implements Disposable {
  private used = false;
  /** @internal Use oneshot(). */
  constructor(private readonly slot: Slot<T>) {}

  /** Delivers `value`; throws SendError carrying it if it cannot be delivered. */
  send(value: T): void {
    if (this.used) throw new SendError(value, "Cannot send: this oneshot sender was already used or closed");
    if (this.slot.rxClosed) throw new SendError(value);
    this.used = true;
    const s = this.slot;
    s.state = FULL;
    s.value = value;
    s.waiters.wakeAll();
  }

  /** True once the receiver was closed: a send would fail. */
  get isClosed(): boolean {
    return this.slot.rxClosed;
  }

  /** Closes without sending: the receiver fails with RecvError. No-op after send. */
  close(): void {
    if (this.used) return;
    this.used = true;
    this.slot.state = DROPPED;
    this.slot.waiters.wakeAll();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The receiving half of a {@link oneshot} channel.
 *
 * @example
 * ```ts
 * const v = yield* rx.recv(); // throws RecvError if the sender closed without sending
 * ```
 */
export class OneshotReceiver<T> implements Disposable {
  /** @internal Use oneshot(). */
  constructor(private readonly slot: Slot<T>) {}

  /** Waits for the value; throws RecvError when it can never come. Cancel-safe. */
  recv(): OneshotRecv<T> {
    return new OneshotRecv(this.slot);
  }

  /**
   * The value if it has arrived (it is then taken), else null; throws RecvError if the
   * sender closed without sending or the value was already taken.
   */
  tryRecv(): T | null {
    const s = this.slot;
    if (s.state === FULL) return take(s);
    if (s.state === EMPTY) return null;
    throw recvError(s);
  }

  /** Closes: a later send fails (a value sent before can still be received). Idempotent. */
  close(): void {
    this.slot.rxClosed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Number of parked recv() futures (for tests and diagnostics). */
  get waiterCount(): number {
    return this.slot.waiters.length;
  }
}

function take<T>(s: Slot<T>): T {
  const v = s.value as T;
  s.value = undefined;
  s.state = TAKEN;
  return v;
}

function recvError(s: Slot<unknown>): RecvError {
  return s.state === TAKEN ? new RecvError("Cannot receive: the oneshot value was already received") : new RecvError();
}

/**
 * The future of {@link OneshotReceiver.recv}.
 *
 * @example
 * ```ts
 * const reply = yield* rx.recv();
 * ```
 */
export class OneshotRecv<T> extends Waiter<T> {
  private done = false;
  constructor(private readonly slot: Slot<T>) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError("oneshot recv() future polled after completion");
    const s = this.slot;
    if (s.state !== EMPTY) {
      this.done = true;
      s.waiters.remove(this);
      this.waker = null;
      if (s.state === FULL) return take(s);
      throw recvError(s);
    }
    this.waker = cx.waker;
    if (this.wList === null) s.waiters.push(this);
    return PENDING;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.waker = null;
    this.slot.waiters.remove(this);
  }

  override describe(): string {
    return "oneshot recv (nothing sent yet)";
  }
}

/**
 * A channel for a single value: `[sender, receiver]`.
 *
 * @example
 * ```ts
 * import { blockOn, oneshot, spawn } from "reel";
 * blockOn(function* () {
 *   const [tx, rx] = oneshot<string>();
 *   spawn(function* () { tx.send("reply"); });
 *   return yield* rx.recv(); // "reply"
 * });
 * ```
 */
export function oneshot<T>(): [OneshotSender<T>, OneshotReceiver<T>] {
  const slot = new Slot<T>();
  return [new OneshotSender(slot), new OneshotReceiver(slot)];
}

/**
 * Cooperative cancellation: CancellationToken (tokio-util's), and AbortSignal in both
 * directions so reel code and Web APIs (fetch, streams, Bun.spawn) cancel each other.
 *
 * - A token is cancelled once, with a reason (default: a {@link CancelledError}). Its
 *   `cancelled()` futures complete, its child tokens are cancelled (the whole subtree,
 *   iteratively), and its lazily made `signal` is aborted with the same reason.
 * - A child token is linked into its parent's intrusive child list; it unlinks itself when
 *   it is cancelled or `detach()`ed, so parents do not accumulate dead children. JS has no
 *   Drop: a long-lived parent handing out many children should detach the ones it is done
 *   with (or cancel them).
 * - `withSignal(fut, signal)` / `withToken(fut, token)` run `fut` (a Future or a generator
 *   function) until it completes or the signal/token fires; then `fut` is cancelled, its
 *   cleanup (a `finally` that yields) is driven to the end, and the reason is thrown.
 * - `CancellationToken.fromSignal(signal)` turns an AbortSignal into a token.
 *
 * Cancel safety: `cancelled()` is cancel-safe (it consumes nothing). `withSignal` and
 * `withToken` are exactly as cancel-safe as the future they wrap (cancelling them cancels
 * it, and so does the signal firing).
 *
 * Abort listeners run synchronously inside `abort()`; they only wake (enqueue) tasks.
 *
 * Must never: cancel a token twice, leave a `cancelled()` waiter parked after cancel or
 * after it was itself cancelled, or poll a future after cancelling it.
 */
import {
  BaseFuture,
  FutureStateError,
  PENDING,
  cancelOf,
  describeFuture,
  handOut,
  intoFuture,
  pollGuarded,
  type Cleanup,
  type Context,
  type Future,
  type IntoFuture,
  type Poll,
} from "./future.ts";
import { WaitList, Waiter } from "./sync/waitlist.ts";

/**
 * The default reason of a cancelled {@link CancellationToken}: what `withToken` throws and
 * what `token.signal` is aborted with when `cancel()` got no reason.
 *
 * @example
 * ```ts
 * import { CancelledError, withToken } from "reel";
 * try { yield* withToken(work(), token); }
 * catch (e) { if (e instanceof CancelledError) return; throw e; }
 * ```
 */
export class CancelledError extends Error {
  override name = "CancelledError";
  readonly code = "ECANCELED";
  constructor(message = "The operation was cancelled") {
    super(message);
  }
}

/**
 * A cancellation signal for a tree of tasks.
 *
 * @example
 * ```ts
 * import { CancellationToken, blockOn, spawn, withToken } from "reel";
 * const shutdown = new CancellationToken();
 * blockOn(function* () {
 *   const worker = shutdown.child();
 *   const h = spawn(function* () {
 *     yield* worker.cancelled(); // or: yield* withToken(serve(), worker)
 *     return "stopped";
 *   });
 *   shutdown.cancel();           // cancels `worker` too
 *   return yield* h;             // "stopped"
 * });
 * ```
 */
export class CancellationToken {
  private cancelledFlag = false;
  private why: unknown = undefined;
  private parent: CancellationToken | null = null;
  private firstChild: CancellationToken | null = null;
  private prevSib: CancellationToken | null = null;
  private nextSib: CancellationToken | null = null;
  private controller: AbortController | null = null;
  private source: SignalLink | null = null;
  /** @internal Parked cancelled()/withToken futures. */
  readonly waiters = new WaitList<Waiter<unknown>>();

  /** A token cancelled when `signal` aborts (with its reason); already cancelled if it has. */
  static fromSignal(signal: AbortSignal): CancellationToken {
    if (!(signal instanceof AbortSignal)) throw new TypeError("CancellationToken.fromSignal() expects an AbortSignal");
    const t = new CancellationToken();
    if (signal.aborted) t.cancel(signal.reason);
    else t.source = new SignalLink(t, signal);
    return t;
  }

  /** True once cancelled (directly or through a parent). */
  get isCancelled(): boolean {
    return this.cancelledFlag;
  }

  /** The cancellation reason (undefined while not cancelled). */
  get reason(): unknown {
    return this.why;
  }

  /** Number of parked cancelled()/withToken futures (for tests and diagnostics). */
  get waiterCount(): number {
    return this.waiters.length;
  }

  /** A token cancelled with this one (but cancelling it leaves this one alone). */
  child(): CancellationToken {
    const c = new CancellationToken();
    if (this.cancelledFlag) {
      c.cancel(this.why);
      return c;
    }
    c.parent = this;
    c.nextSib = this.firstChild;
    if (this.firstChild !== null) this.firstChild.prevSib = c;
    this.firstChild = c;
    return c;
  }

  /** Stops inheriting cancellation from the parent (tokio: dropping a child token). */
  detach(): void {
    const p = this.parent;
    if (p === null) return;
    if (this.prevSib !== null) this.prevSib.nextSib = this.nextSib;
    else p.firstChild = this.nextSib;
    if (this.nextSib !== null) this.nextSib.prevSib = this.prevSib;
    this.parent = this.prevSib = this.nextSib = null;
  }

  /**
   * Cancels this token and its whole subtree with `reason` (default: a CancelledError),
   * waking every cancelled() future and aborting `signal`. Idempotent.
   */
  cancel(reason?: unknown): void {
    if (this.cancelledFlag) return;
    const why = reason === undefined ? new CancelledError() : reason;
    this.detach();
    // Mark the whole subtree first (iteratively: chains may be deep), so that listeners
    // running inside the side effects below already see every token cancelled.
    const marked: CancellationToken[] = [];
    const stack: CancellationToken[] = [this];
    for (let t = stack.pop(); t !== undefined; t = stack.pop()) {
      t.cancelledFlag = true;
      t.why = why;
      marked.push(t);
      for (let c = t.firstChild; c !== null; ) {
        const next = c.nextSib;
        c.parent = c.prevSib = c.nextSib = null;
        stack.push(c);
        c = next;
      }
      t.firstChild = null;
    }
    for (const t of marked) t.fire();
  }

  /** Side effects of being cancelled: wake waiters, abort the signal, drop the source link. */
  private fire(): void {
    this.source?.unlink();
    this.source = null;
    this.waiters.wakeAll();
    this.controller?.abort(this.why);
  }

  /** Throws the reason if cancelled (as AbortSignal.throwIfAborted). */
  throwIfCancelled(): void {
    if (this.cancelledFlag) throw this.why;
  }

  /** Completes once the token is cancelled. Cancel-safe. */
  cancelled(): WaitCancelled {
    return new WaitCancelled(this);
  }

  /** An AbortSignal aborted (with the reason) when this token is cancelled. */
  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.cancelledFlag) this.controller.abort(this.why);
    }
    return this.controller.signal;
  }

  /** A guard that cancels this token when disposed (`using g = token.dropGuard()`). */
  dropGuard(): DropGuard {
    return new DropGuard(this);
  }
}

/** The listener of `fromSignal`: cancels the token when the signal aborts. */
class SignalLink implements EventListenerObject {
  constructor(
    private readonly token: CancellationToken,
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener("abort", this);
  }
  handleEvent(): void {
    this.token.cancel(this.signal.reason);
  }
  unlink(): void {
    this.signal.removeEventListener("abort", this);
  }
}

/**
 * Cancels its token when disposed, unless `disarm()`ed (tokio-util's DropGuard).
 *
 * @example
 * ```ts
 * { using _g = token.dropGuard(); yield* work(); } // token cancelled on scope exit
 * ```
 */
export class DropGuard implements Disposable {
  private token: CancellationToken | null;
  constructor(token: CancellationToken) {
    this.token = token;
  }
  /** Returns the token and stops the guard from cancelling it. */
  disarm(): CancellationToken | null {
    const t = this.token;
    this.token = null;
    return t;
  }
  [Symbol.dispose](): void {
    this.disarm()?.cancel();
  }
}

/**
 * The future of {@link CancellationToken.cancelled}.
 *
 * @example
 * ```ts
 * yield* token.cancelled();
 * ```
 */
export class WaitCancelled extends Waiter<void> {
  private done = false;
  constructor(private readonly token: CancellationToken) {
    super();
  }
  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("cancelled() future polled after completion");
    if (this.token.isCancelled) {
      this.cancel();
      return undefined;
    }
    this.waker = cx.waker;
    if (this.wList === null) this.token.waiters.push(this);
    return PENDING;
  }
  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.waker = null;
    this.token.waiters.remove(this);
  }

  override describe(): string {
    return "CancellationToken cancelled()";
  }
}

/**
 * What withToken and withSignal share once their guard fired: the inner future is
 * cancelled and its cleanup driven; then the reason is thrown.
 */
class GuardCleanup {
  cleanup: Cleanup | null = null;
  reason: unknown = undefined;
  active = false;

  /** The guard fired: cancel `inner`; true when the reason can be thrown at once. */
  start(inner: Future<unknown>, reason: unknown): boolean {
    this.reason = reason;
    const c = cancelOf(inner);
    if (c === null) return true;
    this.cleanup = c;
    this.active = true;
    return false;
  }

  /** Drives the cleanup; PENDING until it is done, then throws the reason. */
  poll(cx: Context): typeof PENDING {
    if (this.cleanup!.poll(cx) === PENDING) return PENDING;
    this.cleanup = null;
    this.active = false;
    throw this.reason;
  }

  /** Cancelled while cleaning up: the caller takes the cleanup over. */
  handOver(): Cleanup {
    const c = this.cleanup!;
    this.cleanup = null;
    this.active = false;
    return handOut(c);
  }
}

/** Runs a future until a token is cancelled: parks in the token's waiter list. */
class WithToken<T> extends Waiter<T> {
  private done = false;
  private readonly guard = new GuardCleanup();
  constructor(
    private readonly inner: Future<T>,
    private readonly token: CancellationToken,
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.guard.active) return this.guard.poll(cx);
    if (this.done) throw new FutureStateError("withToken() future polled after completion");
    if (this.token.isCancelled) {
      this.finish();
      if (this.guard.start(this.inner, this.token.reason)) throw this.token.reason;
      return this.guard.poll(cx);
    }
    const v = pollGuarded(this.inner, cx, this);
    if (v !== PENDING) return v;
    this.waker = cx.waker;
    if (this.wList === null) this.token.waiters.push(this);
    return PENDING;
  }

  /** Releases the guard; called by pollGuarded when the inner future settles. */
  finish(): void {
    this.done = true;
    this.waker = null;
    this.token.waiters.remove(this);
  }

  override cancel(): Future<void> | void {
    if (this.guard.active) return this.guard.handOver();
    if (this.done) return;
    this.finish();
    return this.inner.cancel?.();
  }

  override describe(): string {
    if (this.guard.active) return `withToken (cancelled, cleaning up) → ${describeFuture(this.guard.cleanup)}`;
    return `withToken → ${describeFuture(this.inner)}`;
  }
}

/**
 * Runs `fut` until `token` is cancelled: then `fut` is cancelled and the token's reason
 * (a CancelledError unless one was given) is thrown.
 *
 * @example
 * ```ts
 * import { CancellationToken, withToken } from "reel";
 * const stop = new CancellationToken();
 * const n = yield* withToken(stream.read(buf), stop); // throws CancelledError after stop.cancel()
 * ```
 */
export function withToken<T>(fut: IntoFuture<T>, token: CancellationToken): BaseFuture<T> {
  const f = intoFuture(fut, "withToken()");
  if (!(token instanceof CancellationToken)) throw new TypeError("withToken() expects a CancellationToken");
  return new WithToken(f, token);
}

/** Runs a future until an AbortSignal aborts; the future is its own abort listener. */
class WithSignal<T> extends BaseFuture<T> implements EventListenerObject {
  private done = false;
  private listening = false;
  private waker: Context["waker"] | null = null;
  private readonly guard = new GuardCleanup();
  constructor(
    private readonly inner: Future<T>,
    private readonly signal: AbortSignal,
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.guard.active) return this.guard.poll(cx);
    if (this.done) throw new FutureStateError("withSignal() future polled after completion");
    if (this.signal.aborted) {
      this.finish();
      if (this.guard.start(this.inner, this.signal.reason)) throw this.signal.reason;
      return this.guard.poll(cx);
    }
    const v = pollGuarded(this.inner, cx, this);
    if (v !== PENDING) return v;
    this.waker = cx.waker;
    if (!this.listening) {
      this.listening = true;
      this.signal.addEventListener("abort", this);
    }
    return PENDING;
  }

  /** The abort event: wake the task so its next poll sees `signal.aborted`. */
  handleEvent(): void {
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }

  /** Releases the guard; called by pollGuarded when the inner future settles. */
  finish(): void {
    this.done = true;
    this.waker = null;
    if (this.listening) {
      this.listening = false;
      this.signal.removeEventListener("abort", this);
    }
  }

  override cancel(): Future<void> | void {
    if (this.guard.active) return this.guard.handOver();
    if (this.done) return;
    this.finish();
    return this.inner.cancel?.();
  }

  override describe(): string {
    if (this.guard.active) return `withSignal (aborted, cleaning up) → ${describeFuture(this.guard.cleanup)}`;
    return `withSignal → ${describeFuture(this.inner)}`;
  }
}

/**
 * The `{ signal }` option the I/O calls take (as Bun's and Node's do): aborting the signal
 * cancels the call, which then throws the signal's reason.
 *
 * @example
 * ```ts
 * const ac = new AbortController();
 * const bytes = yield* readFile("big.bin", { signal: ac.signal });
 * ```
 */
export interface SignalOption {
  signal?: AbortSignal | undefined;
}

/**
 * `fut` bound to `opts.signal` when one is given (see {@link withSignal}), else `fut` itself;
 * a `signal` that is not an AbortSignal is a TypeError naming `what`.
 *
 * @example
 * ```ts
 * return withSignalOption(new ReadFile(path), opts, "readFile()");
 * ```
 */
export function withSignalOption<T>(fut: BaseFuture<T>, opts: SignalOption | undefined, what: string): BaseFuture<T> {
  const signal = opts?.signal;
  if (signal === undefined) return fut;
  if (!(signal instanceof AbortSignal)) throw new TypeError(`${what} { signal } must be an AbortSignal, got ${signal === null ? "null" : typeof signal}`);
  return new WithSignal(fut, signal);
}

/**
 * Runs `fut` until `signal` aborts: then `fut` is cancelled and `signal.reason` is thrown
 * (an AbortError DOMException unless the aborter gave a reason).
 *
 * @example
 * ```ts
 * import { withSignal } from "reel";
 * const ac = new AbortController();
 * const n = yield* withSignal(stream.read(buf), ac.signal); // ac.abort() cancels the read
 * ```
 */
export function withSignal<T>(fut: IntoFuture<T>, signal: AbortSignal): BaseFuture<T> {
  const f = intoFuture(fut, "withSignal()");
  if (!(signal instanceof AbortSignal)) throw new TypeError("withSignal() expects an AbortSignal");
  return new WithSignal(f, signal);
}

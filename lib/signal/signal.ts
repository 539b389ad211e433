/**
 * Unix signals as reel streams: {@link signal} gives a {@link SignalStream} of a signal's
 * occurrences, {@link ctrlC} a future for the next SIGINT. Delivery is lib/signal/hub.ts:
 * reel's own handler (counted, woken through the driver) while `blockOn` owns the thread,
 * Bun's `process.on` in hosted mode (`run()`); the same stream works in both and switches
 * as the thread changes hands.
 *
 * A signal stream is a reel `Stream<SignalName>` (lib/stream/stream.ts): `pollNext(cx)`
 * returns the next item (the signal's name, once per occurrence), {@link PENDING} with
 * `cx.waker` stored, or `null` once the stream was closed; `recv()`/`next()` is the same as
 * a future; `each()`, `merge()`, `map`/`filter`/`take`/`timeout` and `for await` (hosted)
 * work on it. Occurrences are counted from
 * the moment the stream is first polled (or recv'd) under a runtime; several occurrences
 * the kernel merges before the handler runs (a standard signal pending twice) count once.
 *
 * Cancel safety: `recv()` is cancel-safe — an occurrence is taken only in the poll that
 * returns it. A stream that is no longer needed must be closed (`close()` or `using`):
 * while it is open, the signal does not get its default action (SIGINT does not kill).
 *
 * Signals that cannot be caught (SIGKILL, SIGSTOP) and those Bun's runtime handles itself
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS and, on Linux, SIGPWR, which
 * JavaScriptCore uses to suspend threads) are a RangeError; an unknown name a TypeError.
 *
 * Must never: install a handler for a forbidden signal, drop an occurrence a poll did not
 * return, or keep delivery on after close().
 */
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll } from "../future.ts";
import { StreamBase } from "../stream/stream.ts";
import { SIGNALS } from "../../ffi/signal.ts";
import { subscribe, take, unsubscribe, type Listener } from "./hub.ts";

/**
 * The names {@link signal} accepts (the platform's catchable signals; SIGINFO and SIGEMT
 * exist on the BSDs and macOS only, SIGSTKFLT on Linux only).
 *
 * @example
 * ```ts
 * const which: SignalName = process.env.RELOAD_SIGNAL === "usr1" ? "SIGUSR1" : "SIGHUP";
 * using s = signal(which);
 * ```
 */
export type SignalName =
  | "SIGHUP" | "SIGINT" | "SIGQUIT" | "SIGUSR1" | "SIGUSR2" | "SIGPIPE" | "SIGALRM" | "SIGTERM" | "SIGCHLD"
  | "SIGCONT" | "SIGTSTP" | "SIGTTIN" | "SIGTTOU" | "SIGURG" | "SIGXCPU" | "SIGXFSZ" | "SIGVTALRM" | "SIGPROF"
  | "SIGWINCH" | "SIGIO" | "SIGINFO" | "SIGSTKFLT" | "SIGEMT";


const UNCATCHABLE = new Set(["SIGKILL", "SIGSTOP"]);
const RUNTIME_OWNED = new Set(["SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGABRT", "SIGSYS", ...(process.platform === "linux" ? ["SIGPWR"] : [])]);

/** Validates a signal name: its number, or a TypeError/RangeError naming it. */
export function signalNumber(name: unknown, what = "signal()"): number {
  if (typeof name !== "string") throw new TypeError(`${what} needs a signal name such as "SIGINT", got ${name === null ? "null" : typeof name}`);
  const n = SIGNALS[name];
  if (n === undefined) throw new TypeError(`Unknown signal ${JSON.stringify(name)} for ${what}: expected a name such as "SIGINT" or "SIGTERM"`);
  return n;
}

function catchable(name: unknown): number {
  const n = signalNumber(name);
  if (UNCATCHABLE.has(name as string)) throw new RangeError(`Cannot listen for ${String(name)}: it cannot be caught or ignored`);
  if (RUNTIME_OWNED.has(name as string)) throw new RangeError(`Cannot listen for ${String(name)}: Bun's runtime handles it itself`);
  return n;
}

/**
 * A stream of one signal's occurrences (see the module header for the contract).
 *
 * @example
 * ```ts
 * import { blockOn, signal } from "reel";
 * blockOn(function* () {
 *   using hup = signal("SIGHUP");
 *   for (let s; (s = yield* hup.recv()) !== null; ) console.log(`${s}: reloading`);
 * });
 * ```
 */
export class SignalStream extends StreamBase<SignalName> {
  private listener: Listener | null;

  /** @internal Use {@link signal}. */
  constructor(
    /** The signal's name. */
    readonly name: SignalName,
    signo: number,
  ) {
    super();
    this.listener = subscribe(name, signo);
  }

  /** True once close() ran. */
  get isClosed(): boolean {
    return this.listener === null;
  }

  /** Stream: the next occurrence (the signal's name), PENDING (waker stored), or null once closed. */
  pollNext(cx: Context): Poll<SignalName | null> {
    const l = this.listener;
    if (l === null) return null;
    return take(l, cx) ? this.name : PENDING;
  }

  /** Stream: the consumer stopped waiting; its waker is forgotten (nothing is taken). */
  override cancelNext(): void {
    const l = this.listener;
    if (l !== null) l.waker = null;
  }

  /** A future for the next occurrence: the name, or null once the stream is closed. Cancel-safe. */
  recv(): BaseFuture<SignalName | null> {
    return this.next();
  }

  /** Stops listening: the signal gets its previous action back once no stream listens. Idempotent. */
  close(): void {
    const l = this.listener;
    this.listener = null;
    if (l !== null) unsubscribe(l);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A stream of `name`'s occurrences. Throws RangeError for SIGKILL, SIGSTOP and the signals
 * Bun handles itself, TypeError for an unknown name.
 *
 * @example
 * ```ts
 * import { blockOn, signal } from "reel";
 * blockOn(function* () {
 *   using term = signal("SIGTERM");
 *   yield* term.recv();
 *   console.log("terminating");
 * });
 * ```
 */
export function signal(name: SignalName): SignalStream {
  return new SignalStream(name, catchable(name));
}

/** The future behind {@link ctrlC}: listens from its first poll, stops listening when done. */
class CtrlC extends BaseFuture<void> {
  private stream: SignalStream | null = null;
  private done = false;
  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("ctrlC() future polled after completion");
    const s = (this.stream ??= signal("SIGINT"));
    let v: Poll<SignalName | null>;
    try {
      v = s.pollNext(cx);
    } catch (err) {
      this.finish();
      throw err;
    }
    if (v === PENDING) return PENDING;
    this.finish();
    return undefined;
  }
  private finish(): void {
    this.done = true;
    this.stream?.close();
    this.stream = null;
  }
  override cancel(): void {
    if (!this.done) this.finish();
  }
}

/**
 * Resolves at the next SIGINT (Ctrl-C in a terminal) received after its first poll; while
 * it waits, SIGINT does not kill the process. Cancelling it restores that.
 *
 * @example
 * ```ts
 * import { blockOn, ctrlC, race, serve } from "reel";
 * blockOn(function* () {
 *   yield* race(serve(listener, handler), ctrlC()); // serve until Ctrl-C
 *   console.log("bye");
 * });
 * ```
 */
export function ctrlC(): BaseFuture<void> {
  return new CtrlC();
}

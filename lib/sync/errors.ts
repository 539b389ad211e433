/**
 * The typed errors of reel's sync primitives. Small classes with a `code` and, where a
 * value was refused, the value itself (tokio's `SendError(T)`): a failed send never
 * loses the message.
 *
 * What throws and what returns (the tokio shapes, mapped to JS):
 * - mpsc / broadcast `recv()` return `null` once the channel is closed and drained
 *   (tokio's `Option`); they do not throw for "closed".
 * - sending into a closed channel throws {@link SendError} carrying the value.
 * - oneshot `recv()` and watch `changed()` throw {@link RecvError} when the sender went
 *   away (tokio's `Err(RecvError)`).
 * - a broadcast receiver that fell behind throws {@link LaggedError} with the count it
 *   missed; its next `recv()` continues from the oldest value still kept.
 * - acquiring from a closed Semaphore throws {@link AcquireError}.
 *
 * Must never: import anything but the base error module (everything in sync/ imports this).
 */

/**
 * The channel is closed: the value was not sent and is handed back in `.value`.
 *
 * @example
 * ```ts
 * import { SendError } from "reel";
 * try { yield* tx.send(job); }
 * catch (e) { if (e instanceof SendError) requeue(e.value); else throw e; }
 * ```
 */
export class SendError<T = unknown> extends Error {
  override name = "SendError";
  readonly code = "ECLOSED";
  constructor(
    readonly value: T,
    message = "Cannot send: the channel is closed",
  ) {
    super(message);
  }
}

/**
 * The sending side went away without a value (oneshot), or the watch sender was closed.
 *
 * @example
 * ```ts
 * import { RecvError } from "reel";
 * try { const v = yield* rx.recv(); }
 * catch (e) { if (e instanceof RecvError) console.log("sender dropped"); else throw e; }
 * ```
 */
export class RecvError extends Error {
  override name = "RecvError";
  readonly code = "ECLOSED";
  constructor(message = "Cannot receive: the sender was closed") {
    super(message);
  }
}

/**
 * A broadcast receiver fell more than `capacity` values behind: `.missed` values were
 * overwritten before it read them. Its position has moved to the oldest value still kept,
 * so the next `recv()` succeeds.
 *
 * @example
 * ```ts
 * import { LaggedError } from "reel";
 * for (;;) {
 *   let v;
 *   try { v = yield* rx.recv(); } catch (e) { if (e instanceof LaggedError) { skipped += e.missed; continue; } throw e; }
 *   if (v === null) break;
 * }
 * ```
 */
export class LaggedError extends Error {
  override name = "LaggedError";
  readonly code = "ELAGGED";
  constructor(readonly missed: number) {
    super(`The receiver lagged behind and missed ${missed} value${missed === 1 ? "" : "s"}`);
  }
}

/**
 * The semaphore was closed: no permits will ever be handed out again.
 *
 * @example
 * ```ts
 * import { AcquireError } from "reel";
 * try { using p = yield* sem.acquire(); work(); }
 * catch (e) { if (e instanceof AcquireError) return; throw e; }
 * ```
 */
export class AcquireError extends Error {
  override name = "AcquireError";
  readonly code = "ECLOSED";
  constructor(message = "Cannot acquire: the semaphore is closed") {
    super(message);
  }
}

/**
 * @internal Validates a count argument: an integer in [min, max]; TypeError/RangeError
 * naming it.
 *
 * @example
 * ```ts
 * checkCount(n, "acquire() permit count", 0, MAX_PERMITS);
 * ```
 */
export function checkCount(n: unknown, what: string, min: number, max: number): number {
  if (typeof n !== "number" || !Number.isInteger(n)) {
    throw new TypeError(`${what} must be an integer, got ${typeof n === "number" ? n : typeof n}`);
  }
  if (n < min || n > max) throw new RangeError(`${what} must be ${min}-${max}, got ${n}`);
  return n;
}

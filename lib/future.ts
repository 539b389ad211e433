/**
 * The Future contract: poll-based state machines, as Rust's `Future`.
 *
 * A future is polled by the executor with a {@link Context}. It either returns its value
 * (ready) or {@link PENDING}. Invariants every future in reel keeps:
 *
 * - Returning PENDING means `cx.waker` has been stored where it will fire when progress is
 *   possible (a driver registration, a timer, a channel's waiter list). No lost wake-ups.
 * - Spurious polls are harmless: a future polled without having been woken re-checks and
 *   returns PENDING again, re-storing the (possibly new) waker.
 * - Polling after ready is an error ({@link FutureStateError}).
 * - A failed future throws from `poll`; the error travels up to whoever polls it.
 * - `cancel()` is JS's stand-in for Rust's Drop: it removes timers and waker slots and hands
 *   any kernel-held buffer to the driver until its completion. Cancelling a finished or
 *   already-cancelled future is a no-op. Combinators cancel the futures they abandon.
 * - `describe()` (optional) says what the future waits on, for `runtime.dump()`.
 *
 * Cleanup runs to completion (the protocol):
 *
 * - `cancel()` returns nothing when the future is gone at once, or a {@link Cleanup}: a
 *   `Future<void>` for the asynchronous cleanup that is left — a generator whose `finally`
 *   yields (`finally { yield* file.close(); }`). The generator adapter runs it deepest
 *   first: the cleanup of the future the generator was waiting on, then its `finally`
 *   blocks, driving every future they yield until the generator has finished.
 * - Whoever cancels drives the cleanup before it completes: timeout, select/race, tryJoin,
 *   withToken/withSignal, map/andThen, scope, serve and JoinHandle.abort all do, so after
 *   `yield* timeout(…)` throws TimeoutError the inner future's cleanup has finished. A
 *   combinator that is itself cancelled while it drives one returns it from its own
 *   `cancel()` (reel uses {@link cancelOf} to take a cleanup, {@link handOut} to give one).
 * - A cleanup nobody drives is never lost: one handed out and not polled by the end of the
 *   task poll (say, `fut.cancel()` called directly and its result ignored) is adopted by
 *   the executor as a task under the task that cancelled it, which waits for it.
 * - It is bounded: a cleanup still running `cleanupLimitMs` after it started (a Runtime
 *   option, default 5000 ms) is reported through `onTaskError` as RuntimeError ECLEANUP and
 *   force-ended (each `finally` left at its current `yield`, what it waits on cancelled).
 *   An error thrown by a cleanup is reported the same way; it never replaces the outcome
 *   of the combinator that cancelled (a TimeoutError stays a TimeoutError).
 *
 * Where it lives: this module is the contract and its one import path; the code is in
 * lib/future/ — core.ts (PENDING, BaseFuture, the helpers), cleanup.ts (the protocol
 * above), gen.ts (the generator adapter) — and lib/combinators/basic.ts (ready, pollFn,
 * map, andThen), in that import order (no cycles).
 *
 * Must never: import the executor or the driver — it is the contract both use (what is
 * running is read through lib/current.ts, the cleanup bound armed through
 * lib/task/bound.ts).
 *
 * Futures extending {@link BaseFuture} are `yield*`-able inside generator tasks (see
 * {@link gen}): the future is its own one-shot iterator, so `yield*` costs no generator
 * object per operation.
 * Must never: hold state or import past lib/future/ (it only re-exports); every layer imports it.
 * Must never import: lib/driver/**, lib/executor.ts, lib/net/**, lib/fs/**, ffi/**, bun:ffi
 */
export {
  PENDING,
  FutureStateError,
  BaseFuture,
  pollGuarded,
  isFuture,
  describeValue,
  describeFuture,
  type Poll,
  type Waker,
  type Context,
  type Future,
} from "./future/core.ts";
export { Cleanup, unclaimed, handOut, cancelOf, pollCleanups, joinCleanups } from "./future/cleanup.ts";
export { GenFuture, genContext, gen, genOf, intoFuture, type IntoFuture } from "./future/gen.ts";
export { ready, pollFn, map, andThen } from "./combinators/basic.ts";

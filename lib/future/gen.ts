/**
 * The generator adapter: `gen(function* () { … })` and `yield*` on futures. A plain
 * poll-based Future that drives a generator, and — when it is cancelled — the Cleanup that
 * runs its `finally` blocks to the end, deepest first (see lib/future.ts's header).
 *
 * Inline polling: while the adapter resumes its generator from a poll, the futures the
 * generator reaches with `yield*` are polled right there, with that poll's context
 * (BaseFuture.next, core.ts's `inlinePoll`): one that is ready hands its value straight
 * to the `yield*`, so the generator suspends only for what must wait — a ready read,
 * send or recv costs no suspend and resume. A pending one comes out marked as polled and
 * is not polled again until its waker fires. During cancel() (no context) nothing is
 * polled inline: what a `finally` yields is driven by the cleanup as before.
 *
 * Must never: resume a generator re-entrantly, drop a future a `finally` yields (unless the
 * cleanup bound force-ends it), or import the executor.
 * Must never import: lib/driver/**, lib/executor.ts, lib/net/**, lib/fs/**, ffi/**, bun:ffi
 */
import { RuntimeError } from "../errors.ts";
import { BaseFuture, FutureStateError, PENDING, describeFuture, describeValue, inlinePoll, isFuture, type Context, type Future, type Poll } from "./core.ts";
import { Cleanup, cancelOf, forceCancel, handOut } from "./cleanup.ts";

/**
 * @internal The generator adapter resuming right now, if any: what `each.next()` uses to
 * find its loop (lib/stream/each.ts). Saved and restored around every resume.
 */
export const genContext: { current: GenFuture<unknown> | null } = { current: null };

/** How {@link GenFuture} resumes its generator. */
const R_NEXT = 0;
const R_THROW = 1;
const R_RETURN = 2;
type Resume = typeof R_NEXT | typeof R_THROW | typeof R_RETURN;

const G_RUNNING = 0;
const G_DONE = 1;
const G_CANCELLED = 2; // cancelled: its cleanup (if any) is running or done

/**
 * Drives a generator that yields futures: the generator adapter behind `yield*`.
 * Made by {@link gen} (and {@link genOf}); exported for its type.
 *
 * Each step polls the future the generator is waiting on; when it is ready the generator
 * resumes with its value (or, when `poll` throws, the error is thrown at the `yield*`).
 * Cancelling cancels the awaited future, then runs the generator's `finally` blocks; if
 * either leaves asynchronous work (the awaited future's cleanup, a `yield` inside a
 * `finally`), `cancel()` returns a {@link Cleanup} that drives it to the end, deepest
 * first (the awaited future's cleanup, then the finally blocks).
 *
 * @example
 * ```ts
 * const g = gen(function* echo() { yield* sleep(1); }) as GenFuture<void>;
 * g.name; // "echo"
 * ```
 */
export class GenFuture<T> extends BaseFuture<T> {
  private current: Future<unknown> | null = null;
  private state = G_RUNNING;
  /** Cancelled: the awaited future's cleanup, driven before the finally blocks run. */
  private sub: Cleanup | null = null;
  /** Cancelled: the first step of the finally blocks, not yet driven. */
  private firstStep: IteratorResult<unknown, T> | null = null;
  /** @internal The each() loops open in this generator, innermost last (lib/stream/each.ts). */
  eachStack: unknown[] | null = null;

  constructor(
    private readonly it: Generator<unknown, T, unknown>,
    /** The generator function (for names in dumps). */
    private readonly fn: Function | null,
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.state !== G_RUNNING) throw new FutureStateError("gen() future polled after completion");
    let step: IteratorResult<unknown, T>;
    if (this.current === null) {
      step = this.resumeNext(undefined, cx);
    } else {
      step = this.settle(cx, this.current);
      if (step === PENDING_STEP) return PENDING;
    }
    return this.drive(cx, step);
  }

  /**
   * Loops while the futures it yields are ready at once; the executor's coop budget
   * (consumed by I/O futures) bounds how long this can run without yielding.
   */
  private drive(cx: Context, first: IteratorResult<unknown, T>): Poll<T> {
    let step = first;
    for (;;) {
      if (step.done) {
        if (this.state === G_RUNNING) this.state = G_DONE;
        this.current = null;
        return step.value;
      }
      const fut = step.value;
      if (!isFuture(fut)) {
        step = this.resumeThrow(new TypeError(`gen(): yielded ${describeValue(fut)}, expected a Future (use yield* for reel futures)`), cx);
        continue;
      }
      this.current = fut;
      if (inlinePoll.pendingPolled) {
        // Polled inside the resume (BaseFuture.next) and pending: its waker is stored.
        inlinePoll.pendingPolled = false;
        return PENDING;
      }
      step = this.settle(cx, fut);
      if (step === PENDING_STEP) return PENDING;
    }
  }

  /** Polls the awaited future and resumes the generator with its outcome. */
  private settle(cx: Context, fut: Future<unknown>): IteratorResult<unknown, T> {
    let v: unknown;
    try {
      v = fut.poll(cx);
    } catch (err) {
      this.current = null;
      return this.resumeThrow(err, cx);
    }
    if (v === PENDING) return PENDING_STEP;
    this.current = null;
    return this.resumeNext(v, cx);
  }

  /** Resumes the generator with a value (see {@link GenFuture.resume}). */
  private resumeNext(v: unknown, cx: Context): IteratorResult<unknown, T> {
    return this.resume(R_NEXT, v, cx);
  }

  /** Throws into the generator at its `yield*`; if it does not catch, this future fails. */
  private resumeThrow(e: unknown, cx: Context | null): IteratorResult<unknown, T> {
    return this.resume(R_THROW, e, cx);
  }

  /**
   * Returns from the generator's current `yield`: its finally blocks run. cancel() has no
   * context, so what a finally yields is driven by the cleanup, never polled inline.
   */
  private resumeReturn(): IteratorResult<unknown, T> {
    return this.resume(R_RETURN, undefined, null);
  }

  /**
   * One resume of the generator (next, throw or return); if the generator throws, this
   * future is done (failed). `cx`: the poll's context, under which the futures the
   * generator reaches are polled inline (BaseFuture.next), or null for none. genContext
   * and the inline context are saved and restored around it.
   */
  private resume(how: Resume, v: unknown, cx: Context | null): IteratorResult<unknown, T> {
    const prev = genContext.current;
    const prevCx = inlinePoll.cx;
    genContext.current = this as GenFuture<unknown>;
    inlinePoll.cx = cx;
    inlinePoll.pendingPolled = false;
    try {
      return how === R_NEXT ? this.it.next(v) : how === R_THROW ? this.it.throw(v) : this.it.return(undefined as T);
    } catch (err) {
      inlinePoll.pendingPolled = false;
      this.finished();
      throw err;
    } finally {
      genContext.current = prev;
      inlinePoll.cx = prevCx;
    }
  }

  private finished(): void {
    if (this.state === G_RUNNING) this.state = G_DONE;
    this.current = null;
  }

  /**
   * Cancels the awaited future and runs the finally blocks. Returns a Cleanup when either
   * left asynchronous work; a `finally` that throws synchronously throws from here.
   */
  override cancel(): Cleanup | void {
    if (this.state !== G_RUNNING) return;
    this.state = G_CANCELLED;
    const cur = this.current;
    this.current = null;
    if (cur !== null) {
      const sub = cancelOf(cur);
      if (sub !== null) {
        this.sub = sub;
        return handOut(new GenCleanup(this as GenFuture<unknown>));
      }
    }
    const step = this.resumeReturn();
    if (step.done) return;
    this.firstStep = step;
    return handOut(new GenCleanup(this as GenFuture<unknown>));
  }

  /** @internal One poll of the cleanup (GenCleanup.step): sub-cleanup, then the finally blocks. */
  pollCleanup(cx: Context): Poll<void> {
    let step: IteratorResult<unknown, T>;
    if (this.sub !== null) {
      if (this.sub.poll(cx) === PENDING) return PENDING;
      this.sub = null;
      step = this.resumeReturn();
    } else if (this.firstStep !== null) {
      step = this.firstStep;
      this.firstStep = null;
    } else if (this.current !== null) {
      step = this.settle(cx, this.current);
      if (step === PENDING_STEP) return PENDING;
    } else return undefined;
    return this.drive(cx, step) === PENDING ? PENDING : undefined;
  }

  /** @internal Force-ends the cleanup: cancels what it waits on, leaves every finally block. */
  abandonCleanup(): void {
    const sub = this.sub;
    const cur = this.current;
    this.sub = null;
    this.current = null;
    this.firstStep = null;
    sub?.cancel();
    if (cur !== null) forceCancel(cur);
    // Each return() leaves the finally the generator is suspended in; nested ones may yield
    // again. Bounded: a generator still yielding after this many is reported and dropped.
    for (let i = 0; i < 64; i++) {
      const step = this.resumeReturn();
      if (step.done) return;
      if (isFuture(step.value)) forceCancel(step.value);
    }
    throw new RuntimeError(`gen(): ${this.name} kept yielding from finally blocks after its cleanup was force-ended`, "ECLEANUP");
  }

  /** The generator function's name (for dumps), or "gen". */
  get name(): string {
    return (this.fn as { name?: string } | null)?.name || "gen";
  }

  override describe(): string {
    if (this.state === G_RUNNING) return this.current === null ? this.name : `${this.name} → ${describeFuture(this.current)}`;
    if (this.sub !== null) return `${this.name} (cancelled) → ${describeFuture(this.sub)}`;
    if (this.current !== null) return `${this.name} (cancelled, in finally) → ${describeFuture(this.current)}`;
    return `${this.name} (finished)`;
  }
}

/** The cleanup of a cancelled generator: see {@link GenFuture}. */
class GenCleanup extends Cleanup {
  constructor(private readonly g: GenFuture<unknown>) {
    super();
  }
  protected step(cx: Context): Poll<void> {
    return this.g.pollCleanup(cx);
  }
  protected abandon(): void {
    this.g.abandonCleanup();
  }
  override describe(): string {
    return `cleanup of ${this.g.describe()}`;
  }
}

const PENDING_STEP = { done: false, value: PENDING } as IteratorResult<unknown, never>;

/**
 * Turns a generator function into a Future: write sequential code with `yield*`.
 *
 * @example
 * ```ts
 * import { blockOn, gen, sleep, TcpStream } from "reel";
 * blockOn(gen(function* () {
 *   const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: 7000 });
 *   yield* s.writeAll(new TextEncoder().encode("hi"));
 *   yield* sleep(10);
 *   s.close();
 * }));
 * ```
 */
export function gen<T>(fn: () => Generator<unknown, T, unknown>): BaseFuture<T> {
  if (typeof fn !== "function") throw new TypeError(`gen() expects a generator function, got ${describeValue(fn)}`);
  return genOf(fn(), fn);
}

/**
 * @internal The adapter for a generator already made (`it`) by `fn` (for its name): scope()
 * and serve() call their body with arguments. Throws TypeError when `it` is no generator.
 *
 * @example
 * ```ts
 * const fut = genOf(body(scopeHandle), body);
 * ```
 */
export function genOf<T>(it: Generator<unknown, T, unknown>, fn: Function | null): GenFuture<T> {
  if (typeof it !== "object" || it === null || typeof (it as { next?: unknown }).next !== "function") {
    throw new TypeError(`gen() expects a generator function (function*), but the function returned ${describeValue(it)}`);
  }
  return new GenFuture(it, fn);
}

/**
 * Anything a task can be made from: a Future, or a generator function run by {@link gen}.
 *
 * @example
 * ```ts
 * const a: IntoFuture<number> = ready(1);
 * const b: IntoFuture<number> = function* () { yield* sleep(1); return 2; };
 * spawn(a); spawn(b);
 * ```
 */
export type IntoFuture<T> = Future<T> | (() => Generator<unknown, T, unknown>);

/**
 * Turns {@link IntoFuture} into a Future; throws TypeError naming anything else (and the
 * call, `what`, when given: "timeout(): Expected a Future or a generator function, got
 * a generator object …").
 *
 * @example
 * ```ts
 * const f = intoFuture(arg, "timeout()");
 * ```
 */
export function intoFuture<T>(x: IntoFuture<T>, what?: string): Future<T> {
  if (typeof x === "function") return gen(x);
  if (isFuture(x)) return x as Future<T>;
  throw new TypeError(`${what === undefined ? "" : `${what}: `}Expected a Future or a generator function, got ${describeValue(x)}`);
}

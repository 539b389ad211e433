/**
 * each(): `for … of` over a stream inside a generator task, as Effection's `each`.
 *
 *     for (const msg of yield* each(rx)) {
 *       handle(msg);
 *       yield* each.next();   // ask for the next value (the loop body's last statement)
 *     }
 *
 * A `for … of` asks its iterator for values synchronously, but the next value of a stream
 * may not exist yet; so `yield* each(stream)` waits for the first value and returns the
 * loop's iterable, and `yield* each.next()` at the end of the body waits for the next one
 * and stages it, so the loop's own `next()` can hand it over synchronously. The stream's
 * end finishes the loop. Forgetting `each.next()` is an error at the loop's next turn,
 * not a hang; calling it twice in one turn is an error too (a value would be lost).
 *
 * `each.next()` finds its loop through the generator running it (future.ts's
 * `genContext`): each generator adapter keeps a stack of its open loops (nested loops
 * work; a `yield*`-delegated helper generator shares its caller's). Leaving the loop —
 * `break`, `return`, a throw, the task being cancelled — closes it: the for-of calls the
 * iterator's `return()`, which pops it and drops any pending registration on the stream.
 *
 * Cancel safety: as the stream (each.next() cancelled = cancelNext()).
 *
 * Must never: lose a value (a staged value is handed to the loop before anything else),
 * or leave a loop on the stack after the for-of ended.
 */
import { BaseFuture, FutureStateError, PENDING, genContext, type Context, type GenFuture, type Poll } from "../future.ts";
import { checkStream, describeStream, type Stream } from "./stream.ts";

/** One for-of over a stream: its iterable and iterator. */
class EachLoop<T> implements Iterable<T>, Iterator<T, undefined> {
  staged: T | undefined = undefined;
  hasStaged = false;
  ended = false;
  private owner: GenFuture<unknown> | null = null;

  constructor(readonly src: Stream<T>) {}

  [Symbol.iterator](): Iterator<T, undefined> {
    const g = genContext.current;
    if (g === null) throw new TypeError("each(): iterate it with for … of inside a generator task (gen/spawn/blockOn of a function*)");
    if (this.owner !== null) throw new TypeError("each(): this loop is already being iterated; call each(stream) again for another loop");
    this.owner = g;
    (g.eachStack ??= []).push(this);
    return this;
  }

  next(): IteratorResult<T, undefined> {
    if (this.hasStaged) {
      const v = this.staged as T;
      this.staged = undefined;
      this.hasStaged = false;
      return { done: false, value: v };
    }
    if (this.ended) {
      this.close();
      return { done: true, value: undefined };
    }
    this.close();
    throw new TypeError("each(): the loop body must end with `yield* each.next()` (it waits for the next value of the stream)");
  }

  return(): IteratorResult<T, undefined> {
    if (!this.ended) this.src.cancelNext?.();
    this.ended = true;
    this.staged = undefined;
    this.hasStaged = false;
    this.close();
    return { done: true, value: undefined };
  }

  /** Takes one pollNext outcome: a staged value, or the end. */
  take(v: T | null): void {
    if (v === null) this.ended = true;
    else {
      this.staged = v;
      this.hasStaged = true;
    }
  }

  private close(): void {
    const stack = this.owner?.eachStack;
    if (stack == null) return;
    const i = stack.lastIndexOf(this);
    if (i >= 0) stack.splice(i, 1);
    this.owner = null;
  }
}

/** `yield* each(stream)`: waits for the first value, returns the loop. */
class EachStart<T> extends BaseFuture<Iterable<T>> {
  private done = false;
  constructor(private readonly src: Stream<T>) {
    super();
  }
  poll(cx: Context): Poll<Iterable<T>> {
    if (this.done) throw new FutureStateError("each() future polled after completion");
    let v: Poll<T | null>;
    try {
      v = this.src.pollNext(cx);
    } catch (err) {
      this.done = true;
      throw err;
    }
    if (v === PENDING) return PENDING;
    this.done = true;
    const loop = new EachLoop(this.src);
    loop.take(v);
    return loop;
  }
  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.src.cancelNext?.();
  }
  override describe(): string {
    return `each → ${describeStream(this.src)}`;
  }
}

/** `yield* each.next()`: waits for the loop's next value and stages it. */
class EachNext<T> extends BaseFuture<void> {
  private done = false;
  constructor(private readonly loop: EachLoop<T>) {
    super();
  }
  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("each.next() future polled after completion");
    const v = this.loop.src.pollNext(cx);
    if (v === PENDING) return PENDING;
    this.done = true;
    this.loop.take(v);
    return undefined;
  }
  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.loop.src.cancelNext?.();
  }
  override describe(): string {
    return `each.next → ${describeStream(this.loop.src)}`;
  }
}

/**
 * Iterates a stream with `for … of` inside a generator task: `yield* each(stream)` waits
 * for the first value; end the loop body with `yield* each.next()`. See the module header.
 *
 * @example
 * ```ts
 * import { blockOn, each, interval } from "reel";
 * blockOn(function* () {
 *   for (const at of yield* each(interval(100).take(3))) {
 *     console.log("tick", at);
 *     yield* each.next();
 *   }
 * });
 * ```
 */
export function each<T>(stream: Stream<T>): BaseFuture<Iterable<T>> {
  return new EachStart(checkStream(stream, "each()"));
}

/**
 * Waits for the next value of the innermost `each()` loop of the running generator; the
 * last statement of the loop body.
 *
 * @example
 * ```ts
 * for (const line of yield* each(lines)) {
 *   console.log(line);
 *   yield* each.next();
 * }
 * ```
 */
each.next = function next(): BaseFuture<void> {
  const stack = genContext.current?.eachStack;
  const loop = stack != null && stack.length > 0 ? (stack[stack.length - 1] as EachLoop<unknown>) : null;
  if (loop === null) throw new TypeError("each.next() must be called inside `for (const x of yield* each(stream))`, in the generator running that loop");
  if (loop.hasStaged) throw new TypeError("each.next() was called twice in one turn of the loop: the value it staged would be lost");
  if (loop.ended) throw new TypeError("each.next() was called after the stream ended");
  return new EachNext(loop);
};

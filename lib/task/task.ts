/**
 * Tasks: a spawned future with its state word, and the JoinHandle that observes it.
 *
 * A task is its own Waker and its own Context (no allocation per poll). Its state word:
 *
 * - SCHEDULED: set when the task is woken and must be polled. Set → it is in the run queue,
 *   or it is RUNNING and the executor re-queues it when the poll returns. A wake while
 *   SCHEDULED does nothing (dedup, as tokio's NOTIFIED bit). Never set once COMPLETE.
 * - RUNNING: set while the executor is inside `future.poll`.
 * - COMPLETE: the future returned, threw, or was aborted. Terminal; result fields are final.
 * - ABORTED: `abort()` was called. If RUNNING at that moment, the executor finishes the
 *   abort when the poll returns; otherwise it happens at once.
 *
 * Must never: poll a future inline from `wake()`, or poll a COMPLETE task.
 */
import { BaseFuture, FutureStateError, PENDING, type Context, type Future, type Poll, type Waker } from "../future.ts";

export const SCHEDULED = 1;
export const RUNNING = 2;
export const COMPLETE = 4;
export const ABORTED = 8;

/** What a task needs from its executor. */
export interface Scheduler {
  /** Put a task whose SCHEDULED bit was just set on the run queue. */
  enqueue(task: Task<unknown>): void;
  /** A task failed and nobody was waiting on its handle: track it for reporting. */
  unobserved(task: Task<unknown>): void;
}

/**
 * Why a JoinHandle did not yield a value: the task was cancelled (aborted) or it failed
 * (its future threw; the error is `.cause`).
 *
 * @example
 * ```ts
 * const h = spawn(work());
 * h.abort();
 * try { yield* h; } catch (e) { if (e instanceof JoinError && e.isCancelled()) console.log("aborted"); }
 * ```
 */
export class JoinError extends Error {
  override name = "JoinError";
  constructor(
    readonly kind: "cancelled" | "failed",
    readonly taskId: number,
    cause?: unknown,
  ) {
    super(
      kind === "cancelled"
        ? `Task ${taskId} was cancelled`
        : `Task ${taskId} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
  isCancelled(): boolean {
    return this.kind === "cancelled";
  }
  isFailed(): boolean {
    return this.kind === "failed";
  }
}

let nextId = 1;

/** A spawned future and its state. Created by the executor's `spawn`. */
export class Task<T> implements Waker, Context {
  readonly id = nextId++;
  state = 0;
  /** Set when COMPLETE with a value. */
  value: T | undefined = undefined;
  /** Set when COMPLETE without a value: a JoinError (cancelled or failed). */
  error: JoinError | null = null;
  /** The waker of whoever awaits the JoinHandle. */
  joinWaker: Waker | null = null;
  /** True once someone polled the handle: a failure is then not reported as unobserved. */
  observed = false;
  readonly waker: Waker = this;

  constructor(
    public future: Future<T> | null,
    private readonly scheduler: Scheduler,
  ) {}

  /** Schedules the task; deduplicated by the SCHEDULED bit. */
  wake(): void {
    const s = this.state;
    if ((s & (SCHEDULED | COMPLETE)) !== 0) return;
    this.state = s | SCHEDULED;
    if ((s & RUNNING) === 0) this.scheduler.enqueue(this as Task<unknown>);
  }

  /**
   * Polls the future once; called by the executor only, with SCHEDULED set. Returns true
   * when the task is complete after this poll.
   */
  run(): boolean {
    const fut = this.future;
    if (fut === null) return true;
    this.state = (this.state & ~SCHEDULED) | RUNNING;
    let out: Poll<T>;
    try {
      out = fut.poll(this);
    } catch (err) {
      this.state &= ~RUNNING;
      if ((this.state & ABORTED) !== 0) this.finishAbort();
      else this.fail(err);
      return true;
    }
    this.state &= ~RUNNING;
    if ((this.state & ABORTED) !== 0) {
      if (out !== PENDING) this.complete(out);
      else this.finishAbort();
      return true;
    }
    if (out !== PENDING) {
      this.complete(out);
      return true;
    }
    // Woken while running (a self-wake or yieldNow): back on the queue.
    if ((this.state & SCHEDULED) !== 0) this.scheduler.enqueue(this as Task<unknown>);
    return false;
  }

  /** Requests cancellation. See {@link JoinHandle.abort}. */
  abort(): void {
    const s = this.state;
    if ((s & (COMPLETE | ABORTED)) !== 0) return;
    this.state = s | ABORTED;
    if ((s & RUNNING) === 0) this.finishAbort();
  }

  private finishAbort(): void {
    const fut = this.future;
    this.settle(undefined, new JoinError("cancelled", this.id));
    try {
      fut?.cancel?.();
    } catch (err) {
      // A cancel hook that throws has nowhere else to go: report it, do not lose it.
      console.error(`reel: cancelling task ${this.id} threw:`, err);
    }
  }

  private complete(value: T): void {
    this.settle(value, null);
  }

  private fail(err: unknown): void {
    this.settle(undefined, new JoinError("failed", this.id, err));
    if (!this.observed) this.scheduler.unobserved(this as Task<unknown>);
  }

  private settle(value: T | undefined, error: JoinError | null): void {
    this.state = (this.state | COMPLETE) & ~SCHEDULED;
    this.value = value;
    this.error = error;
    this.future = null;
    const w = this.joinWaker;
    this.joinWaker = null;
    w?.wake();
  }

  get isComplete(): boolean {
    return (this.state & COMPLETE) !== 0;
  }
}

/**
 * The handle to a spawned task: a Future of the task's value. Awaiting it after the task
 * failed throws a {@link JoinError} with `.cause`; after `abort()`, a cancelled JoinError.
 * Cancelling (dropping) the handle detaches the task; it keeps running.
 *
 * @example
 * ```ts
 * import { blockOn, gen, sleep, spawn } from "reel";
 * blockOn(gen(function* () {
 *   const h = spawn(gen(function* () { yield* sleep(5); return 7; }));
 *   return yield* h; // 7
 * }));
 * ```
 */
export class JoinHandle<T> extends BaseFuture<T> {
  private taken = false;
  constructor(private readonly task: Task<T>) {
    super();
  }

  /** The task's id, unique in this process. */
  get id(): number {
    return this.task.id;
  }

  /** True once the task has completed, failed or been aborted. */
  get isFinished(): boolean {
    return this.task.isComplete;
  }

  poll(cx: Context): Poll<T> {
    if (this.taken) throw new FutureStateError(`JoinHandle of task ${this.task.id} polled after completion`);
    const t = this.task;
    t.observed = true;
    if (!t.isComplete) {
      t.joinWaker = cx.waker;
      return PENDING;
    }
    this.taken = true;
    if (t.error !== null) throw t.error;
    return t.value as T;
  }

  /**
   * Cancels the task: its future is cancelled (timers removed, fds deregistered by its
   * own cancel hooks) and the handle completes with a cancelled JoinError. A task that
   * already finished keeps its result. Aborting from inside the task takes effect when
   * its current poll returns.
   */
  abort(): void {
    this.task.abort();
  }

  /** Detaches: the task keeps running, nobody is woken for its result. */
  override cancel(): void {
    if (this.task.joinWaker !== null) this.task.joinWaker = null;
  }
}

/**
 * Tasks: a spawned future with its state word and its place in the task tree (tree.ts),
 * and the JoinHandle that observes it.
 *
 * A task is its own Waker and its own Context (no allocation per poll). Its state word:
 *
 * - SCHEDULED: set when the task is woken and must be polled. Set → it is in the run queue,
 *   or it is RUNNING and the executor re-queues it when the poll returns. A wake while
 *   SCHEDULED does nothing (dedup, as tokio's NOTIFIED bit). Never set once COMPLETE.
 * - RUNNING: set while the executor is inside the task's poll.
 * - COMPLETE: settled — value, failure or cancellation. Terminal; result fields are final.
 * - ABORTED: a halt was requested (`abort()`, or an ancestor halting). If RUNNING at that
 *   moment, the halt starts when the poll returns; otherwise at once.
 *
 * Its phase, what a poll does:
 *
 *     LIVE ──returns──▶ children adopted by the parent ─▶ COMPLETE (value)
 *      │   (a root: DRAINING, halting them, instead)
 *      ├──throws──▶ DRAINING: halt children, wait ─▶ COMPLETE (failed)
 *      └──halted──▶ HALTING: children halted first, wait
 *                     └─▶ own future cancelled ─▶ CLEANUP: drive its cleanup (if any)
 *                           └─▶ DRAINING: halt what the cleanup spawned, wait ─▶ COMPLETE (cancelled)
 *
 * So a JoinHandle settles only after the task's cleanup and its descendants' are done.
 *
 * Must never: poll a future inline from `wake()`, poll a COMPLETE task, or settle a task
 * while a task under it still runs.
 */
import { BaseFuture, FutureStateError, PENDING, cancelOf, describeFuture, unclaimed, type Context, type Future, type Poll, type Waker } from "../future.ts";
import { running } from "../current.ts";
import { Node, adoptChildren, haltTree, unlink, type TreeHost } from "./tree.ts";

export const SCHEDULED = 1;
export const RUNNING = 2;
export const COMPLETE = 4;
export const ABORTED = 8;
/** Set while the task halts its children synchronously (drainThen): their settling must not queue it. */
const INLINE = 16;

/** Phases (see the module header). */
export const LIVE = 0;
export const HALTING = 1;
export const CLEANUP = 2;
export const DRAINING = 3;

/** Flags. ROOT: the task of blockOn/run — halts what is left under it when it completes. */
export const ROOT = 1;
/** CLEANUP_TASK: runs a cleanup nobody drove (adopted by the executor): never halted. */
export const CLEANUP_TASK = 2;

/** What a task needs from its executor. */
export interface Scheduler extends TreeHost {
  /** Put a task whose SCHEDULED bit was just set on the run queue. */
  enqueue(task: Task<unknown>): void;
  /** A task failed and nobody was waiting on its handle: report it. */
  unobserved(task: Task<unknown>): void;
  /** A task settled (for metrics and the set of roots). */
  settled(task: Task<unknown>): void;
  /** Cleanups were handed out and may be unclaimed: adopt them under `owner` (see future.ts). */
  sweep(owner: Task<unknown>): void;
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

/**
 * A spawned future, its state and its place in the tree. Created by the executor.
 *
 * @example
 * ```ts
 * const t = new Task(fut, runtime); // the executor links it, sets SCHEDULED and queues it
 * ```
 */
export class Task<T> extends Node implements Waker, Context {
  readonly id = nextId++;
  readonly isTask = true;
  state = 0;
  phase = LIVE;
  flags = 0;
  /** Set when COMPLETE with a value (while DRAINING: the value to settle with). */
  value: T | undefined = undefined;
  /** Set when COMPLETE without a value: a JoinError (cancelled or failed). */
  error: JoinError | null = null;
  /** The waker of whoever awaits the JoinHandle. */
  joinWaker: Waker | null = null;
  /** True once someone polled the handle (or a scope owns it): a failure is then not reported. */
  observed = false;
  readonly waker: Waker = this;
  /** CLEANUP: the cleanup its cancelled future left. */
  cleanup: Future<void> | null = null;
  /** The name given at spawn, or null. */
  name: string | null = null;
  /** Where it was spawned (a captured stack), when the runtime records spawn sites. */
  site: { stack?: string } | null = null;
  /** Called once when it settles (hosted roots, toPromise). */
  onDone: ((task: Task<T>) => void) | null = null;

  constructor(
    public future: Future<T> | null,
    readonly scheduler: Scheduler,
  ) {
    super();
  }

  get host(): TreeHost {
    return this.scheduler;
  }

  get taskId(): number {
    return this.id;
  }

  get halting(): boolean {
    return (this.state & ABORTED) !== 0 || this.phase !== LIVE;
  }

  get isGone(): boolean {
    return (this.state & COMPLETE) !== 0;
  }

  /** Schedules the task; deduplicated by the SCHEDULED bit. */
  wake(): void {
    const s = this.state;
    if ((s & (SCHEDULED | COMPLETE)) !== 0) return;
    this.state = s | SCHEDULED;
    if ((s & RUNNING) === 0) this.scheduler.enqueue(this as Task<unknown>);
  }

  /**
   * Polls the task once (its future, or the phase it is in); called by the executor only,
   * with SCHEDULED set and `running.node` pointing at this task.
   */
  run(): void {
    this.state = (this.state & ~SCHEDULED) | RUNNING;
    if (this.phase !== LIVE) return this.runPhase();
    let out: Poll<T>;
    try {
      out = this.future!.poll(this);
    } catch (err) {
      this.state &= ~RUNNING;
      if (unclaimed.length !== 0) this.scheduler.sweep(this as Task<unknown>);
      this.future = null;
      this.drainThen(undefined, (this.state & ABORTED) !== 0 ? new JoinError("cancelled", this.id) : this.failure(err));
      return this.requeue();
    }
    this.state &= ~RUNNING;
    if (unclaimed.length !== 0) this.scheduler.sweep(this as Task<unknown>);
    if (out !== PENDING) {
      this.future = null;
      this.returned(out);
      return this.requeue();
    }
    if ((this.state & ABORTED) !== 0) {
      haltTree(this);
      return this.requeue();
    }
    // Woken while running (a self-wake or yieldNow): back on the queue.
    if ((this.state & SCHEDULED) !== 0) this.scheduler.enqueue(this as Task<unknown>);
  }

  /** Woken during a poll that moved it to another phase: keep "SCHEDULED ⇒ queued". */
  private requeue(): void {
    if ((this.state & (SCHEDULED | COMPLETE)) === SCHEDULED) this.scheduler.enqueue(this as Task<unknown>);
  }

  /** A poll outside LIVE: wait for children, drive the cleanup, or settle. */
  private runPhase(): void {
    if (this.phase === HALTING) {
      if (this.liveTasks === 0) this.cancelOwn();
    } else if (this.phase === CLEANUP) {
      const r = this.cleanup!.poll(this); // a Cleanup reports its own errors, never throws
      if (unclaimed.length !== 0) this.scheduler.sweep(this as Task<unknown>);
      if (r !== PENDING) this.afterCleanup();
    } else if (this.liveTasks === 0) this.settle(this.value, this.error); // DRAINING
    this.state &= ~RUNNING;
    this.requeue();
  }

  /** Its future returned: a root drains its children; any other task leaves them to its parent. */
  private returned(value: T): void {
    if ((this.flags & ROOT) !== 0) return this.drainThen(value, null);
    if (this.firstChild !== null) adoptChildren(this, this.parent);
    this.settle(value, null);
  }

  private failure(err: unknown): JoinError {
    return new JoinError("failed", this.id, err);
  }

  /** Its own future is done (or cancelled and cleaned up): halt what is left below, then settle. */
  private drainThen(value: T | undefined, error: JoinError | null): void {
    if (this.firstChild === null) return this.settle(value, error);
    this.value = value;
    this.error = error;
    this.phase = DRAINING;
    this.state |= INLINE;
    haltTree(this, false);
    this.state &= ~INLINE;
    if (this.liveTasks === 0) this.settle(value, error);
  }

  /** Requests cancellation. See {@link JoinHandle.abort}. */
  abort(): void {
    if ((this.state & COMPLETE) !== 0) return;
    haltTree(this);
  }

  /** tree.ts, first pass of a halt. */
  requestHalt(): boolean {
    if ((this.state & COMPLETE) !== 0 || this.phase !== LIVE || (this.flags & CLEANUP_TASK) !== 0) return false;
    this.state |= ABORTED;
    return true;
  }

  /** tree.ts, second pass (its descendants have acted): cancel its future once they are gone. */
  proceedHalt(): void {
    if ((this.state & (RUNNING | COMPLETE)) !== 0 || this.phase !== LIVE) return;
    this.phase = HALTING;
    if (this.liveTasks === 0) this.cancelOwn();
  }

  /** Cancels its future (spawns in its finally blocks attach here); drives the cleanup left. */
  private cancelOwn(): void {
    const fut = this.future;
    this.future = null;
    let c = null;
    if (fut !== null) {
      const prev = running.node;
      running.node = this;
      c = cancelOf(fut);
      running.node = prev;
      if (unclaimed.length !== 0) this.scheduler.sweep(this as Task<unknown>);
    }
    if (c !== null) {
      this.cleanup = c;
      this.phase = CLEANUP;
      this.wake();
      return;
    }
    this.afterCleanup();
  }

  private afterCleanup(): void {
    this.cleanup = null;
    this.drainThen(undefined, new JoinError("cancelled", this.id));
  }

  /** tree.ts: a task under this one settled; a task waiting for its children may move on. */
  childSettled(_child: Node): void {
    if (this.phase !== LIVE && this.liveTasks === 0 && (this.state & INLINE) === 0) this.wake();
  }

  private settle(value: T | undefined, error: JoinError | null): void {
    this.state = (this.state | COMPLETE) & ~SCHEDULED;
    this.value = value;
    this.error = error;
    this.future = null;
    this.cleanup = null;
    const p = this.parent;
    if (p !== null) {
      unlink(this);
      p.childSettled(this);
    }
    this.scheduler.settled(this as Task<unknown>);
    const w = this.joinWaker;
    this.joinWaker = null;
    w?.wake();
    const done = this.onDone;
    if (done !== null) {
      this.onDone = null;
      done(this);
    }
    if (error !== null && error.kind === "failed" && !this.observed) this.scheduler.unobserved(this as Task<unknown>);
  }

  get isComplete(): boolean {
    return (this.state & COMPLETE) !== 0;
  }

  /**
   * @internal Ends the task now, without waiting for anything: its cleanup (or its
   * future's) is force-ended. For a blockOn that failed (its tree cannot be driven any
   * more); the caller reports it and calls this deepest first.
   */
  forceEnd(): void {
    if ((this.state & COMPLETE) !== 0) return;
    const c = this.cleanup;
    const f = this.future;
    this.cleanup = null;
    this.future = null;
    if (c !== null) c.cancel?.();
    else if (f !== null) cancelOf(f)?.cancel();
    this.settle(undefined, this.error ?? new JoinError("cancelled", this.id));
  }

  /** What the task waits on, for dumps. */
  describe(): string {
    if (this.phase === LIVE) return describeFuture(this.future);
    if (this.phase === CLEANUP) return describeFuture(this.cleanup);
    if (this.phase === HALTING) return `its ${this.liveTasks} task(s) to halt before its own cleanup`;
    return `its ${this.liveTasks} task(s) to halt before it settles`;
  }
}

/**
 * The handle to a spawned task: a Future of the task's value. Awaiting it after the task
 * failed throws a {@link JoinError} with `.cause`; after `abort()`, a cancelled JoinError
 * (once the task's cleanup and its descendants' have finished). Cancelling (dropping) the
 * handle detaches the task; it keeps running.
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

  /** The name given at spawn, or null. */
  get name(): string | null {
    return this.task.name;
  }

  /** True once the task has settled (completed, failed, or aborted and cleaned up). */
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
   * Cancels the task: the tasks it spawned are halted first (deepest first), then its
   * future is cancelled and its cleanup runs (a `finally` that yields is driven to the
   * end); the handle then completes with a cancelled JoinError. A task that already
   * finished keeps its result. Aborting from inside the task takes effect when its
   * current poll returns.
   */
  abort(): void {
    this.task.abort();
  }

  /** Detaches: the task keeps running, nobody is woken for its result. */
  override cancel(): void {
    if (this.task.joinWaker !== null) this.task.joinWaker = null;
  }

  override describe(): string {
    const t = this.task;
    return `join task #${t.id}${t.name !== null ? ` "${t.name}"` : ""}`;
  }
}

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
 * - INLINE (internal), the flags ROOT, CLEANUP_TASK, OBSERVED, and the phase (bits 8–9).
 *
 * One state word instead of five fields, the rare fields (error, name, spawn site, settle
 * callback, cleanup) in an extension made on first use, and the task is its own
 * JoinHandle (what `spawn()` returns): a spawn and a settle are hot paths (bench/micro.ts),
 * and every object and field is work per spawn.
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
import { Group, adoptChildren, countTasks, hasTasks, haltTree, unlink, type Node, type TreeHost } from "./tree.ts";
import { RuntimeError } from "../errors.ts";

export const SCHEDULED = 1;
export const RUNNING = 2;
export const COMPLETE = 4;
export const ABORTED = 8;
/** Set while the task halts its children synchronously (drainThen): their settling must not queue it. */
const INLINE = 16;
/** ROOT: the task of blockOn/run — halts what is left under it when its future completes. */
export const ROOT = 32;
/** CLEANUP_TASK: runs a cleanup nobody drove (adopted by the executor): never halted. */
export const CLEANUP_TASK = 64;
/** Someone polled the handle (or a scope or a Promise owns it): a failure is not reported. */
export const OBSERVED = 128;
/** The handle delivered the result (polling it again is a FutureStateError). */
const TAKEN = 1024;

/** Phases (see the module header), kept in bits 8–9 of the state word. */
export const LIVE = 0;
export const HALTING = 1;
export const CLEANUP = 2;
export const DRAINING = 3;
const PHASE_SHIFT = 8;
const PHASE_MASK = 3 << PHASE_SHIFT;

/** What a task needs from its executor. */
export interface Scheduler extends TreeHost {
  /** Put a task whose SCHEDULED bit was just set on the run queue. */
  enqueue(task: Task<unknown>): void;
  /** A task failed and nobody was waiting on its handle: report it. */
  unobserved(task: Task<unknown>): void;
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

/** What few tasks need, made on first use (see the module header). */
class TaskExt {
  /** Set when it settled without a value (a failure or a cancellation). */
  error: JoinError | null = null;
  name: string | null = null;
  site: { stack?: string } | null = null;
  onDone: ((task: Task<unknown>) => void) | null = null;
  cleanup: Future<void> | null = null;
}

/**
 * The handle to a spawned task: a Future of the task's value. Awaiting it after the task
 * failed throws a {@link JoinError} with `.cause`; after `abort()`, a cancelled JoinError
 * (once the task's cleanup and its descendants' have finished). Cancelling (dropping) the
 * handle detaches the task; it keeps running.
 *
 * (The task is its own handle: `spawn()` returns the task object, seen through this class.)
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
export abstract class JoinHandle<T> extends BaseFuture<T> {
  /** The task's id, unique in this process. */
  abstract readonly id: number;

  /** The name given at spawn, or null. */
  abstract readonly name: string | null;

  /** True once the task has settled (completed, failed, or aborted and cleaned up). */
  abstract readonly isFinished: boolean;

  /**
   * Cancels the task: the tasks it spawned are halted first (deepest first), then its
   * future is cancelled and its cleanup runs (a `finally` that yields is driven to the
   * end); the handle then completes with a cancelled JoinError. A task that already
   * finished keeps its result. Aborting from inside the task takes effect when its
   * current poll returns.
   */
  abstract abort(): void;

  /** Detaches: the task keeps running, nobody is woken for its result. */
  abstract override cancel(): void;
}

/**
 * A spawned future, its state and its place in the tree. Created by the executor.
 *
 * @example
 * ```ts
 * const t = new Task(fut, runtime); // the executor links it, sets SCHEDULED and queues it
 * ```
 */
export class Task<T> extends JoinHandle<T> implements Node, Waker, Context {
  /** Always true: set on the prototype below, not per task. */
  declare readonly isTask: boolean;
  parent: Node | null = null;
  firstChild: Node | null = null;
  prevSib: Node | null = null;
  nextSib: Node | null = null;
  readonly id = nextId++;
  state = 0;
  /** Set when COMPLETE with a value (while DRAINING: the value to settle with). */
  value: T | undefined = undefined;
  /** The waker of whoever awaits the JoinHandle. */
  joinWaker: Waker | null = null;
  readonly waker: Waker = this;
  private ext: TaskExt | null = null;

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

  /** The phase (LIVE, HALTING, CLEANUP, DRAINING). */
  get phase(): number {
    return (this.state & PHASE_MASK) >> PHASE_SHIFT;
  }

  private setPhase(p: number): void {
    this.state = (this.state & ~PHASE_MASK) | (p << PHASE_SHIFT);
  }

  /** True once someone polled the handle (a failure is then not reported as unobserved). */
  get observed(): boolean {
    return (this.state & OBSERVED) !== 0;
  }
  set observed(v: boolean) {
    if (v) this.state |= OBSERVED;
    else this.state &= ~OBSERVED;
  }

  private get x(): TaskExt {
    return (this.ext ??= new TaskExt());
  }

  /** Set when COMPLETE without a value: a JoinError (cancelled or failed); else null. */
  get error(): JoinError | null {
    return this.ext === null ? null : this.ext.error;
  }
  set error(e: JoinError | null) {
    if (e !== null || this.ext !== null) this.x.error = e;
  }

  /** The name given at spawn, or null. */
  get name(): string | null {
    return this.ext === null ? null : this.ext.name;
  }
  set name(v: string | null) {
    this.x.name = v;
  }

  /** Where it was spawned (a captured stack), when the runtime records spawn sites. */
  get site(): { stack?: string } | null {
    return this.ext === null ? null : this.ext.site;
  }
  set site(v: { stack?: string } | null) {
    this.x.site = v;
  }

  /** Called once when it settles (hosted roots, toPromise); typed loosely so Task stays covariant. */
  get onDone(): ((task: Task<unknown>) => void) | null {
    return this.ext === null ? null : this.ext.onDone;
  }
  set onDone(v: ((task: Task<unknown>) => void) | null) {
    this.x.onDone = v;
  }

  /** CLEANUP: the cleanup its cancelled future left. */
  get cleanup(): Future<void> | null {
    return this.ext === null ? null : this.ext.cleanup;
  }

  get halting(): boolean {
    return (this.state & (ABORTED | PHASE_MASK)) !== 0;
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
    const s0 = this.state;
    this.state = (s0 & ~SCHEDULED) | RUNNING;
    if ((s0 & PHASE_MASK) !== 0) return this.runPhase();
    let out: Poll<T>;
    try {
      out = this.future!.poll(this);
    } catch (err) {
      this.state &= ~RUNNING;
      return this.threw(err);
    }
    const s = this.state & ~RUNNING;
    this.state = s;
    if (out !== PENDING) return this.returned(out);
    if ((s & ABORTED) !== 0) {
      haltTree(this);
      return this.requeue();
    }
    // Woken while running (a self-wake or yieldNow): back on the queue.
    if ((s & SCHEDULED) !== 0) this.scheduler.enqueue(this as Task<unknown>);
  }

  /** Its future threw: halt what is left below, then settle failed (cancelled if a halt came). */
  private threw(err: unknown): void {
    if (unclaimed.length !== 0) this.scheduler.sweep(this as Task<unknown>);
    this.future = null;
    this.drainThen(undefined, (this.state & ABORTED) !== 0 ? new JoinError("cancelled", this.id) : new JoinError("failed", this.id, err));
    this.requeue();
  }

  /**
   * Its future returned: a root drains its children; any other task leaves them to its
   * parent. Cleanups handed out in this last poll are adopted first, so they are waited for.
   */
  private returned(value: T): void {
    if (unclaimed.length !== 0) this.scheduler.sweep(this as Task<unknown>);
    this.future = null;
    if ((this.state & ROOT) !== 0) {
      this.drainThen(value, null);
      return this.requeue();
    }
    if (this.firstChild !== null) adoptChildren(this, this.parent);
    this.settle(value, null);
  }

  /** Woken during a poll that moved it to another phase: keep "SCHEDULED ⇒ queued". */
  private requeue(): void {
    if ((this.state & (SCHEDULED | COMPLETE)) === SCHEDULED) this.scheduler.enqueue(this as Task<unknown>);
  }

  /** A poll outside LIVE: wait for children, drive the cleanup, or settle. */
  private runPhase(): void {
    const phase = this.phase;
    if (phase === HALTING) {
      if (!hasTasks(this)) this.cancelOwn();
    } else if (phase === CLEANUP) {
      const r = this.ext!.cleanup!.poll(this); // a Cleanup reports its own errors, never throws
      if (unclaimed.length !== 0) this.scheduler.sweep(this as Task<unknown>);
      if (r !== PENDING) this.afterCleanup();
    } else if (!hasTasks(this)) this.settle(this.value, this.error); // DRAINING
    this.state &= ~RUNNING;
    this.requeue();
  }

  /** Its own future is done (or cancelled and cleaned up): halt what is left below, then settle. */
  private drainThen(value: T | undefined, error: JoinError | null): void {
    if (this.firstChild === null) return this.settle(value, error);
    this.value = value;
    this.error = error;
    this.setPhase(DRAINING);
    this.state |= INLINE;
    haltTree(this, false);
    this.state &= ~INLINE;
    if (!hasTasks(this)) this.settle(value, error);
  }

  /** Requests cancellation. See {@link JoinHandle.abort}. */
  abort(): void {
    if ((this.state & COMPLETE) !== 0) return;
    haltTree(this);
  }

  /** tree.ts, first pass of a halt. */
  requestHalt(): boolean {
    if ((this.state & (COMPLETE | PHASE_MASK | CLEANUP_TASK)) !== 0) return false;
    this.state |= ABORTED;
    return true;
  }

  /** tree.ts, second pass (its descendants have acted): cancel its future once they are gone. */
  proceedHalt(): void {
    if ((this.state & (RUNNING | COMPLETE | PHASE_MASK)) !== 0) return;
    this.setPhase(HALTING);
    if (!hasTasks(this)) this.cancelOwn();
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
      this.x.cleanup = c;
      this.setPhase(CLEANUP);
      this.wake();
      return;
    }
    this.afterCleanup();
  }

  private afterCleanup(): void {
    if (this.ext !== null) this.ext.cleanup = null;
    this.drainThen(undefined, new JoinError("cancelled", this.id));
  }

  /** tree.ts: a task under this one settled; a task waiting for its children may move on. */
  childSettled(_child: Node): void {
    const s = this.state;
    if ((s & PHASE_MASK) !== 0 && (s & INLINE) === 0 && !hasTasks(this)) this.wake();
  }

  private settle(value: T | undefined, error: JoinError | null): void {
    // (`future` is already null: every path here dropped it first.)
    this.state = (this.state | COMPLETE) & ~SCHEDULED;
    this.value = value;
    if (error !== null || this.ext !== null) this.x.error = error;
    const p = this.parent;
    if (p !== null) {
      unlink(this);
      p.childSettled(this);
    } else this.scheduler.removeRoot(this);
    const w = this.joinWaker;
    if (w !== null) {
      this.joinWaker = null;
      w.wake();
    }
    const x = this.ext;
    if (x !== null) {
      x.cleanup = null;
      const done = x.onDone;
      if (done !== null) {
        x.onDone = null;
        done(this as Task<unknown>);
      }
      if (error !== null && (this.state & OBSERVED) === 0 && error.kind === "failed") this.scheduler.unobserved(this as Task<unknown>);
    }
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
    if (this.ext !== null) this.ext.cleanup = null;
    this.future = null;
    if (c !== null) c.cancel?.();
    else if (f !== null) cancelOf(f)?.cancel();
    this.settle(undefined, this.error ?? new JoinError("cancelled", this.id));
  }

  // JoinHandle: the task is its own handle.

  get isFinished(): boolean {
    return (this.state & COMPLETE) !== 0;
  }

  poll(cx: Context): Poll<T> {
    const s = this.state;
    if ((s & TAKEN) !== 0) throw new FutureStateError(`JoinHandle of task ${this.id} polled after completion`);
    if ((s & COMPLETE) === 0) {
      this.state = s | OBSERVED;
      this.joinWaker = cx.waker;
      return PENDING;
    }
    this.state = s | OBSERVED | TAKEN;
    const e = this.error;
    if (e !== null) throw e;
    return this.value as T;
  }

  /** Detaches: the task keeps running, nobody is woken for its result. */
  override cancel(): void {
    if (this.joinWaker !== null) this.joinWaker = null;
  }

  /** What a future awaiting this handle waits on (dumps): the task. */
  override describe(): string {
    return `join task #${this.id}${this.name !== null ? ` "${this.name}"` : ""}`;
  }

  /** What the task itself waits on, for dumps. */
  waitingOn(): string {
    const phase = this.phase;
    if (phase === LIVE) return describeFuture(this.future);
    if (phase === CLEANUP) return describeFuture(this.cleanup);
    if (phase === HALTING) return `its ${countTasks(this)} task(s) to halt before its own cleanup`;
    return `its ${countTasks(this)} task(s) to halt before it settles`;
  }
}

/**
 * Force-ends what is left under `main` after its blockOn failed and its cleanup could not
 * run: deepest first, every cleanup force-ended, every task settled, each reported.
 *
 * @example
 * ```ts
 * forceEndTree(main, (err, id) => rt.report(err, id, "cleanup"));
 * ```
 */
export function forceEndTree(main: Task<unknown>, report: (err: unknown, taskId: number) => void): void {
  const stack: Node[] = [main];
  const order: Node[] = [];
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    order.push(n);
    for (let c = n.firstChild; c !== null; c = c.nextSib) stack.push(c);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i]!;
    if (n instanceof Group) n.close();
    else if (n instanceof Task && !n.isComplete) {
      report(new RuntimeError(`Task ${n.id} was force-ended: blockOn() failed before its cleanup could finish`, "ECLEANUP"), n.id);
      n.forceEnd();
    }
  }
}

// A property of the prototype, not of every task (one store less per spawn).
(Task.prototype as { isTask: boolean }).isTask = true;


/**
 * scope(): the block form of structured concurrency (a nursery). Tasks spawned inside it
 * belong to it, and it does not end before they have:
 *
 *     const results = yield* scope(function* (s) {
 *       const a = s.spawn(fetchA());
 *       spawn(fetchB());            // a plain spawn() inside the body belongs to the scope too
 *       return yield* a;
 *     });                           // here every task spawned in the scope has finished
 *
 * - The body returns: the scope waits for every task under it (tasks adopted from its
 *   children included), then returns the body's value.
 * - The body throws, or a task under it fails: fail-fast, as tryJoin — the other tasks
 *   are halted (deepest first, each running its cleanup), then the body if it still runs
 *   (its `finally` blocks driven to the end), and the scope throws that error (the
 *   failure's cause, not a JoinError). A task under a scope is observed by it: its
 *   failure is the scope's, not reported as unobserved. A cancelled (aborted) task is no
 *   failure.
 * - The scope is cancelled (timeout, select, its task aborted): the same teardown, handed
 *   to the canceller as a cleanup future.
 *
 * The scope is a {@link Group} node of the task tree, linked under the task (or scope)
 * polling it; while the body is polled, `running.node` is the group, so `spawn()` in the
 * body attaches there.
 *
 * Must never: return or throw while a task under it runs, or report a failure it throws.
 */
import { BaseFuture, Cleanup, FutureStateError, PENDING, cancelOf, describeFuture, genOf, handOut, isFuture, type Context, type Future, type IntoFuture, type Poll } from "../future.ts";
import { running } from "../current.ts";
import { RuntimeError } from "../errors.ts";
import type { JoinHandle } from "./task.ts";
import { Group, type Node, type TreeHost } from "./tree.ts";

/**
 * What scope.ts needs from the runtime it runs on (the executor implements it).
 *
 * @example
 * ```ts
 * const host: ScopeHost = currentRuntime()!;
 * host.spawnIn(group, work());
 * ```
 */
export interface ScopeHost extends TreeHost {
  /** Where a spawn from the code running now attaches. */
  attachNode(): Node | null;
  /** Spawns `fut` as a task under `parent`. */
  spawnIn<T>(parent: Node, fut: IntoFuture<T>, opts?: { name?: string }): JoinHandle<T>;
}

let hostOf: (() => ScopeHost | null) | null = null;

/**
 * @internal Tells scope() how to find the running runtime (the executor does, on load:
 * this module must not import it).
 *
 * @example
 * ```ts
 * setScopeHost(() => currentRuntime());
 * ```
 */
export function setScopeHost(fn: () => ScopeHost | null): void {
  hostOf = fn;
}

/**
 * The running runtime, as a ScopeHost; RuntimeError ENORUNTIME outside one.
 *
 * @example
 * ```ts
 * const host = scopeHost("serve()");
 * ```
 */
export function scopeHost(what: string): ScopeHost {
  const h = hostOf?.() ?? null;
  if (h === null) throw new RuntimeError(`${what} must run inside a reel runtime (blockOn, run, or a task they run)`, "ENORUNTIME");
  return h;
}

/**
 * Waits until a group has no task left, then closes it: the cleanup of a scope or a
 * serve() that was cancelled after its tasks were halted. Force-ended, it hands the tasks
 * still ending to the group's parent (which then waits for them).
 *
 * @example
 * ```ts
 * group.haltAll();
 * return group.liveTasks === 0 ? group.close() : handOut(new GroupDrain(group, null));
 * ```
 */
export class GroupDrain extends Cleanup {
  constructor(
    private readonly group: Group,
    /** Also driven before the group is waited for: the body's cleanup (scope). */
    private first: Cleanup | null,
  ) {
    super();
  }
  protected step(cx: Context): Poll<void> {
    if (this.first !== null) {
      if (this.first.poll(cx) === PENDING) return PENDING;
      this.first = null;
      this.group.haltAll(); // what the body's cleanup spawned
    }
    const g = this.group;
    if (g.liveTasks > 0) {
      g.waker = cx.waker;
      return PENDING;
    }
    g.close();
    return undefined;
  }
  protected abandon(): void {
    this.first?.cancel();
    this.first = null;
    this.group.dissolve();
  }
  override describe(): string {
    return `${this.group.label}: ${this.first !== null ? `${describeFuture(this.first)}, then ` : ""}${this.group.liveTasks} task(s) to halt`;
  }
}

/**
 * The handle a scope body receives: `spawn` into the scope.
 *
 * @example
 * ```ts
 * yield* scope(function* (s) { s.spawn(work(), { name: "worker" }); });
 * ```
 */
export class Scope {
  /** @internal */
  group: Group | null = null;
  /** @internal */
  host: ScopeHost | null = null;

  /** Spawns a task that belongs to this scope (as `spawn()` inside the body does). */
  spawn<T>(fut: IntoFuture<T>, opts?: { name?: string }): JoinHandle<T> {
    if (this.group === null || this.host === null || this.group.isGone) {
      throw new RuntimeError("This scope is not running: spawn into it only while its body runs", "ESCOPE");
    }
    return this.host.spawnIn(this.group, fut, opts);
  }

  /** Tasks under the scope now. */
  get size(): number {
    return this.group?.liveTasks ?? 0;
  }
}

const BODY = 0; // polling the body
const WAIT = 1; // the body returned: waiting for the tasks
const FAIL = 2; // failing: halting the tasks, then the body, then throwing
const DONE = 3;

class ScopeFuture<T> extends BaseFuture<T> {
  private phase = BODY;
  private value: T | undefined = undefined;
  private error: unknown = undefined;
  /** FAIL: the body's cleanup, driven once the tasks are gone. */
  private bodyCleanup: Cleanup | null = null;
  private bodyDone = false;

  constructor(
    private readonly handle: Scope,
    private readonly body: Future<T>,
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.phase === DONE) throw new FutureStateError("scope() future polled after completion");
    let g = this.handle.group;
    if (g === null) {
      const host = scopeHost("scope()");
      g = new Group(host, host.attachNode(), "scope", true);
      this.handle.group = g;
      this.handle.host = host;
    }
    g.waker = cx.waker;
    if (this.phase === BODY) {
      if (g.failed) this.fail(g.failure);
      else {
        const prev = running.node;
        running.node = g;
        let r: Poll<T>;
        try {
          r = this.body.poll(cx);
        } catch (err) {
          running.node = prev;
          this.bodyDone = true;
          this.fail(err);
          return this.pollFail(cx, g);
        }
        running.node = prev;
        if (r === PENDING) {
          if (!g.failed) return PENDING;
          this.fail(g.failure);
        } else {
          this.bodyDone = true;
          this.value = r;
          this.phase = WAIT;
        }
      }
    }
    if (this.phase === WAIT) {
      if (g.failed) this.fail(g.failure);
      else if (g.liveTasks > 0) return PENDING;
      else {
        this.phase = DONE;
        g.close();
        const v = this.value as T;
        this.value = undefined;
        return v;
      }
    }
    return this.pollFail(cx, g);
  }

  private fail(err: unknown): void {
    this.phase = FAIL;
    this.error = err;
    this.handle.group!.haltAll();
  }

  /** FAIL: tasks halted → the body cancelled and cleaned up → leftovers halted → throw. */
  private pollFail(cx: Context, g: Group): Poll<T> {
    g.waker = cx.waker;
    if (g.liveTasks > 0 && this.bodyCleanup === null) return PENDING;
    if (!this.bodyDone) {
      this.bodyDone = true;
      this.bodyCleanup = this.cancelBody();
      if (this.bodyCleanup === null) g.haltAll(); // what its (synchronous) finally spawned
    }
    if (this.bodyCleanup !== null) {
      if (this.bodyCleanup.poll(cx) === PENDING) return PENDING;
      this.bodyCleanup = null;
      g.haltAll();
    }
    if (g.liveTasks > 0) return PENDING;
    this.phase = DONE;
    g.close();
    throw this.error;
  }

  /** Cancels the body with the group as the running node (spawns in its finally attach here). */
  private cancelBody(): Cleanup | null {
    const prev = running.node;
    running.node = this.handle.group;
    try {
      return cancelOf(this.body);
    } finally {
      running.node = prev;
    }
  }

  /** The same teardown as a failure, without the error; handed to the canceller. */
  override cancel(): Cleanup | void {
    if (this.phase === DONE) return;
    const g = this.handle.group;
    this.phase = DONE;
    if (g === null) {
      // Never polled: no task was spawned; a body that never ran leaves nothing to wait for.
      const c = cancelOf(this.body);
      return c === null ? undefined : handOut(c);
    }
    g.haltAll();
    let first = this.bodyCleanup;
    this.bodyCleanup = null;
    if (!this.bodyDone) {
      this.bodyDone = true;
      if (g.liveTasks === 0) {
        first = this.cancelBody();
        if (first === null) g.haltAll(); // what its (synchronous) finally spawned
      } else first = new DeferredCancel(this);
    }
    if (first === null && g.liveTasks === 0) {
      g.close();
      return;
    }
    return handOut(new GroupDrain(g, first));
  }

  /** @internal DeferredCancel: the body's cancel, once the tasks are gone. */
  cancelBodyNow(): Cleanup | null {
    return this.cancelBody();
  }

  /** @internal DeferredCancel waits for the tasks: wake it when the last one settles. */
  registerWaker(cx: Context): void {
    const g = this.handle.group;
    if (g !== null) g.waker = cx.waker;
  }

  /** @internal */
  get liveTasks(): number {
    return this.handle.group?.liveTasks ?? 0;
  }

  override describe(): string {
    const n = this.handle.group?.liveTasks ?? 0;
    if (this.phase === BODY) return `scope (${n} task(s)) → ${describeFuture(this.body)}`;
    if (this.phase === WAIT) return `scope: body done, waiting for ${n} task(s)`;
    return `scope (failing): ${n} task(s) to halt${this.bodyCleanup !== null ? ` → ${describeFuture(this.bodyCleanup)}` : ""}`;
  }
}

/**
 * The body's cancel, deferred until the scope's tasks have halted (deepest first): then
 * the body is cancelled and its cleanup driven.
 */
class DeferredCancel extends Cleanup {
  private inner: Cleanup | null = null;
  private started = false;
  constructor(private readonly scope: ScopeFuture<unknown>) {
    super();
  }
  protected step(cx: Context): Poll<void> {
    if (!this.started) {
      if (this.scope.liveTasks > 0) {
        this.scope.registerWaker(cx);
        return PENDING;
      }
      this.started = true;
      this.inner = this.scope.cancelBodyNow();
    }
    if (this.inner !== null && this.inner.poll(cx) === PENDING) return PENDING;
    this.inner = null;
    return undefined;
  }
  protected abandon(): void {
    if (!this.started) {
      this.started = true;
      this.inner = this.scope.cancelBodyNow();
    }
    this.inner?.cancel();
    this.inner = null;
  }
}

/**
 * Runs `body` as a nursery: tasks spawned in it (with `s.spawn`, or `spawn()` inside the
 * body) belong to it; it returns the body's value once they have all finished, and fails
 * fast — halting the rest — when the body or one of them fails. See the module header.
 *
 * @example
 * ```ts
 * import { scope, sleep } from "reel";
 * const total = yield* scope(function* (s) {
 *   const a = s.spawn(function* () { yield* sleep(10); return 1; });
 *   const b = s.spawn(function* () { yield* sleep(20); return 2; });
 *   return (yield* a) + (yield* b); // 3; a failure in either halts the other and throws here
 * });
 * ```
 */
export function scope<T>(body: (s: Scope) => Generator<unknown, T, unknown> | Future<T>): BaseFuture<T> {
  if (typeof body !== "function") throw new TypeError(`scope() expects a generator function (s) => …, got ${body === null ? "null" : typeof body}`);
  const handle = new Scope();
  const r = body(handle);
  const fut: Future<T> = isFuture(r) ? (r as Future<T>) : genOf(r as Generator<unknown, T, unknown>, body);
  return new ScopeFuture(handle, fut);
}

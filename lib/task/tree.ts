/**
 * Lifetimes as a tree: every task hangs under a parent node — the task that spawned it, a
 * scope()/serve() group inside that task, or nothing (a root: the task of `blockOn`/`run`,
 * or a task spawned from ordinary code). The rules the executor keeps with it:
 *
 * - A task that is cancelled or fails halts its running descendants, deepest first (each
 *   runs its cleanup), and settles after them ({@link haltTree}).
 * - A task that returns leaves its children running: they are adopted by its parent
 *   ({@link adoptChildren}); adopted into a node that is halting, they are halted at once.
 * - A root (`blockOn`, `run`) halts whatever is still under it when its future completes,
 *   and settles after that cleanup.
 * - A {@link Group} is a node owned by a future (scope(), serve()): its tasks are halted
 *   when that future fails or is cancelled; when it ends normally they are waited for
 *   (scope) or adopted by the group's parent (serve).
 *
 * Links are intrusive (parent, first child, siblings): spawning links in O(1) and
 * settling unlinks in O(1), nothing allocated, no counter touched when a task's parent is
 * a task (a task node is small: spawn+complete is a hot path). A halting task waits until
 * no *task* is linked under it ({@link hasTasks}: groups are linked but not waited for
 * there — a group's tasks are waited for by the group's future, inside the task's own
 * cleanup). A {@link Group} counts its tasks (`liveTasks`), since its owner asks often.
 *
 * Invariants: a node's children are live (a settled task is unlinked); a settled task has
 * no children; a node is linked under at most one parent. A settled task keeps its
 * `parent` pointer (unlinked), so an ancestor can still be found for what it left behind.
 *
 * Must never: recurse over the tree (a 100 000-deep chain must halt without overflowing the
 * stack), cancel a node twice, or halt a task that is already ending (cleaning up).
 */
import type { Waker } from "../future.ts";
import type { TreeNodeRef } from "../current.ts";

/** What a node needs from the runtime it lives on (the executor implements it). */
export interface TreeHost {
  /** A node lost its parent (its parent returned and had none): it is now a root. */
  addRoot(node: Node): void;
  /** A root node left the tree. */
  removeRoot(node: Node): void;
}

/**
 * A node of the task tree: a task (lib/task/task.ts) or a {@link Group}. An interface,
 * not a base class: a Task extends JoinHandle (it is its own handle: one allocation per
 * spawn), so the tree's fields are declared by each kind of node.
 *
 * @example
 * ```ts
 * for (let c = node.firstChild; c !== null; c = c.nextSib) if (c.isTask) console.log(c.taskId);
 * ```
 */
export interface Node extends TreeNodeRef {
  /** The node this one is linked under; kept (unlinked) after a task settles. */
  parent: Node | null;
  firstChild: Node | null;
  prevSib: Node | null;
  nextSib: Node | null;
  /** True for tasks. */
  readonly isTask: boolean;
  /** The runtime this node lives on. */
  readonly host: TreeHost;
  /** The id of this task, or of the task this group belongs to (0 for a detached group). */
  readonly taskId: number;
  /** True while the node is being torn down: children adopted here are halted at once. */
  readonly halting: boolean;
  /** True once the node left the tree for good. */
  readonly isGone: boolean;
  /** A task linked under this node settled (it is unlinked already). */
  childSettled(child: Node): void;
  /**
   * First pass of {@link haltTree}: marks the node; false when it is already halting,
   * ending or done (its subtree is then left alone).
   */
  requestHalt(): boolean;
  /** Second pass of {@link haltTree}, deepest first: act on the halt. */
  proceedHalt(): void;
}

/**
 * Links `child` as the first child of `parent`.
 *
 * @example
 * ```ts
 * link(parentTask, task); // first in parentTask's children
 * ```
 */
export function link(parent: Node, child: Node): void {
  child.parent = parent;
  child.prevSib = null;
  const first = parent.firstChild;
  child.nextSib = first;
  if (first !== null) first.prevSib = child;
  parent.firstChild = child;
  if (!parent.isTask && child.isTask) {
    const g = parent as Group;
    g.liveTasks++;
    // A fail-fast group (scope) observes its tasks: their failure is the scope's to throw.
    if (g.failFast) (child as unknown as { observed: boolean }).observed = true;
  }
}

/**
 * True when a task is linked directly under `n` (groups skipped). O(1) unless groups
 * come first in the list.
 *
 * @example
 * ```ts
 * if (!hasTasks(task)) task.cancelOwn();
 * ```
 */
export function hasTasks(n: Node): boolean {
  for (let c = n.firstChild; c !== null; c = c.nextSib) if (c.isTask) return true;
  return false;
}

/**
 * The tasks linked directly under `n` (groups not counted), for dumps.
 *
 * @example
 * ```ts
 * console.log(`${countTasks(task)} children`);
 * ```
 */
export function countTasks(n: Node): number {
  let k = 0;
  for (let c = n.firstChild; c !== null; c = c.nextSib) if (c.isTask) k++;
  return k;
}

/**
 * Unlinks `child` from its parent's children; keeps `child.parent` (see the module header).
 *
 * @example
 * ```ts
 * unlink(task); // at settle
 * ```
 */
export function unlink(child: Node): void {
  const p = child.parent;
  if (p === null) return;
  const prev = child.prevSib;
  const next = child.nextSib;
  if (prev !== null) prev.nextSib = next;
  else if (p.firstChild === child) p.firstChild = next;
  else return; // not linked here (already unlinked)
  if (next !== null) next.prevSib = prev;
  child.prevSib = null;
  child.nextSib = null;
  if (!p.isTask && child.isTask) (p as Group).liveTasks--;
}

/**
 * Moves every child of `from` under `to` (a task that returned: its parent adopts its
 * children). With `to` null the children become roots. Children adopted by a node that is
 * halting are halted at once.
 *
 * @example
 * ```ts
 * adoptChildren(task, task.parent); // before settling a task that returned
 * ```
 */
export function adoptChildren(from: Node, to: Node | null): void {
  let c = from.firstChild;
  if (c === null) return;
  from.firstChild = null;
  if (!from.isTask) (from as Group).liveTasks = 0;
  const halt = to !== null && to.halting;
  const moved: Node[] | null = halt ? [] : null;
  while (c !== null) {
    const next: Node | null = c.nextSib;
    c.prevSib = null;
    c.nextSib = null;
    if (to !== null) link(to, c);
    else {
      c.parent = null;
      c.host.addRoot(c);
    }
    moved?.push(c);
    c = next;
  }
  if (moved !== null) for (const m of moved) haltTree(m);
}

/**
 * Halts `start` (unless `self` is false) and every node below it, deepest first: the first
 * pass marks the subtree (skipping nodes already ending), the second acts on it in reverse
 * order, so a node acts only after every descendant has (tasks whose cleanup is
 * asynchronous are then waited for by their halting parent). Iterative: no recursion.
 *
 * @example
 * ```ts
 * haltTree(task);          // JoinHandle.abort()
 * haltTree(task, false);   // a failed task halts what it spawned
 * ```
 */
export function haltTree(start: Node, self = true): void {
  const order: Node[] = [];
  const stack: Node[] = [];
  if (self) stack.push(start);
  else for (let c = start.firstChild; c !== null; c = c.nextSib) stack.push(c);
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    if (!n.requestHalt()) continue;
    order.push(n);
    for (let c = n.firstChild; c !== null; c = c.nextSib) stack.push(c);
  }
  for (let i = order.length - 1; i >= 0; i--) order[i]!.proceedHalt();
}

/**
 * The nearest node at or above `n` that is still in the tree (a settled task's ancestors
 * may have settled too), or null.
 *
 * @example
 * ```ts
 * const parent = liveAncestor(cleanup.owner as Node) ?? runtime.fallbackRoot;
 * ```
 */
export function liveAncestor(n: Node | null): Node | null {
  for (let x = n; x !== null; x = x.parent) if (!x.isGone) return x;
  return null;
}

/**
 * A node owned by a future — scope()'s nursery, serve()'s connections — grouping the tasks
 * spawned into it. Its owner stores its waker in `waker`; the group wakes it when a task
 * under it settles (and, with `failFast`, records the first failure).
 *
 * @example
 * ```ts
 * const g = new Group(host, currentNode, "scope", true);
 * rt.spawnUnder(g, work());
 * // … later, in the owner's poll:
 * if (g.failed) throw g.failure;
 * if (g.liveTasks === 0) g.close();
 * ```
 */
export class Group implements Node {
  parent: Node | null = null;
  firstChild: Node | null = null;
  prevSib: Node | null = null;
  nextSib: Node | null = null;
  readonly isTask = false;
  /** Tasks linked directly under the group. */
  liveTasks = 0;
  /** The owner future's waker: woken when a task under the group settles. */
  waker: Waker | null = null;
  /** failFast: set by the first task under the group that failed. */
  failed = false;
  /** The first failure's cause. */
  failure: unknown = undefined;
  private haltRequested = false;
  private closed = false;

  constructor(
    readonly host: TreeHost,
    parent: Node | null,
    /** For dumps: "scope", "serve 127.0.0.1:7000". */
    readonly label: string,
    /** A task that fails halts the group (scope's fail-fast). */
    readonly failFast: boolean,
  ) {
    if (parent !== null) link(parent, this);
    else host.addRoot(this);
  }

  get taskId(): number {
    for (let x = this.parent; x !== null; x = x.parent) if (x.isTask) return x.taskId;
    return 0;
  }

  get halting(): boolean {
    return this.haltRequested;
  }

  get isGone(): boolean {
    return this.closed;
  }

  childSettled(child: Node): void {
    if (this.failFast && !this.failed) {
      const err = (child as { error?: { isFailed(): boolean; cause?: unknown } | null }).error;
      if (err != null && err.isFailed()) {
        this.failed = true;
        this.failure = err.cause;
        this.wakeOwner();
        return;
      }
    }
    if (this.liveTasks === 0) this.wakeOwner();
  }

  requestHalt(): boolean {
    if (this.closed) return false;
    this.haltRequested = true;
    return true;
  }

  proceedHalt(): void {}

  /** Halts every task under the group, deepest first; later arrivals are halted too. */
  haltAll(): void {
    haltTree(this);
  }

  /** The owner ended normally and leaves its tasks running: the group's parent adopts them. */
  dissolve(): void {
    if (this.closed) return;
    adoptChildren(this, this.parent);
    this.close();
  }

  /** Leaves the tree (the owner is done and no task is left under it). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waker = null;
    if (this.firstChild !== null) adoptChildren(this, this.parent);
    if (this.parent !== null) unlink(this);
    else this.host.removeRoot(this);
  }

  private wakeOwner(): void {
    const w = this.waker;
    this.waker = null;
    w?.wake();
  }
}

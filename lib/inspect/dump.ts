/**
 * runtime.dump(): a snapshot of the task tree — every task, its parent, its state and
 * what it waits on — as data, and as an indented tree by `String(dump)`.
 *
 * "What it waits on" comes from the futures themselves: `Future.describe()` (lib/future.ts).
 * The generator adapter and the combinators forward to what they poll ("echo → timeout
 * 5000 ms → read fd 9"); leaves name their resource (a timer and its deadline, a channel,
 * a lock, a task). A future without `describe()` shows its class name.
 *
 * Built iteratively (a 100 000-deep chain of tasks dumps without overflowing the stack).
 *
 * Must never: change the tree or any task, or be called on a hot path.
 */
import type { Runtime } from "../executor.ts";
import { spawnSite, taskName } from "./names.ts";
import { CLEANUP, CLEANUP_TASK, COMPLETE, DRAINING, HALTING, ROOT, RUNNING, SCHEDULED, Task } from "../task/task.ts";
import { Group, type Node } from "../task/tree.ts";

/**
 * One node of the tree in a {@link RuntimeDump}.
 *
 * @example
 * ```ts
 * for (const t of rt.dump().tasks) console.log(t.id, t.state, t.waitingOn);
 * ```
 */
export interface TaskSnapshot {
  /** "task", or "group" for a scope()/serve() node grouping tasks inside a task. */
  kind: "task" | "group";
  /** The task id (0 for a group). */
  id: number;
  /** The name given at spawn, the generator function's name, or a group's label. */
  name: string | null;
  /** The id of the task above (through groups), or null for a root. */
  parent: number | null;
  /**
   * "running" (being polled now), "scheduled" (in the run queue), "waiting", "halting"
   * (cancelled, waiting for its tasks to halt), "cleaning up" (driving its cleanup),
   * "draining" (its future is done; waiting for its tasks to halt), "group".
   */
  state: string;
  /** True for blockOn's and run()'s tasks. */
  root: boolean;
  /** What it waits on (see the module header). */
  waitingOn: string;
  /** Where it was spawned, when the runtime records spawn sites. */
  spawnedAt: string | null;
  children: TaskSnapshot[];
}

/**
 * What `runtime.dump()` returns: the roots of the tree; `toString()` renders it.
 *
 * @example
 * ```ts
 * const d = rt.dump();
 * console.log(`${d.count} tasks`);
 * console.log(String(d));
 * ```
 */
export interface RuntimeDump {
  backend: string;
  /** Tasks in the tree (groups not counted). */
  count: number;
  tasks: TaskSnapshot[];
  toString(): string;
}

function taskState(t: Task<unknown>): string {
  if ((t.state & COMPLETE) !== 0) return "done";
  if (t.phase === HALTING) return "halting";
  if (t.phase === CLEANUP) return "cleaning up";
  if (t.phase === DRAINING) return "draining";
  if ((t.state & RUNNING) !== 0) return "running";
  if ((t.state & SCHEDULED) !== 0) return "scheduled";
  return "waiting";
}

function snapshot(n: Node, parent: number | null): TaskSnapshot {
  if (n instanceof Task) {
    const cleanup = (n.state & CLEANUP_TASK) !== 0;
    return {
      kind: "task",
      id: n.id,
      name: cleanup ? "cleanup" : taskName(n),
      parent,
      state: taskState(n),
      root: (n.state & ROOT) !== 0,
      waitingOn: n.waitingOn(),
      spawnedAt: spawnSite(n),
      children: [],
    };
  }
  const g = n as Group;
  return {
    kind: "group",
    id: 0,
    name: g.label ?? "group",
    parent,
    state: "group",
    root: false,
    waitingOn: `${g.liveTasks} task(s)`,
    spawnedAt: null,
    children: [],
  };
}

/**
 * Takes the snapshot (runtime.dump()).
 *
 * @example
 * ```ts
 * const d = dumpTree(rt);
 * ```
 */
export function dumpTree(rt: Runtime): RuntimeDump {
  const tasks: TaskSnapshot[] = [];
  let count = 0;
  const stack: [Node, TaskSnapshot[], number | null][] = [];
  for (const r of rt.roots) stack.push([r, tasks, null]);
  for (let e = stack.pop(); e !== undefined; e = stack.pop()) {
    const [n, into, parent] = e;
    const s = snapshot(n, parent);
    if (s.kind === "task") count++;
    into.push(s);
    const up = s.kind === "task" ? s.id : parent;
    for (let c = n.firstChild; c !== null; c = c.nextSib) stack.push([c, s.children, up]);
  }
  sortTree(tasks);
  return {
    backend: rt.backend,
    count,
    tasks,
    toString: () => render(rt.backend, count, tasks),
  };
}

/** Oldest first (ids grow with time); groups after tasks at each level. Iterative. */
function sortTree(roots: TaskSnapshot[]): void {
  const stack = [roots];
  for (let l = stack.pop(); l !== undefined; l = stack.pop()) {
    l.sort((a, b) => (a.kind === b.kind ? a.id - b.id : a.kind === "task" ? -1 : 1));
    for (const s of l) if (s.children.length > 0) stack.push(s.children);
  }
}

function line(s: TaskSnapshot): string {
  if (s.kind === "group") return `[${s.name}] ${s.waitingOn}`;
  const name = s.name !== null ? ` "${s.name}"` : "";
  const root = s.root ? " (root)" : "";
  const site = s.spawnedAt !== null ? `  (spawned at ${s.spawnedAt})` : "";
  return `#${s.id}${name}${root} ${s.state} → ${s.waitingOn}${site}`;
}

function render(backend: string, count: number, roots: TaskSnapshot[]): string {
  const out = [`reel runtime (${backend}): ${count} task(s)`];
  const stack: [TaskSnapshot, string, boolean][] = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push([roots[i]!, "", i === roots.length - 1]);
  for (let e = stack.pop(); e !== undefined; e = stack.pop()) {
    const [s, prefix, last] = e;
    out.push(`${prefix}${last ? "└─ " : "├─ "}${line(s)}`);
    const inner = prefix + (last ? "   " : "│  ");
    for (let i = s.children.length - 1; i >= 0; i--) stack.push([s.children[i]!, inner, i === s.children.length - 1]);
  }
  return out.join("\n");
}

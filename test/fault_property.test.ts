// Fault suite, a randomized property test of the executor, on every backend: random
// interleavings of spawn / wake / abort (cancel) / timer ops, from outside the runtime and
// from inside running tasks, checked step by step against a reference model of the
// executor (FIFO run queue, SCHEDULED de-duplication, at most POLLS_PER_TICK polls per tick
// with completed tasks skipped, abort semantics, unobserved failures) and of the task
// tree: a task spawned inside a task is its child; an abort halts the whole subtree
// deepest first (a task still running when its ancestor is halted ends when its poll
// returns, and the ancestor waits for it); a task that fails halts its children before it
// settles; a task that returns leaves them to its parent. Timer firings depend
// on the clock, so they are read from the real run and fed to the model, which checks them
// (only a sleeping task, never early, never after cancel). At the end every task must have
// finished (liveness) with the result the model predicts, and no timer may be left.
//
// Seeded and reproducible: a failure names its seed; REEL_SEED=n replays that run
// (REEL_PROPERTY_RUNS sets how many seeds each backend tries, default 60).
import { expect, test } from "bun:test";
import { PENDING, POLLS_PER_TICK, Runtime, sleep, type Backend, type Context, type JoinHandle, type Poll, type Waker } from "../lib/index.ts";
import { BaseFuture } from "../lib/future.ts";
import { now } from "../lib/time/clock.ts";
import type { Sleep } from "../lib/time/sleep.ts";
import { forEachBackend } from "./helpers.ts";
import { Rng, seedFromEnv } from "./fault_util.ts";

const RUNS = Number(process.env.REEL_PROPERTY_RUNS ?? 60);
const OPS = 120;
const SEED = seedFromEnv();

/** One step of a task's script, executed by its polls in order. */
type Step =
  | { k: "park" } // store the waker, PENDING; the next poll goes on
  | { k: "yield" } // wake self, PENDING
  | { k: "sleep"; ms: number } // PENDING until a timer of `ms` fired
  | { k: "wake"; target: number } // wake another task (if it was ever polled), go on
  | { k: "abort"; target: number } // abort a task (maybe itself), go on
  | { k: "spawn"; script: Step[] } // spawn a new task, go on
  | { k: "done"; value: number }
  | { k: "throw" };

function randomScript(rng: Rng, tasks: number, depth = 0): Step[] {
  const steps: Step[] = [];
  for (let n = rng.int(0, 5); n > 0; n--) {
    const r = rng.u32() % 100;
    const target = rng.int(0, tasks); // `tasks` itself names the task being made
    if (r < 25) steps.push({ k: "park" });
    else if (r < 45) steps.push({ k: "yield" });
    else if (r < 63) steps.push({ k: "sleep", ms: rng.int(0, 2) });
    else if (r < 80) steps.push({ k: "wake", target });
    else if (r < 90) steps.push({ k: "abort", target });
    else if (depth < 2) steps.push({ k: "spawn", script: randomScript(rng, tasks, depth + 1) });
  }
  steps.push(rng.chance(0.1) ? { k: "throw" } : { k: "done", value: rng.int(0, 1000) });
  return steps;
}

type Result = { kind: "value"; value: number } | { kind: "failed" } | { kind: "cancelled" };

/** The system under test's side: scripted futures, their handles, and the event log. */
class Harness {
  readonly handles: JoinHandle<number>[] = [];
  readonly wakers: (Waker | null)[] = [];
  constructor(
    readonly rt: Runtime,
    /** Events in the order they happened: "poll i", "cancel i", "fire i", "fail i". */
    readonly log: string[],
  ) {}

  spawn(script: Step[]): void {
    const id = this.handles.length;
    this.wakers.push(null);
    this.handles.push(this.rt.spawn(new Scripted(this, id, script)));
  }
}

class Scripted extends BaseFuture<number> {
  private pc = 0;
  private timer: Sleep | null = null;
  private timerAt = 0;
  private timerMs = 0;
  /** The timer's waker: logs the firing, then wakes the task. */
  private readonly timerCx: Context;

  constructor(
    private readonly h: Harness,
    private readonly id: number,
    private readonly script: Step[],
  ) {
    super();
    const self = this;
    this.timerCx = {
      waker: {
        wake() {
          h.log.push(`fire ${id}`);
          if (now() < self.timerAt + self.timerMs) h.log.push(`EARLY ${id}`);
          h.wakers[id]!.wake();
        },
      },
    };
  }

  poll(cx: Context): Poll<number> {
    const h = this.h;
    h.log.push(`poll ${this.id}`);
    h.wakers[this.id] = cx.waker;
    for (;;) {
      const s = this.script[this.pc]!;
      switch (s.k) {
        case "park":
          this.pc++;
          return PENDING;
        case "yield":
          this.pc++;
          cx.waker.wake();
          return PENDING;
        case "sleep":
          if (this.timer === null) {
            this.timerAt = now(); // before sleep() reads the clock: the deadline is ≥ this + ms
            this.timerMs = s.ms;
            this.timer = sleep(s.ms);
          }
          if (this.timer.poll(this.timerCx) === PENDING) return PENDING;
          this.timer = null;
          this.pc++;
          continue;
        case "wake":
          h.wakers[s.target]?.wake();
          this.pc++;
          continue;
        case "abort":
          h.handles[s.target]?.abort();
          this.pc++;
          continue;
        case "spawn":
          h.spawn(s.script);
          this.pc++;
          continue;
        case "done":
          return s.value;
        case "throw":
          throw new Error(`task ${this.id} fails on purpose`);
      }
    }
  }

  override cancel(): void {
    this.h.log.push(`cancel ${this.id}`);
    this.timer?.cancel();
  }
}

/** The model's view of one task. */
interface MTask {
  id: number;
  script: Step[];
  pc: number;
  scheduled: boolean;
  running: boolean;
  aborted: boolean;
  complete: boolean;
  polled: boolean;
  /** In a sleep step whose timer has not fired yet. */
  sleeping: boolean;
  fired: boolean;
  result: Result | null;
  /** The task that spawned it (null: spawned from outside, a root). */
  parent: MTask | null;
  /** Live children, newest first (the executor links a child at the head). */
  children: MTask[];
  /** "live", or "halting": aborted, waiting for its children before its own cancel. */
  phase: "live" | "halting";
}

/** The reference model of the executor and its task tree (lib/task/tree.ts, task.ts). */
class Model {
  readonly tasks: MTask[] = [];
  readonly queue: MTask[] = [];
  readonly log: string[] = [];
  /** The task being polled (where a spawn step attaches). */
  private current: MTask | null = null;

  spawn(script: Step[]): void {
    const parent = this.current;
    const t: MTask = { id: this.tasks.length, script, pc: 0, scheduled: true, running: false, aborted: false, complete: false, polled: false, sleeping: false, fired: false, result: null, parent, children: [], phase: "live" };
    if (parent !== null) parent.children.unshift(t);
    this.tasks.push(t);
    this.queue.push(t);
  }

  /** A wake through the task's own waker (the harness has one once it was polled). */
  wake(t: MTask | undefined): void {
    if (t === undefined || !t.polled) return;
    this.rawWake(t);
  }

  /** Task.wake(): SCHEDULED de-duplication; a running task is queued when its poll returns. */
  private rawWake(t: MTask): void {
    if (t.scheduled || t.complete) return;
    t.scheduled = true;
    if (!t.running) this.queue.push(t);
  }

  abort(t: MTask | undefined): void {
    if (t === undefined || t.complete) return;
    this.haltTree(t, true);
  }

  private halting(t: MTask): boolean {
    return t.aborted || t.phase !== "live";
  }

  /** tree.ts haltTree: mark in pre-order (a stack), act in reverse: deepest first. */
  private haltTree(start: MTask, self: boolean): void {
    const order: MTask[] = [];
    const stack: MTask[] = self ? [start] : [...start.children];
    for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
      if (n.complete || n.phase !== "live") continue;
      n.aborted = true;
      order.push(n);
      for (const c of n.children) stack.push(c);
    }
    for (let i = order.length - 1; i >= 0; i--) this.proceedHalt(order[i]!);
  }

  private proceedHalt(t: MTask): void {
    if (t.running || t.complete || t.phase !== "live") return;
    t.phase = "halting";
    if (t.children.length === 0) this.cancelOwn(t);
  }

  /** Its future is cancelled (Scripted.cancel logs it); nothing is left to clean up. */
  private cancelOwn(t: MTask): void {
    this.log.push(`cancel ${t.id}`);
    t.sleeping = false;
    this.drainThen(t, { kind: "cancelled" });
  }

  private drainThen(t: MTask, r: Result): void {
    if (t.children.length > 0) this.haltTree(t, false);
    if (t.children.length === 0) this.settle(t, r);
  }

  private returned(t: MTask, r: Result): void {
    if (t.children.length > 0) {
      const to = t.parent;
      const moved = t.children;
      t.children = [];
      for (const c of moved) {
        c.parent = to;
        if (to !== null) to.children.unshift(c);
      }
      if (to !== null && this.halting(to)) for (const c of moved) this.haltTree(c, true);
    }
    this.settle(t, r);
  }

  private settle(t: MTask, r: Result): void {
    t.complete = true;
    t.scheduled = false;
    t.result = r;
    const p = t.parent;
    if (p !== null) {
      p.children.splice(p.children.indexOf(t), 1);
      if (p.phase !== "live" && p.children.length === 0) this.rawWake(p);
    }
    if (r.kind === "failed") this.log.push(`fail ${t.id}`);
  }

  /** A timer fired in the real run: check it, then wake. */
  fire(id: number): string | null {
    const t = this.tasks[id];
    if (t === undefined || t.complete || !t.sleeping || t.fired) return `timer of task ${id} fired while it was not sleeping`;
    t.fired = true;
    this.wake(t);
    return null;
  }

  /** One batch: at most POLLS_PER_TICK queue entries (completed ones are skipped but count). */
  batch(): void {
    for (let i = 0; i < POLLS_PER_TICK; i++) {
      const t = this.queue.shift();
      if (t === undefined) return;
      if (t.complete) continue;
      this.poll(t);
    }
  }

  private poll(t: MTask): void {
    t.scheduled = false;
    if (t.phase === "halting") {
      // Task.runPhase: waiting for its children; once they are gone, its own cancel.
      t.running = true;
      if (t.children.length === 0) this.cancelOwn(t);
      t.running = false;
      if (t.scheduled && !t.complete) this.queue.push(t);
      return;
    }
    t.running = true;
    t.polled = true;
    this.log.push(`poll ${t.id}`);
    this.current = t;
    const out = this.run(t);
    this.current = null;
    t.running = false;
    if (out !== null && out.kind === "failed") {
      // Its future threw: nothing to cancel; a halt requested meanwhile makes it cancelled.
      this.drainThen(t, t.aborted ? { kind: "cancelled" } : out);
    } else if (out !== null) {
      this.returned(t, out); // a value is kept even when a halt came during the poll
    } else if (t.aborted) {
      this.haltTree(t, true);
    }
    // A task woken during its poll is queued when the poll returns (unless it settled).
    if (t.scheduled && !t.complete) this.queue.push(t);
  }

  /** Runs script steps until one returns; null = PENDING. */
  private run(t: MTask): Result | null {
    for (;;) {
      const s = t.script[t.pc]!;
      switch (s.k) {
        case "park":
          t.pc++;
          return null;
        case "yield":
          t.pc++;
          this.wake(t);
          return null;
        case "sleep":
          if (!t.sleeping) {
            t.sleeping = true;
            t.fired = false;
          }
          if (!t.fired) return null;
          t.sleeping = false;
          t.pc++;
          continue;
        case "wake":
          this.wake(this.tasks[s.target]);
          t.pc++;
          continue;
        case "abort":
          this.abort(this.tasks[s.target]);
          t.pc++;
          continue;
        case "spawn":
          this.spawn(s.script);
          t.pc++;
          continue;
        case "done":
          return { kind: "value", value: s.value };
        case "throw":
          return { kind: "failed" };
      }
    }
  }

  get allComplete(): boolean {
    return this.tasks.every((t) => t.complete);
  }
}

/** Checks the real events against the model's; timer firings are fed to the model. */
function compare(h: Harness, m: Model, what: string): void {
  const real = h.log;
  const predicted = m.log;
  const head = real.slice(0, predicted.length);
  if (JSON.stringify(head) !== JSON.stringify(predicted)) {
    throw new Error(`${what}: the executor did [${real.join(", ")}], the model predicted [${predicted.join(", ")}]`);
  }
  for (const e of real.slice(predicted.length)) {
    const [kind, id] = e.split(" ") as [string, string];
    if (kind !== "fire") throw new Error(`${what}: unexpected event "${e}" after [${predicted.join(", ")}]`);
    const err = m.fire(Number(id));
    if (err !== null) throw new Error(`${what}: ${err}`);
  }
  if (h.rt.queued !== m.queue.length) throw new Error(`${what}: ${h.rt.queued} queued, the model has ${m.queue.length}`);
  real.length = 0;
  predicted.length = 0;
}

/** One seeded run on a fresh runtime: random ops, then a drain that must finish every task. */
function runOnce(backend: Backend, seed: number): void {
  const log: string[] = [];
  const rt = new Runtime({ backend, onTaskError: (_e, id) => log.push(`fail ${id - firstId}`) });
  // Task ids are process-wide; the first task spawned here tells the offset.
  let firstId = -1;
  const rng = new Rng(seed);
  const h = new Harness(rt, log);
  const m = new Model();
  try {
    for (let op = 0; op < OPS; op++) {
      const r = rng.u32() % 100;
      const n = m.tasks.length;
      let what: string;
      if (r < 15 || n === 0) {
        // Mostly one task; sometimes a burst, so a tick has more than POLLS_PER_TICK to run.
        const k = rng.chance(0.1) ? rng.int(20, 80) : 1;
        what = `spawn ${k}`;
        for (let j = 0; j < k; j++) {
          const script = randomScript(rng, m.tasks.length);
          h.spawn(script);
          if (firstId < 0) firstId = h.handles[0]!.id;
          m.spawn(script);
        }
      } else if (r < 35) {
        const t = rng.int(0, n - 1);
        what = `wake ${t}`;
        h.wakers[t]?.wake();
        m.wake(m.tasks[t]);
      } else if (r < 45) {
        const t = rng.int(0, n - 1);
        what = `abort ${t}`;
        h.handles[t]!.abort();
        m.abort(m.tasks[t]);
      } else {
        what = "tick";
        rt.runTicks(1);
        m.batch();
      }
      compare(h, m, `op ${op} (${what})`);
    }
    // Drain: wake everything parked, let timers run, until every task has finished.
    for (let i = 0; i < 5000 && !m.allComplete; i++) {
      for (const t of m.tasks) {
        if (!t.complete && !t.sleeping && !t.scheduled && t.polled) {
          h.wakers[t.id]!.wake();
          m.wake(t);
        }
      }
      if (m.queue.length === 0 && rt.driver.wheel.size > 0) {
        rt.driver.turn(-1); // sleeps until the next timer: only firings happen
      } else {
        rt.runTicks(1);
        m.batch();
      }
      compare(h, m, `drain ${i}`);
    }
    if (!m.allComplete) throw new Error(`liveness: tasks ${m.tasks.filter((t) => !t.complete).map((t) => t.id).join(", ")} never finished`);
    checkResults(h, m);
    if (rt.driver.wheel.size !== 0) throw new Error(`${rt.driver.wheel.size} timer(s) left in the wheel`);
    if (rt.queued !== 0) throw new Error(`${rt.queued} task(s) left in the run queue`);
  } finally {
    rt.close();
  }
}

/** Every handle holds the result the model predicts. */
function checkResults(h: Harness, m: Model): void {
  const noop: Context = { waker: { wake() {} } };
  m.tasks.forEach((t, i) => {
    let got: Result;
    try {
      const v = h.handles[i]!.poll(noop);
      if (v === PENDING) throw new Error(`task ${i}: handle still pending`);
      got = { kind: "value", value: v };
    } catch (e) {
      const je = e as { isCancelled?: () => boolean };
      if (typeof je.isCancelled !== "function") throw e;
      got = je.isCancelled() ? { kind: "cancelled" } : { kind: "failed" };
    }
    if (JSON.stringify(got) !== JSON.stringify(t.result)) throw new Error(`task ${i}: result ${JSON.stringify(got)}, model ${JSON.stringify(t.result)}`);
  });
}

forEachBackend("fault: executor property", ({ backend }) => {
  test(`${RUNS} seeded runs of ${OPS} random spawn/wake/abort/timer ops match the reference model`, () => {
    let runs = 0;
    for (let r = 0; r < RUNS; r++) {
      const seed = (SEED + r) >>> 0;
      try {
        runOnce(backend, seed);
      } catch (e) {
        throw new Error(`[${backend}] REEL_SEED=${seed} REEL_PROPERTY_RUNS=1 reproduces this: ${(e as Error).message}`);
      }
      runs++;
    }
    expect(runs).toBe(RUNS);
  }, 60_000);
});

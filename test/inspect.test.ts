// Seeing inside (issue 11): task names and spawn sites, runtime.metrics(), runtime.dump()
// with what each task waits on, and the slow-poll detector.
import { afterAll, describe, expect, test } from "bun:test";
import {
  Mutex,
  Runtime,
  TcpListener,
  TcpStream,
  channel,
  currentRuntime,
  scope,
  sleep,
  spawn,
  yieldNow,
  type SlowPoll,
  type TaskSnapshot,
} from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";

function find(tasks: TaskSnapshot[], pred: (t: TaskSnapshot) => boolean): TaskSnapshot | null {
  const stack = [...tasks];
  for (let t = stack.pop(); t !== undefined; t = stack.pop()) {
    if (pred(t)) return t;
    stack.push(...t.children);
  }
  return null;
}

describe("inspection", () => {
  const rt = new Runtime({ spawnSites: true });
  afterAll(() => rt.close());

  test("dump() shows the tree: every task, its parent, its state and what it waits on", () => {
    const d = rt.blockOn(function* main() {
      const [, rx] = channel<number>(4);
      const lock = new Mutex(0);
      const held = lock.tryLock()!;
      const server = spawn(
        function* () {
          spawn(function* reader() {
            yield* rx.recv();
          }, { name: "reader" });
          spawn(function* locker() {
            yield* lock.lock();
          });
          yield* sleep(60_000);
        },
        { name: "server" },
      );
      const joiner = spawn(function* () {
        yield* server;
      }, { name: "joiner" });
      spawn(function* () {
        yield* scope(function* (s) {
          s.spawn(function* scoped() {
            yield* sleep(60_000);
          });
          yield* sleep(60_000);
        });
      }, { name: "with scope" });
      yield* sleep(1); // everyone parks
      const dump = currentRuntime()!.dump();
      server.abort();
      joiner.abort();
      held.release();
      return dump;
    });
    const root = d.tasks.find((t) => t.root)!;
    expect(root.name).toBe("main");
    expect(root.state).toBe("running"); // it is the task calling dump()
    const server = find(d.tasks, (t) => t.name === "server")!;
    expect(server.parent).toBe(root.id);
    expect(server.state).toBe("waiting");
    expect(server.waitingOn).toMatch(/sleep until \d+ ms \(in \d+ ms\)/);
    const reader = find(d.tasks, (t) => t.name === "reader")!;
    expect(reader.parent).toBe(server.id);
    expect(reader.waitingOn).toMatch(/reader → mpsc recv \(channel: 0 queued, 4 free, 1 sender\(s\)\)/);
    const locker = find(d.tasks, (t) => t.name === "locker")!;
    expect(locker.waitingOn).toMatch(/Mutex lock \(1 waiting, 0 free\)/);
    const joiner = find(d.tasks, (t) => t.name === "joiner")!;
    expect(joiner.waitingOn).toContain(`join task #${server.id} "server"`);
    const group = find(d.tasks, (t) => t.kind === "group")!;
    expect(group.name).toBe("scope");
    const scoped = find(d.tasks, (t) => t.name === "scoped")!;
    expect(group.children.map((c) => c.id)).toContain(scoped.id);
    expect(scoped.parent).toBe(find(d.tasks, (t) => t.name === "with scope")!.id);
    expect(server.spawnedAt).toMatch(/inspect\.test\.ts:\d+/);
    const text = String(d);
    expect(text).toMatch(/^reel runtime \(\w+\): \d+ task\(s\)/);
    expect(text).toContain(`#${server.id} "server" waiting → `);
    expect(text).toContain("[scope] 1 task(s)");
    expect(d.count).toBe(7); // main, server, reader, locker, joiner, with scope, scoped
  });

  test("metrics() counts tasks, polls, busy time and queue depth", () => {
    const before = rt.metrics();
    rt.blockOn(function* () {
      const hs = [];
      // 110 polls: more than one batch (POLLS_PER_TICK), so the tasks keep the thread busy
      // across a driver turn — the simulator charges that as virtual CPU time.
      for (let i = 0; i < 10; i++) hs.push(spawn(function* () {
        for (let j = 0; j < 10; j++) yield* yieldNow();
      }));
      const m = currentRuntime()!.metrics();
      expect(m.tasks.live).toBe(11); // 10 and blockOn's own
      expect(m.queueDepth).toBeGreaterThanOrEqual(10);
      for (const h of hs) yield* h;
      yield* sleep(1); // and a driver turn
    });
    const after = rt.metrics();
    expect(after.tasks.spawned - before.tasks.spawned).toBe(11);
    expect(after.tasks.live).toBe(0);
    expect(after.tasks.completed - before.tasks.completed).toBe(11);
    expect(after.polls - before.polls).toBeGreaterThanOrEqual(111);
    expect(after.busyMs).toBeGreaterThan(before.busyMs);
    expect(after.driver.turns).toBeGreaterThan(before.driver.turns);
  });

  test("spawn options are checked: a name must be a string", () => {
    rt.blockOn(function* () {
      expect(() => spawn(function* () {}, { name: 5 as never })).toThrow("spawn() option name must be a string, got number");
      const h = spawn(function* () {}, { name: "named" });
      expect(h.name).toBe("named");
      yield* h;
    });
    expect(() => new Runtime({ cleanupLimitMs: -1 })).toThrow(RangeError);
    expect(() => new Runtime({ slowPollMs: Number.NaN })).toThrow(RangeError);
  });
});

describe("the slow-poll detector", () => {
  test("a poll that blocks the thread past the threshold is reported with the task's name and spawn site", () => {
    const reports: SlowPoll[] = [];
    const rt = new Runtime({ slowPollMs: 30, spawnSites: true, onSlowPoll: (r) => reports.push(r) });
    try {
      rt.blockOn(function* () {
        const h = spawn(function* blocking() {
          yield* sleep(1);
          Bun.sleepSync(150); // the mistake: a blocking call inside async code
          yield* sleep(1);
        });
        yield* h;
        spawn(function* quick() {
          yield* sleep(1);
        });
        yield* sleep(5);
      });
    } finally {
      rt.close();
    }
    expect(reports.length).toBe(1);
    const r = reports[0]!;
    expect(r.name).toBe("blocking");
    expect(r.ms).toBeGreaterThanOrEqual(30);
    expect(r.thresholdMs).toBe(30);
    expect(r.spawnedAt).toMatch(/inspect\.test\.ts:\d+/);
    expect(r.waitingOn).toMatch(/blocking → sleep until/);
    expect(rt.metrics().slowPolls).toBe(1);
  });

  test("slowPollMs: 0 switches it off", () => {
    const reports: SlowPoll[] = [];
    const rt = new Runtime({ slowPollMs: 0, onSlowPoll: (r) => reports.push(r) });
    try {
      rt.blockOn(function* () {
        yield* sleep(1);
        Bun.sleepSync(80);
      });
    } finally {
      rt.close();
    }
    expect(reports).toEqual([]);
  });
});

forEachBackend("inspection: I/O", ({ run, backend, runtime }) => {
  test("driver metrics: turns, events, registrations, and on io_uring SQEs and CQEs per enter", () => {
    run(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
      const [s] = yield* l.accept();
      yield* c.writeAll(new Uint8Array([1, 2, 3]));
      yield* s.readExact(new Uint8Array(3));
      const m = runtime().metrics();
      expect(m.driver.turns).toBeGreaterThan(0);
      expect(m.driver.events).toBeGreaterThan(0);
      expect(m.driver.eventsPerTurn).toBeGreaterThan(0);
      if (backend === "uring" && m.driver.uring !== null) {
        expect(m.driver.uring.enters).toBeGreaterThan(0);
        expect(m.driver.uring.submitted).toBeGreaterThan(0);
        expect(m.driver.uring.sqesPerEnter).toBeGreaterThan(0);
        expect(m.driver.uring.inflight).toBeGreaterThanOrEqual(0);
      } else {
        expect(m.driver.registrations).toBeGreaterThanOrEqual(3);
        expect(m.driver.uring).toBeNull();
      }
      s.close();
      c.close();
      l.close();
    });
  });

  test("dump() names a task blocked on a socket read by its future (the I/O layer's description, or its class)", () => {
    run(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
      const [s] = yield* l.accept();
      const h = spawn(function* readsForever() {
        yield* s.read(new Uint8Array(8));
      });
      yield* sleep(1);
      const t = find(runtime().dump().tasks, (x) => x.id === h.id)!;
      expect(t.state).toBe("waiting");
      expect(t.waitingOn).toMatch(/^readsForever → \S+/);
      h.abort();
      s.close();
      c.close();
      l.close();
    });
  });
});

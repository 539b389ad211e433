// Cleanup runs to completion (issue 11): cancelling a generator-backed future resumes its
// finally blocks and drives what they yield until the generator finishes; whoever
// cancelled settles only after that. Plus the fs leak that motivated it, on every backend.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import {
  CancellationToken,
  Cleanup,
  JoinError,
  PENDING,
  Runtime,
  RuntimeError,
  TimeoutError,
  andThen,
  gen,
  join,
  map,
  pollFn,
  race,
  scope,
  select,
  sleep,
  spawn,
  timeout,
  tryJoin,
  withSignal,
  withToken,
  yieldNow,
  type Context,
  type Future,
  type Poll,
} from "../lib/index.ts";
import * as fs from "../lib/fs/index.ts";
import { forEachBackend } from "./helpers.ts";

/** A generator whose finally yields (an async cleanup) and then records that it finished. */
function slowCleanup(log: string[], name: string, ms = 5) {
  return function* () {
    try {
      yield* sleep(60_000);
    } finally {
      log.push(`${name}: cleanup started`);
      yield* sleep(ms);
      log.push(`${name}: cleanup done`);
    }
  };
}

describe("cleanup runs to completion", () => {
  const errors: [unknown, number, string][] = [];
  const rt = new Runtime({ onTaskError: (e, id, kind) => errors.push([e, id, kind]) });
  afterAll(() => rt.close());

  test("an aborted task's finally that yields sleep(5) sets its flag before the JoinHandle settles", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const h = spawn(slowCleanup(log, "task"));
      yield* yieldNow();
      h.abort();
      expect(h.isFinished).toBe(false); // the cleanup is still running
      const err = yield* catching(h);
      log.push("handle settled");
      expect(err).toBeInstanceOf(JoinError);
      expect((err as JoinError).isCancelled()).toBe(true);
    });
    expect(log).toEqual(["task: cleanup started", "task: cleanup done", "handle settled"]);
  });

  test("timeout() throws TimeoutError only after the inner generator's finally has finished", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const err = yield* catching(timeout(slowCleanup(log, "inner"), 2));
      log.push("timeout settled");
      expect(err).toBeInstanceOf(TimeoutError);
    });
    expect(log).toEqual(["inner: cleanup started", "inner: cleanup done", "timeout settled"]);
  });

  test("race() and select() return the winner only after every loser's cleanup has finished", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const v = yield* race(slowCleanup(log, "a"), function* () {
        yield* sleep(1);
        return "winner";
      }, slowCleanup(log, "b"));
      log.push(`race: ${v}`);
      const s = yield* select(sleep(1), slowCleanup(log, "c"));
      log.push(`select: ${s.index}`);
    });
    expect(log.filter((l) => l.endsWith("done")).length).toBe(2 + 1);
    expect(log.indexOf("race: winner")).toBeGreaterThan(log.indexOf("a: cleanup done"));
    expect(log.indexOf("race: winner")).toBeGreaterThan(log.indexOf("b: cleanup done"));
    expect(log.at(-1)).toBe("select: 0");
    expect(log.indexOf("select: 0")).toBeGreaterThan(log.indexOf("c: cleanup done"));
  });

  test("tryJoin() throws the first failure only after the rest's cleanup has finished", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const err = yield* catching(
        tryJoin(slowCleanup(log, "rest"), function* () {
          yield* sleep(1);
          throw new URIError("first failure");
        }),
      );
      log.push("tryJoin settled");
      expect(err).toBeInstanceOf(URIError);
    });
    expect(log).toEqual(["rest: cleanup started", "rest: cleanup done", "tryJoin settled"]);
  });

  test("withToken() and withSignal() throw the reason only after the inner cleanup has finished", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const token = new CancellationToken();
      const h = spawn(function* () {
        yield* sleep(1);
        token.cancel();
      });
      const e1 = yield* catching(withToken(slowCleanup(log, "token"), token));
      log.push(`withToken threw ${(e1 as Error).name}`);
      yield* h;
      const ac = new AbortController();
      spawn(function* () {
        yield* sleep(1);
        ac.abort(new RangeError("stop"));
      });
      const e2 = yield* catching(withSignal(slowCleanup(log, "signal"), ac.signal));
      log.push(`withSignal threw ${(e2 as Error).name}`);
    });
    expect(log).toEqual([
      "token: cleanup started",
      "token: cleanup done",
      "withToken threw CancelledError",
      "signal: cleanup started",
      "signal: cleanup done",
      "withSignal threw RangeError",
    ]);
  });

  test("map() and andThen() pass the inner cleanup on to whoever cancels them", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      yield* catching(timeout(map(slowCleanup(log, "map"), () => 1), 2));
      log.push("map timed out");
      yield* catching(timeout(andThen(ready0(), () => slowCleanup(log, "then")), 2));
      log.push("andThen timed out");
    });
    expect(log).toEqual(["map: cleanup started", "map: cleanup done", "map timed out", "then: cleanup started", "then: cleanup done", "andThen timed out"]);
  });

  test("deepest first: the awaited generator's cleanup finishes before the outer finally runs", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const outer = function* () {
        try {
          yield* gen(slowCleanup(log, "inner"));
        } finally {
          log.push("outer: finally");
          yield* sleep(1);
          log.push("outer: cleanup done");
        }
      };
      yield* catching(timeout(outer, 2));
      log.push("timeout settled");
    });
    expect(log).toEqual(["inner: cleanup started", "inner: cleanup done", "outer: finally", "outer: cleanup done", "timeout settled"]);
  });

  test("a cleanup nobody drives (cancel() called directly, its result ignored) is adopted: blockOn waits for it", () => {
    const log: string[] = [];
    const before = rt.metrics().cleanupsAdopted;
    rt.blockOn(function* () {
      const g = gen(slowCleanup(log, "ignored"));
      // Poll it by hand once (it parks on its 60 s sleep), as a hand-written future would.
      yield* pollFn((cx) => (g.poll(cx) === PENDING ? 0 : 1));
      const c = g.cancel(); // its finally starts; the cleanup it returns is ignored here
      expect(c).toBeInstanceOf(Cleanup);
      log.push("blockOn body returns");
    });
    log.push("blockOn returned");
    expect(log).toEqual(["ignored: cleanup started", "blockOn body returns", "ignored: cleanup done", "blockOn returned"]);
    expect(rt.metrics().cleanupsAdopted).toBe(before + 1);
  });

  test("a cleanup past cleanupLimitMs is reported as RuntimeError ECLEANUP and force-ended, and the canceller goes on", () => {
    const reported: [unknown, number, string][] = [];
    const own = new Runtime({ cleanupLimitMs: 20, onTaskError: (e, id, kind) => reported.push([e, id, kind]) });
    const log: string[] = [];
    try {
      own.blockOn(function* () {
        const h = spawn(function* stuck() {
          try {
            yield* sleep(60_000);
          } finally {
            log.push("finally started");
            try {
              yield* sleep(60_000); // a cleanup that never finishes on its own
              log.push("not reached");
            } finally {
              log.push("inner finally left");
            }
          }
        });
        yield* yieldNow();
        h.abort();
        const err = yield* catching(h);
        expect((err as JoinError).isCancelled()).toBe(true);
      });
    } finally {
      own.close();
    }
    expect(log).toEqual(["finally started", "inner finally left"]);
    expect(reported.length).toBe(1);
    const [err, , kind] = reported[0]!;
    expect(kind).toBe("cleanup");
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe("ECLEANUP");
    expect((err as Error).message).toMatch(/ran past the 20 ms limit/);
  });

  test("an error thrown by a finally during cleanup is reported; the TimeoutError still reaches the caller", () => {
    errors.length = 0;
    const err = rt.blockOn(function* () {
      return yield* catching(
        timeout(function* () {
          try {
            yield* sleep(60_000);
          } finally {
            yield* sleep(1);
            throw new EvalError("finally failed");
          }
        }, 2),
      );
    });
    expect(err).toBeInstanceOf(TimeoutError);
    expect(errors.length).toBe(1);
    expect(errors[0]![0]).toBeInstanceOf(EvalError);
    expect(errors[0]![2]).toBe("cleanup");
  });

  test("a combinator cancelled while it drives a cleanup hands the cleanup to its own canceller", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      // The inner timeout expires first and starts the 10 ms cleanup; the outer one then
      // cancels it mid-cleanup: the outer must still wait for that cleanup to finish.
      const err = yield* catching(timeout(timeout(slowCleanup(log, "inner", 10), 1), 3));
      log.push(`outer settled: ${(err as TimeoutError).ms}`);
    });
    expect(log).toEqual(["inner: cleanup started", "inner: cleanup done", "outer settled: 3"]);
  });

  test("join() cancelled drives every child's cleanup, together", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      yield* catching(timeout(join(slowCleanup(log, "x"), slowCleanup(log, "y")), 2));
      log.push("settled");
    });
    expect(log.slice(0, 2).sort()).toEqual(["x: cleanup started", "y: cleanup started"]);
    expect(log.at(-1)).toBe("settled");
    expect(log.filter((l) => l.endsWith("done")).length).toBe(2);
  });

  test("a user future's cancel() may return its own cleanup future, and it is driven", () => {
    let cleaned = false;
    rt.blockOn(function* () {
      class Custom implements Future<number> {
        poll(_cx: Context): Poll<number> {
          return PENDING;
        }
        cancel() {
          return gen(function* () {
            yield* sleep(1);
            cleaned = true;
          });
        }
      }
      yield* catching(timeout(new Custom(), 1));
      expect(cleaned).toBe(true);
    });
  });

  test("scope() cancelled halts its tasks and drives the body's finally before its canceller goes on", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      yield* catching(
        timeout(
          scope(function* (s) {
            s.spawn(slowCleanup(log, "child"));
            try {
              yield* sleep(60_000);
            } finally {
              log.push("body: finally");
              yield* sleep(1);
              log.push("body: cleanup done");
            }
          }),
          2,
        ),
      );
      log.push("settled");
    });
    expect(log).toEqual(["child: cleanup started", "child: cleanup done", "body: finally", "body: cleanup done", "settled"]);
  });
});

/** A future that is ready at once (andThen's first step). */
function ready0() {
  return gen(function* () {
    return 0;
  });
}

/** Runs `fut` and returns what it threw (or its value). */
function* catching(fut: Future<unknown> | (() => Generator<unknown, unknown, unknown>)): Generator<unknown, unknown, unknown> {
  try {
    return yield* (typeof fut === "function" ? gen(fut) : gen(function* () {
      return yield* asIterable(fut);
    }));
  } catch (e) {
    return e;
  }
}

function* asIterable(fut: Future<unknown>): Generator<unknown, unknown, unknown> {
  return yield fut;
}

// The leak that motivated the issue: readFile closes its file in a finally with yield*; a
// timeout used to abandon that close. Three rounds, on every backend, no descriptor left.
let dir = "";
let big = "";
beforeAll(async () => {
  await fs.startFsPool(); // the pool's Workers (and their fds) exist before any fd check
  dir = mkdtempSync(joinPath(tmpdir(), "reel-cleanup-"));
  big = joinPath(dir, "big.bin");
  writeFileSync(big, new Uint8Array(32 * 1024 * 1024));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

forEachBackend("cleanup: fs", ({ run, runtime }) => {
  test("timeout(fs.readFile(a 32 MB file), 2) three times leaves no descriptor open", () => {
    for (let i = 0; i < 3; i++) {
      let err: unknown = null;
      try {
        run(timeout(fs.readFile(big), 2));
      } catch (e) {
        err = e;
      }
      // It may finish in time on a fast machine; what matters is that nothing stays open.
      if (err !== null) expect(err).toBeInstanceOf(TimeoutError);
    }
    // On the readiness backends a cancelled read job cannot stop its blocking read on the
    // pool's Worker: it finishes there, and the pool releases its eventfd on the runtime's
    // next turn once no job is in flight (lib/driver/pool/pool.ts). Give it that turn;
    // bounded, and a no-op on io_uring. The file descriptors themselves are closed by then.
    run(function* () {
      for (let i = 0; i < 2000 && runtime().driver.pendingWork > 0; i++) yield* sleep(1);
    });
  });
}, { kernel: "real files" });

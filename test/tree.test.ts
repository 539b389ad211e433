// Lifetimes as a tree (issue 11): each rule of lib/task/tree.ts as a test named after it.
import { afterAll, describe, expect, test } from "bun:test";
import {
  JoinError,
  Runtime,
  TcpListener,
  TcpStream,
  run,
  scope,
  sleep,
  spawn,
  spawnDetached,
  timeout,
  now,
  unboundedChannel,
  yieldNow,
  type JoinHandle,
} from "../lib/index.ts";
import { serve } from "../lib/net/serve.ts";
import { forEachBackend } from "./helpers.ts";

/** A task body that parks for a minute and logs its cleanup (which yields, so it is async). */
function parked(log: string[], name: string) {
  return function* () {
    try {
      yield* sleep(60_000);
    } finally {
      yield* sleep(1);
      log.push(name);
    }
  };
}

function* settle(h: JoinHandle<unknown>): Generator<unknown, unknown, unknown> {
  try {
    return yield* h;
  } catch (e) {
    return e;
  }
}

describe("lifetimes as a tree", () => {
  const reported: [unknown, number, string][] = [];
  const rt = new Runtime({ onTaskError: (e, id, kind) => reported.push([e, id, kind]) });
  afterAll(() => rt.close());

  test("an aborted task halts its running descendants deepest first and its handle settles after their cleanup", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const top = spawn(function* () {
        spawn(function* () {
          spawn(parked(log, "grandchild"));
          yield* parked(log, "child")();
        });
        yield* parked(log, "top")();
      });
      yield* sleep(1); // everyone parked
      top.abort();
      const e = yield* settle(top);
      log.push("handle settled");
      expect((e as JoinError).isCancelled()).toBe(true);
    });
    expect(log).toEqual(["grandchild", "child", "top", "handle settled"]);
  });

  test("a task that fails halts its running children before its JoinHandle settles", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const h = spawn(function* () {
        spawn(parked(log, "child"));
        yield* sleep(1);
        throw new SyntaxError("parent fails");
      });
      const e = yield* settle(h);
      log.push("handle settled");
      expect((e as JoinError).isFailed()).toBe(true);
      expect((e as JoinError).cause).toBeInstanceOf(SyntaxError);
    });
    expect(log).toEqual(["child", "handle settled"]);
  });

  test("a task that returns leaves its children running: its parent adopts them", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      let child!: JoinHandle<string>;
      const h = spawn(function* () {
        child = spawn(function* () {
          yield* sleep(5);
          log.push("child finished");
          return "child";
        });
        return "parent";
      });
      expect(yield* h).toBe("parent");
      log.push("parent returned");
      expect(child.isFinished).toBe(false);
      expect(yield* child).toBe("child");
    });
    expect(log).toEqual(["parent returned", "child finished"]);
  });

  test("children a halting task adopts from a child that returns are halted at once", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      let inner!: JoinHandle<void>;
      const top = spawn(function* () {
        const mid = spawn(function* () {
          yield* sleep(2);
          inner = spawn(parked(log, "grandchild")); // spawned after the halt started…
          return; // …by a child that then returns: the halting parent adopts and halts it
        });
        try {
          yield* mid;
        } finally {
          yield* sleep(5);
          log.push("top");
        }
      });
      yield* sleep(1);
      top.abort(); // mid is halted first: it is cancelled during its sleep(2)
      yield* settle(top);
      log.push("settled");
      expect(inner).toBeUndefined(); // mid never reached the spawn: it was cancelled
    });
    expect(log).toEqual(["top", "settled"]);
  });

  test("blockOn halts what is still running under it when its future completes, waits for that cleanup, then returns", () => {
    const log: string[] = [];
    const v = rt.blockOn(function* () {
      spawn(parked(log, "child"));
      spawn(function* () {
        spawn(parked(log, "grandchild"));
        yield* sleep(60_000);
      });
      yield* sleep(1); // everyone has started (a task never polled has no finally to run)
      return "done";
    });
    log.push("blockOn returned");
    expect(v).toBe("done");
    expect(log.slice(0, 2).sort()).toEqual(["child", "grandchild"]);
    expect(log.at(-1)).toBe("blockOn returned");
    expect(rt.metrics().tasks.live).toBe(0);
  });

  test("blockOn whose future fails halts its tree too, then rethrows", () => {
    const log: string[] = [];
    expect(() =>
      rt.blockOn(function* () {
        spawn(parked(log, "child"));
        yield* yieldNow();
        throw new TypeError("main fails");
      }),
    ).toThrow(TypeError);
    expect(log).toEqual(["child"]);
  });

  test("run() halts what is left under its root before its Promise settles", async () => {
    const log: string[] = [];
    const own = new Runtime();
    const v = await run(
      function* () {
        spawn(parked(log, "child"));
        yield* yieldNow();
        return 7;
      },
      { runtime: own },
    );
    log.push("run resolved");
    expect(v).toBe(7);
    expect(log).toEqual(["child", "run resolved"]);
    own.close();
  });

  test("scope waits at its end for the tasks spawned in it, plain spawn() in its body included", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      const v = yield* scope(function* (s) {
        s.spawn(function* () {
          yield* sleep(3);
          log.push("a");
        });
        spawn(function* () {
          yield* sleep(6);
          log.push("b");
        });
        return "body";
      });
      log.push(`scope returned ${v}`);
    });
    expect(log).toEqual(["a", "b", "scope returned body"]);
  });

  test("a task that fails in a scope halts the rest and the body, and the scope throws its error (not reported as unobserved)", () => {
    const log: string[] = [];
    reported.length = 0;
    rt.blockOn(function* () {
      let err: unknown = null;
      try {
        yield* scope(function* (s) {
          s.spawn(parked(log, "sibling"));
          s.spawn(function* () {
            yield* sleep(1);
            throw new RangeError("one task fails");
          });
          try {
            yield* sleep(60_000);
          } finally {
            yield* sleep(1);
            log.push("body");
          }
        });
      } catch (e) {
        err = e;
      }
      log.push("scope threw");
      expect(err).toBeInstanceOf(RangeError);
    });
    expect(log).toEqual(["sibling", "body", "scope threw"]);
    expect(reported).toEqual([]);
  });

  test("a scope whose body throws halts its tasks, then throws the body's error", () => {
    const log: string[] = [];
    const err = rt.blockOn(function* () {
      try {
        yield* scope(function* (s) {
          s.spawn(parked(log, "task"));
          yield* yieldNow();
          throw new EvalError("body fails");
        });
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(EvalError);
    expect(log).toEqual(["task"]);
  });

  test("spawnDetached attaches to the root: halting its spawner leaves it running, and blockOn still halts it at the end", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      let detached!: JoinHandle<void>;
      const spawner = spawn(function* () {
        detached = spawnDetached(function* () {
          try {
            yield* sleep(60_000);
          } finally {
            yield* sleep(1);
            log.push("detached halted");
          }
        });
        spawn(parked(log, "attached halted"));
        yield* sleep(60_000);
      });
      yield* sleep(1);
      spawner.abort();
      yield* settle(spawner);
      log.push("spawner settled");
      expect(detached.isFinished).toBe(false);
    });
    log.push("blockOn returned");
    expect(log).toEqual(["attached halted", "spawner settled", "detached halted", "blockOn returned"]);
  });

  test("a child's failure nobody awaits stays isolated: it is reported, its parent keeps running", () => {
    reported.length = 0;
    const v = rt.blockOn(function* () {
      spawn(function* () {
        yield* yieldNow();
        throw new Error("isolated");
      });
      yield* sleep(2);
      return "parent went on";
    });
    expect(v).toBe("parent went on");
    expect(reported.length).toBe(1);
    expect((reported[0]![0] as Error).message).toBe("isolated");
    expect(reported[0]![2]).toBe("failed");
  });

  test("a 100 000-deep chain of tasks halts without overflowing the stack", () => {
    const N = 100_000;
    let made = 0;
    rt.blockOn(function* () {
      const link = (depth: number): (() => Generator<unknown, void, unknown>) =>
        function* () {
          made++;
          if (depth < N) spawn(link(depth + 1));
          yield* sleep(60_000);
        };
      const top = spawn(link(1));
      while (made < N) yield* yieldNow();
      top.abort();
      const e = yield* settle(top);
      expect((e as JoinError).isCancelled()).toBe(true);
    });
    expect(made).toBe(N);
    expect(rt.metrics().tasks.live).toBe(0);
  });

  test("aborting a task from inside one of its descendants halts it when that descendant's poll returns", () => {
    const log: string[] = [];
    rt.blockOn(function* () {
      let top!: JoinHandle<void>;
      top = spawn(function* () {
        spawn(function* () {
          yield* sleep(1);
          top.abort(); // the running task is below the one it aborts
          log.push("abort requested");
          yield* sleep(60_000);
        });
        yield* parked(log, "top cleaned up")();
      });
      yield* settle(top);
      log.push("settled");
    });
    expect(log).toEqual(["abort requested", "top cleaned up", "settled"]);
  });
});

forEachBackend("lifetimes: sockets", ({ run: runOn }) => {
  test("no socket outlives blockOn: a task left holding one is halted and its finally closes it", () => {
    let closed = false;
    const server = runOn(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const [connected, onConnect] = unboundedChannel<number>();
      spawn(function* () {
        const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
        connected.send(1);
        try {
          yield* s.read(new Uint8Array(16)); // never answered
        } finally {
          s.close();
          closed = true;
        }
      });
      const [server] = yield* l.accept();
      yield* onConnect.recv(); // the client holds its socket and reads
      l.close();
      return server; // with the client task still reading (nothing to read): blockOn halts it
    });
    expect(closed).toBe(true);
    server.close();
  });

  test("serve(): closing the listener completes it while its running connections go on (adopted by its task)", () => {
    runOn(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = l.localAddr.port;
      const server = spawn(
        serve(l, function* (s) {
          const b = new Uint8Array(1);
          for (let n; (n = yield* s.read(b)) > 0; ) yield* s.writeAll(b.subarray(0, n));
        }),
      );
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
      yield* c.writeAll(new Uint8Array([1]));
      yield* c.readExact(new Uint8Array(1));
      l.close();
      yield* server; // completes: the listener is closed
      yield* c.writeAll(new Uint8Array([2])); // the connection still echoes
      const b = new Uint8Array(1);
      yield* c.readExact(b);
      expect(b[0]).toBe(2);
      c.close();
    });
  });

  test("serve() with { signal }: aborting it halts every connection with its cleanup, then serve() returns", () => {
    const log: string[] = [];
    runOn(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const ac = new AbortController();
      const [started, handlers] = unboundedChannel<number>();
      const server = spawn(
        serve(
          l,
          function* conn(s) {
            started.send(1);
            try {
              yield* s.read(new Uint8Array(1));
            } finally {
              yield* sleep(1);
              log.push("connection cleaned up");
            }
          },
          { signal: ac.signal },
        ),
      );
      const port = l.localAddr.port;
      const clients = [yield* TcpStream.connect({ hostname: "127.0.0.1", port }), yield* TcpStream.connect({ hostname: "127.0.0.1", port })];
      yield* handlers.recv();
      yield* handlers.recv(); // both connections are being served
      ac.abort();
      yield* server; // returns normally (no throw)
      log.push("serve returned");
      for (const c of clients) {
        expect(yield* c.read(new Uint8Array(1))).toBe(0); // closed by serve()
        c.close();
      }
      l.close();
    });
    expect(log).toEqual(["connection cleaned up", "connection cleaned up", "serve returned"]);
  });

  test("timeout() around serve() halts its connections before the TimeoutError", () => {
    const log: string[] = [];
    runOn(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
      let err: unknown = null;
      try {
        yield* timeout(
          serve(l, function* (s) {
            try {
              yield* s.read(new Uint8Array(1));
            } finally {
              yield* sleep(1);
              log.push("cleaned up");
            }
          }),
          20,
        );
      } catch (e) {
        err = e;
      }
      log.push(`timeout: ${(err as Error).name}`);
      expect(yield* c.read(new Uint8Array(1))).toBe(0);
      c.close();
      l.close();
    });
    expect(log).toEqual(["cleaned up", "timeout: TimeoutError"]);
  });
});


describe("scope edge cases", () => {
  const rt = new Runtime();
  afterAll(() => rt.close());

  test("a task spawned by a scope body's finally while the scope fails is halted too, before the scope throws", () => {
    let late: JoinHandle<void> | null = null;
    const t0 = now();
    const err = rt.blockOn(function* () {
      try {
        yield* scope(function* (s) {
          s.spawn(function* () {
            yield* sleep(1);
            throw new Error("fail");
          });
          try {
            yield* sleep(60_000);
          } finally {
            late = spawn(function* () {
              yield* sleep(1000);
            }); // spawned by the body's own (synchronous) finally
          }
        });
      } catch (e) {
        expect(late!.isFinished).toBe(true);
        return e;
      }
    });
    expect((err as Error).message).toBe("fail");
    expect(now() - t0).toBeLessThan(500); // halted, not waited for (it sleeps 1 s)
  });

  test("a cancelled scope whose body's finally spawns a task halts that task before its canceller goes on", () => {
    let late: JoinHandle<void> | null = null;
    const t0 = now();
    rt.blockOn(function* () {
      let timedOut = false;
      try {
        yield* timeout(
          scope(function* () {
            try {
              yield* sleep(60_000);
            } finally {
              late = spawn(function* () {
                yield* sleep(1000);
              });
            }
          }),
          2,
        );
      } catch {
        timedOut = true;
        expect(late!.isFinished).toBe(true);
      }
      expect(timedOut).toBe(true);
    });
    expect(now() - t0).toBeLessThan(500); // halted, not waited for (it sleeps 1 s)
  });
});

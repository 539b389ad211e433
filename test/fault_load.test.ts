// Fault suite, load: thousands of concurrent connections on one reel echo server (run by
// serve()), every byte echoed back verified, on every backend. The clients run in a child
// process (test/fixtures/load_client.ts) so each process needs one fd per connection.
// 10,000 connections take 2–5 s per backend here, so CI runs the full size; on a machine
// whose hard RLIMIT_NOFILE cannot hold them the test is skipped and says why.
import { expect, test } from "bun:test";
import { TcpListener, gen, spawn, timeout } from "../lib/index.ts";
import { serve } from "../lib/net/serve.ts";
import { forEachBackend, simSkip } from "./helpers.ts";
import { Tracker, echoHandler, raiseNofile, readLine, readText, seedFromEnv, spawnFixture } from "./fault_util.ts";

const CONNS = Number(process.env.REEL_LOAD_CONNS ?? 10_000);
/** fds the test process needs: one per server connection plus Bun's own and the runtime's. */
const NEED = CONNS + 256;
const limit = raiseNofile();
const skip = limit < NEED;
const title = `${CONNS} concurrent connections on one echo server: all open at once, every byte verified` +
  (skip ? ` (skipped: RLIMIT_NOFILE hard limit ${limit} < ${NEED} needed)` : "");
if (skip) console.warn(`fault_load: ${title}`);

interface LoadResult {
  ok: number;
  failed: number;
  bytes: number;
  errors: string[];
}

forEachBackend("fault: load", ({ run, backend }) => {
  // The clients are a real child process: the simulator's own load test is test/sim_fault.test.ts.
  const onSim = simSkip(backend, title, "the clients run in a real child process over real sockets");
  test.skipIf(skip || onSim[0])(
    onSim[1],
    async () => {
      const seed = seedFromEnv();
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0, backlog: 4096 });
      const control = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const child = spawnFixture(
        "load_client.ts",
        [String(listener.localAddr.port), String(control.localAddr.port), String(CONNS), String(seed)],
        { REEL_BACKEND: backend },
      );
      const conns = new Tracker();
      const handlerErrors: unknown[] = [];
      let report: LoadResult | null = null;
      let failure: unknown = null;
      try {
        report = run(function* () {
          const server = spawn(serve(listener, conns.wrap(echoHandler(4096)), { onError: (e) => handlerErrors.push(e) }));
          const [c] = yield* timeout(control.accept(), 120_000);
          // "ready K": K clients connected. Only once the server has accepted all K does it
          // say "go": then every connection is open on the server at once, before any
          // client sends (and, done, closes).
          const ready = /^ready (\d+)$/.exec(yield* timeout(gen(() => readLine(c)), 120_000));
          if (ready === null) throw new Error("load client: no ready line");
          yield* timeout(gen(() => conns.accepted(Number(ready[1]))), 60_000);
          yield* c.writeAll(new TextEncoder().encode("go\n"));
          // The child reports once all its clients are done: bounded by its own 90 s timeout.
          const text = yield* readText(c);
          c.close();
          listener.close();
          yield* server; // completes once the listener is closed
          yield* timeout(gen(() => conns.drained()), 10_000);
          return JSON.parse(text) as LoadResult;
        });
      } catch (e) {
        failure = e;
        child.proc.kill();
      } finally {
        listener.close();
        control.close();
      }
      // Reap the child (and its pipes) on every path before judging.
      const { exit, stderr: errText } = await child.finish();
      if (failure !== null) throw failure;
      if (report === null) throw new Error("unreachable: no report and no failure");
      expect({ exit, errText, seed }).toEqual({ exit: 0, errText: "", seed });
      expect(report.errors).toEqual([]);
      expect(report.failed).toBe(0);
      expect(report.ok).toBe(CONNS);
      expect(conns.total).toBe(CONNS);
      expect(conns.peak).toBe(CONNS); // all of them open at once on the server
      expect(conns.live).toBe(0);
      expect(handlerErrors).toEqual([]);
    },
    150_000,
  );

});

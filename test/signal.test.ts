/**
 * Signals: streams of occurrences under blockOn (reel's handler, woken through the
 * driver) and in hosted mode (Bun's process.on), on every backend; forbidden signals;
 * cancel safety; the handler given back when the last stream closes and when reel stops
 * owning the thread; and the regression that ruled signalfd out — a process-directed
 * signal while Bun's other threads run must not kill the process.
 */
import { beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { PENDING, Runtime, ctrlC, run, signal, spawn, yieldNow, type Context, type SignalName } from "../lib/index.ts";
import { hubState, startSignals } from "../lib/signal/hub.ts";
import { SIGNALS } from "../ffi/signal.ts";
import * as proc from "../ffi/process.ts";
import { fdCount, fdTable, forEachBackend, kernelTest, opened } from "./helpers.ts";

const noop: Context = { waker: { wake() {} } };

beforeAll(() => {
  startSignals(); // the process-wide wake-up pipe exists before any fd check counts
});

/**
 * Waits (bounded) until no fd opened since `before` is left and the count has held still
 * for 50 ms: fds that Bun opens and closes on its own threads (a Worker's, a signal
 * listener's) must not change a later test's fd count under it.
 */
async function settleFds(before: Map<string, string>): Promise<void> {
  let stable = 0;
  for (let i = 0, last = -1; i < 300 && (opened(before, fdTable()).length > 0 || stable < 5); i++) {
    await new Promise((r) => setTimeout(r, 10));
    const n = fdCount();
    stable = n === last ? stable + 1 : 0;
    last = n;
  }
}

/** Sends `name` to this process (process-directed, as kill(1) does). */
function raise(name: string): void {
  expect(proc.kill(process.pid, SIGNALS[name]!)).toBe(0);
}

/** True when this process has a handler installed for `name` (/proc/self/status SigCgt). */
function caught(name: string): boolean {
  const line = /SigCgt:\s*([0-9a-f]+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]!;
  return (BigInt(`0x${line}`) >> BigInt(SIGNALS[name]! - 1)) % 2n === 1n;
}

test("signals that cannot be caught, and those Bun's runtime owns, are a RangeError; unknown names a TypeError", () => {
  for (const s of ["SIGKILL", "SIGSTOP", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL"]) expect(() => signal(s as SignalName)).toThrow(RangeError);
  expect(() => signal("SIGKILL" as SignalName)).toThrow("cannot be caught or ignored");
  expect(() => signal("SIGNOPE" as SignalName)).toThrow(TypeError);
  expect(() => signal(2 as unknown as SignalName)).toThrow(TypeError);
  expect(hubState().listeners).toBe(0);
});

forEachBackend("signals", ({ run: blockOn }) => {
  test("a stream receives each occurrence sent to the process, in blockOn", () => {
    const got = blockOn(function* () {
      using s = signal("SIGUSR1");
      expect(s.pollNext(noop)).toBe(PENDING); // listening from here
      const out: (string | null)[] = [];
      for (let i = 0; i < 3; i++) {
        raise("SIGUSR1");
        out.push(yield* s.recv());
      }
      return out;
    });
    expect(got).toEqual(["SIGUSR1", "SIGUSR1", "SIGUSR1"]);
    expect(hubState()).toEqual({ native: [], bun: [], pumpBound: false, listeners: 0 });
    expect(caught("SIGUSR1")).toBe(false); // the default action is back
  });

  test("two streams of one signal each see the occurrence; a third signal is not confused with it", () => {
    const got = blockOn(function* () {
      using a = signal("SIGUSR2");
      using b = signal("SIGUSR2");
      using c = signal("SIGHUP");
      expect(a.pollNext(noop)).toBe(PENDING);
      expect(b.pollNext(noop)).toBe(PENDING);
      expect(c.pollNext(noop)).toBe(PENDING);
      raise("SIGUSR2");
      const r = [yield* a.recv(), yield* b.recv()];
      expect(c.pollNext(noop)).toBe(PENDING);
      return r;
    });
    expect(got).toEqual(["SIGUSR2", "SIGUSR2"]);
  });

  test("a task waiting for a signal wakes when it arrives (the pump's registration keeps blockOn from a deadlock)", () => {
    const got = blockOn(function* () {
      const s = signal("SIGUSR1");
      const waiter = spawn(function* () {
        return yield* s.recv();
      });
      yield* yieldNow(); // the waiter is parked in recv()
      yield* yieldNow();
      raise("SIGUSR1");
      const v = yield* waiter;
      s.close();
      return v;
    });
    expect(got).toBe("SIGUSR1");
  });

  test("recv() is cancel-safe: an occurrence after a cancelled recv goes to the next one", () => {
    const got = blockOn(function* () {
      using s = signal("SIGUSR1");
      const first = s.recv();
      expect(first.poll(noop)).toBe(PENDING);
      first.cancel();
      raise("SIGUSR1");
      return yield* s.recv();
    });
    expect(got).toBe("SIGUSR1");
  });

  test("close() ends the stream: a pending recv resolves null, pollNext returns null (the end), the handler is given back", () => {
    const got = blockOn(function* () {
      const s = signal("SIGUSR2");
      const r = spawn(function* () {
        return yield* s.recv();
      });
      yield* yieldNow();
      expect(caught("SIGUSR2")).toBe(true);
      s.close();
      const v = yield* r;
      return [v, s.pollNext(noop) === null, caught("SIGUSR2")];
    });
    expect(got).toEqual([null, true, false]);
  });

  test("ctrlC() resolves on SIGINT and restores SIGINT's default action", () => {
    blockOn(function* () {
      const c = ctrlC();
      expect(c.poll(noop)).toBe(PENDING);
      expect(caught("SIGINT")).toBe(true);
      raise("SIGINT");
      yield* c;
    });
    expect(caught("SIGINT")).toBe(false);
  });

}, { kernel: "real signals" });

kernelTest(null, "real signals")("a signal sent while Bun's other threads run does not kill the process (why reel does not use signalfd; no fd check: the Workers' own fds go when they do)", async () => {
  const rt = new Runtime();
  const src = "self.onmessage = () => {}; postMessage(1); setInterval(() => { let x = 0; for (let i = 0; i < 1e6; i++) x += i; }, 1);";
  const url = URL.createObjectURL(new Blob([src]));
  const fdsBefore = fdTable();
  const workers = [0, 1, 2].map(() => new Worker(url));
  const closed = workers.map((w) => new Promise((r) => w.addEventListener("close", r)));
  await Promise.all(workers.map((w) => new Promise((r) => (w.onmessage = r))));
  try {
    const n = rt.blockOn(function* () {
      using s = signal("SIGTERM");
      expect(s.pollNext(noop)).toBe(PENDING);
      let got = 0;
      for (let i = 0; i < 100; i++) {
        raise("SIGTERM");
        if ((yield* s.recv()) === "SIGTERM") got++;
      }
      return got;
    });
    expect(n).toBe(100);
  } finally {
    for (const w of workers) w.terminate();
    rt.close();
    // The Workers' own fds go when they have really stopped: wait for that (bounded), so
    // no later test sees its fd count change under it.
    await Promise.all(closed);
    await settleFds(fdsBefore);
  }
});

test("when reel stops owning the thread, its handler is given back; a stream still open re-installs it in the next blockOn", async () => {
  const rt = new Runtime({ backend: "epoll" });
  try {
    const s = signal("SIGUSR1");
    rt.blockOn(function* () {
      expect(s.pollNext(noop)).toBe(PENDING);
    });
    expect(caught("SIGUSR1")).toBe(true); // nothing of Bun's loop ran yet
    await new Promise((r) => setImmediate(r));
    expect(caught("SIGUSR1")).toBe(false); // Bun's loop ran: the default action is back
    const got = rt.blockOn(function* () {
      expect(s.pollNext(noop)).toBe(PENDING);
      raise("SIGUSR1");
      return yield* s.recv();
    });
    expect(got).toBe("SIGUSR1");
    s.close();
    expect(caught("SIGUSR1")).toBe(false);
  } finally {
    rt.close();
  }
});

kernelTest(null, "real signals")("hosted mode: delivery goes through Bun's process.on, and the stream keeps the process alive while it waits", async () => {
  const before = fdTable();
  const got = await run(function* () {
    using s = signal("SIGUSR2");
    expect(s.pollNext(noop)).toBe(PENDING);
    expect(hubState().bun).toEqual(["SIGUSR2"]);
    setTimeout(() => raise("SIGUSR2"), 1); // sent from Bun's loop, between slices
    return yield* s.recv();
  });
  expect(got).toBe("SIGUSR2");
  expect(hubState()).toEqual({ native: [], bun: [], pumpBound: false, listeners: 0 });
  await settleFds(before);
});

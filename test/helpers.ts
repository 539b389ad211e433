/**
 * Test helpers: run a suite once per backend, and check that no fd leaks.
 *
 * `forEachBackend` runs the suite on every backend this machine can run (epoll, poll,
 * uring, …), or only on `REEL_BACKEND` when it is set — so one `bun test` covers them all
 * and `REEL_BACKEND=poll bun test` narrows to one. Each suite gets its own Runtime, made
 * before and closed after its tests; every test checks /proc/self/fd before and after.
 *
 * `REEL_BACKEND=sim` runs the suites on the simulator instead: the suite's title names the
 * seed (`tcp [sim seed=123]`, `REEL_SEED=123` replays it), each test gets a fresh
 * simulation with that seed (so a test replays alone), and the fd check becomes "no
 * simulated socket left open". With `REEL_SIM_CHECK=1` every `run(function* …)` runs twice,
 * on two simulations with the same seed, and fails at the first event where their traces
 * differ (the check is only meaningful for a body that builds its own state).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { readdirSync, readlinkSync } from "node:fs";
import { Runtime, currentRuntime, spawn, type IntoFuture } from "../lib/index.ts";
import { availableBackends, simSeed, type Backend } from "../lib/driver/index.ts";
import { SimDriver } from "../lib/driver/sim/driver.ts";
import { firstDivergence } from "../lib/driver/sim/trace.ts";

/** The backends the suites run on here. */
export function testBackends(): Backend[] {
  const env = process.env.REEL_BACKEND;
  if (env !== undefined && env !== "") return [env as Backend];
  return availableBackends();
}

/** Open fds of this process (Linux: /proc/self/fd; elsewhere /dev/fd). */
export function fdCount(): number {
  return readdirSync(process.platform === "linux" ? "/proc/self/fd" : "/dev/fd").length;
}

/** Open fds of this process with what each points at ("socket:[123]", "anon_inode:[eventpoll]"). */
export function fdTable(): Map<string, string> {
  const dir = process.platform === "linux" ? "/proc/self/fd" : "/dev/fd";
  const out = new Map<string, string>();
  for (const fd of readdirSync(dir)) {
    try {
      out.set(fd, readlinkSync(`${dir}/${fd}`));
    } catch {
      // The fd was closed between the listing and the readlink (the listing's own dir fd).
    }
  }
  return out;
}

/**
 * The fds open in `after` that were not open (as the same thing) in `before`: "fd target".
 * Files under /proc are not counted: reel never opens them, and Bun reads
 * /proc/self/statm on its own threads at any moment.
 */
export function opened(before: Map<string, string>, after: Map<string, string>): string[] {
  const d: string[] = [];
  for (const [fd, t] of after) if (before.get(fd) !== t && !t.startsWith("/proc/")) d.push(`${fd} ${t}`);
  return d;
}

/** What a suite body receives: a blockOn bound to this suite's runtime. */
export interface BackendCtx {
  backend: Backend;
  /** Runs a future on this suite's runtime. */
  run<T>(fut: IntoFuture<T>): T;
  runtime(): Runtime;
}

/** What a suite needs beyond what every backend offers. */
export interface SuiteOptions {
  /**
   * Why the suite needs the real kernel (real files, child processes, signals, raw fds):
   * on the simulator every test is skipped, with "[skipped on sim: why]" in the suite's title.
   */
  kernel?: string;
}

/**
 * Defines `describe(`${name} [${backend}]`)` for each backend, with a runtime per suite
 * and an fd-count check around each test. A suite the simulator cannot run names why in
 * `options.kernel`; a single such test uses {@link kernelTest}.
 */
export function forEachBackend(name: string, body: (ctx: BackendCtx) => void, options: SuiteOptions = {}): void {
  for (const backend of testBackends()) {
    if (backend === "sim") {
      if (options.kernel !== undefined) kernelSuite(name, options.kernel, body);
      else simSuite(name, body);
      continue;
    }
    describe(`${name} [${backend}]`, () => {
      let rt: Runtime | null = null;
      let fds = new Map<string, string>();
      beforeAll(() => {
        rt = new Runtime({ backend });
      });
      afterAll(() => {
        rt?.close();
        rt = null;
      });
      beforeEach(() => {
        fds = fdTable();
      });
      afterEach(async () => {
        // A leak is an fd the test opened and left open; compared as fd → target, so the
        // report says which fd and what it was. Fds that Bun itself opens and closes on its
        // own threads (it reads /proc/self/statm, closes idle fetch sockets) can show up
        // mid-flight: let Bun's loop turn once before judging, and do not count fds that
        // closed during the test (reel's own double-close risks are pinned by EBADF tests).
        let leaked = opened(fds, fdTable());
        if (leaked.length > 0) {
          await new Promise((r) => setImmediate(r));
          leaked = opened(fds, fdTable());
        }
        expect(leaked).toEqual([]);
      });
      body({
        backend,
        run: (fut) => rt!.blockOn(fut),
        runtime: () => rt!,
      });
    });
  }
}

/**
 * Runs `fut` as a task: the error it fails with (a task's error is its JoinError's
 * `cause`), or undefined when it succeeds.
 *
 * @example
 * ```ts
 * expect((yield* failure(lookup("nowhere"))) as LookupError).toMatchObject({ code: "ENOTFOUND" });
 * ```
 */
export function* failure(fut: IntoFuture<unknown>): Generator<unknown, unknown, unknown> {
  try {
    yield* spawn(fut);
  } catch (e) {
    return (e as { cause?: unknown }).cause ?? e;
  }
  return undefined;
}

/** True when `REEL_BACKEND=sim`: a suite can skip what cannot be meaningful there (saying why in the title). */
export const ON_SIM = process.env.REEL_BACKEND === "sim";

/**
 * For a test that cannot be meaningful on the simulator (a real child process, signals,
 * rlimits, libc on real fds): the title to give it — with " [skipped on sim: why]" added
 * there — and whether to skip. Never a silent skip.
 *
 * @example
 * ```ts
 * const [skip, title] = simSkip(backend, "EMFILE …", "a child process with a lowered RLIMIT_NOFILE");
 * test.skipIf(skip)(title, () => { … });
 * ```
 */
export function simSkip(backend: Backend | null, title: string, why: string): [boolean, string] {
  return (backend ?? (ON_SIM ? "sim" : null)) === "sim" ? [true, `${title} [skipped on sim: ${why}]`] : [false, title];
}

/**
 * `test` for tests that need the real kernel: on the simulator each is skipped, with
 * "[skipped on sim: why]" in its title (see simSkip). `backend` null: the default
 * runtime's (a test outside forEachBackend), the simulator when `REEL_BACKEND=sim`.
 *
 * @example
 * ```ts
 * const realFds = kernelTest(backend, "AsyncFd over real fds");
 * realFds("an eventfd: readable() waits …", () => { … });
 * ```
 */
export function kernelTest(backend: Backend | null, why: string): (title: string, fn: () => unknown, timeoutMs?: number) => void {
  return (title, fn, timeoutMs) => {
    const [skip, named] = simSkip(backend, title, why);
    (skip ? test.skip : test)(named, fn as () => void, timeoutMs);
  };
}

/** A suite the simulator cannot run: its tests, listed as skipped, with the reason in the title. */
function kernelSuite(name: string, why: string, body: (ctx: BackendCtx) => void): void {
  const refuse = (): never => {
    throw new Error(`${name}: not run on the simulator (${why})`);
  };
  describe.skip(`${name} [skipped on sim: ${why}]`, () => {
    body({ backend: "sim", run: refuse, runtime: refuse });
  });
}

/** The simulated sockets still open in `rt` (described), or [] on a real backend. */
export function simLeaks(rt: Runtime): string[] {
  return rt.driver instanceof SimDriver ? rt.driver.net.describeOpen() : [];
}

/**
 * forEachBackend on the simulator: one seed for the suite (REEL_SEED or a fresh one, in
 * the title), a fresh simulation per test, no simulated socket left open after a test.
 */
function simSuite(name: string, body: (ctx: BackendCtx) => void): void {
  const { seed } = simSeed();
  const check = process.env.REEL_SIM_CHECK === "1";
  describe(`${name} [sim seed=${seed}]`, () => {
    let rt: Runtime | null = null;
    let shadow: Runtime | null = null;
    let fds = new Map<string, string>();
    beforeEach(() => {
      fds = fdTable();
      rt = new Runtime({ backend: "sim", seed });
    });
    afterEach(() => {
      const leaked = simLeaks(rt!);
      rt!.close();
      rt = null;
      shadow?.close();
      shadow = null;
      expect(leaked).toEqual([]);
      expect(opened(fds, fdTable())).toEqual([]);
    });
    const run = <T>(fut: IntoFuture<T>): T => {
      if (!check || typeof fut !== "function") return rt!.blockOn(fut);
      // The same body on a second simulation with the same seed: the traces must agree.
      shadow ??= new Runtime({ backend: "sim", seed });
      let first: unknown = undefined;
      try {
        shadow.blockOn(fut);
      } catch (e) {
        first = e;
      }
      let out: T | undefined;
      let err: unknown = undefined;
      try {
        out = rt!.blockOn(fut);
      } catch (e) {
        err = e;
      }
      const d = firstDivergence((shadow.driver as SimDriver).trace, (rt!.driver as SimDriver).trace);
      if (d !== null) throw new Error(`REEL_SIM_CHECK (seed ${seed}): ${d.message}${first !== undefined ? `\nrun 1 failed: ${String(first)}` : ""}`);
      if (err !== undefined) throw err;
      return out as T;
    };
    body({
      backend: "sim",
      run,
      runtime: () => {
        const cur = currentRuntime();
        return cur !== null && cur === shadow ? shadow : rt!;
      },
    });
  });
}

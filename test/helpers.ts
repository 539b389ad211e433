/**
 * Test helpers: run a suite once per backend, and check that no fd leaks.
 *
 * `forEachBackend` runs the suite on every backend this machine can run (epoll, poll,
 * uring, …), or only on `REEL_BACKEND` when it is set — so one `bun test` covers them all
 * and `REEL_BACKEND=poll bun test` narrows to one. Each suite gets its own Runtime, made
 * before and closed after its tests; every test checks /proc/self/fd before and after.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect } from "bun:test";
import { readdirSync } from "node:fs";
import { Runtime, type IntoFuture } from "../lib/index.ts";
import { availableBackends, type Backend } from "../lib/driver/index.ts";

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

/** What a suite body receives: a blockOn bound to this suite's runtime. */
export interface BackendCtx {
  backend: Backend;
  /** Runs a future on this suite's runtime. */
  run<T>(fut: IntoFuture<T>): T;
  runtime(): Runtime;
}

/**
 * Defines `describe(`${name} [${backend}]`)` for each backend, with a runtime per suite
 * and an fd-count check around each test.
 */
export function forEachBackend(name: string, body: (ctx: BackendCtx) => void): void {
  for (const backend of testBackends()) {
    describe(`${name} [${backend}]`, () => {
      let rt: Runtime | null = null;
      let fds = 0;
      beforeAll(() => {
        rt = new Runtime({ backend });
      });
      afterAll(() => {
        rt?.close();
        rt = null;
      });
      beforeEach(() => {
        fds = fdCount();
      });
      afterEach(() => {
        expect(fdCount()).toBe(fds);
      });
      body({
        backend,
        run: (fut) => rt!.blockOn(fut),
        runtime: () => rt!,
      });
    });
  }
}

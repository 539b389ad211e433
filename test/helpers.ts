/**
 * Test helpers: run a suite once per backend, and check that no fd leaks.
 *
 * `forEachBackend` runs the suite on every backend this machine can run (epoll, poll,
 * uring, …), or only on `REEL_BACKEND` when it is set — so one `bun test` covers them all
 * and `REEL_BACKEND=poll bun test` narrows to one. Each suite gets its own Runtime, made
 * before and closed after its tests; every test checks /proc/self/fd before and after.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect } from "bun:test";
import { readdirSync, readlinkSync } from "node:fs";
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

/**
 * Defines `describe(`${name} [${backend}]`)` for each backend, with a runtime per suite
 * and an fd-count check around each test.
 */
export function forEachBackend(name: string, body: (ctx: BackendCtx) => void): void {
  for (const backend of testBackends()) {
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

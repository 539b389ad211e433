/**
 * When io_uring_setup fails (EPERM under kernel.io_uring_disabled, ENOSYS on a kernel
 * without io_uring), REEL_BACKEND=uring runs on epoll with a one-line notice instead of
 * crashing. Setup failure is simulated (simulateSetupFailure / REEL_URING_SIMULATE).
 */
import { describe, expect, test } from "bun:test";
import { EPERM } from "../ffi/errno.ts";
import { Runtime, TcpListener, TcpStream, sleep, spawn } from "../lib/index.ts";
import { UringDriver } from "../lib/driver/uring/driver.ts";
import { simulateSetupFailure } from "../lib/driver/uring/ring.ts";
import { fdCount } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Runs `code` in a fresh bun with `env` added; returns exit code, stdout, stderr lines. */
function runChild(code: string, env: Record<string, string>): { code: number; out: string; err: string[] } {
  const p = Bun.spawnSync({
    cmd: [process.execPath, "-e", code],
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const err = p.stderr.toString().split("\n").filter((l) => l.length > 0);
  return { code: p.exitCode ?? -1, out: p.stdout.toString().trim(), err };
}

const CHILD = `
import { Runtime, sleep } from "./lib/index.ts";
const names = [];
for (let i = 0; i < 2; i++) {
  const rt = new Runtime({ backend: "uring" });
  rt.blockOn(sleep(1));
  names.push(rt.driver.name);
  rt.close();
}
console.log(names.join(" "));
`;

describe("io_uring unavailable → epoll fallback", () => {
  test("a failing io_uring_setup (EPERM) gives a working epoll runtime: TCP echo and timers run", () => {
    const fds = fdCount();
    simulateSetupFailure(EPERM);
    let rt: Runtime;
    try {
      rt = new Runtime({ backend: "uring" });
    } finally {
      simulateSetupFailure(0);
    }
    try {
      expect(rt.driver instanceof UringDriver).toBe(false);
      expect(rt.driver.name).toBe("epoll");
      const echoed = rt.blockOn(function* () {
        const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
        const server = spawn(function* () {
          const [s] = yield* l.accept();
          const buf = new Uint8Array(16);
          const n = yield* s.read(buf);
          yield* s.writeAll(buf.subarray(0, n));
          s.close();
        });
        const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
        yield* c.writeAll(new TextEncoder().encode("fallback"));
        const buf = new Uint8Array(16);
        const n = yield* c.read(buf);
        yield* server;
        yield* sleep(2);
        c.close();
        l.close();
        return new TextDecoder().decode(buf.subarray(0, n));
      });
      expect(echoed).toBe("fallback");
    } finally {
      rt.close();
    }
    expect(fdCount()).toBe(fds);
  });

  test("the next runtime after the simulated failure is io_uring again", () => {
    const rt = new Runtime({ backend: "uring" });
    try {
      expect(rt.driver instanceof UringDriver).toBe(true);
    } finally {
      rt.close();
    }
  });

  for (const errno of ["EPERM", "ENOSYS"]) {
    test(`REEL_URING_SIMULATE=${errno}: the process runs on epoll and prints exactly one notice line`, () => {
      const r = runChild(CHILD, { REEL_BACKEND: "uring", REEL_URING_SIMULATE: errno });
      expect(r.code).toBe(0);
      expect(r.out).toBe("epoll epoll");
      expect(r.err.length).toBe(1);
      expect(r.err[0]).toContain("io_uring unavailable");
      expect(r.err[0]).toContain(errno);
      expect(r.err[0]).toContain("epoll");
    });
  }

  test("without a simulated failure the same program runs on io_uring and prints nothing", () => {
    const r = runChild(CHILD, { REEL_BACKEND: "uring" });
    expect(r).toEqual({ code: 0, out: "uring uring", err: [] });
  });

  test("a bad REEL_URING is a RangeError naming the value, not a silent fallback", () => {
    const prev = process.env.REEL_URING;
    process.env.REEL_URING = "bogus";
    try {
      expect(() => new Runtime({ backend: "uring" })).toThrow(/REEL_URING "bogus"/);
    } finally {
      if (prev === undefined) delete process.env.REEL_URING;
      else process.env.REEL_URING = prev;
    }
  });
});

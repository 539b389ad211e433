/**
 * The process examples run as written, on every backend: shell-pipe.ts counts what
 * `ls | wc -l` counts, and head-of-line.ts shows the short handlers waiting ≈ the CPU work
 * inline and far less with spawnBlocking.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { kernelTest, testBackends } from "./helpers.ts";

const ROOT = join(import.meta.dir, "..");

for (const backend of testBackends()) {
  const env = { ...process.env, REEL_BACKEND: backend };

  kernelTest(backend, "child processes")(`shell-pipe.ts [${backend}] counts what ls | wc -l counts`, () => {
    const want = Bun.spawnSync(["sh", "-c", "ls /usr/bin | wc -l"]).stdout.toString().trim();
    const r = Bun.spawnSync(["bun", join(ROOT, "examples/shell-pipe.ts"), "/usr/bin"], { env });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString().trim()).toBe(want);
  });

  kernelTest(backend, "spawnBlocking threads, and waits measured in real time")(`head-of-line.ts [${backend}]: inline the short handlers wait ≈ 80 ms, with spawnBlocking far less`, () => {
    const r = Bun.spawnSync(["bun", join(ROOT, "examples/head-of-line.ts"), "3"], { env });
    expect(r.exitCode).toBe(0);
    const out = r.stdout.toString();
    const p50 = (mode: string) => Number(new RegExp(`^${mode}\\s+short handlers waited\\s+p50\\s+([0-9.]+) ms`, "m").exec(out)?.[1]);
    expect(p50("inline")).toBeGreaterThan(70);
    expect(p50("spawnBlocking")).toBeLessThan(p50("inline") / 4);
  }, 30_000);
}

/**
 * Runs once before `bun test` loads any suite (bunfig.toml's [test] preload). On a fresh
 * clone — no node_modules — it installs the dev dependencies the suites import
 * (fast-check, typescript, typedoc, …), then runs the same `bun test` again in a fresh
 * process and exits with its status: `bun test`, unlike `bun run`, does not install
 * missing packages on the fly, and a process that started without node_modules keeps
 * resolving as if there were none. The README's quick start is `bun test` on a fresh clone.
 *
 * Must never: run an install when every dev dependency is there, or let a failed install
 * pass silently (the run stops with the reason).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { devDependencies?: Record<string, string> };
const missing = Object.keys(pkg.devDependencies ?? {}).filter((name) => !existsSync(join(root, "node_modules", name, "package.json")));
if (missing.length > 0) {
  console.error(`reel tests: installing the dev dependencies first (bun install; missing: ${missing.join(", ")})`);
  const r = Bun.spawnSync([process.execPath, "install"], { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error(`bun install failed (exit ${r.exitCode}): the suites need ${missing.join(", ")}`);
  // This process resolved packages before they existed: run the same command afresh.
  const cmdline = existsSync("/proc/self/cmdline") ? readFileSync("/proc/self/cmdline", "utf8").split("\0").filter((a) => a.length > 0) : [];
  if (cmdline[1] !== "test") throw new Error("The dev dependencies are installed now: run `bun test` again");
  const again = Bun.spawnSync([process.execPath, ...cmdline.slice(1)], { cwd: process.cwd(), stdout: "inherit", stderr: "inherit", stdin: "inherit" });
  process.exit(again.exitCode ?? 1);
}

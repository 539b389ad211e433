// Builds the reference programs (echo-load, epoll-echo, tokio-echo) with the shared
// build-anchors.sh, only when they are missing or older than their sources.
// A stamp file records the last build, so a tokio build that was skipped (no cargo or no
// crates) is not retried on every run; touching any source retries it.
// Must never write outside the anchors directory.
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const STAMP = ".built";

/** Newest mtime (ms) of the files under `path` (a file or a directory), 0 when absent. */
function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path)) {
    if (entry === "target") continue; // a cargo build dir is output, not source
    newest = Math.max(newest, newestMtime(join(path, entry)));
  }
  return newest;
}

/** mtime (ms) of a file, or -1 when it does not exist. */
function mtime(path: string): number {
  return existsSync(path) ? statSync(path).mtimeMs : -1;
}

/** Why the anchors in `outDir` need a (re)build, or null when they are up to date. */
export function staleReason(sharedDir: string, outDir: string): string | null {
  const tools = join(sharedDir, "tools");
  const sources = Math.max(
    ...["build-anchors.sh", "echo-load.c", "epoll-echo.c"].map((f) => newestMtime(join(tools, f))),
    newestMtime(join(sharedDir, "anchors", "tokio-echo")),
  );
  for (const bin of ["echo-load", "epoll-echo"]) {
    const t = mtime(join(outDir, bin));
    if (t < 0) return `${bin} is missing`;
    if (t < sources) return `${bin} is older than its sources`;
  }
  const tokio = mtime(join(outDir, "tokio-echo"));
  if (tokio >= 0 && tokio < sources) return "tokio-echo is older than its sources";
  if (tokio < 0 && mtime(join(outDir, STAMP)) < sources) return "tokio-echo was not tried since the sources changed";
  return null;
}

/**
 * Runs `<shared>/tools/build-anchors.sh outDir` unless the anchors are already built and newer
 * than their sources. Build output goes to stderr.
 * @throws when the build script fails (without echo-load there is nothing to measure).
 */
export async function ensureAnchors(sharedDir: string, outDir: string): Promise<void> {
  const why = staleReason(sharedDir, outDir);
  if (why === null) return;
  const script = join(sharedDir, "tools", "build-anchors.sh");
  if (!existsSync(script)) throw new Error(`Cannot build anchors: ${script} does not exist`);
  console.error(`building anchors into ${outDir} (${why}) ...`);
  const proc = Bun.spawn(["bash", script, outDir], { stdin: "ignore", stdout: "inherit", stderr: "inherit" });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`Cannot build anchors: build-anchors.sh exited with ${code}`);
  writeFileSync(join(outDir, STAMP), `built ${new Date().toISOString()}\n`);
}

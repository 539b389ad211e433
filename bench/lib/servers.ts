// The echo servers the benchmarks compare, and how to start one until it accepts connections.
//
// Two start contracts:
//   announce — started with port 0; prints `listening on 127.0.0.1:PORT` to stdout once it
//              listens (reel's examples/echo-server.ts, bun-listen, node-net);
//   fixed    — started with a port the harness picked free (the C and tokio anchors).
// Either way the harness then connects until one connection is accepted (bounded tries).
// A server that cannot start is a *skip with a reason*, never an exception. For reel
// servers an error printed during startup, or a backend other than the one asked for, also
// counts as failing to start: a backend that falls back would otherwise be measured under
// the wrong name.
// Must never start a server through a shell unless `wrap` asks for it: the pid returned is
// the server's own, and the load generator reads that pid's CPU time.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Child, hasExited, killChild, spawnChild } from "./children.ts";
import { freePort, waitForAccept } from "./net.ts";

/** Where the harness finds things. */
export interface Paths {
  /** the repository root */
  root: string;
  /** built anchors: echo-load, epoll-echo, tokio-echo */
  anchors: string;
}

/** How to start one server. */
export interface ServerSpec {
  readonly name: string;
  readonly start: "announce" | "fixed";
  /** argv for the given port (0 for announce servers) */
  argv(port: number): string[];
  readonly env: Record<string, string>;
  /** inspects a server that is up: a reason to treat it as failed to start, or null */
  readonly startupError?: (child: Child) => string | null;
  /** why it cannot run here, or null when it can */
  missing(): string | null;
}

/** A server that is up and accepting. */
export interface Running {
  readonly child: Child;
  readonly host: string;
  readonly port: number;
}

/** Result of `startServer`: running, or the reason it did not start. */
export type Started = { ok: true; server: Running } | { ok: false; reason: string };

/** Every server the echo bench knows, in the default order. */
export const SERVER_NAMES = ["reel-epoll", "reel-uring", "reel-poll", "reel-hosted", "reel-epoll-handlers", "reel-uring-handlers", "reel-epoll-driver", "reel-uring-driver", "raw-epoll", "raw-uring", "bun-listen", "node-net", "c-epoll", "tokio"] as const;

/** Server names whose numbers are reel's own (the goals are checked for these). */
export const REEL_SERVERS: readonly string[] = ["reel-epoll", "reel-uring", "reel-poll", "reel-hosted", "reel-epoll-handlers", "reel-uring-handlers"];

const ERRORISH = /\b(error|fail(s|ed|ure)?|cannot|unsupported|not supported|not available|fall(s|ing)? ?back)\b/i;

/**
 * A reel server's startup problem: an error-looking stderr line, or a banner
 * `reel echo server: NAME backend` naming another backend than `backend`.
 */
function reelStartupError(backend: string): (child: Child) => string | null {
  return (child) => {
    for (const line of child.stderr) {
      if (ERRORISH.test(line)) return line.trim();
      const m = /^reel echo server: (\S+) backend/.exec(line);
      if (m && m[1] !== backend) return `REEL_BACKEND=${backend} but it runs the ${m[1]} backend`;
    }
    return null;
  };
}

/**
 * A reel echo example run with one REEL_BACKEND: examples/echo-server.ts (blockOn), or
 * another example file under another name (the hosted-mode server).
 */
function reelSpec(paths: Paths, backend: string, file = "echo-server.ts", name = `reel-${backend}`): ServerSpec {
  const example = join(paths.root, "examples", file);
  return {
    name,
    start: "announce",
    argv: (port) => [process.execPath, "run", example, String(port)],
    env: { REEL_BACKEND: backend },
    startupError: reelStartupError(backend),
    missing: () => (existsSync(example) ? null : `examples/${file} is missing`),
  };
}

/**
 * A layer, not a way to use reel: the echo over reel's driver and per-fd interface alone
 * (bench/servers/reel-driver.ts), with no runtime above it — between a raw ceiling and
 * listen(), it splits the gap into the driver's part and the runtime's.
 */
function driverSpec(paths: Paths, backend: string): ServerSpec {
  const script = join(paths.root, "bench", "servers", "reel-driver.ts");
  return {
    name: `reel-${backend}-driver`,
    start: "fixed",
    argv: (port) => [process.execPath, "run", script, String(port)],
    env: { REEL_BACKEND: backend },
    startupError: reelStartupError(backend),
    missing: () => (existsSync(script) ? null : "bench/servers/reel-driver.ts is missing"),
  };
}

/** A native anchor binary taking a fixed port. */
function anchorSpec(name: string, binary: string, why: string): ServerSpec {
  return {
    name,
    start: "fixed",
    argv: (port) => [binary, String(port)],
    env: {},
    missing: () => (existsSync(binary) ? null : why),
  };
}

/**
 * A ceiling: an echo server over bun:ffi with no runtime layers (../shared/tools), taking a
 * fixed port — what reel would do if its layers cost nothing, run beside it in every round.
 */
function rawSpec(paths: Paths, name: string, file: string): ServerSpec {
  const script = join(paths.root, "..", "shared", "tools", file);
  return {
    name,
    start: "fixed",
    argv: (port) => [process.execPath, "run", script, String(port)],
    env: {},
    missing: () => (existsSync(script) ? null : `../shared/tools/${file} is missing`),
  };
}

/** The server table, keyed by name. */
export function serverSpecs(paths: Paths): Map<string, ServerSpec> {
  const bunListen = join(paths.root, "bench", "servers", "bun-listen.ts");
  const nodeNet = join(paths.root, "bench", "servers", "node-net.mjs");
  const node = Bun.which("node");
  const specs: ServerSpec[] = [
    reelSpec(paths, "epoll"),
    reelSpec(paths, "uring"),
    reelSpec(paths, "poll"),
    reelSpec(paths, "epoll", "echo-server-hosted.ts", "reel-hosted"),
    // listen() with Bun.listen-style handlers: no task or buffer per connection.
    reelSpec(paths, "epoll", "echo-handlers.ts", "reel-epoll-handlers"),
    reelSpec(paths, "uring", "echo-handlers.ts", "reel-uring-handlers"),
    driverSpec(paths, "epoll"),
    driverSpec(paths, "uring"),
    {
      name: "bun-listen",
      start: "announce",
      argv: (port) => [process.execPath, "run", bunListen, String(port)],
      env: {},
        missing: () => null,
    },
    {
      name: "node-net",
      start: "announce",
      argv: (port) => [node ?? "node", nodeNet, String(port)],
      env: {},
        missing: () => (node ? null : "node is not on PATH"),
    },
    rawSpec(paths, "raw-epoll", "raw-epoll-echo.ts"),
    rawSpec(paths, "raw-uring", "raw-uring-echo.ts"),
    anchorSpec("c-epoll", join(paths.anchors, "epoll-echo"), "epoll-echo is not built"),
    anchorSpec("tokio", join(paths.anchors, "tokio-echo"), "tokio-echo is not built (needs cargo and librust-tokio-dev)"),
  ];
  return new Map(specs.map((s) => [s.name, s]));
}

/** Options for `startServer`. */
export interface StartOptions {
  cwd: string;
  /** rewrites argv, e.g. to run the server under `prlimit` (the wrapper must exec the server) */
  wrap?: (argv: string[]) => string[];
  /** how long an announce server may take to print its line (ms) */
  announceMs?: number;
}

const LISTENING = /^listening on (\d+\.\d+\.\d+\.\d+):(\d+)\s*$/;

/**
 * The most telling line of a child's stderr: an `XxxError: …` / `error: …` line (Bun prints a
 * code frame before the error itself), else the first line that is not part of a code frame.
 */
export function stderrReason(lines: readonly string[]): string | undefined {
  const text = lines.map((l) => l.trim()).filter((l) => l.length > 0);
  const error = text.find((l) => /^(\w*Error|error|panic|fatal)\b.*:/i.test(l));
  return error ?? text.find((l) => !/^(\d+ \||\^)/.test(l));
}

/** The reason a child failed: from its stderr, else how it exited, else `fallback`. Call before killing it. */
function failureReason(child: Child, fallback: string): string {
  const line = stderrReason(child.stderr);
  if (line) return line;
  const code = child.proc.exitCode ?? child.proc.signalCode;
  return code !== null ? `exited (${code}) before accepting connections` : fallback;
}

/** Kills a child that failed to start and returns the failure with its reason (taken first). */
async function failed(child: Child, fallback: string): Promise<Started> {
  if (hasExited(child)) await child.exited; // resolves once its last output lines are in
  const reason = failureReason(child, fallback);
  await killChild(child);
  return { ok: false, reason };
}

/** Waits until `child` accepts on host:port and passes the spec's startup check. */
async function confirmUp(spec: ServerSpec, child: Child, host: string, port: number): Promise<Started> {
  const up = await waitForAccept(host, port, { giveUp: () => hasExited(child) });
  if (!up || hasExited(child)) return failed(child, `did not accept on ${host}:${port}`);
  const problem = spec.startupError?.(child);
  if (problem) {
    await killChild(child);
    return { ok: false, reason: problem };
  }
  return { ok: true, server: { child, host, port } };
}

/** Starts an announce server on port 0 and reads the port from its `listening on` line. */
async function startAnnounce(spec: ServerSpec, opts: StartOptions): Promise<Started> {
  const argv = spec.argv(0);
  const child = spawnChild(spec.name, opts.wrap ? opts.wrap(argv) : argv, spec.env, opts.cwd);
  let timer: Timer | undefined;
  const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), opts.announceMs ?? 20_000)));
  const line = await Promise.race([child.waitForLine(LISTENING), child.exited.then(() => null), timeout]);
  clearTimeout(timer);
  if (line === null || line === "timeout") {
    return failed(child, line === "timeout" ? "printed no `listening on` line in time" : "exited before listening");
  }
  return confirmUp(spec, child, line[1]!, Number(line[2]));
}

/** Starts a fixed-port server on a port found free, retrying with another port on failure. */
async function startFixed(spec: ServerSpec, opts: StartOptions, attempts = 3): Promise<Started> {
  let last: Started = { ok: false, reason: "not started" };
  for (let i = 0; i < attempts; i++) {
    const port = await freePort();
    const argv = spec.argv(port);
    const child = spawnChild(spec.name, opts.wrap ? opts.wrap(argv) : argv, spec.env, opts.cwd);
    last = await confirmUp(spec, child, "127.0.0.1", port);
    if (last.ok) return last;
  }
  return last;
}

/**
 * Starts one fresh server process and waits until it accepts a TCP connection.
 * @returns the running server, or `{ ok: false, reason }` — it never throws for a server that fails.
 */
export function startServer(spec: ServerSpec, opts: StartOptions): Promise<Started> {
  const missing = spec.missing();
  if (missing) return Promise.resolve({ ok: false, reason: missing });
  return spec.start === "announce" ? startAnnounce(spec, opts) : startFixed(spec, opts);
}

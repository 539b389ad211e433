// Child processes of the bench harnesses: spawn, line-reading of their output, and cleanup.
//
// Invariant: every process spawned through `spawnChild` is in `live` until it has exited, and
// is killed on every way out of the harness — normal return (`killChild` in a finally),
// an exception, SIGINT/SIGTERM/SIGHUP (`installCleanup`), or process exit.
// It must never kill a process it did not spawn, and never spawn through a shell unless
// the caller asks for one explicitly (the pid must be the server's own pid).
import type { Subprocess } from "bun";

/** A spawned child with its output collected line by line. */
export interface Child {
  readonly name: string;
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  readonly pid: number;
  /** Resolves with the exit code (or 128+signal) once the process has exited. */
  readonly exited: Promise<number>;
  /** stderr lines seen so far (bounded). */
  readonly stderr: string[];
  /** stdout lines seen so far (bounded). */
  readonly stdout: string[];
  /** Resolves with the first stdout line matching `match`, or null at EOF. */
  waitForLine(match: RegExp): Promise<RegExpMatchArray | null>;
}

const MAX_LINES = 200;
const live = new Set<Subprocess>();

/** Reads a stream to its end, appending (at most MAX_LINES) lines to `into` and notifying `onLine`. */
async function collectLines(
  stream: ReadableStream<Uint8Array>,
  into: string[],
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  const take = (line: string): void => {
    if (into.length < MAX_LINES) into.push(line);
    onLine(line);
  };
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      take(rest.slice(0, nl).replace(/\r$/, ""));
      rest = rest.slice(nl + 1);
    }
    if (rest.length > 1 << 16) rest = rest.slice(-4096); // a child spewing without newlines
  }
  if (rest.length > 0) take(rest);
}

/** Line matching for `waitForLine`: waiters are checked against every new stdout line. */
function lineWaiters(stdout: string[]) {
  const waiters: { match: RegExp; resolve: (m: RegExpMatchArray | null) => void }[] = [];
  let ended = false;
  const onLine = (line: string): void => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const m = line.match(waiters[i]!.match);
      if (m) waiters.splice(i, 1)[0]!.resolve(m);
    }
  };
  const onEnd = (): void => {
    ended = true;
    for (const w of waiters.splice(0)) w.resolve(null);
  };
  const waitForLine = (match: RegExp): Promise<RegExpMatchArray | null> => {
    for (const line of stdout) {
      const m = line.match(match);
      if (m) return Promise.resolve(m);
    }
    if (ended) return Promise.resolve(null);
    return new Promise((resolve) => waiters.push({ match, resolve }));
  };
  return { onLine, onEnd, waitForLine };
}

/**
 * Spawns `argv` directly (no shell), tracked for cleanup, with stdout and stderr read line by line.
 * @example const c = spawnChild("c-epoll", ["./epoll-echo", "9000"], {});
 */
export function spawnChild(name: string, argv: string[], env: Record<string, string | undefined>, cwd?: string): Child {
  const proc = Bun.spawn(argv, { cwd, env: { ...process.env, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  live.add(proc);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const lines = lineWaiters(stdout);
  const outDone = collectLines(proc.stdout, stdout, lines.onLine).catch(() => {});
  const errDone = collectLines(proc.stderr, stderr, () => {}).catch(() => {});
  void outDone.then(lines.onEnd);
  const exited = proc.exited.then(async (code) => {
    live.delete(proc);
    // a grandchild may hold the pipes open: wait for the rest of the output, but not forever
    await Promise.race([Promise.all([outDone, errDone]), sleep(2000)]);
    return code;
  });
  return { name, proc, pid: proc.pid, exited, stderr, stdout, waitForLine: lines.waitForLine };
}

/** True once the child has exited. */
export function hasExited(child: Child): boolean {
  return child.proc.exitCode !== null || child.proc.signalCode !== null;
}

/**
 * Stops a child: SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited.
 * Safe to call more than once and on a child that already exited.
 */
export async function killChild(child: Child, graceMs = 1000): Promise<void> {
  if (hasExited(child)) {
    await child.exited;
    return;
  }
  child.proc.kill("SIGTERM");
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), graceMs);
  try {
    await child.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** SIGKILLs every child still alive, synchronously (for signal and exit handlers). */
export function killAllNow(): void {
  for (const proc of live) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

let installed = false;

/** Makes SIGINT, SIGTERM, SIGHUP and process exit kill every live child first. Idempotent. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [sig, code] of Object.entries(codes)) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping ${live.size} child process(es)`);
      killAllNow();
      process.exit(code);
    });
  }
  process.on("exit", killAllNow);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

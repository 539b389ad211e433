/**
 * Command: tokio's process builder, in reel. Program, arguments, environment, working
 * directory, what each of stdin/stdout/stderr is connected to ("pipe" | "inherit" |
 * "null"), an optional process group, and killOnCancel; then `spawn()` (a {@link Child}),
 * `output()` (run to completion, collecting both output streams) or `status()` (run to
 * completion with inherited stdio).
 *
 * Defaults, as tokio's: `spawn()` and `status()` inherit all three streams; `output()`
 * pipes stdout and stderr and connects stdin to /dev/null — each unless set explicitly.
 * The environment is the parent's (`process.env`) with the builder's changes applied.
 *
 * Errors: a program that cannot be executed is a SysError from `spawn()` itself, with
 * `.code` ENOENT (not found) or EACCES (not executable) and the program named in the
 * message; bad arguments are TypeError/RangeError naming the value.
 *
 * Cancel safety: `output()` and `status()` own their child: cancelled, they close its
 * pipes, and with killOnCancel (default false, as tokio's kill_on_drop) they kill it. The
 * child is reaped either way (child.ts).
 *
 * Must never: spawn outside a runtime (nobody would learn of the exit), leak a pipe, or
 * leave a child unreaped.
 */
import { BaseFuture, FutureStateError, PENDING, gen, type Context, type Future, type Poll } from "../future.ts";
import { currentDriver } from "../current.ts";
import { join } from "../combinators/index.ts";
import { spawnProcess, type Stdio } from "./spawn.ts";
import { Child, ExitStatus, type ChildOutput } from "./child.ts";

function checkString(v: unknown, what: string): string {
  if (typeof v !== "string") throw new TypeError(`${what} must be a string, got ${v === null ? "null" : typeof v}`);
  if (v.includes("\0")) throw new TypeError(`${what} ${JSON.stringify(v)} contains a NUL byte`);
  return v;
}

function checkStdio(v: unknown, what: string): Stdio {
  if (v !== "pipe" && v !== "inherit" && v !== "null") throw new TypeError(`Invalid ${what} ${JSON.stringify(v)}: expected "pipe", "inherit" or "null"`);
  return v;
}

/**
 * What `output()` collects: the exit status and everything the child wrote.
 *
 * @example
 * ```ts
 * const out: CommandOutput = yield* new Command("ls").output();
 * console.log(out.status.success, new TextDecoder().decode(out.stdout));
 * ```
 */
export interface CommandOutput {
  status: ExitStatus;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/**
 * A process builder.
 *
 * @example
 * ```ts
 * import { Command, blockOn } from "reel";
 * blockOn(function* () {
 *   const out = yield* new Command("git").args(["rev-parse", "HEAD"]).cwd("/src/reel").output();
 *   console.log(new TextDecoder().decode(out.stdout).trim());
 * });
 * ```
 */
export class Command {
  private readonly argv: string[] = [];
  private readonly envChanges = new Map<string, string | null>();
  private clearEnv = false;
  private dir: string | null = null;
  private io: [Stdio | null, Stdio | null, Stdio | null] = [null, null, null];
  private group: number | null = null;
  private kill = false;

  constructor(readonly program: string) {
    checkString(program, "Command program");
    if (program.length === 0) throw new TypeError("Command program must be a non-empty string");
  }

  /** Adds one argument. */
  arg(a: string): this {
    this.argv.push(checkString(a, "Command argument"));
    return this;
  }

  /** Adds arguments. */
  args(list: Iterable<string>): this {
    for (const a of list) this.arg(a);
    return this;
  }

  /** Sets an environment variable for the child. */
  env(key: string, value: string): this {
    checkString(key, "environment variable name");
    if (key.length === 0 || key.includes("=")) throw new TypeError(`Invalid environment variable name ${JSON.stringify(key)}`);
    this.envChanges.set(key, checkString(value, `environment variable ${key}`));
    return this;
  }

  /** Sets several environment variables. */
  envs(vars: Record<string, string> | Iterable<[string, string]>): this {
    const entries = Symbol.iterator in vars ? (vars as Iterable<[string, string]>) : Object.entries(vars);
    for (const [k, v] of entries) this.env(k, v);
    return this;
  }

  /** Removes a variable from the child's environment. */
  envRemove(key: string): this {
    this.envChanges.set(checkString(key, "environment variable name"), null);
    return this;
  }

  /** Starts the child with an empty environment (plus what env() adds after this). */
  envClear(): this {
    this.clearEnv = true;
    this.envChanges.clear();
    return this;
  }

  /** The child's working directory. */
  cwd(dir: string): this {
    this.dir = checkString(dir, "Command cwd");
    return this;
  }

  /** What the child's stdin is: "pipe" (child.stdin), "inherit" or "null". */
  stdin(s: Stdio): this {
    this.io[0] = checkStdio(s, "stdin");
    return this;
  }

  /** What the child's stdout is: "pipe" (child.stdout), "inherit" or "null". */
  stdout(s: Stdio): this {
    this.io[1] = checkStdio(s, "stdout");
    return this;
  }

  /** What the child's stderr is: "pipe" (child.stderr), "inherit" or "null". */
  stderr(s: Stdio): this {
    this.io[2] = checkStdio(s, "stderr");
    return this;
  }

  /**
   * Puts the child in process group `pgid` (0: a new group led by the child, which then
   * does not get the terminal's Ctrl-C with this process).
   */
  processGroup(pgid: number): this {
    if (!Number.isInteger(pgid) || pgid < 0) throw new RangeError(`Invalid process group ${String(pgid)}: must be an integer ≥ 0`);
    this.group = pgid;
    return this;
  }

  /** Kill the child (SIGKILL) when a wait(), output() or status() of it is cancelled. */
  killOnCancel(on = true): this {
    this.kill = on;
    return this;
  }

  /** The child's environment. */
  private environment(): Map<string, string> {
    const env = new Map<string, string>();
    if (!this.clearEnv) for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env.set(k, v);
    for (const [k, v] of this.envChanges) {
      if (v === null) env.delete(k);
      else env.set(k, v);
    }
    return env;
  }

  private start(defaults: [Stdio, Stdio, Stdio]): Child {
    // No runtime: nobody would learn of the exit — throw before starting anything (a simulation has no processes).
    currentDriver().requireOs("Child processes are");
    const stdio: [Stdio, Stdio, Stdio] = [this.io[0] ?? defaults[0], this.io[1] ?? defaults[1], this.io[2] ?? defaults[2]];
    const s = spawnProcess({ program: this.program, args: this.argv, env: this.environment(), cwd: this.dir, stdio, pgroup: this.group });
    return new Child(s.pid, s.fds, this.kill);
  }

  /**
   * Starts the program: a {@link Child}. Throws SysError (ENOENT, EACCES…) naming the
   * program when it cannot be executed, RuntimeError ENORUNTIME outside a runtime.
   */
  spawn(): Child {
    return this.start(["inherit", "inherit", "inherit"]);
  }

  /** Runs the program to completion, collecting stdout and stderr (see the module header). */
  output(): BaseFuture<CommandOutput> {
    return new Owned(this, ["null", "pipe", "pipe"], collect);
  }

  /** Runs the program to completion with inherited stdio: its exit status. */
  status(): BaseFuture<ExitStatus> {
    return new Owned(this, ["inherit", "inherit", "inherit"], (c) => c.wait());
  }

  /** @internal Owned's spawn. */
  startWith(defaults: [Stdio, Stdio, Stdio]): Child {
    return this.start(defaults);
  }
}

/** Reads a stream to EOF. */
function* readAll(r: ChildOutput | null): Generator<unknown, Uint8Array, unknown> {
  if (r === null) return new Uint8Array(0);
  let buf = new Uint8Array(4096);
  let len = 0;
  for (;;) {
    if (len === buf.length) {
      const grown = new Uint8Array(buf.length * 2);
      grown.set(buf);
      buf = grown;
    }
    const n = yield* r.read(buf.subarray(len));
    if (n === 0) return buf.slice(0, len);
    len += n;
  }
}

function collect(c: Child): Future<CommandOutput> {
  return gen(function* () {
    const [stdout, stderr, status] = yield* join(gen(() => readAll(c.stdout)), gen(() => readAll(c.stderr)), c.wait());
    return { status, stdout, stderr };
  });
}

/** A child run to completion by one future: spawned at the first poll; pipes closed and (killOnCancel) killed on cancel. */
class Owned<T> extends BaseFuture<T> {
  private child: Child | null = null;
  private inner: Future<T> | null = null;
  private done = false;

  constructor(
    private readonly cmd: Command,
    private readonly defaults: [Stdio, Stdio, Stdio],
    private readonly run: (c: Child) => Future<T>,
  ) {
    super();
  }

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError("output()/status() future polled after completion");
    let v: Poll<T>;
    try {
      if (this.child === null) {
        this.child = this.cmd.startWith(this.defaults);
        this.inner = this.run(this.child);
      }
      v = this.inner!.poll(cx);
    } catch (err) {
      this.finish(false);
      throw err;
    }
    if (v === PENDING) return PENDING;
    this.finish(false);
    return v;
  }

  /** Closes the child's pipes; `kill` (on cancel, with killOnCancel) kills it first. */
  private finish(kill: boolean): void {
    this.done = true;
    const c = this.child;
    const inner = this.inner;
    this.inner = null;
    if (c === null) return;
    inner?.cancel?.();
    if (kill) c.kill();
    c.stdin?.close();
    c.stdout?.close();
    c.stderr?.close();
  }

  override cancel(): void {
    if (this.done) return;
    this.finish(this.child !== null && this.child.killOnCancel && this.child.tryWait() === null);
  }
}

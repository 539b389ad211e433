/**
 * Starting a program: posix_spawn with file actions for stdio, an empty signal mask and
 * every signal's action reset to the default in the child (Bun ignores SIGPIPE; a child
 * must not inherit that), an optional process group, the program found on PATH.
 *
 * Why posix_spawn (not fork/exec, not Bun.spawn): fork cannot be called from JavaScript;
 * Bun.spawn would hand back Bun's own pipes and learn of the exit through Bun's loop,
 * which never runs inside blockOn. posix_spawn (glibc: clone(CLONE_VM | CLONE_VFORK)) gives
 * reel the pid, pipes it made itself, and the exec's own error as its return value.
 *
 * Pipes: each "pipe" stream is a fresh pipe2(O_CLOEXEC); the child's end is dup2'ed onto
 * 0, 1 or 2 in the child (which clears close-on-exec there only), the parent's end is then
 * made non-blocking — reel's alone, so that is safe — and every child end is closed in
 * the parent once the spawn returned. On any failure every end is closed.
 *
 * Must never: leak an fd on any path, leave the parent's ends blocking, pass the child a
 * descriptor other than 0, 1 and 2 (everything reel opens is close-on-exec), or report an
 * error without the program's name.
 */
import * as libc from "../../ffi/libc.ts";
import * as proc from "../../ffi/process.ts";
import { SYS } from "../../ffi/constants.ts";
import { SysError } from "../errors.ts";

/**
 * What a child's stdin, stdout or stderr is connected to: a new pipe (reel streams on the
 * Child), the parent's own stream, or /dev/null.
 *
 * @example
 * ```ts
 * const mode: Stdio = "pipe";
 * const child = new Command("cat").stdin(mode).stdout("pipe").stderr("inherit").spawn();
 * ```
 */
export type Stdio = "pipe" | "inherit" | "null";

/** Everything posix_spawn needs, validated. */
export interface SpawnRequest {
  program: string;
  args: readonly string[];
  /** The child's whole environment. */
  env: ReadonlyMap<string, string>;
  cwd: string | null;
  stdio: readonly [Stdio, Stdio, Stdio];
  /** setpgid in the child: 0 = a new group led by the child; null = the parent's. */
  pgroup: number | null;
}

/** What came out: the pid and the parent's ends of the piped streams (-1 where not piped). */
export interface Spawned {
  pid: number;
  fds: [number, number, number];
}

const O_RDONLY = 0;
const O_WRONLY = 1;
const ENOENT = 2;
const EACCES = 13;
const DEV_NULL = proc.cString("/dev/null");

/**
 * The path to exec: `program` itself when it names a path (contains "/"), else the first
 * executable `dir/program` on PATH (the child's PATH). Throws SysError ENOENT / EACCES
 * naming the program when there is none.
 */
export function resolveProgram(program: string, env: ReadonlyMap<string, string>): string {
  if (program.includes("/")) return program;
  const path = env.get("PATH") ?? process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin";
  let denied = false;
  for (const dir of path.split(":")) {
    const candidate = `${dir === "" ? "." : dir}/${program}`;
    const c = proc.cString(candidate);
    if (proc.access(c, proc.X_OK) === 0) return candidate;
    if (proc.access(c, proc.F_OK) === 0) denied = true;
  }
  throw new SysError(denied ? EACCES : ENOENT, "posix_spawn", undefined, `program "${program}" ${denied ? "is not executable" : "not found on PATH"}`);
}

/** Closes every fd in `fds` that is ≥ 0 (cleanup paths). */
function closeAll(fds: readonly number[]): void {
  for (const fd of fds) if (fd >= 0) libc.close(fd);
}

/** A pipe for child stream `target`: [parent end, child end], the child's end ≥ 3. */
function makePipe(target: number): [number, number] {
  const fds = new Int32Array(new ArrayBuffer(8));
  const r = libc.pipe2(fds, SYS.O_CLOEXEC);
  if (r < 0) throw new SysError(-r, "pipe2", undefined, `child stdio ${target}`);
  // stdin: the child reads fds[0]; stdout/stderr: the child writes fds[1].
  let [parent, child] = target === 0 ? [fds[1]!, fds[0]!] : [fds[0]!, fds[1]!];
  if (child < 3) {
    // The process's own 0-2 were closed: dup2(child, target) must not be a no-op on itself.
    const moved = proc.dupAbove(child, 3);
    libc.close(child);
    if (moved < 0) {
      libc.close(parent);
      throw new SysError(-moved, "fcntl", undefined, "F_DUPFD_CLOEXEC");
    }
    child = moved;
  }
  const fl = libc.fcntl(parent, SYS.F_GETFL, 0);
  const set = fl < 0 ? fl : libc.fcntl(parent, SYS.F_SETFL, fl | SYS.O_NONBLOCK);
  if (set < 0) {
    closeAll([parent, child]);
    throw new SysError(-set, "fcntl", undefined, "O_NONBLOCK on the parent's end of a child pipe");
  }
  return [parent, child];
}

function must(r: number, what: string): void {
  if (r < 0) throw new SysError(-r, what);
}

/** Starts the program (see the module header). Throws SysError naming the program. */
export function spawnProcess(req: SpawnRequest): Spawned {
  const path = resolveProgram(req.program, req.env);
  const parentEnds: [number, number, number] = [-1, -1, -1];
  const childEnds: number[] = [];
  let fa: Uint8Array | null = null;
  let at: Uint8Array | null = null;
  try {
    const f = proc.fileActionsInit();
    if (typeof f === "number") throw new SysError(-f, "posix_spawn_file_actions_init");
    fa = f;
    const a = proc.attrInit();
    if (typeof a === "number") throw new SysError(-a, "posix_spawnattr_init");
    at = a;
    for (let target = 0; target < 3; target++) {
      const mode = req.stdio[target]!;
      if (mode === "pipe") {
        const [parent, child] = makePipe(target);
        parentEnds[target] = parent;
        childEnds.push(child);
        must(proc.addDup2(fa, child, target), "posix_spawn_file_actions_adddup2");
      } else if (mode === "null") {
        must(proc.addOpen(fa, target, DEV_NULL, target === 0 ? O_RDONLY : O_WRONLY, 0), "posix_spawn_file_actions_addopen");
      }
    }
    const cwd = req.cwd === null ? null : proc.cString(req.cwd);
    if (cwd !== null) must(proc.addChdir(fa, cwd), "posix_spawn_file_actions_addchdir_np");
    // The child starts with nothing blocked and every action at its default.
    const empty = new Uint8Array(new ArrayBuffer(proc.SIGSET_SIZE));
    const all = new Uint8Array(new ArrayBuffer(proc.SIGSET_SIZE));
    all.fill(0xff, 0, 8); // signals 1–64 (libc skips SIGKILL, SIGSTOP and its own)
    must(proc.attrSetSigmask(at, empty), "posix_spawnattr_setsigmask");
    must(proc.attrSetSigdefault(at, all), "posix_spawnattr_setsigdefault");
    let flags = proc.POSIX_SPAWN_SETSIGMASK | proc.POSIX_SPAWN_SETSIGDEF;
    if (req.pgroup !== null) {
      flags |= proc.POSIX_SPAWN_SETPGROUP;
      must(proc.attrSetPgroup(at, req.pgroup), "posix_spawnattr_setpgroup");
    }
    must(proc.attrSetFlags(at, flags), "posix_spawnattr_setflags");
    const argv = proc.cStringArray([req.program, ...req.args]);
    const envp = proc.cStringArray([...req.env].map(([k, v]) => `${k}=${v}`));
    const cpath = proc.cString(path);
    // SAFETY: every buffer above is ArrayBuffer-backed and referenced here until the call returns.
    const pid = proc.spawn(cpath, fa, at, argv.array, envp.array);
    void argv.storage;
    void envp.storage;
    void cwd;
    if (pid < 0) {
      const where = req.cwd !== null ? `, cwd "${req.cwd}"` : "";
      throw new SysError(-pid, "posix_spawn", undefined, `program "${req.program}"${where}`);
    }
    return { pid, fds: parentEnds };
  } catch (err) {
    closeAll(parentEnds);
    throw err;
  } finally {
    closeAll(childEnds);
    if (fa !== null) proc.fileActionsDestroy(fa);
    if (at !== null) proc.attrDestroy(at);
  }
}

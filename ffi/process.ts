/**
 * Bindings for child processes: posix_spawn with its file actions and attributes,
 * pidfd_open (Linux ≥ 5.3), waitpid, kill, access, and the encoding of argv/envp.
 *
 * Why posix_spawn: fork() cannot be called from JavaScript (the child would be a copy of a
 * multi-threaded VM), and glibc's posix_spawn uses clone(CLONE_VM | CLONE_VFORK) with its
 * own stack, so the parent's threads are never duplicated and exec errors (ENOENT, EACCES)
 * come back as its return value — the failed child already reaped by glibc.
 *
 * Memory: `posix_spawn_file_actions_t` and `posix_spawnattr_t` are opaque; they live in
 * {@link SPAWN_STRUCT_SIZE}-byte ArrayBuffers (glibc's are 80 and 336 bytes, Darwin's 8).
 * Strings are NUL-terminated and every pointer array (argv, envp) is ArrayBuffer-backed;
 * all of it is referenced by the caller until the synchronous call returns.
 *
 * Must never: throw (results are ≥ 0 or −errno; posix_spawn's own error is returned as
 * −errno too), or keep a pointer into a JS buffer past the call that used it.
 * Must never import: lib/**
 */
import { dlopen, ptr } from "bun:ffi";
import { errno, fcntl } from "./libc.ts";

const LIBC_PATH =
  process.platform === "linux" ? "libc.so.6" : process.platform === "freebsd" ? "libc.so.7" : "libSystem.B.dylib";

/** Bytes reserved for one posix_spawn_file_actions_t or posix_spawnattr_t (larger than any libc's). */
export const SPAWN_STRUCT_SIZE = 512;

/** posix_spawnattr flags (the same values on glibc, Darwin and FreeBSD). */
export const POSIX_SPAWN_SETPGROUP = 0x02;
export const POSIX_SPAWN_SETSIGDEF = 0x04;
export const POSIX_SPAWN_SETSIGMASK = 0x08;

/** waitpid options and access modes. */
export const WNOHANG = 1;
export const X_OK = 1;
export const F_OK = 0;

/** Bytes of a sigset_t reel fills (glibc's is 128; Darwin's 4, FreeBSD's 16: a prefix of this). */
export const SIGSET_SIZE = 128;

const C = dlopen(LIBC_PATH, {
  posix_spawn: { args: ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr"], returns: "i32" },
  posix_spawn_file_actions_init: { args: ["ptr"], returns: "i32" },
  posix_spawn_file_actions_destroy: { args: ["ptr"], returns: "i32" },
  posix_spawn_file_actions_adddup2: { args: ["ptr", "i32", "i32"], returns: "i32" },
  posix_spawn_file_actions_addopen: { args: ["ptr", "i32", "ptr", "i32", "u32"], returns: "i32" },
  posix_spawn_file_actions_addclose: { args: ["ptr", "i32"], returns: "i32" },
  posix_spawnattr_init: { args: ["ptr"], returns: "i32" },
  posix_spawnattr_destroy: { args: ["ptr"], returns: "i32" },
  posix_spawnattr_setflags: { args: ["ptr", "i16"], returns: "i32" },
  posix_spawnattr_setsigmask: { args: ["ptr", "ptr"], returns: "i32" },
  posix_spawnattr_setsigdefault: { args: ["ptr", "ptr"], returns: "i32" },
  posix_spawnattr_setpgroup: { args: ["ptr", "i32"], returns: "i32" },
  waitpid: { args: ["i32", "ptr", "i32"], returns: "i32" },
  kill: { args: ["i32", "i32"], returns: "i32" },
  access: { args: ["ptr", "i32"], returns: "i32" },
  isatty: { args: ["i32"], returns: "i32" },
}).symbols;

// posix_spawn_file_actions_addchdir_np: glibc ≥ 2.29, macOS ≥ 10.15, FreeBSD ≥ 13.1.
let chdirFn: ((fa: Uint8Array, path: Uint8Array) => number) | null | undefined;
function chdirAction(): ((fa: Uint8Array, path: Uint8Array) => number) | null {
  if (chdirFn !== undefined) return chdirFn;
  try {
    const s = dlopen(LIBC_PATH, { posix_spawn_file_actions_addchdir_np: { args: ["ptr", "ptr"], returns: "i32" } }).symbols;
    chdirFn = (fa, path) => s.posix_spawn_file_actions_addchdir_np(fa, path);
  } catch {
    chdirFn = null;
  }
  return chdirFn;
}

// syscall(2) for pidfd_open: variadic in C, declared with fixed 64-bit args (exact on
// x86-64 and arm64 Linux, as ffi/uring.ts does). Loaded on Linux only.
let sysFn: ((nr: number, a: number, b: number) => number) | null = null;
/** pidfd_open's syscall number: the same on every Linux architecture (new syscalls are unified). */
const SYS_PIDFD_OPEN = 434;

/** −errno for a libc call that returned −1. */
function ret(r: number): number {
  return r < 0 ? -errno() : r;
}

/** A NUL-terminated, ArrayBuffer-backed copy of `s`. */
export function cString(s: string): Uint8Array {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(new ArrayBuffer(bytes.length + 1));
  out.set(bytes);
  return out;
}

/**
 * A NULL-terminated `char *[]` over `strings`: the pointer array and the string storage,
 * both ArrayBuffer-backed. The caller keeps the returned object alive across the call.
 */
export function cStringArray(strings: readonly string[]): { array: Uint8Array; storage: Uint8Array } {
  const enc = new TextEncoder();
  const parts = strings.map((s) => enc.encode(s));
  let total = 0;
  for (const p of parts) total += p.length + 1;
  const storage = new Uint8Array(new ArrayBuffer(Math.max(total, 1)));
  const array = new Uint8Array(new ArrayBuffer((parts.length + 1) * 8));
  const words = new Uint32Array(array.buffer);
  // SAFETY: `storage` is ArrayBuffer-backed and referenced by the returned object, which the
  // caller holds until posix_spawn returns; its address is stable for that long.
  const base = parts.length > 0 ? (ptr(storage) as number) : 0;
  let off = 0;
  parts.forEach((p, i) => {
    storage.set(p, off);
    const addr = base + off;
    words[i * 2] = addr >>> 0;
    words[i * 2 + 1] = Math.floor(addr / 0x1_0000_0000);
    off += p.length + 1;
  });
  return { array, storage };
}

/** posix_spawn_file_actions_init into a fresh buffer: the buffer, or −errno. */
export function fileActionsInit(): Uint8Array | number {
  const fa = new Uint8Array(new ArrayBuffer(SPAWN_STRUCT_SIZE));
  const r = C.posix_spawn_file_actions_init(fa);
  return r !== 0 ? -r : fa;
}

export function fileActionsDestroy(fa: Uint8Array): void {
  C.posix_spawn_file_actions_destroy(fa);
}

/** In the child: dup2(fd, newfd) (which clears FD_CLOEXEC on newfd). 0 or −errno. */
export function addDup2(fa: Uint8Array, fd: number, newfd: number): number {
  return -C.posix_spawn_file_actions_adddup2(fa, fd, newfd);
}

/** In the child: open(path, flags, mode) as `fd`. `path` is NUL-terminated and kept alive by the caller. 0 or −errno. */
export function addOpen(fa: Uint8Array, fd: number, path: Uint8Array, flags: number, mode: number): number {
  return -C.posix_spawn_file_actions_addopen(fa, fd, path, flags, mode);
}

/** In the child: close(fd). 0 or −errno. */
export function addClose(fa: Uint8Array, fd: number): number {
  return -C.posix_spawn_file_actions_addclose(fa, fd);
}

/** In the child: chdir(path) before exec. 0, −errno, or −ENOSYS when this libc lacks it. */
export function addChdir(fa: Uint8Array, path: Uint8Array): number {
  const f = chdirAction();
  return f === null ? -38 : -f(fa, path);
}

/** posix_spawnattr_init into a fresh buffer: the buffer, or −errno. */
export function attrInit(): Uint8Array | number {
  const at = new Uint8Array(new ArrayBuffer(SPAWN_STRUCT_SIZE));
  const r = C.posix_spawnattr_init(at);
  return r !== 0 ? -r : at;
}

export function attrDestroy(at: Uint8Array): void {
  C.posix_spawnattr_destroy(at);
}

export function attrSetFlags(at: Uint8Array, flags: number): number {
  return -C.posix_spawnattr_setflags(at, flags);
}

/** The signal mask the child starts with (`set` is a {@link SIGSET_SIZE}-byte sigset). */
export function attrSetSigmask(at: Uint8Array, set: Uint8Array): number {
  return -C.posix_spawnattr_setsigmask(at, set);
}

/** Signals whose action the child resets to SIG_DFL (ignored ones included: SIGPIPE). */
export function attrSetSigdefault(at: Uint8Array, set: Uint8Array): number {
  return -C.posix_spawnattr_setsigdefault(at, set);
}

export function attrSetPgroup(at: Uint8Array, pgid: number): number {
  return -C.posix_spawnattr_setpgroup(at, pgid);
}

/**
 * posix_spawn(&pid, path, fa, attr, argv, envp): the child's pid, or −errno (ENOENT,
 * EACCES, ENOEXEC… from the exec itself; glibc has reaped that child already).
 */
export function spawn(path: Uint8Array, fa: Uint8Array, attr: Uint8Array, argv: Uint8Array, envp: Uint8Array): number {
  const pid = new Int32Array(new ArrayBuffer(4));
  const r = C.posix_spawn(pid, path, fa, attr, argv, envp);
  return r !== 0 ? -r : pid[0]!;
}

/** pidfd_open(pid, 0): a pollable fd readable once the process exits, or −errno (−ENOSYS off Linux). */
export function pidfdOpen(pid: number): number {
  if (process.platform !== "linux") return -38;
  if (sysFn === null) {
    const s = dlopen("libc.so.6", { syscall: { args: ["i64", "i64", "i64"], returns: "i32" } }).symbols;
    sysFn = (nr, a, b) => s.syscall(nr, a, b);
  }
  return ret(sysFn(SYS_PIDFD_OPEN, pid, 0));
}

const statusWord = new Int32Array(new ArrayBuffer(4));

/**
 * waitpid(pid, &status, options): `[pid, status]` once reaped, `[0, 0]` when WNOHANG and
 * still running, or −errno.
 */
export function waitpid(pid: number, options: number): [number, number] | number {
  statusWord[0] = 0;
  const r = C.waitpid(pid, statusWord, options);
  if (r < 0) return -errno();
  return [r, statusWord[0]!];
}

/** kill(pid, sig): 0 or −errno. A negative pid names a process group. */
export function kill(pid: number, sig: number): number {
  return ret(C.kill(pid, sig));
}

/** access(path, mode) with a NUL-terminated path: 0 or −errno. */
export function access(path: Uint8Array, mode: number): number {
  return ret(C.access(path, mode));
}

/** isatty(fd): true for a terminal. */
export function isatty(fd: number): boolean {
  return C.isatty(fd) === 1;
}

/** Decodes a wait status: the exit code (≥ 0) or, when killed, −1 and the signal number. */
export function decodeStatus(status: number): { code: number; signal: number } {
  const low = status & 0x7f;
  if (low === 0) return { code: (status >> 8) & 0xff, signal: 0 };
  return { code: -1, signal: low };
}

/** fcntl's F_DUPFD_CLOEXEC on this platform. */
const F_DUPFD_CLOEXEC = process.platform === "linux" ? 1030 : process.platform === "freebsd" ? 17 : 67;

/**
 * A close-on-exec duplicate of `fd` numbered ≥ `min` (the same open file: same offset,
 * same flags — nothing about the file changes): the new fd, or −errno.
 */
export function dupAbove(fd: number, min: number): number {
  return fcntl(fd, F_DUPFD_CLOEXEC, min);
}

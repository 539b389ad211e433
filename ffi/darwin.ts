/**
 * Darwin (macOS) specifics for the ffi layer: calling the variadic `fcntl` correctly on
 * Apple arm64, where a fixed-argument declaration is silently wrong.
 *
 * The problem. `int fcntl(int fd, int cmd, ...)` is variadic. On x86-64 (SysV) and on
 * arm64 Linux/FreeBSD (AAPCS64), an anonymous argument travels like a named one: the third
 * argument is in the third register (rdx / x2), so bun:ffi's fixed `(i32, i32, i32)`
 * declaration works. Apple's arm64 ABI differs: every anonymous argument goes on the
 * stack, each in its own 8-byte slot starting at the caller's stack pointer ("Writing ARM64
 * code for Apple platforms"; the iOS ABI guide, "Variadic functions"). fcntl(fd, F_SETFL,
 * O_NONBLOCK) declared with fixed args therefore reads a garbage stack word as its flags.
 *
 * The choice made here: a non-variadic path, no `cc()` shim. fcntl is declared as a
 * fixed nine-argument function. Arguments 1–8 go in registers x0–x7 (or rdi…r9, then the
 * stack, on x86-64); the ninth, an i64, is the first stack argument, at [sp] — exactly the
 * slot where Apple arm64's fcntl looks for its first anonymous argument. The value is
 * also passed third, where x86-64 and every other arm64 ABI look. Callers clean up the
 * stack on all these ABIs, so the extra arguments are harmless to a callee that reads
 * fewer. This needs no compiler at run time (TinyCC's handling of Apple's variadic rule is
 * not something reel can test here) and costs a few ns on setup paths only.
 *
 * Linux keeps its plain 3-argument declaration in ffi/libc.ts; this module is loaded by
 * libc.ts on Darwin only, and by tests on Linux (the same 9-argument call is exact there
 * too, which is what the tests check).
 *
 * Must never: dlopen at import time, read errno (libc.ts does, right after the call), or
 * throw.
 * Must never import: lib/**, ffi/libc.ts
 */
import { dlopen } from "bun:ffi";

/** The fixed declaration: fd, cmd, the argument, five register fillers, the argument again. */
export const FCNTL_FIXED = {
  args: ["i32", "i32", "i64", "i64", "i64", "i64", "i64", "i64", "i64"],
  returns: "i32",
} as const;

/** A raw fcntl: the libc return value (−1 on failure; the caller reads errno at once). */
export type RawFcntl = (fd: number, cmd: number, arg: number) => number;

/**
 * Opens `fcntl` from `libPath` with the {@link FCNTL_FIXED} declaration and returns a
 * 3-argument caller that fills the stack slot.
 *
 * @example
 * ```ts
 * const fcntl = openFixedFcntl("libSystem.B.dylib");
 * const fl = fcntl(fd, F_GETFL, 0);
 * fcntl(fd, F_SETFL, fl | O_NONBLOCK);
 * ```
 */
export function openFixedFcntl(libPath: string): RawFcntl {
  const sym = dlopen(libPath, { fcntl: FCNTL_FIXED }).symbols.fcntl;
  // arg is an int or a small pointer-sized value: written both third (register ABIs) and
  // ninth (Apple arm64's first variadic stack slot).
  return (fd, cmd, arg) => sym(fd, cmd, arg, 0, 0, 0, 0, 0, arg);
}

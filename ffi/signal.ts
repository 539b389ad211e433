/**
 * Signals: the platform's signal numbers, and a native signal handler installed with
 * sigaction(2) that records each occurrence and writes one byte to a pipe — the self-pipe
 * pattern (tokio's signal-hook-registry does the same), compiled once at run time with
 * bun:ffi's `cc()` (TinyCC, built into Bun).
 *
 * Why a native handler and not signalfd alone: signalfd only sees a signal that is blocked
 * in the thread that reads it — and in *every* other thread, or the kernel delivers the
 * process-directed signal to one that does not block it. Bun runs threads reel does not
 * own (JIT, GC, Workers) with every signal unblocked, so a SIGTERM sent while they run
 * kills the process despite the main thread's mask (measured on Linux 6.18). A handler
 * runs on whichever thread the kernel picks, and only stores and writes.
 *
 * The handler is async-signal-safe: it increments a per-signal counter, write(2)s one byte
 * to the pipe (non-blocking: a full pipe drops the byte, never the count) and restores
 * errno. Counters only grow; readers compare against what they saw. The previous action of
 * each signal is saved when reel installs its own and put back by {@link restoreHandler}.
 *
 * Must never: throw (results are 0 or −errno), compile the handler before it is needed,
 * or install a handler for a signal it cannot restore.
 * Must never import: lib/**
 */
import { cc } from "bun:ffi";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Signal numbers by name, per platform. */
const LINUX_SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8,
  SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22,
  SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29,
  SIGPWR: 30, SIGSYS: 31,
};
const BSD_SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGEMT: 7, SIGFPE: 8,
  SIGKILL: 9, SIGBUS: 10, SIGSEGV: 11, SIGSYS: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGURG: 16, SIGSTOP: 17, SIGTSTP: 18, SIGCONT: 19, SIGCHLD: 20, SIGTTIN: 21, SIGTTOU: 22,
  SIGIO: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGINFO: 29,
  SIGUSR1: 30, SIGUSR2: 31,
};

/** This platform's signal numbers by name ("SIGINT" → 2). */
export const SIGNALS: Readonly<Record<string, number>> = process.platform === "linux" ? LINUX_SIGNALS : BSD_SIGNALS;

/** The largest signal number the handler tracks. */
export const MAX_SIGNAL = 64;

// The handler's C source. No system headers (a machine without libc headers still
// compiles it): struct sigaction and the errno accessor are spelled out per platform.
const SOURCE = `
#if defined(__APPLE__)
struct ksa { void (*handler)(int); unsigned int mask; int flags; };
#define SA_RESTART_ 0x0002
extern int *__error(void);
#define ERRNO (*__error())
#elif defined(__FreeBSD__)
struct ksa { void (*handler)(int); int flags; unsigned int mask[4]; };
#define SA_RESTART_ 0x0002
extern int *__error(void);
#define ERRNO (*__error())
#else
struct ksa { void (*handler)(int); unsigned long mask[16]; int flags; void (*restorer)(void); };
#define SA_RESTART_ 0x10000000
extern int *__errno_location(void);
#define ERRNO (*__errno_location())
#endif
extern long write(int, const void *, unsigned long);
extern int sigaction(int, const struct ksa *, struct ksa *);

static volatile int wfd = -1;
static volatile unsigned int counts[65];
static struct ksa saved[65];
static char installed[65];

static void on_signal(int sig) {
  int e = ERRNO;
  unsigned char b = (unsigned char)sig;
  int f = wfd;
  if (sig > 0 && sig < 65) counts[sig] = counts[sig] + 1;
  if (f >= 0) (void)write(f, &b, 1);
  ERRNO = e;
}

void reel_sig_set_fd(int fd) { wfd = fd; }

unsigned int reel_sig_count(int sig) { return (sig > 0 && sig < 65) ? counts[sig] : 0; }

int reel_sig_install(int sig) {
  struct ksa sa;
  int i;
  char *p = (char *)&sa;
  if (sig <= 0 || sig >= 65) return -22;
  for (i = 0; i < (int)sizeof(sa); i++) p[i] = 0;
  sa.handler = on_signal;
  sa.flags = SA_RESTART_;
  if (sigaction(sig, &sa, installed[sig] ? 0 : &saved[sig]) != 0) return -ERRNO;
  installed[sig] = 1;
  return 0;
}

int reel_sig_restore(int sig) {
  if (sig <= 0 || sig >= 65 || !installed[sig]) return 0;
  installed[sig] = 0;
  if (sigaction(sig, &saved[sig], 0) != 0) return -ERRNO;
  return 0;
}
`;

type Native = {
  reel_sig_set_fd: (fd: number) => void;
  reel_sig_count: (sig: number) => number;
  reel_sig_install: (sig: number) => number;
  reel_sig_restore: (sig: number) => number;
};

let native: Native | null = null;
let nativeError: string | null = null;
// The compiled library must stay referenced: the handler's code lives in its memory.
let keepAlive: unknown = null;

/** Compiles the handler on first use; null (see {@link handlerError}) if cc() is unavailable. */
function lib(): Native | null {
  if (native !== null || nativeError !== null) return native;
  let dir: string | null = null;
  try {
    dir = mkdtempSync(join(tmpdir(), "reel-sig-"));
    const file = join(dir, "handler.c");
    writeFileSync(file, SOURCE);
    const l = cc({
      source: file,
      symbols: {
        reel_sig_set_fd: { args: ["i32"], returns: "void" },
        reel_sig_count: { args: ["i32"], returns: "u32" },
        reel_sig_install: { args: ["i32"], returns: "i32" },
        reel_sig_restore: { args: ["i32"], returns: "i32" },
      },
    });
    keepAlive = l;
    native = l.symbols as unknown as Native;
  } catch (err) {
    nativeError = err instanceof Error ? err.message : String(err);
  } finally {
    try {
      if (dir !== null) rmSync(dir, { recursive: true, force: true });
    } catch {
      // A temp dir left behind is harmless; ffi/ never throws.
    }
  }
  return native;
}

/** Why the native handler could not be built (cc() failed), or null. */
export function handlerError(): string | null {
  lib();
  return keepAlive === null ? nativeError : null;
}

/** Where the handler writes its wake-up byte (a non-blocking pipe's write end), or -1. */
export function setWakeFd(fd: number): number {
  const n = lib();
  if (n === null) return -38;
  n.reel_sig_set_fd(fd);
  return 0;
}

/** Installs reel's handler for `sig` (the previous action is saved once): 0 or −errno. */
export function installHandler(sig: number): number {
  const n = lib();
  return n === null ? -38 : n.reel_sig_install(sig);
}

/** Puts back the action `sig` had before {@link installHandler}: 0 or −errno. */
export function restoreHandler(sig: number): number {
  const n = lib();
  return n === null ? -38 : n.reel_sig_restore(sig);
}

/** How many times the handler has seen `sig` since the process started (wraps at 2^32). */
export function occurrences(sig: number): number {
  const n = lib();
  return n === null ? 0 : n.reel_sig_count(sig);
}

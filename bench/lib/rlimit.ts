// RLIMIT_NOFILE of this process through bun:ffi (Linux only), for harnesses that hold many
// sockets open. Returns numbers and never throws for a refused raise: the caller reports it.
// Must never lower a limit.
import { dlopen } from "bun:ffi";

const RLIMIT_NOFILE = 7; // Linux, x86-64 and arm64

const libc = dlopen("libc.so.6", {
  getrlimit: { args: ["i32", "ptr"], returns: "i32" },
  setrlimit: { args: ["i32", "ptr"], returns: "i32" },
});

/** The open-file limit of this process: soft (current) and hard (ceiling). */
export interface NofileLimit {
  soft: number;
  hard: number;
}

/** Reads RLIMIT_NOFILE of this process. */
export function getNofile(): NofileLimit {
  const lim = new BigUint64Array(2); // struct rlimit { rlim_t cur, max }
  if (libc.symbols.getrlimit(RLIMIT_NOFILE, lim) !== 0) return { soft: 0, hard: 0 };
  return { soft: Number(lim[0]!), hard: Number(lim[1]!) };
}

/**
 * Raises this process's soft RLIMIT_NOFILE to at least `want`, and the hard limit too when
 * `want` exceeds it (that needs CAP_SYS_RESOURCE). Never lowers either.
 * @returns the limit in force afterwards (check `soft >= want`).
 */
export function raiseNofile(want: number): NofileLimit {
  const cur = getNofile();
  if (cur.soft >= want) return cur;
  const hard = Math.max(cur.hard, want);
  const lim = new BigUint64Array([BigInt(want), BigInt(hard)]);
  if (libc.symbols.setrlimit(RLIMIT_NOFILE, lim) !== 0 && hard > cur.hard) {
    lim[0] = BigInt(cur.hard); // not allowed past the hard limit: take what we may
    lim[1] = BigInt(cur.hard);
    libc.symbols.setrlimit(RLIMIT_NOFILE, lim);
  }
  return getNofile();
}

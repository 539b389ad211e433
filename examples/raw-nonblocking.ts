/**
 * Seed 003, step 1: a non-blocking socket by hand, on the ffi layer only.
 *
 * A non-blocking read on a socket with no data returns EAGAIN ("would block") at once
 * instead of waiting. Without a reactor the only way to wait is to spin: try, get
 * EAGAIN, try again. This example counts how many wasted attempts that takes — the cost
 * the readiness model (next example: event-loop.ts) removes.
 *
 *   bun run examples/raw-nonblocking.ts
 */
import * as libc from "../ffi/libc.ts";
import { LINUX, SYS } from "../ffi/constants.ts";
import { EAGAIN, errnoName } from "../ffi/errno.ts";

if (SYS !== LINUX) console.warn("note: written for Linux flags; other platforms may differ");

// A connected pair of non-blocking stream sockets.
const fds = new Int32Array(2);
const r = libc.socketpair(SYS.AF_UNIX, SYS.SOCK_STREAM | SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC, 0, fds);
if (r < 0) throw new Error(`socketpair failed: ${errnoName(-r)}`);
const [a, b] = [fds[0]!, fds[1]!];

const buf = new Uint8Array(64);
let wouldBlock = 0;
const start = performance.now();
let sent = false;
for (;;) {
  const n = libc.read(b, buf);
  if (n >= 0) {
    console.log(`read ${n} bytes: "${new TextDecoder().decode(buf.subarray(0, n))}"`);
    break;
  }
  if (n !== -EAGAIN) throw new Error(`read failed: ${errnoName(-n)}`);
  wouldBlock++;
  // After ~2 ms of spinning, the "peer" finally writes.
  if (!sent && performance.now() - start > 2) {
    libc.write(a, new TextEncoder().encode("hello, non-blocking world"));
    sent = true;
  }
}
console.log(`spun through ${wouldBlock} EAGAIN results (${(performance.now() - start).toFixed(2)} ms of busy CPU) before data came`);
libc.close(a);
libc.close(b);

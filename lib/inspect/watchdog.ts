/**
 * The slow-poll detector's watchdog: a Worker that watches, through shared memory, whether
 * the executor is making progress, so the executor never reads a clock per poll.
 *
 * Why a thread: a wake+re-poll costs ~21 ns and performance.now() ~50 ns on this VM, so
 * timing each poll would more than triple it. Instead the executor writes a sequence
 * number into shared memory before each poll (one store) and reads one slot after it
 * (one load). The watchdog wakes every threshold/4 ms; when it sees the same sequence
 * number inside a batch for `threshold` ms, that poll is slow: it writes the number into
 * SLOW, and the executor, once the poll returns, finds its own number there and reports
 * the task it just polled — its name, its spawn site, how long (at least) it held the
 * thread. A poll that never returns cannot be reported by the executor; the watchdog then
 * says so itself on stderr (once, after 20 × threshold), without names.
 *
 * Not every stall is the task's: on a loaded machine the OS may deschedule the thread
 * mid-poll. The watchdog checks the main thread in /proc before reporting (see SOURCE):
 * blocked in the kernel or busy on the CPU is reported, merely descheduled is not.
 *
 * The executor's stores are plain (not Atomics): the watchdog only needs to see them
 * eventually, an aligned 32-bit store is never torn, and the watchdog reads with
 * Atomics.load. A stale read can only delay a report by one period, never invent one:
 * a report needs the same number seen twice, `threshold` ms apart, with STATE = 1.
 *
 * Layout of the Int32Array {@link watchdog}: SEQ (poll sequence), STATE (1 inside a batch),
 * SLOW (the sequence number found stuck), THRESHOLD (ms, 0 = off: the running runtime's
 * slowPollMs); a Float64 view holds SINCE (Date.now() when the stuck number was first seen).
 *
 * One watchdog per process, started on the main thread when the executor module loads,
 * unref'd so it never keeps the process alive; its script is inline (no file to open). A
 * Worker creates its own event-loop fds on its own thread, some time after `new Worker`
 * returns; so loading waits (Atomics.wait, at most 1 s; ~10 ms on this VM) until the
 * watchdog says it runs: afterwards, a program's or a test's fd count never sees them
 * appear. REEL_SLOW_POLL_MS=0 keeps it from starting at all (no thread, no wait).
 *
 * Must never: write anything but SLOW and SINCE, touch runtime state, or spin (it sleeps
 * in Atomics.wait between checks, longer when nothing runs).
 */

/** Indices into {@link watchdog}. */
export const SEQ = 0;
export const STATE = 1;
export const SLOW = 2;
export const THRESHOLD = 3;
const shared = new SharedArrayBuffer(32);

/**
 * The shared control words (see the module header). The executor writes SEQ, STATE and
 * THRESHOLD and reads SLOW.
 *
 * @example
 * ```ts
 * watchdog[SEQ] = seq; task.run(); if (watchdog[SLOW] === seq) report(task);
 * ```
 */
export const watchdog = new Int32Array(shared, 0, 4);
/** SINCE: bytes 16–23. */
const since = new Float64Array(shared, 16, 1);
/** READY (bytes 24–27): set and notified by the watchdog once it runs. */
const ready = new Int32Array(shared, 24, 1);

/**
 * Sets the threshold of the runtime about to run (ms, 0 = off), waking the watchdog when it
 * changes (it may be asleep for a whole idle period otherwise).
 *
 * @example
 * ```ts
 * setThreshold(rt.slowPollMs); // on entering blockOn or a hosted slice
 * ```
 */
export function setThreshold(ms: number): void {
  const v = Math.min(0x7fffffff, Math.ceil(ms));
  if (watchdog[THRESHOLD] === v) return;
  Atomics.store(watchdog, THRESHOLD, v);
  Atomics.notify(watchdog, THRESHOLD);
}

/**
 * Date.now() when the watchdog first saw the poll it reported as slow.
 *
 * @example
 * ```ts
 * const atLeast = Date.now() - slowSince();
 * ```
 */
export function slowSince(): number {
  return since[0]!;
}

/**
 * The watchdog's loop, run as the Worker's whole script. A candidate (the same sequence
 * number inside a batch for `threshold` ms) is checked against the main thread's own
 * record in /proc (Linux), looked at twice: it is reported when the thread is blocked in
 * the kernel (a blocking call: state S or D) or used at least half the time between the
 * two looks on the CPU (busy in JS).
 * A thread that was merely descheduled — a loaded machine, not the task's fault — is not
 * reported. Without /proc every candidate is reported.
 */
const SOURCE = `
const fs = require("node:fs");
self.onmessage = (e) => {
  const { buf, tid } = e.data;
  const ctl = new Int32Array(buf, 0, 4);
  const since = new Float64Array(buf, 16, 1);
  const ready = new Int32Array(buf, 24, 1);
  Atomics.store(ready, 0, 1);
  Atomics.notify(ready, 0);
  const statPath = "/proc/self/task/" + tid + "/stat";
  let haveProc = true;
  // [state, cpu ms] of the main thread, or null without /proc.
  const sample = () => {
    if (!haveProc) return null;
    try {
      const t = fs.readFileSync(statPath, "latin1");
      const f = t.slice(t.lastIndexOf(")") + 2).split(" ");
      return [f[0], (Number(f[11]) + Number(f[12])) * 10];
    } catch { haveProc = false; return null; }
  };
  let last = -1, firstSeen = 0, mid = null, reported = -1, warned = -1, idle = 0;
  for (;;) {
    const thr = Atomics.load(ctl, 3);
    const busy = thr > 0 && Atomics.load(ctl, 1) === 1;
    idle = busy ? 0 : Math.min(idle + 1, 16);
    // Sleeps on THRESHOLD: a runtime that changes it (setThreshold) wakes the watchdog at once.
    Atomics.wait(ctl, 3, thr, thr > 0 ? Math.max(1, thr >> 1) * (idle >= 16 ? 2 : 1) : 1000);
    if (!(thr > 0 && Atomics.load(ctl, 1) === 1)) { last = -1; continue; }
    const seq = Atomics.load(ctl, 0);
    const now = Date.now();
    if (seq !== last) { last = seq; firstSeen = now; mid = null; continue; }
    const held = now - firstSeen;
    if (reported === seq) { /* already reported */ }
    else if (mid === null) mid = [now, sample()]; // a long poll: first look at the thread
    else if (held >= thr) {
      const s = sample();
      const m = mid[1];
      // Blocked in the kernel, or on the CPU for at least half the time between the looks.
      if (s === null || m === null || s[0] === "S" || s[0] === "D" || s[1] - m[1] >= (now - mid[0]) / 2) {
        since[0] = firstSeen;
        Atomics.store(ctl, 2, seq);
        reported = seq;
      }
    }
    if (held >= thr * 20 && warned !== seq) {
      warned = seq;
      console.error("reel: slow-poll detector: the runtime thread has been inside one task poll for " + held + " ms and has not returned (an infinite loop or a blocking call?)");
    }
  }
};
`;

let started = false;

/**
 * Starts the process's watchdog Worker (idempotent; main thread only; not when
 * REEL_SLOW_POLL_MS=0).
 *
 * @example
 * ```ts
 * if (options.slowPollMs > 0) startWatchdog();
 * ```
 */
export function startWatchdog(): void {
  if (started) return;
  started = true;
  if (!Bun.isMainThread || process.env.REEL_SLOW_POLL_MS === "0") return;
  const url = URL.createObjectURL(new Blob([SOURCE], { type: "application/javascript" }));
  const w = new Worker(url);
  w.postMessage({ buf: shared, tid: process.pid });
  w.unref();
  Atomics.wait(ready, 0, 0, 1000); // its thread and fds exist once it answers (see the header)
}

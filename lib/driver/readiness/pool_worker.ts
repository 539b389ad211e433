/**
 * A blocking-file-I/O worker for the readiness backends (epoll, poll, kqueue), where
 * regular files are never "ready": it runs one blocking call per job, as tokio's
 * spawn_blocking pool does, and signals the runtime thread by writing the job's eventfd.
 *
 * Protocol (see pool.ts): a job message names its op and carries a SharedArrayBuffer for
 * the result (`ctl`: i32 state at 0, i32 result at 4, f64 stat fields from 8) and, for
 * read/write, one for the data. State: 0 queued → 3 running (this worker claims it with a
 * compare-and-swap) → 1 done → 4 released; the runtime thread may instead move a queued
 * job 0 → 2 (abandoned: cancelled or its file closed), and then this worker skips it
 * entirely — it neither runs the call nor touches the eventfd. The result is stored
 * before the state, and the state before the eventfd write, so the runtime thread that
 * sees the wake-up sees the result. "Released" (4) is stored after the eventfd write: from
 * then on this worker touches nothing of the job, so the runtime thread may close the
 * eventfd (it waits, with Atomics.wait, for jobs it saw done but not yet released).
 *
 * Must never: run an abandoned job, touch a job's fd or eventfd after it was abandoned,
 * touch a buffer after signalling, or throw out of onmessage (every error is a −errno).
 */
import { fdatasyncSync, fstatSync, fsyncSync, openSync, readSync, statSync, writeSync, type Stats } from "node:fs";
import * as libc from "../../../ffi/libc.ts";

declare const self: Worker;

/** One job, as pool.ts posts it. */
interface Job {
  op: "open" | "read" | "write" | "stat" | "fstat" | "fsync";
  fd: number;
  path: string;
  flags: number;
  mode: number;
  len: number;
  pos: number;
  datasync: boolean;
  ctl: SharedArrayBuffer;
  data: SharedArrayBuffer | null;
  efd: number;
}

const QUEUED = 0;
const DONE = 1;
const RUNNING = 3;
const RELEASED = 4;

const one = new Uint8Array(new ArrayBuffer(8));
one[0] = 1;

function putStat(f64: Float64Array, s: Stats): number {
  f64[0] = s.size;
  f64[1] = s.mode;
  f64[2] = s.ino;
  f64[3] = s.blocks;
  f64[4] = s.mtimeMs;
  return 0;
}

function run(j: Job, f64: Float64Array): number {
  switch (j.op) {
    case "open":
      return openSync(j.path, j.flags, j.mode);
    case "read":
      return readSync(j.fd, new Uint8Array(j.data!, 0, j.len), 0, j.len, j.pos < 0 ? null : j.pos);
    case "write":
      return writeSync(j.fd, new Uint8Array(j.data!, 0, j.len), 0, j.len, j.pos < 0 ? null : j.pos);
    case "stat":
      return putStat(f64, statSync(j.path));
    case "fstat":
      return putStat(f64, fstatSync(j.fd));
    case "fsync":
      if (j.datasync) fdatasyncSync(j.fd);
      else fsyncSync(j.fd);
      return 0;
  }
}

/** A thrown fs error as −errno (Bun and Node report errno negative or positive). */
function errnoOf(err: unknown): number {
  const e = (err as { errno?: unknown }).errno;
  return typeof e === "number" && e !== 0 ? Math.abs(e) : 5; // EIO when unknown
}

self.onmessage = (ev: MessageEvent<Job>) => {
  const j = ev.data;
  const ctl = new Int32Array(j.ctl, 0, 2);
  // Claim the job; an abandoned one (state 2) is skipped without a trace.
  if (Atomics.compareExchange(ctl, 0, QUEUED, RUNNING) !== QUEUED) return;
  let r: number;
  try {
    r = run(j, new Float64Array(j.ctl, 8, 5));
  } catch (err) {
    r = -errnoOf(err);
  }
  Atomics.store(ctl, 1, r);
  Atomics.store(ctl, 0, DONE);
  libc.write(j.efd, one);
  Atomics.store(ctl, 0, RELEASED);
  Atomics.notify(ctl, 0);
};

// Loaded: tell the pool (startFsPool's Promise) this Worker is ready.
postMessage("ready");

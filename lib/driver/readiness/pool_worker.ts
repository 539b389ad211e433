/**
 * A blocking-call worker (pool.ts): regular files on the readiness backends (epoll, poll,
 * kqueue), where they are never "ready"; path calls with no io_uring opcode (readdir,
 * readlink, realpath) on every backend; and, on a dedicated Worker, reads and writes of
 * fds reel must not make non-blocking (stdin/stdout/stderr: shared.ts). It runs one
 * blocking call per job, as tokio's spawn_blocking pool does, and signals the runtime
 * thread by writing the job's eventfd.
 *
 * Protocol (see pool.ts): a job message names its op and carries a SharedArrayBuffer for
 * the result (`ctl`: i32 state at 0, i32 result at 4, i32 fds to close at 8 and 12, f64
 * stat fields from 16) and, for read/write, one for the data — growable for the
 * variable-size results (readdir, readlink, realpath), which are written there and whose
 * byte length is the result. State: 0 queued → 3 running (this worker claims it with a
 * compare-and-swap) → 1 done → 4 released; the runtime thread may instead move a queued
 * job 0 → 2 (abandoned), and then this worker skips it entirely, or a running one 3 → 5
 * (detached), and then this worker closes the fds named at 8 and 12 when the call returns,
 * stores 6, and touches nothing else. The result is stored before the state, and the state before
 * the eventfd write, so the runtime thread that sees the wake-up sees the result.
 * "Released" (4) is stored after the eventfd write: from then on this worker touches
 * nothing of the job, so the runtime thread may close the eventfd.
 *
 * Must never: run an abandoned job, write the eventfd of a detached one, touch a job's fd
 * or eventfd after it was abandoned, touch a buffer after signalling, or throw out of
 * onmessage (every error is a −errno).
 */
import {
  fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, lstatSync, mkdirSync, openSync, readSync, readdirSync, readlinkSync,
  realpathSync, renameSync, rmdirSync, statSync, symlinkSync, truncateSync, unlinkSync, writeSync, type Stats,
} from "node:fs";
import * as libc from "../../../ffi/libc.ts";
import { EAGAIN, EINTR } from "../../../ffi/errno.ts";
import { POLLIN, POLLOUT, PollFds, pollFds } from "../../../ffi/poll.ts";

declare const self: Worker;

/** One job, as pool.ts posts it. */
interface Job {
  op: string;
  fd: number;
  path: string;
  path2: string;
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
const DETACHED_ENDED = 6;

const one = new Uint8Array(new ArrayBuffer(8));
one[0] = 1;
const encoder = new TextEncoder();
const waitFds = new PollFds(1);
/** Bounce buffer for sread/swrite (libc calls need memory bun:ffi can point at). */
let bounce = new Uint8Array(new ArrayBuffer(65536));

function putStat(f64: Float64Array, s: Stats): number {
  const v = [s.size, s.mode, s.ino, s.blocks, s.mtimeMs, s.nlink, s.uid, s.gid, s.dev, s.rdev, s.atimeMs, s.ctimeMs, s.birthtimeMs];
  for (let i = 0; i < v.length; i++) f64[i] = v[i]!;
  return 0;
}

/** Writes `bytes` into the job's growable buffer: the byte count. */
function putBytes(j: Job, bytes: Uint8Array): number {
  const sab = j.data!;
  if (bytes.length > sab.byteLength) sab.grow(bytes.length); // RangeError past the maximum → EIO
  new Uint8Array(sab, 0, bytes.length).set(bytes);
  return bytes.length;
}

/** readdir's encoding: per entry, one type byte (S_IFMT >> 12, 0 unknown), the name, a NUL. */
function putDir(j: Job): number {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const d of readdirSync(j.path, { withFileTypes: true })) {
    const type = d.isFile() ? 8 : d.isDirectory() ? 4 : d.isSymbolicLink() ? 10 : d.isFIFO() ? 1 : d.isSocket() ? 12 : d.isCharacterDevice() ? 2 : d.isBlockDevice() ? 6 : 0;
    const name = encoder.encode(d.name);
    const e = new Uint8Array(name.length + 2);
    e[0] = type;
    e.set(name, 1);
    parts.push(e);
    total += e.length;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return putBytes(j, out);
}

/** Waits (blocking this worker) until `fd` is ready for `events`. */
function waitFor(fd: number, events: number): void {
  waitFds.length = 0;
  waitFds.push(fd, events);
  pollFds(waitFds, -1);
}

/**
 * read(2) on an fd that may be blocking or not (an inherited stdin): a non-blocking one
 * that has nothing is waited for with poll(2), here, off the runtime thread.
 */
function streamRead(j: Job): number {
  if (bounce.byteLength < j.len) bounce = new Uint8Array(new ArrayBuffer(j.len));
  const buf = bounce.subarray(0, j.len);
  for (;;) {
    const r = libc.read(j.fd, buf);
    if (r === -EAGAIN) waitFor(j.fd, POLLIN);
    else if (r !== -EINTR) {
      if (r > 0) new Uint8Array(j.data!, 0, r).set(buf.subarray(0, r));
      return r;
    }
  }
}

/** write(2) of the job's bytes, as {@link streamRead} (a short write is returned as such). */
function streamWrite(j: Job): number {
  if (bounce.byteLength < j.len) bounce = new Uint8Array(new ArrayBuffer(j.len));
  const buf = bounce.subarray(0, j.len);
  buf.set(new Uint8Array(j.data!, 0, j.len));
  for (;;) {
    const r = libc.write(j.fd, buf);
    if (r === -EAGAIN) waitFor(j.fd, POLLOUT);
    else if (r !== -EINTR) return r;
  }
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
    case "lstat":
      return putStat(f64, lstatSync(j.path));
    case "fstat":
      return putStat(f64, fstatSync(j.fd));
    case "fsync":
      if (j.datasync) fdatasyncSync(j.fd);
      else fsyncSync(j.fd);
      return 0;
    case "ftruncate":
      ftruncateSync(j.fd, j.len);
      return 0;
    case "truncate":
      truncateSync(j.path, j.len);
      return 0;
    case "mkdir":
      mkdirSync(j.path, { mode: j.mode });
      return 0;
    case "rename":
      renameSync(j.path, j.path2);
      return 0;
    case "unlink":
      unlinkSync(j.path);
      return 0;
    case "rmdir":
      rmdirSync(j.path);
      return 0;
    case "symlink":
      symlinkSync(j.path, j.path2);
      return 0;
    case "readlink":
      return putBytes(j, encoder.encode(readlinkSync(j.path)));
    case "realpath":
      return putBytes(j, encoder.encode(realpathSync(j.path)));
    case "readdir":
      return putDir(j);
    case "sread":
      return streamRead(j);
    case "swrite":
      return streamWrite(j);
    default:
      return -22; // EINVAL: an op this worker does not know
  }
}

/** A thrown fs error as −errno (Bun and Node report errno negative or positive). */
function errnoOf(err: unknown): number {
  const e = (err as { errno?: unknown }).errno;
  return typeof e === "number" && e !== 0 ? Math.abs(e) : 5; // EIO when unknown
}

self.onmessage = (ev: MessageEvent<Job>) => {
  const j = ev.data;
  const ctl = new Int32Array(j.ctl, 0, 4);
  // Claim the job; an abandoned one (state 2) is skipped without a trace.
  if (Atomics.compareExchange(ctl, 0, QUEUED, RUNNING) !== QUEUED) return;
  let r: number;
  try {
    r = run(j, new Float64Array(j.ctl, 16, 13));
  } catch (err) {
    r = -errnoOf(err);
  }
  Atomics.store(ctl, 1, r);
  if (Atomics.compareExchange(ctl, 0, RUNNING, DONE) !== RUNNING) {
    // Detached while running (state 5): close what the runtime handed over, report nothing.
    for (const k of [2, 3]) {
      const fd = Atomics.load(ctl, k);
      if (fd >= 0) libc.close(fd);
    }
    Atomics.store(ctl, 0, DETACHED_ENDED);
    return;
  }
  libc.write(j.efd, one);
  Atomics.store(ctl, 0, RELEASED);
  Atomics.notify(ctl, 0);
};

// Loaded: tell the pool (startFsPool's Promise) this Worker is ready.
postMessage("ready");

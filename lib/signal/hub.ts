/**
 * Signal delivery: one process-wide hub that turns occurrences of a signal into counts on
 * its listeners and wakes them. Two modes, chosen per signal at each poll by who owns the
 * thread:
 *
 * - **native** (inside `blockOn`, where Bun's loop never runs and `process.on` listeners
 *   would never fire): reel's own handler (ffi/signal.ts, installed with sigaction) counts
 *   the occurrence and writes a byte into a pipe; the pipe's read end is bound to the
 *   running driver (a duplicate, as an IoFd) and its readiness wakes the hub's *pump*,
 *   which reads the counters and wakes the listeners. The pump's registration is driver
 *   work, so a blockOn waiting only for a signal is not a deadlock.
 * - **bun** (hosted mode, `run()`): Bun's own `process.on(name)`; the listener counts and
 *   wakes. A ref'd timer keeps the process alive while such a listener waits (Bun's
 *   signal listeners do not).
 *
 * Why not signalfd: it only sees a signal blocked in *every* thread, and Bun's own threads
 * (JIT, GC, Workers) never block any — a process-directed SIGTERM then goes to one of them
 * and kills the process (measured: ffi/signal.ts). A handler runs on whichever thread the
 * kernel picks, so nothing about thread masks matters, and reel never changes the thread's
 * signal mask (so there is none to restore).
 *
 * Giving the thread back: when reel installs a handler it schedules a `setImmediate`,
 * which can only run once Bun's loop runs again — after `blockOn` returned. Then every
 * native handler is put back (the previous action: SIG_DFL, or Bun's own handler when the
 * program has `process.on` listeners), the pipe is drained into the listeners, the pump is
 * unbound, and every listener is woken, so a stream still alive re-installs the right mode
 * the next time its task runs. A signal that arrives in between is not lost: it is
 * counted and delivered.
 *
 * The wake-up pipe and the compiled handler live as long as the process (a handler that
 * is running on another thread while its action is being restored may still write the
 * pipe: its number must never be reused).
 *
 * Invariants: a signal has at most one mode at a time; its native handler is installed
 * only while it has listeners and reel owns the thread; the pump is bound to at most one
 * driver, the one last polled from, and closes with it.
 *
 * Must never: install a handler in hosted mode, leave a handler installed once the last
 * listener is gone, lose a counted occurrence, or wake a listener before its count is up.
 */
import * as libc from "../../ffi/libc.ts";
import * as proc from "../../ffi/process.ts";
import { SYS } from "../../ffi/constants.ts";
import * as sig from "../../ffi/signal.ts";
import { PENDING, type Context, type Waker } from "../future.ts";
import { currentDriver, currentDriverOrNull } from "../current.ts";
import { currentRuntime } from "../executor.ts";
import { SysError } from "../errors.ts";
import { DIR_READ, type IoFd } from "../driver/fd.ts";
import type { Driver } from "../driver/driver.ts";

/** One listener's view of one signal: occurrences it has not taken, and its waker. */
export class Listener {
  /** Occurrences delivered and not yet taken. */
  pending = 0;
  waker: Waker | null = null;
  closed = false;
  constructor(
    readonly name: string,
    readonly signo: number,
    /** Internal listeners (the SIGCHLD reaper): woken on every occurrence, waker kept, nothing counted. */
    readonly sticky = false,
  ) {}
}

type Mode = "none" | "native" | "bun";

/** A signal's listeners and how it is delivered now. */
class Record {
  readonly listeners = new Set<Listener>();
  mode: Mode = "none";
  /** native: the handler's counter when last read. */
  seen = 0;
  /** bun: the function given to process.on. */
  bunFn: (() => void) | null = null;
  constructor(
    readonly name: string,
    readonly signo: number,
  ) {}
}

const records = new Map<number, Record>();
let pipeR = -1;
let pipeW = -1;
/** The pump: the pipe's read end bound to one driver. */
let pump: { io: IoFd; driver: Driver; unhook: () => void } | null = null;
const pumpCx: Context = { waker: { wake: () => pumpReady() } };
const drainBuf = new Uint8Array(new ArrayBuffer(256));
let returnScheduled = false;
let keepAlive: ReturnType<typeof setInterval> | null = null;

/**
 * Adds a listener for `signo`. A `sticky` one (internal) keeps its waker and is woken on
 * every occurrence without counting; {@link take} still (re)establishes delivery for it.
 */
export function subscribe(name: string, signo: number, sticky = false): Listener {
  currentDriverOrNull()?.requireOs("Signals are"); // a simulation has no real process to signal
  let rec = records.get(signo);
  if (rec === undefined) records.set(signo, (rec = new Record(name, signo)));
  const l = new Listener(name, signo, sticky);
  rec.listeners.add(l);
  return l;
}

/** Removes a listener (its waker is woken); the signal's delivery stops with its last listener. */
export function unsubscribe(l: Listener): void {
  if (l.closed) return;
  l.closed = true;
  const w = l.waker;
  l.waker = null;
  const rec = records.get(l.signo);
  if (rec !== undefined) {
    rec.listeners.delete(l);
    if (rec.listeners.size === 0) {
      setMode(rec, "none");
      records.delete(l.signo);
    }
  }
  updateKeepAlive();
  w?.wake();
}

/**
 * Takes one occurrence for `l`: true, or false after storing `cx.waker` (the signal's
 * delivery made ready for whoever owns the thread now).
 */
export function take(l: Listener, cx: Context): boolean {
  const rec = records.get(l.signo);
  if (rec === undefined || l.closed) return false;
  const hosted = currentRuntime()?.host != null;
  setMode(rec, hosted ? "bun" : "native");
  if (rec.mode === "native") {
    bindPump(currentDriver());
    collect();
  }
  if (l.pending > 0) {
    l.pending--;
    return true;
  }
  l.waker = cx.waker;
  updateKeepAlive();
  return false;
}

/** Switches `rec` to `mode`, undoing the previous one. */
function setMode(rec: Record, mode: Mode): void {
  if (rec.mode === mode) return;
  if (rec.mode === "native") {
    collectOne(rec);
    sig.restoreHandler(rec.signo);
  } else if (rec.mode === "bun" && rec.bunFn !== null) {
    process.off(rec.name as NodeJS.Signals, rec.bunFn);
    rec.bunFn = null;
  }
  rec.mode = "none";
  if (mode === "native") installNative(rec);
  else if (mode === "bun") {
    const fn = () => deliver(rec, 1);
    process.on(rec.name as NodeJS.Signals, fn);
    rec.bunFn = fn;
  }
  rec.mode = mode;
  if (![...records.values()].some((r) => r.mode === "native")) unbindPump();
}

function installNative(rec: Record): void {
  ensurePipe();
  if (sig.setWakeFd(pipeW) < 0) {
    throw new SysError(38, "sigaction", "ENOSYS", `${rec.name}: reel's signal handler could not be compiled: ${sig.handlerError()}`);
  }
  rec.seen = sig.occurrences(rec.signo);
  const r = sig.installHandler(rec.signo);
  if (r < 0) throw new SysError(-r, "sigaction", undefined, rec.name);
  if (!returnScheduled) {
    returnScheduled = true;
    setImmediate(threadReturned);
  }
}

/** The process-wide wake-up pipe the handler writes (both ends reel's own: non-blocking). */
function ensurePipe(): void {
  if (pipeR >= 0) return;
  const fds = new Int32Array(new ArrayBuffer(8));
  const r = libc.pipe2(fds, SYS.O_NONBLOCK | SYS.O_CLOEXEC);
  if (r < 0) throw new SysError(-r, "pipe2", undefined, "signal wake-up pipe");
  pipeR = fds[0]!;
  pipeW = fds[1]!;
}

/** Binds the pipe's read end (a duplicate) to `d`, unless it already is. */
function bindPump(d: Driver): void {
  if (pump !== null && pump.driver === d && pump.io.fd >= 0) return;
  unbindPump();
  const fd = proc.dupAbove(pipeR, 3);
  if (fd < 0) throw new SysError(-fd, "fcntl", undefined, "F_DUPFD_CLOEXEC of the signal pipe");
  let io: IoFd;
  try {
    io = d.socket(fd);
  } catch (err) {
    libc.close(fd);
    throw err;
  }
  const unhook = d.atClose(unbindPump);
  pump = { io, driver: d, unhook };
  io.pollReady(pumpCx, DIR_READ);
}

function unbindPump(): void {
  const p = pump;
  pump = null;
  if (p === null) return;
  p.unhook();
  p.io.close();
}

/** The pipe is readable: drain it, hand the counts out, wait again. */
function pumpReady(): void {
  for (let round = 0; round < 100; round++) {
    const p = pump;
    if (p === null || p.io.fd < 0) return;
    if (p.io.pollReady(pumpCx, DIR_READ) === PENDING) return;
    collect();
    p.io.clearReady(DIR_READ);
  }
}

/** Drains the wake-up pipe and delivers every native signal's new occurrences. */
function collect(): void {
  if (pipeR >= 0) while (libc.read(pipeR, drainBuf) > 0);
  for (const rec of records.values()) if (rec.mode === "native") collectOne(rec);
}

function collectOne(rec: Record): void {
  const now = sig.occurrences(rec.signo);
  const n = (now - rec.seen) >>> 0;
  rec.seen = now;
  if (n > 0) deliver(rec, n);
}

/** `n` occurrences of `rec`'s signal: counted on every listener, waiters woken. */
function deliver(rec: Record, n: number): void {
  for (const l of rec.listeners) {
    if (l.sticky) {
      l.waker?.wake();
      continue;
    }
    l.pending = Math.min(l.pending + n, 0x7fff_ffff);
    const w = l.waker;
    l.waker = null;
    w?.wake();
  }
  updateKeepAlive();
}

/**
 * Bun's loop runs again: reel no longer owns the thread (see the module header). Native
 * handlers go back, the pump is unbound, listeners are woken to re-establish delivery.
 */
function threadReturned(): void {
  returnScheduled = false;
  if (currentRuntime() !== null) {
    // A hosted slice is running (it was scheduled before us): look again after it.
    returnScheduled = true;
    setImmediate(threadReturned);
    return;
  }
  const woken: Waker[] = [];
  for (const rec of records.values()) {
    if (rec.mode !== "native") continue;
    setMode(rec, "none");
    for (const l of rec.listeners) {
      if (l.waker !== null) woken.push(l.waker);
      l.waker = null;
    }
  }
  unbindPump();
  for (const w of woken) w.wake();
}

/** Hosted listeners waiting: keep Bun's process alive (its signal listeners do not). */
function updateKeepAlive(): void {
  let waiting = false;
  for (const rec of records.values()) {
    if (rec.mode !== "bun") continue;
    for (const l of rec.listeners) if (l.waker !== null) waiting = true;
  }
  if (waiting && keepAlive === null) keepAlive = setInterval(() => {}, 1 << 30);
  else if (!waiting && keepAlive !== null) {
    clearInterval(keepAlive);
    keepAlive = null;
  }
}

/**
 * Makes what native delivery keeps for the life of the process — the wake-up pipe (two
 * fds) and the compiled handler — now rather than at the first signal() under blockOn.
 * Tests call it so these are not counted against an fd check.
 */
export function startSignals(): void {
  ensurePipe();
  sig.setWakeFd(pipeW);
}

/** For tests: the fd number the pump (the wake-up pipe's duplicate) has now, or -1. */
export function pumpFd(): number {
  return pump === null ? -1 : pump.io.fd;
}

/** What the hub holds now (for tests): native handlers, bun listeners, the pump's driver. */
export function hubState(): { native: string[]; bun: string[]; pumpBound: boolean; listeners: number } {
  const native: string[] = [];
  const bun: string[] = [];
  let listeners = 0;
  for (const rec of records.values()) {
    if (rec.mode === "native") native.push(rec.name);
    if (rec.mode === "bun") bun.push(rec.name);
    listeners += rec.listeners.size;
  }
  return { native, bun, pumpBound: pump !== null, listeners };
}

/**
 * A running child process: its pid, its piped stdio as reel streams, and its exit —
 * learned without polling and reaped as soon as it happens, whether or not anyone waits.
 *
 * Exit notification:
 * - Linux ≥ 5.3: pidfd_open(pid) gives an fd that becomes readable when the process
 *   exits; it is bound to the driver of the runtime that spawned the child (later: of the
 *   one that waits), `driver.socket(pidfd).pollReady`, with the child's own waker. When it
 *   fires, waitpid(pid, WNOHANG) reaps the child, stores its status and wakes every waiter.
 *   The pidfd is closed right after (outside the driver's own completion loop). This is
 *   the path on every backend here, kqueue over libkqueue included (a pidfd is pollable).
 * - Elsewhere (no pidfd: macOS, FreeBSD, old kernels — or REEL_PIDFD=0): SIGCHLD through
 *   reel's signal hub (lib/signal/hub.ts); each SIGCHLD wakes the waiters, which reap with
 *   waitpid(pid, WNOHANG). A child nobody waits for is then reaped at the next spawn() or
 *   wait(). kqueue's EVFILT_PROC would be the native way on the BSDs; the Poller contract
 *   has no process filter today, so kqueue takes this path there.
 *
 * No zombies: a child is reaped by its watcher the moment it exits; `kill()` never signals
 * a pid that was reaped (it could belong to another process by then); a grandchild that
 * keeps a pipe open does not delay wait(), which depends on the child's exit alone. After
 * `kill()`, reading the child's stdout or stderr ends (EOF) once the child has exited and
 * the pipe holds nothing more, even if a grandchild still holds its write end.
 *
 * A runtime that closes while a child runs stops watching it (its pidfd is closed); a
 * later wait() on another runtime watches it again (the pid stays the child's until it
 * is reaped).
 *
 * Must never: signal or waitpid a pid that was reaped, leave a pidfd open after the child
 * was reaped, or wake a waiter before the status is stored.
 */
import * as libc from "../../ffi/libc.ts";
import * as proc from "../../ffi/process.ts";
import { SIGNALS } from "../../ffi/signal.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { currentDriver } from "../current.ts";
import { SysError } from "../errors.ts";
import { DIR_READ, type IoFd } from "../driver/fd.ts";
import type { Driver } from "../driver/driver.ts";
import { IoSource } from "../io/source.ts";
import { PipeReader, PipeWriter } from "../io/pipe.ts";
import { signalNumber } from "../signal/signal.ts";
import { subscribe, take, unsubscribe, type Listener } from "../signal/hub.ts";

const ECHILD = 10;
const ESRCH = 3;

/**
 * How a child ended: an exit code, or the signal that killed it.
 *
 * @example
 * ```ts
 * const st = yield* child.wait();
 * if (!st.success) console.error(`failed: ${st}`); // "exit status: 2" or "signal: SIGKILL"
 * ```
 */
export class ExitStatus {
  constructor(
    /** The exit code (0–255), or null when a signal ended it. */
    readonly code: number | null,
    /** The signal's name (or number, if unnamed) when a signal ended it, else null. */
    readonly signal: string | null,
  ) {}

  /** True for exit code 0. */
  get success(): boolean {
    return this.code === 0;
  }

  toString(): string {
    return this.code !== null ? `exit status: ${this.code}` : `signal: ${this.signal}`;
  }
}

function statusFrom(raw: number): ExitStatus {
  const { code, signal } = proc.decodeStatus(raw);
  if (signal === 0) return new ExitStatus(code, null);
  const name = Object.keys(SIGNALS).find((k) => SIGNALS[k] === signal) ?? String(signal);
  return new ExitStatus(null, name);
}

/** True when pidfds are used (REEL_PIDFD=0 forces the SIGCHLD path, for tests). */
function pidfdsWanted(): boolean {
  return process.env.REEL_PIDFD !== "0";
}

/** The SIGCHLD fallback: one hub listener for every child without a pidfd. */
const sigchld = {
  listener: null as Listener | null,
  children: new Set<Child>(),
  cx: { waker: { wake: () => sigchldFired() } } as Context,
};

function sigchldFired(): void {
  for (const c of [...sigchld.children]) c.reapNow();
  if (sigchld.children.size === 0 && sigchld.listener !== null) {
    // Unsubscribing here could run inside the driver's dispatch: leave it to a microtask.
    queueMicrotask(() => {
      if (sigchld.children.size === 0 && sigchld.listener !== null) {
        unsubscribe(sigchld.listener);
        sigchld.listener = null;
      }
    });
  }
}

/**
 * Subscribes while children need it (a sticky listener: every SIGCHLD runs the reaper)
 * and keeps delivery set up for whoever owns the thread; call from a task's poll or spawn.
 */
function armSigchld(): void {
  if (sigchld.children.size === 0) {
    if (sigchld.listener !== null) unsubscribe(sigchld.listener);
    sigchld.listener = null;
    return;
  }
  const l = (sigchld.listener ??= subscribe("SIGCHLD", SIGNALS.SIGCHLD!, true));
  take(l, sigchld.cx);
  sigchldFired(); // one that exited before the handler was in place
}

/**
 * The child's stdout or stderr: a PipeReader that, once the child was killed and has
 * exited, reads EOF when the pipe is empty (see the module header).
 *
 * @example
 * ```ts
 * const n = yield* child.stdout!.read(buf);
 * ```
 */
export class ChildOutput extends PipeReader {
  /** @internal Made by spawn(). */
  constructor(
    fd: number,
    private readonly child: Child,
  ) {
    super(new IoSource(fd));
  }

  override pollRead(cx: Context, buf: Uint8Array): Poll<number> {
    const r = super.pollRead(cx, buf);
    if (r !== PENDING || !this.child.killed) return r;
    if (!this.child.pollExit(this, cx)) return PENDING;
    this.cancelRead(cx.waker); // no more is coming from the child; a grandchild's bytes are not awaited
    return 0;
  }
}

/**
 * A spawned child process (from `Command.spawn()`).
 *
 * @example
 * ```ts
 * import { Command, blockOn } from "reel";
 * blockOn(function* () {
 *   const child = new Command("sleep").arg("10").spawn();
 *   child.kill();
 *   const status = yield* child.wait(); // signal: SIGKILL
 * });
 * ```
 */
export class Child {
  /** The child's stdin, when piped (wait() closes it first). */
  stdin: PipeWriter | null;
  /** The child's stdout, when piped. */
  stdout: ChildOutput | null;
  /** The child's stderr, when piped. */
  stderr: ChildOutput | null;
  /** Its status once reaped. */
  private status: ExitStatus | null = null;
  /** True once kill() sent a signal. */
  killed = false;
  private watch: { io: IoFd; driver: Driver; unhook: () => void } | null = null;
  private readonly waiters = new Map<object, Waker>();
  private readonly watchCx: Context = { waker: { wake: () => this.exitReady() } };

  /** @internal Made by Command.spawn(). */
  constructor(
    /** The process id (valid until the child is reaped). */
    readonly pid: number,
    fds: readonly [number, number, number],
    /** Kill the child when a wait(), output() or status() of it is cancelled. */
    readonly killOnCancel: boolean,
  ) {
    this.stdin = fds[0] >= 0 ? PipeWriter.fromFd(fds[0]) : null;
    this.stdout = fds[1] >= 0 ? new ChildOutput(fds[1], this) : null;
    this.stderr = fds[2] >= 0 ? new ChildOutput(fds[2], this) : null;
    this.watchOn(currentDriver());
  }

  /** The status the watcher stored when it reaped the child, else null (no system call). */
  get exitStatus(): ExitStatus | null {
    return this.status;
  }

  /** The exit status once the child was reaped, else null (never blocks). */
  tryWait(): ExitStatus | null {
    if (this.status === null) this.reapNow();
    return this.status;
  }

  /**
   * Waits for the child to exit: its status. Closes the child's stdin first (so a child
   * reading it sees EOF). Cancel-safe (with killOnCancel, cancelling kills the child).
   */
  wait(): BaseFuture<ExitStatus> {
    return new Wait(this);
  }

  /**
   * Sends `signal` (default SIGKILL) to the child: true when sent, false when the child
   * had already exited and was reaped (its pid is no longer its own). Throws SysError for
   * any other failure, TypeError for an unknown signal name.
   */
  kill(signal: string = "SIGKILL"): boolean {
    const n = signalNumber(signal, "Child.kill()");
    if (this.tryWait() !== null) return false;
    const r = proc.kill(this.pid, n);
    if (r === -ESRCH) return false; // exited, not yet reaped by us: nothing to signal
    if (r < 0) throw new SysError(-r, "kill", undefined, `pid ${this.pid}`);
    this.killed = true;
    return true;
  }

  /** @internal Exited? If not, `waker` is stored under `key` until it has. */
  pollExit(key: object, cx: Context): boolean {
    if (this.status !== null || this.tryWait() !== null) return true;
    this.waiters.set(key, cx.waker);
    this.ensureWatched();
    return false;
  }

  /** @internal A waiter gave up. */
  forget(key: object): void {
    this.waiters.delete(key);
  }

  /** Watching through the current driver (re-watches after the spawning runtime closed). */
  private ensureWatched(): void {
    if (this.status !== null) return;
    if (sigchld.children.has(this)) return armSigchld();
    const d = currentDriver();
    if (this.watch === null || this.watch.driver !== d || this.watch.io.fd < 0) this.watchOn(d);
  }

  /** Binds a fresh pidfd to `d`; without one (or if binding fails), the SIGCHLD fallback. */
  private watchOn(d: Driver): void {
    this.unwatch();
    const pidfd = pidfdsWanted() ? proc.pidfdOpen(this.pid) : -38;
    let io: IoFd | null = null;
    if (pidfd >= 0) {
      try {
        io = d.socket(pidfd);
      } catch {
        libc.close(pidfd); // never bound to a driver: a plain close
      }
    }
    if (io === null) {
      sigchld.children.add(this);
      armSigchld();
      return;
    }
    this.watch = { io, driver: d, unhook: d.atClose(() => this.unwatch()) };
    if (io.pollReady(this.watchCx, DIR_READ) !== PENDING) this.exitReady();
  }

  private unwatch(): void {
    const w = this.watch;
    this.watch = null;
    if (w === null) return;
    w.unhook();
    w.io.close();
  }

  /** The pidfd is readable (the child exited): reap (settle closes the pidfd). */
  private exitReady(): void {
    if (!this.reapNow() && this.watch !== null && this.watch.io.fd >= 0) {
      // Not exited after all (spurious): wait again.
      this.watch.io.clearReady(DIR_READ);
      if (this.watch.io.pollReady(this.watchCx, DIR_READ) !== PENDING) queueMicrotask(() => this.exitReady());
    }
  }

  /** @internal waitpid(WNOHANG): true once reaped (status stored, waiters woken). */
  reapNow(): boolean {
    if (this.status !== null) return true;
    const r = proc.waitpid(this.pid, proc.WNOHANG);
    if (typeof r === "number") {
      // ECHILD: reaped elsewhere (a SIGCHLD set to SIG_IGN by the program): no status left.
      if (r === -ECHILD) this.settle(new ExitStatus(null, null));
      return this.status !== null;
    }
    if (r[0] === 0) return false;
    this.settle(statusFrom(r[1]));
    return true;
  }

  private settle(status: ExitStatus): void {
    this.status = status;
    sigchld.children.delete(this);
    // The pidfd goes as a microtask: settle may run inside the driver's own event loop
    // (exitReady), where closing an fd the driver is reporting on is not allowed on io_uring.
    // blockOn drains microtasks every tick, before it returns.
    if (this.watch !== null) queueMicrotask(() => this.unwatch());
    const ws = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of ws) w.wake();
  }
}

class Wait extends BaseFuture<ExitStatus> {
  private done = false;
  constructor(private readonly child: Child) {
    super();
  }

  poll(cx: Context): Poll<ExitStatus> {
    if (this.done) throw new FutureStateError("wait() future polled after completion");
    const c = this.child;
    if (c.stdin !== null) {
      c.stdin.close(); // as tokio: a child waiting for its stdin to end must not deadlock us
      c.stdin = null;
    }
    if (!c.pollExit(this, cx)) return PENDING;
    this.done = true;
    return c.tryWait()!;
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.child.forget(this);
    if (this.child.killOnCancel) this.child.kill();
  }
}

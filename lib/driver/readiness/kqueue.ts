/**
 * The kqueue backend: EVFILT_READ/EVFILT_WRITE knotes behind the Poller contract, on macOS
 * and FreeBSD (the kernel's kqueue) and on Linux over libkqueue (ffi/kqueue.ts picks the
 * library, layout and constants). Written against the documented ABI (xnu and FreeBSD
 * sys/event.h, the kqueue(2) man pages); run here over libkqueue only.
 *
 * - Each direction of interest is one knote. Two modes ({@link KqueueMode}):
 *   "clear" (the kernels' default): EV_ADD|EV_CLEAR, the filter's state resets once
 *   reported, so readiness is edge-like and `rearm` is a no-op;
 *   "dispatch" (libkqueue's default): EV_ADD|EV_DISPATCH without EV_CLEAR, a level filter
 *   disabled once reported and re-enabled by `rearm` (the poll backend's edge emulation),
 *   because libkqueue loses EV_CLEAR events when more are ready than the event list holds
 *   (docs/platforms.md; upstream issue #89), while a level knote it failed to report is
 *   simply reported by the next wait.
 * - Changes for one fd add the write filter first and the read filter last (see `adds`).
 * - Every change carries EV_RECEIPT, so kevent() answers each change with an EV_ERROR
 *   entry whose `data` is 0 or an errno, instead of failing the whole call or draining
 *   pending events; nevents == nchanges, so it never waits. Per-change errors are checked
 *   one by one, as mio's kqueue selector does.
 * - Events: EV_EOF on the read filter → READ_CLOSED, on the write filter → WRITE_CLOSED;
 *   EV_EOF with a nonzero fflags (the socket's pending error) or EV_ERROR → ERROR.
 * - `notify()` triggers an EVFILT_USER event (EV_CLEAR, NOTE_TRIGGER) that wait() skips.
 *
 * Must never: report the user event, retry EINTR (wait returns 0), report a direction
 * that dispatch mode has disabled and not yet re-enabled, or ignore a per-change errno
 * other than those {@link ignorableChangeErrno} lists, each with the reason.
 * Must never import: lib/driver/uring/**
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import * as kq from "../../../ffi/kqueue.ts";
import * as libc from "../../../ffi/libc.ts";
import { SYS } from "../../../ffi/constants.ts";
import { EBADF, EINTR, ENOENT, EPIPE } from "../../../ffi/errno.ts";
import { SysError, check } from "../../errors.ts";
import { ERROR, Events, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED, type Interest, type Poller } from "./poller.ts";

const CAPACITY = 1024;
/** ident of the EVFILT_USER notify event (its own namespace: it cannot clash with an fd). */
const NOTIFY_IDENT = 0;
/** udata of the notify event; driver tokens are non-negative int32s. */
const NOTIFY_TOKEN = 0xffff_ffff;

/** How knotes report readiness: edges through EV_CLEAR, or levels through EV_DISPATCH. */
export type KqueueMode = "clear" | "dispatch";

/**
 * The mode a KqueuePoller uses unless told: `REEL_KQUEUE_MODE` when set (for tests),
 * else "dispatch" over libkqueue and "clear" on the kernels.
 *
 * @example
 * ```ts
 * defaultKqueueMode(); // "clear" on macOS/FreeBSD, "dispatch" over libkqueue
 * ```
 */
export function defaultKqueueMode(env: string | undefined = process.env.REEL_KQUEUE_MODE): KqueueMode {
  if (env === "clear" || env === "dispatch") return env;
  if (env !== undefined && env !== "") throw new RangeError(`Invalid REEL_KQUEUE_MODE "${env}": expected clear or dispatch`);
  return kq.PROFILE?.name === "libkqueue" ? "dispatch" : "clear";
}

/** What a submitted change was part of, which decides the errnos it may ignore. */
export const OP_ADD = 0;
export const OP_DELETE = 1;
export const OP_DEREGISTER = 2;

/**
 * Translates one kevent's filter/flags/fflags into the portable bits.
 *
 * @example
 * ```ts
 * keventReadiness(DARWIN_KQ.EVFILT_READ, DARWIN_KQ.EV_EOF, 0, DARWIN_KQ); // READABLE | READ_CLOSED
 * ```
 */
export function keventReadiness(filter: number, flags: number, fflags: number, k: kq.KqueueConstants): number {
  let f = 0;
  const eof = (flags & k.EV_EOF) !== 0;
  if (filter === k.EVFILT_READ) f |= eof ? READABLE | READ_CLOSED : READABLE;
  else if (filter === k.EVFILT_WRITE) f |= eof ? WRITABLE | WRITE_CLOSED : WRITABLE;
  // On EV_EOF, fflags holds the socket error (so_error) when there is one.
  if ((flags & k.EV_ERROR) !== 0 || (eof && fflags !== 0)) f |= READABLE | WRITABLE | ERROR;
  return f;
}

/**
 * May a per-change errno be ignored? `op` is what the change was part of (OP_ADD,
 * OP_DELETE for a direction dropped, OP_DEREGISTER).
 * - ENOENT on EV_DELETE: that filter was never added (e.g. read-only interest).
 * - EBADF on deregister: the fd was already closed, which removed its knotes.
 * - EPIPE on EV_ADD: older macOS (10.10/10.11 seen by mio) answer EPIPE when registering a
 *   pipe whose other end is gone, yet still register it and report its EOF.
 *
 * @example
 * ```ts
 * ignorableChangeErrno(ENOENT, OP_DELETE); // true
 * ignorableChangeErrno(EBADF, OP_ADD); // false: registering a closed fd is an error
 * ```
 */
export function ignorableChangeErrno(errnoValue: number, op: number): boolean {
  if (op === OP_ADD) return errnoValue === EPIPE;
  if (errnoValue === ENOENT) return true;
  return op === OP_DEREGISTER && errnoValue === EBADF;
}

/**
 * A kqueue with an EVFILT_USER event for notify().
 *
 * @example
 * ```ts
 * const p = new KqueuePoller(); // macOS, FreeBSD, or Linux with REEL_KQUEUE_LIB
 * p.register(fd, 7, READ_WRITE);
 * const n = p.wait(100);
 * p.close();
 * ```
 */
export class KqueuePoller implements Poller {
  readonly name = "kqueue";
  readonly events = new Events(CAPACITY);
  /** The kqueue fd where it is pollable; -1 on libkqueue (see the constructor). */
  readonly fd: number;
  /** The kqueue fd itself, which `close()` releases. */
  private readonly kqfd: number;
  private readonly k = kq.KQ;
  private readonly raw = new kq.KeventList(kq.KEVENT, CAPACITY);
  /** Room for the longest change list (a registration's two adds, a deregistration's two deletes). */
  private readonly changes = new kq.KeventList(kq.KEVENT, 4);
  private readonly receipts = new kq.KeventList(kq.KEVENT, 4);
  /** notify() has its own pair so it never disturbs a change list being built. */
  private readonly wakeChange = new kq.KeventList(kq.KEVENT, 1);
  private readonly wakeReceipt = new kq.KeventList(kq.KEVENT, 1);
  private readonly ops = [OP_ADD, OP_ADD, OP_ADD, OP_ADD];
  private closed = false;
  readonly mode: KqueueMode;
  /** EV_CLEAR or EV_DISPATCH, per the mode. */
  private readonly modeFlag: number;
  /** Dispatch mode: fd → the directions (READABLE/WRITABLE) reported and not yet re-enabled. */
  private readonly disabled = new Map<number, number>();

  constructor(options: { mode?: KqueueMode } = {}) {
    this.mode = options.mode ?? defaultKqueueMode();
    this.modeFlag = this.mode === "clear" ? kq.KQ.EV_CLEAR : kq.KQ.EV_DISPATCH;
    const why = kq.openKqueue();
    if (why !== null) throw new RangeError(why);
    this.kqfd = check(kq.kqueue(), "kqueue");
    // A kernel kqueue fd is readable while events are pending (kqueue(2)), so hosted mode
    // can watch it. libkqueue's is the write end of a pipe, never readable: report none.
    this.fd = kq.PROFILE!.name === "libkqueue" ? -1 : this.kqfd;
    try {
      check(libc.fcntl(this.kqfd, SYS.F_SETFD, SYS.FD_CLOEXEC), "fcntl", "kqueue FD_CLOEXEC");
      const k = this.k;
      kq.encodeKevent(this.changes, 0, NOTIFY_IDENT, k.EVFILT_USER, k.EV_ADD | k.EV_CLEAR | k.EV_RECEIPT, 0, 0, NOTIFY_TOKEN);
      this.ops[0] = OP_ADD;
      this.submit(1, "add notify event");
    } catch (err) {
      kq.closeKqueue(this.kqfd);
      throw err;
    }
  }

  /** Adds a knote per direction wanted: the write filter first, the read filter last. */
  register(fd: number, token: number, interest: Interest): void {
    this.live();
    this.disabled.delete(fd);
    this.submit(this.adds(0, fd, token, interest), `add fd ${fd}`);
  }

  /**
   * Clear mode: nothing (the next state change is reported without re-arming). Dispatch
   * mode: EV_ENABLE for the directions of `interest` reported since they were last
   * enabled; a level that is still high is then reported once more (spurious, harmless).
   * The enables carry no EV_RECEIPT: with it libkqueue also runs the filter's modify step,
   * which refuses a socket knote without EV_CLEAR; without it, kevent() fails as a whole
   * on a bad change, and nevents 0 keeps it from draining events.
   */
  rearm(fd: number, token: number, interest: Interest): void {
    if (this.mode === "clear") return;
    this.live();
    const off = this.disabled.get(fd);
    if (off === undefined) return;
    const on = off & interest;
    if (on === 0) return;
    if (off === on) this.disabled.delete(fd);
    else this.disabled.set(fd, off & ~on);
    const k = this.k;
    let n = 0;
    if ((on & WRITABLE) !== 0) n = this.put(n, fd, k.EVFILT_WRITE, k.EV_ENABLE, token, OP_ADD);
    if ((on & READABLE) !== 0) n = this.put(n, fd, k.EVFILT_READ, k.EV_ENABLE, token, OP_ADD);
    check(kq.kevent(this.kqfd, this.changes, n, null, 0, 0), "kevent", `enable fd ${fd}`);
  }

  deregister(fd: number): void {
    if (this.closed) return; // closing the kqueue already dropped every knote
    this.disabled.delete(fd);
    const k = this.k;
    const del = k.EV_DELETE | k.EV_RECEIPT;
    let n = this.put(0, fd, k.EVFILT_READ, del, 0, OP_DEREGISTER);
    n = this.put(n, fd, k.EVFILT_WRITE, del, 0, OP_DEREGISTER);
    this.submit(n, `delete fd ${fd}`);
  }

  wait(timeoutMs: number): number {
    this.live();
    const raw = this.raw;
    const n = kq.kevent(this.kqfd, null, 0, raw, CAPACITY, timeoutMs);
    if (n < 0) {
      if (n === -EINTR) return 0;
      check(n, "kevent");
    }
    const { tokens, flags, errors } = this.events;
    const k = this.k;
    let j = 0;
    for (let i = 0; i < n; i++) {
      const filter = kq.keventFilter(raw, i);
      if (filter === k.EVFILT_USER) continue; // the notify wake-up; EV_CLEAR already reset it
      tokens[j] = kq.keventToken(raw, i);
      const kf = kq.keventFlags(raw, i);
      const ff = kq.keventFflags(raw, i);
      flags[j] = keventReadiness(filter, kf, ff, k);
      // The socket error rides on the event: fflags with EV_EOF, data with EV_ERROR. The
      // driver keeps it for ops that find none (libkqueue consumes SO_ERROR itself).
      errors[j] = (kf & k.EV_EOF) !== 0 && ff !== 0 ? ff : (kf & k.EV_ERROR) !== 0 ? kq.keventData(raw, i) : 0;
      j++;
      // Dispatch mode: the knote disabled itself on delivery; rearm enables it again.
      if (this.mode === "dispatch") {
        const fd = kq.keventIdent(raw, i);
        this.disabled.set(fd, (this.disabled.get(fd) ?? 0) | (filter === k.EVFILT_READ ? READABLE : WRITABLE));
      }
    }
    return j;
  }

  notify(): void {
    this.live();
    const k = this.k;
    kq.encodeKevent(this.wakeChange, 0, NOTIFY_IDENT, k.EVFILT_USER, k.EV_ADD | k.EV_RECEIPT, k.NOTE_TRIGGER, 0, NOTIFY_TOKEN);
    const r = kq.kevent(this.kqfd, this.wakeChange, 1, this.wakeReceipt, 1, 0);
    if (r < 0) check(r, "kevent", "trigger notify event");
    const e = receiptErrno(this.wakeReceipt, 0, k);
    if (e !== 0) throw new SysError(e, "kevent", undefined, "trigger notify event");
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.disabled.clear();
    kq.closeKqueue(this.kqfd);
  }

  /**
   * Appends the EV_ADD changes for `interest` at n; returns the new count. The read filter
   * goes last on purpose: libkqueue keeps one epoll registration per fd whose mask is the
   * one the *last added* knote asked for plus EPOLLIN/EPOLLOUT for the others, so a write
   * filter added after the read filter drops EPOLLRDHUP, and a FIN behind unread data then
   * never sets EV_EOF (docs/platforms.md). Kernels apply a change list in order and treat
   * each knote on its own, so the order costs nothing there.
   */
  private adds(n: number, fd: number, token: number, interest: Interest): number {
    const k = this.k;
    const add = k.EV_ADD | this.modeFlag | k.EV_RECEIPT;
    if ((interest & WRITABLE) !== 0) n = this.put(n, fd, k.EVFILT_WRITE, add, token, OP_ADD);
    if ((interest & READABLE) !== 0) n = this.put(n, fd, k.EVFILT_READ, add, token, OP_ADD);
    return n;
  }

  /** Writes change n and records its op; returns n + 1. */
  private put(n: number, fd: number, filter: number, flags: number, token: number, op: number): number {
    kq.encodeKevent(this.changes, n, fd, filter, flags, 0, 0, token);
    this.ops[n] = op;
    return n + 1;
  }

  /**
   * Applies changes[0, n) and throws the first per-change error that is not ignorable.
   * With EV_RECEIPT on every change, kevent() answers change i in slot i (FreeBSD's
   * kqueue_kevent, xnu's kevent_register loop and libkqueue's kevent_copyin all walk the
   * change list in order and write one answer per change), so receipt i is change i's.
   */
  private submit(n: number, what: string): void {
    if (n === 0) return;
    const r = kq.kevent(this.kqfd, this.changes, n, this.receipts, n, 0);
    if (r < 0) check(r, "kevent", what);
    for (let i = 0; i < r; i++) {
      const e = receiptErrno(this.receipts, i, this.k);
      if (e !== 0 && !ignorableChangeErrno(e, this.ops[i]!)) throw new SysError(e, "kevent", undefined, what);
    }
  }

  private live(): void {
    if (this.closed) throw new Error("KqueuePoller used after close()");
  }
}

/**
 * The errno an EV_RECEIPT answer reports: `data` when EV_ERROR is set, else 0 (success).
 *
 * @example
 * ```ts
 * const r = kevent(kqfd, changes, n, receipts, n, 0);
 * for (let i = 0; i < r; i++) if (receiptErrno(receipts, i, KQ) !== 0) fail(i);
 * ```
 */
export function receiptErrno(list: kq.KeventList, i: number, k: kq.KqueueConstants): number {
  return (kq.keventFlags(list, i) & k.EV_ERROR) !== 0 ? kq.keventData(list, i) : 0;
}

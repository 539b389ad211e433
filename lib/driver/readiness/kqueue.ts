/**
 * The kqueue backend (macOS, FreeBSD): EVFILT_READ/EVFILT_WRITE with EV_CLEAR behind the
 * Poller contract. Written against the documented ABI (xnu and FreeBSD sys/event.h, the
 * kqueue(2) man pages); its encodings are tested on Linux, it has not been run on macOS.
 *
 * - Each direction of interest is one knote, added with EV_ADD|EV_CLEAR: the filter's state
 *   resets once reported, so readiness is edge-like and `rearm` is a no-op.
 * - Every change carries EV_RECEIPT, so kevent() answers each change with an EV_ERROR
 *   entry whose `data` is 0 or an errno, instead of failing the whole call or draining
 *   pending events; nevents == nchanges, so it never waits. Per-change errors are checked
 *   one by one, as mio's kqueue selector does.
 * - Events: EV_EOF on the read filter → READ_CLOSED, on the write filter → WRITE_CLOSED;
 *   EV_EOF with a nonzero fflags (the socket's pending error) or EV_ERROR → ERROR.
 * - `notify()` triggers an EVFILT_USER event (EV_CLEAR, NOTE_TRIGGER) that wait() skips.
 *
 * Must never: report the user event, retry EINTR (wait returns 0), or ignore a per-change
 * errno other than those {@link ignorableChangeErrno} lists, each with the reason.
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
 * OP_DELETE for a reregister dropping a direction, OP_DEREGISTER).
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
 * const p = new KqueuePoller(); // macOS / FreeBSD only
 * p.register(fd, 7, READABLE | WRITABLE);
 * const n = p.wait(100);
 * p.close();
 * ```
 */
export class KqueuePoller implements Poller {
  readonly name = "kqueue";
  readonly events = new Events(CAPACITY);
  readonly fd: number;
  private readonly k = kq.KQ;
  private readonly raw = new kq.KeventList(kq.KEVENT, CAPACITY);
  private readonly changes = new kq.KeventList(kq.KEVENT, 2);
  private readonly receipts = new kq.KeventList(kq.KEVENT, 2);
  /** notify() has its own pair so it never disturbs a change list being built. */
  private readonly wakeChange = new kq.KeventList(kq.KEVENT, 1);
  private readonly wakeReceipt = new kq.KeventList(kq.KEVENT, 1);
  private readonly ops = [OP_ADD, OP_ADD];
  private closed = false;

  constructor() {
    if (!kq.HAVE_KQUEUE) throw new RangeError(`kqueue is not available on ${process.platform}`);
    this.fd = check(kq.kqueue(), "kqueue");
    try {
      check(libc.fcntl(this.fd, SYS.F_SETFD, SYS.FD_CLOEXEC), "fcntl", "kqueue FD_CLOEXEC");
      const k = this.k;
      kq.encodeKevent(this.changes, 0, NOTIFY_IDENT, k.EVFILT_USER, k.EV_ADD | k.EV_CLEAR | k.EV_RECEIPT, 0, 0, NOTIFY_TOKEN);
      this.ops[0] = OP_ADD;
      this.submit(1, "add notify event");
    } catch (err) {
      libc.close(this.fd);
      throw err;
    }
  }

  register(fd: number, token: number, interest: Interest): void {
    this.live();
    const k = this.k;
    const add = k.EV_ADD | k.EV_CLEAR | k.EV_RECEIPT;
    let n = 0;
    if ((interest & READABLE) !== 0) n = this.put(n, fd, k.EVFILT_READ, add, token, OP_ADD);
    if ((interest & WRITABLE) !== 0) n = this.put(n, fd, k.EVFILT_WRITE, add, token, OP_ADD);
    this.submit(n, `add fd ${fd}`);
  }

  /** Adds the filters now wanted (EV_ADD also updates udata) and deletes the others. */
  reregister(fd: number, token: number, interest: Interest): void {
    this.live();
    const k = this.k;
    const add = k.EV_ADD | k.EV_CLEAR | k.EV_RECEIPT;
    const del = k.EV_DELETE | k.EV_RECEIPT;
    const r = (interest & READABLE) !== 0;
    const w = (interest & WRITABLE) !== 0;
    let n = this.put(0, fd, k.EVFILT_READ, r ? add : del, token, r ? OP_ADD : OP_DELETE);
    n = this.put(n, fd, k.EVFILT_WRITE, w ? add : del, token, w ? OP_ADD : OP_DELETE);
    this.submit(n, `modify fd ${fd}`);
  }

  rearm(_fd: number, _token: number, _interest: Interest): void {
    // EV_CLEAR: the next state change is reported without re-arming.
  }

  deregister(fd: number): void {
    if (this.closed) return; // closing the kqueue already dropped every knote
    const k = this.k;
    const del = k.EV_DELETE | k.EV_RECEIPT;
    let n = this.put(0, fd, k.EVFILT_READ, del, 0, OP_DEREGISTER);
    n = this.put(n, fd, k.EVFILT_WRITE, del, 0, OP_DEREGISTER);
    this.submit(n, `delete fd ${fd}`);
  }

  wait(timeoutMs: number): number {
    this.live();
    const raw = this.raw;
    const n = kq.kevent(this.fd, null, 0, raw, CAPACITY, timeoutMs);
    if (n < 0) {
      if (n === -EINTR) return 0;
      check(n, "kevent");
    }
    const { tokens, flags } = this.events;
    const k = this.k;
    let j = 0;
    for (let i = 0; i < n; i++) {
      const filter = kq.keventFilter(raw, i);
      if (filter === k.EVFILT_USER) continue; // the notify wake-up; EV_CLEAR already reset it
      tokens[j] = kq.keventToken(raw, i);
      flags[j] = keventReadiness(filter, kq.keventFlags(raw, i), kq.keventFflags(raw, i), k);
      j++;
    }
    return j;
  }

  notify(): void {
    this.live();
    const k = this.k;
    kq.encodeKevent(this.wakeChange, 0, NOTIFY_IDENT, k.EVFILT_USER, k.EV_ADD | k.EV_RECEIPT, k.NOTE_TRIGGER, 0, NOTIFY_TOKEN);
    const r = kq.kevent(this.fd, this.wakeChange, 1, this.wakeReceipt, 1, 0);
    if (r < 0) check(r, "kevent", "trigger notify event");
    const e = receiptErrno(this.wakeReceipt, 0, k);
    if (e !== 0) throw new SysError(e, "kevent", undefined, "trigger notify event");
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }

  /** Writes change n and records its op; returns n + 1. */
  private put(n: number, fd: number, filter: number, flags: number, token: number, op: number): number {
    kq.encodeKevent(this.changes, n, fd, filter, flags, 0, 0, token);
    this.ops[n] = op;
    return n + 1;
  }

  /** Applies changes[0, n) and throws the first per-change error that is not ignorable. */
  private submit(n: number, what: string): void {
    if (n === 0) return;
    const r = kq.kevent(this.fd, this.changes, n, this.receipts, n, 0);
    if (r < 0) check(r, "kevent", what);
    for (let i = 0; i < r; i++) {
      const e = receiptErrno(this.receipts, i, this.k);
      if (e === 0) continue;
      // Receipts come back in change order; match by filter to be independent of it.
      const op = this.opFor(kq.keventFilter(this.receipts, i), n);
      if (!ignorableChangeErrno(e, op)) throw new SysError(e, "kevent", undefined, what);
    }
  }

  private opFor(filter: number, n: number): number {
    for (let i = 0; i < n; i++) if (kq.keventFilter(this.changes, i) === filter) return this.ops[i]!;
    return OP_ADD;
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

/**
 * A shared fd on a readiness backend (`driver.inherited(fd)`): an inherited stdin, stdout
 * or stderr — a terminal, a pipe from the shell, a file — that reel must not make
 * non-blocking (O_NONBLOCK lives on the open file, which the parent shell shares: flipping
 * it breaks the shell). Its reads and writes run as blocking calls on a Worker of its own
 * (a lane of the pool, pool.ts), one call per op; the runtime thread is woken through the
 * driver's pool eventfd like any pool job. A lane is used by one WorkerFd at a time, so a
 * terminal read that waits for a line never holds up file jobs or another fd; a closed
 * WorkerFd's lane is reused once any call it detached has returned.
 *
 * Per direction, at most one call is in flight. Cancel safety:
 * - read: a read whose future is cancelled stays in flight; the next read takes its bytes
 *   (bytes a smaller buffer could not take are kept too). Nothing read is lost.
 * - write: a queued write is abandoned (nothing written); a running one completes and its
 *   count is lost to the caller, as on io_uring. Writes run in submission order.
 *
 * Readiness: a blocking fd is never "not ready" here (an op simply waits in its Worker),
 * so pollReady reports ready at once and clearReady does nothing.
 *
 * Closing: close() abandons queued calls and, for a call that is running — a terminal
 * read that may wait for ever — detaches it: its Worker closes the fd when the call
 * returns, and reports nothing. Either way the IoFd is closed at once, and the number is
 * never released while a call may still be about to use it.
 *
 * Must never: set O_NONBLOCK, block the runtime thread, lose bytes a read returned, or
 * close the fd under a running call.
 */
import { EBADF, EBUSY, ENOTSOCK } from "../../../ffi/errno.ts";
import * as libc from "../../../ffi/libc.ts";
import { PENDING, type Context, type Poll, type Waker } from "../../future.ts";
import { SysError } from "../../errors.ts";
import { DIR_READ, OP_READ, OP_READV, OP_WRITE, OP_WRITEV, SYSCALL, closedError, type Direction, type IoFd, type IoOp, type Msg, type MsgOp } from "../fd.ts";
import { READABLE, WRITABLE } from "./poller.ts";
import type { Driver } from "../driver.ts";
import { dedicatedWorker, type Job, type PoolClient } from "./pool.ts";

/** Largest read or write one call makes. */
const IO_MAX = 64 * 1024;

/**
 * Lanes no WorkerFd uses now, each with the detached call it may still be running (a
 * lane is handed out again only once that call has returned: its jobs run in order).
 */
const idleLanes: { worker: Worker; detached: Job | null }[] = [];

/** An idle lane whose Worker is free (no detached call still running), or null. */
function freeLane(): Worker | null {
  for (let i = 0; i < idleLanes.length; i++) {
    const l = idleLanes[i]!;
    if (l.detached === null || l.detached.detachedEnded) {
      idleLanes.splice(i, 1);
      return l.worker;
    }
  }
  return null;
}

/**
 * Starts `n` lanes now (tests: so a Worker's start-up is not counted against an fd check).
 *
 * @example
 * ```ts
 * await startLanes(2);
 * ```
 */
export async function startLanes(n: number): Promise<void> {
  const ready: Promise<void>[] = [];
  for (let i = idleLanes.length; i < n; i++) {
    const lane = dedicatedWorker();
    idleLanes.push({ worker: lane.worker, detached: null });
    ready.push(lane.ready);
  }
  await Promise.all(ready);
}

/**
 * A shared fd whose ops run on a Worker of its own.
 *
 * @example
 * ```ts
 * const io = driver.inherited(dupOfStdin); // a WorkerFd on epoll/poll/kqueue
 * const n = io.pollOp(cx, OP_READ, buf, []); // bytes, or PENDING while its Worker reads
 * io.close();
 * ```
 */
export class WorkerFd implements IoFd {
  private lane: Worker | null = null;
  private readJob: Job | null = null;
  private writeJob: Job | null = null;
  /** Bytes a read returned that its caller's buffer could not take. */
  private stash: Uint8Array | null = null;
  /** A call of this fd that was detached and may still run on the lane. */
  private detachedJob: Job | null = null;

  constructor(
    readonly driver: Driver,
    private readonly client: PoolClient,
    /** A valid fd owned by this object (blocking or not), or -1 once closed. */
    public fd: number,
  ) {}

  private worker(): Worker {
    return (this.lane ??= freeLane() ?? dedicatedWorker().worker);
  }

  pollOp(cx: Context, op: IoOp, buf: Uint8Array | null, bufs: readonly Uint8Array[]): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
    if (op === OP_READ || op === OP_READV) return this.pollRead(cx, op === OP_READ ? [buf!] : bufs);
    if (op === OP_WRITE || op === OP_WRITEV) return this.pollWrite(cx, op === OP_WRITE ? [buf!] : bufs);
    throw new SysError(ENOTSOCK, SYSCALL[op]!);
  }

  private pollRead(cx: Context, bufs: readonly Uint8Array[]): Poll<number> {
    if (this.stash !== null) return this.fromStash(bufs);
    let job = this.readJob;
    if (job === null) {
      let want = 0;
      for (const b of bufs) want += b.byteLength;
      if (want === 0) return 0;
      job = this.readJob = this.client.submit({ op: "sread", fd: this.fd, len: Math.min(want, IO_MAX) }, null, this.worker());
      job.detachable = true;
    }
    if (!job.done) {
      job.waker = cx.waker;
      return PENDING;
    }
    this.readJob = null;
    const r = job.result;
    if (job.skipped) throw closedError("read");
    if (r < 0) {
      this.client.giveBack(job);
      throw new SysError(-r, "read");
    }
    this.stash = new Uint8Array(job.data!, 0, r).slice();
    this.client.giveBack(job);
    return this.fromStash(bufs);
  }

  /** Scatters stashed bytes into `bufs`: the count (0 only for an empty stash: EOF). */
  private fromStash(bufs: readonly Uint8Array[]): number {
    const s = this.stash!;
    let n = 0;
    for (const b of bufs) {
      if (n === s.length) break;
      const k = Math.min(b.byteLength, s.length - n);
      b.set(s.subarray(n, n + k));
      n += k;
    }
    this.stash = n === s.length ? null : s.subarray(n);
    return n;
  }

  private pollWrite(cx: Context, bufs: readonly Uint8Array[]): Poll<number> {
    let job = this.writeJob;
    if (job === null) {
      let want = 0;
      for (const b of bufs) want += b.byteLength;
      if (want === 0) return 0;
      const data = new Uint8Array(Math.min(want, IO_MAX));
      let off = 0;
      for (const b of bufs) {
        if (off === data.length) break;
        const k = Math.min(b.byteLength, data.length - off);
        data.set(b.subarray(0, k), off);
        off += k;
      }
      job = this.writeJob = this.client.submit({ op: "swrite", fd: this.fd, data }, null, this.worker());
      job.detachable = true;
    }
    if (!job.done) {
      job.waker = cx.waker;
      return PENDING;
    }
    this.writeJob = null;
    const r = job.result;
    this.client.giveBack(job);
    if (job.skipped) throw closedError("write");
    if (r < 0) throw new SysError(-r, "write");
    return r;
  }

  pollConnect(_cx: Context, _sockaddr: Uint8Array, _len: number, detail: string): Poll<void> {
    throw new SysError(ENOTSOCK, "connect", undefined, detail);
  }

  /** A shared fd is a pipe, tty or file here: no message ops. */
  pollMsg(_cx: Context, op: MsgOp, _msgs: readonly Msg[], _count: number, _flags: number): Poll<number> {
    if (this.fd < 0) throw closedError(SYSCALL[op]!);
    throw new SysError(ENOTSOCK, SYSCALL[op]!);
  }

  /** Always ready (see the module header). */
  pollReady(_cx: Context, dir: Direction): Poll<number> {
    if (this.fd < 0) throw closedError("poll");
    return dir === DIR_READ ? READABLE : WRITABLE;
  }

  clearReady(_dir: Direction): void {}

  /** A read stays in flight for the next read; a queued write is abandoned, a running one's count dropped. */
  dropWaker(dir: Direction, waker: Waker | null): void {
    const job = dir === DIR_READ ? this.readJob : this.writeJob;
    if (job === null || job.waker !== waker) return;
    job.waker = null;
    if (dir === DIR_READ) return;
    this.writeJob = null;
    if (!this.client.abandon(job)) job.orphaned = true;
  }

  /**
   * Gives the number back once no call of its runs on the lane; a call still running
   * there (a blocking read or write cannot be cancelled) makes it EBUSY, since the number
   * would be acted on after it was handed over.
   */
  detach(): number {
    const fd = this.fd;
    if (fd < 0) return -1;
    for (const job of [this.readJob, this.writeJob]) if (job !== null && !job.done) throw new SysError(EBUSY, "detach");
    for (const job of [this.readJob, this.writeJob]) if (job !== null) this.client.giveBack(job);
    this.readJob = this.writeJob = null;
    this.fd = -1;
    this.stash = null;
    if (this.lane !== null) idleLanes.push({ worker: this.lane, detached: this.detachedJob });
    this.lane = null;
    return fd;
  }

  /** Closes at once; a running call is detached and closes the fd when it returns (see the header). */
  close(): void {
    const fd = this.fd;
    if (fd < 0) return;
    this.fd = -1;
    this.stash = null;
    let owner = false; // a detached call took the fd over
    for (const job of [this.readJob, this.writeJob]) {
      if (job === null || job.done) continue;
      const w = job.waker;
      job.waker = null;
      if (this.client.detach(job, owner ? [] : [fd])) {
        owner = true;
        this.detachedJob = job;
      }
      w?.wake();
    }
    for (const job of [this.readJob, this.writeJob]) if (job !== null && job.done && !job.detached) this.client.giveBack(job);
    this.readJob = this.writeJob = null;
    if (this.lane !== null) idleLanes.push({ worker: this.lane, detached: this.detachedJob });
    this.lane = null;
    if (owner) return;
    const r = libc.close(fd);
    if (r < 0 && r !== -EBADF) throw new SysError(-r, "close");
  }
}

/**
 * For tests: idle lanes ready to be handed out, and idle lanes still running a call
 * that was detached from its closed fd.
 *
 * @example
 * ```ts
 * const { free, detachedRunning } = laneState();
 * ```
 */
export function laneState(): { free: number; detachedRunning: number } {
  let free = 0;
  let detachedRunning = 0;
  for (const l of idleLanes) {
    if (l.detached === null || l.detached.detachedEnded) free++;
    else detachedRunning++;
  }
  return { free, detachedRunning };
}

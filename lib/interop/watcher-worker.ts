/**
 * The hosted-mode watcher thread (see watcher.ts): a Worker that blocks in epoll_wait on
 * an outer epoll holding the poll fds of parked reel runtimes, and wakes the main thread
 * through a SharedArrayBuffer when one becomes readable.
 *
 * Protocol over the Int32Array `ctl` (indices in watcher.ts): on readiness the worker bumps
 * FIRED and notifies it (the main thread waits with Atomics.waitAsync), then waits again.
 * The fds are armed one-shot, so a reported fd stays silent until the main thread re-arms
 * it: the loop cannot spin. STOP set, plus a write to the stop eventfd, ends the loop.
 *
 * Must never: read reel's events (only the main thread's driver consumes them), touch any
 * runtime state, or spin: it is always blocked in epoll_wait.
 */
import { epollWait } from "../../ffi/epoll.ts";
import { EINTR } from "../../ffi/errno.ts";

/** Indices into the control array; watcher.ts uses the same. */
const FIRED = 0;
const STOP = 1;

declare const self: Worker;

/** The watch loop: runs until STOP, blocked in the kernel between wake-ups. */
function watch(ctl: Int32Array, outer: number): void {
  // Room for a few events: the worker only needs to know that something is ready.
  // SAFETY: ArrayBuffer-backed and referenced by this frame for every (blocking) epoll_wait
  // call that writes into it; the kernel holds it only during the call.
  const events = new Uint32Array(new ArrayBuffer(16 * 8));
  while (Atomics.load(ctl, STOP) === 0) {
    const n = epollWait(outer, events, 8, -1);
    if (Atomics.load(ctl, STOP) !== 0) break;
    if (n === -EINTR || n === 0) continue;
    if (n < 0) {
      // The outer epoll is reel's own and valid until STOP: an error here is a bug. Report
      // it to the main thread, which rejects the hosted runs rather than hanging.
      postMessage({ error: `epoll_wait on the hosted watcher failed: errno ${-n}` });
      break;
    }
    Atomics.add(ctl, FIRED, 1);
    Atomics.notify(ctl, FIRED);
  }
  postMessage({ stopped: true });
}

self.onmessage = (e: MessageEvent) => {
  const { ctl, outer } = e.data as { ctl: SharedArrayBuffer; outer: number };
  postMessage({ started: true }); // the module is loaded (its file closed): fd counts are stable
  watch(new Int32Array(ctl), outer);
};

// The writer thread of bench/hosted-latency.ts: on each request it waits a little (so the
// main thread is parked / blocked in the kernel), stamps the time and writes one byte to
// the fd it was given. The stamp is CLOCK_MONOTONIC (bench/lib/monoclock.ts), shared by
// threads (process.hrtime in a Worker has its own origin).
// Must never write before the main thread asked for the round.
import { write } from "../ffi/libc.ts";
import { monoNs } from "./lib/monoclock.ts";

declare const self: Worker;
const GO = 0;
const DONE = 1;

self.onmessage = (e: MessageEvent) => {
  const { ctl, stamps, fd, rounds, gapUs } = e.data as { ctl: SharedArrayBuffer; stamps: SharedArrayBuffer; fd: number; rounds: number; gapUs: number };
  const c = new Int32Array(ctl);
  const t0 = new Float64Array(stamps);
  const one = new Uint8Array([120]);
  for (let i = 1; i <= rounds; i++) {
    while (Atomics.load(c, GO) < i) Atomics.wait(c, GO, i - 1, 1000);
    // Let the main thread reach its wait (epoll_wait, or parked in Bun's loop).
    Atomics.wait(c, DONE, 0, gapUs / 1000);
    t0[i - 1] = monoNs();
    write(fd, one);
  }
  postMessage("done");
};

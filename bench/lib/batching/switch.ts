// t_k for bench/batching.ts: the cost of a context switch, from a ping-pong between the
// main thread and a Bun Worker (batching-worker.ts) over two blocking eventfds.
//
// One round trip: main writes 1 to `toWorker` and blocks in read(`toMain`); the worker's
// read(`toWorker`) returns, it writes 1 to `toMain` and blocks again; main's read returns.
// That is two hand-offs, each made of one write (the sender), one read returning (the
// receiver) and one switch from the thread that blocks to the one that wakes. So
//
//     t_k = RTT / 2 − (t_write + t_read)
//
// with t_write and t_read the non-blocking eventfd write/read costs through the same FFI
// path (measured separately: FFI call + syscall + eventfd work). "Pinned" puts both threads
// on the main thread's current CPU (a real switch on one CPU); "unpinned" lets them sit
// on two CPUs (a cross-CPU wake-up: IPI and the idle vCPU's exit, not a switch).
//
// Must never: leave the main thread pinned, or hang when the worker fails (the worker
// writes a FAIL value instead of 1; a main-side failure sets `stop` and releases it).
import * as libc from "../../../ffi/libc.ts";
import { EFD_CLOEXEC, eventfd } from "../../../ffi/epoll.ts";
import { currentCpu, pinToCpu, restoreAffinity } from "./ffi.ts";

/** Round-trip samples of one ping-pong run. */
export interface PingPong {
  /** Whether both threads were pinned to one CPU (false when not asked, or refused). */
  readonly pinned: boolean;
  /** ns per round trip, one entry per sample. */
  readonly rttNs: number[];
}

/** Messages from the worker. */
type FromWorker = { kind: "ready"; pinned: boolean } | { kind: "done"; failed: string };

/** Opens a blocking eventfd or throws naming the errno. */
function blockingEventfd(): number {
  const fd = eventfd(0, EFD_CLOEXEC);
  if (fd < 0) throw new Error(`eventfd failed: errno ${-fd}`);
  return fd;
}

/** `rounds` round trips, timed; throws when a reply was not exactly the counter 1. */
function timedRounds(toWorker: number, toMain: number, rounds: number): number {
  const one = new Uint8Array(new ArrayBuffer(8));
  one[0] = 1;
  const buf = new Uint8Array(new ArrayBuffer(8));
  const word = new Uint32Array(buf.buffer);
  const t0 = Bun.nanoseconds();
  for (let r = 0; r < rounds; r++) {
    libc.write(toWorker, one);
    const n = libc.read(toMain, buf);
    if (n !== 8 || word[0] !== 1 || word[1] !== 0) throw new Error(`ping-pong round ${r}: read ${n}, value ${word[0]} (the worker failed)`);
  }
  return (Bun.nanoseconds() - t0) / rounds;
}

/** The worker's messages in order (an error event counts as a failed "done"). */
function inbox(worker: Worker): () => Promise<FromWorker> {
  const messages: FromWorker[] = [];
  let notify: (() => void) | null = null;
  const push = (m: FromWorker) => {
    messages.push(m);
    notify?.();
  };
  worker.addEventListener("message", (e: MessageEvent) => push(e.data as FromWorker));
  worker.addEventListener("error", (e: ErrorEvent) => push({ kind: "done", failed: e.message }));
  return async () => {
    while (messages.length === 0) await new Promise<void>((r) => (notify = r));
    return messages.shift()!;
  };
}

/**
 * Runs one warm-up sample and `samples` timed samples of `rounds` round trips each.
 *
 * @example
 * ```ts
 * const { pinned, rttNs } = await pingPong({ rounds: 2000, samples: 9, pin: true });
 * ```
 */
export async function pingPong(opts: { rounds: number; samples: number; pin: boolean }): Promise<PingPong> {
  const toWorker = blockingEventfd();
  const toMain = blockingEventfd();
  const stop = new SharedArrayBuffer(4);
  const cpu = opts.pin ? currentCpu() : -1;
  const worker = new Worker(new URL("./worker.ts", import.meta.url).href);
  const next = inbox(worker);
  let old: Uint8Array | null = null;
  try {
    worker.postMessage({ toWorker, toMain, total: opts.rounds * (opts.samples + 1), cpu, stop });
    const ready = await next();
    if (ready.kind !== "ready") throw new Error(`ping-pong worker did not start: ${ready.failed}`);
    const workerPinned = ready.pinned;
    if (workerPinned) old = pinToCpu(cpu);
    const rttNs: number[] = [];
    timedRounds(toWorker, toMain, opts.rounds); // warm-up
    for (let s = 0; s < opts.samples; s++) rttNs.push(timedRounds(toWorker, toMain, opts.rounds));
    const done = await next();
    if (done.kind === "done" && done.failed !== "") throw new Error(`ping-pong worker: ${done.failed}`);
    return { pinned: workerPinned && old !== null, rttNs };
  } catch (err) {
    // Release a worker still blocked in read(): it sees `stop` and leaves its loop.
    Atomics.store(new Int32Array(stop), 0, 1);
    const one = new Uint8Array(new ArrayBuffer(8));
    one[0] = 1;
    libc.write(toWorker, one);
    throw err;
  } finally {
    if (old !== null) restoreAffinity(old);
    worker.terminate();
    libc.close(toWorker);
    libc.close(toMain);
  }
}

/**
 * A resolver Worker: runs getaddrinfo (ffi/netdb.ts), which blocks on /etc/hosts, DNS and
 * whatever else nsswitch names, off the runtime thread. One of the resolver pool's few
 * Workers (resolver.ts) — never the file pool's, so a resolver stuck on a dead DNS server
 * cannot starve file I/O, nor the other way round.
 *
 * Protocol (resolver.ts posts every job to every Worker; the first idle one claims it): a job
 * carries a `ctl` SharedArrayBuffer (i32 state at 0, i32 result at 4, i32 hold flag at 8)
 * and an `out` one for the addresses. State: 0 queued → 3 running (claimed here with a
 * compare-and-swap; a Worker that loses the race skips the job) → 1 done → 4 released.
 * The runtime thread may move a queued job to 2 (abandoned: never run) or a running one
 * to 5 (detached: its lookup was cancelled); then this Worker writes nothing more for it
 * and never touches the eventfd. The result is stored before the state, the state before
 * the eventfd write; "released" is stored after the write, and from then on this Worker
 * touches nothing of the job (the runtime thread may close the eventfd).
 *
 * A "hold" job (tests only) blocks its Worker until the runtime thread sets the hold flag:
 * it is how the suite makes every Worker busy on purpose.
 *
 * Must never: run an abandoned job, write the eventfd of a detached one, touch a job after
 * "released", or throw out of onmessage (failures are results).
 */
import * as libc from "../../ffi/libc.ts";
import { resolveInto } from "../../ffi/netdb.ts";

declare const self: Worker;

/** One job, as resolver.ts posts it. */
interface Job {
  kind: "lookup" | "hold";
  name: string;
  family: number;
  max: number;
  ctl: SharedArrayBuffer;
  out: SharedArrayBuffer;
  efd: number;
}

const QUEUED = 0;
const DONE = 1;
const RUNNING = 3;
const RELEASED = 4;
const EIO = 5;

const one = new Uint8Array(new ArrayBuffer(8));
one[0] = 1;
const enc = new TextEncoder();

function run(j: Job, ctl: Int32Array): number {
  if (j.kind === "hold") {
    Atomics.notify(ctl, 0); // the test waiting for this Worker to be busy may go on
    while (Atomics.load(ctl, 2) === 0) Atomics.wait(ctl, 2, 0, 1000);
    return 0;
  }
  return resolveInto(enc.encode(`${j.name}\0`), j.family, new Uint8Array(j.out), j.max);
}

self.onmessage = (ev: MessageEvent<Job>) => {
  const j = ev.data;
  const ctl = new Int32Array(j.ctl, 0, 3);
  // Claim the job; one another Worker claimed, or the runtime abandoned, is skipped.
  if (Atomics.compareExchange(ctl, 0, QUEUED, RUNNING) !== QUEUED) return;
  let r: number;
  try {
    r = run(j, ctl);
  } catch {
    r = -EIO;
  }
  Atomics.store(ctl, 1, r);
  // Detached meanwhile (the lookup was cancelled): nobody waits; touch nothing more.
  if (Atomics.compareExchange(ctl, 0, RUNNING, DONE) !== RUNNING) return;
  libc.write(j.efd, one);
  Atomics.store(ctl, 0, RELEASED);
  Atomics.notify(ctl, 0);
};

// Loaded: tell the pool (startResolver's Promise) this Worker is ready.
postMessage("ready");

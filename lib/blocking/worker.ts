/**
 * A spawnBlocking Worker (lib/blocking/blocking.ts): loads the module a job names, calls
 * the named export with the job's arguments (awaiting a Promise it returns), and hands
 * the outcome back through shared memory — the runtime thread may be inside blockOn,
 * where a message posted to it would never be read — then writes the job's eventfd.
 *
 * Protocol (shared with blocking.ts through the job's `ctl` words): state 0 queued → 3
 * running (claimed here with a compare-and-swap) → 1 done → 4 released; the runtime
 * thread may move a queued job 0 → 2 (abandoned: cancelled before it started), which is
 * then skipped. `ctl[1]` is the outcome's byte length, ≥ 0 for a value and −(len + 1) for
 * an error; `ctl[2]` is set to 1 by the runtime thread when the caller gave up on a
 * running job (what `blockingCancelled()` reads). The outcome (bun:jsc structured clone)
 * is written into the job's growable SharedArrayBuffer before the state; the state before
 * the eventfd write; "released" after it.
 *
 * Must never: run an abandoned job, touch a job after storing "released", or let an error
 * escape onmessage (every failure becomes the job's error outcome).
 */
import { serialize } from "bun:jsc";
import * as libc from "../../ffi/libc.ts";

declare const self: Worker;

interface CallJob {
  moduleUrl: string;
  exportName: string;
  args: unknown[];
  ctl: SharedArrayBuffer;
  data: SharedArrayBuffer;
  efd: number;
}

const QUEUED = 0;
const DONE = 1;
const RUNNING = 3;
const RELEASED = 4;

const one = new Uint8Array(new ArrayBuffer(8));
one[0] = 1;

/** The running job's cancel flag, read by blockingCancelled() (context.ts) through this global. */
let current: Int32Array | null = null;
(globalThis as { __reelBlocking?: { cancelled(): boolean } }).__reelBlocking = {
  cancelled: () => current !== null && Atomics.load(current, 2) === 1,
};

/** An error as a plain object that survives structured clone with its fields. */
function errorRecord(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { __reelError: true, name: "Error", message: String(err), thrown: safeClone(err) };
  const out: Record<string, unknown> = { __reelError: true, name: err.name, message: err.message, stack: err.stack };
  for (const k of ["code", "errno", "syscall"]) {
    const v = (err as unknown as Record<string, unknown>)[k];
    if (typeof v === "string" || typeof v === "number") out[k] = v;
  }
  return out;
}

function safeClone(v: unknown): unknown {
  try {
    serialize(v);
    return v;
  } catch {
    return undefined;
  }
}

/** Writes `bytes` into the job's buffer (grown as needed): false if it does not fit. */
function put(data: SharedArrayBuffer, bytes: Uint8Array): boolean {
  if (bytes.length > data.byteLength) {
    if (bytes.length > data.maxByteLength) return false;
    data.grow(bytes.length);
  }
  new Uint8Array(data, 0, bytes.length).set(bytes);
  return true;
}

function finish(job: CallJob, ctl: Int32Array, ok: boolean, value: unknown): void {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(serialize(ok ? value : errorRecord(value)));
  } catch (err) {
    ok = false; // the value cannot be cloned (a function, a class instance with private state…)
    bytes = new Uint8Array(serialize(errorRecord(err)));
  }
  if (!put(job.data, bytes)) {
    ok = false;
    bytes = new Uint8Array(serialize(errorRecord(new RangeError(`The result of ${job.exportName} is ${bytes.length} bytes, over the limit of ${job.data.maxByteLength}`))));
    put(job.data, bytes);
  }
  Atomics.store(ctl, 1, ok ? bytes.length : -(bytes.length + 1));
  Atomics.store(ctl, 0, DONE);
  libc.write(job.efd, one);
  Atomics.store(ctl, 0, RELEASED);
  Atomics.notify(ctl, 0);
}

self.onmessage = async (ev: MessageEvent<CallJob>) => {
  const job = ev.data;
  const ctl = new Int32Array(job.ctl, 0, 4);
  if (Atomics.compareExchange(ctl, 0, QUEUED, RUNNING) !== QUEUED) return; // abandoned
  current = ctl;
  try {
    const mod = (await import(job.moduleUrl)) as Record<string, unknown>;
    const fn = mod[job.exportName];
    if (typeof fn !== "function") throw new TypeError(`Export "${job.exportName}" of ${job.moduleUrl} is not a function (it is ${typeof fn})`);
    const value = await (fn as (...a: unknown[]) => unknown)(...job.args);
    current = null;
    finish(job, ctl, true, value);
  } catch (err) {
    current = null;
    finish(job, ctl, false, err);
  }
};

postMessage("ready");

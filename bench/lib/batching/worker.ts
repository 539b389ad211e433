// The far side of bench/batching.ts's context-switch ping-pong (batching-switch.ts): a
// Bun Worker that, `total` times, blocks in read() on the `toWorker` eventfd and answers
// with a write of 1 to the `toMain` eventfd. It pins itself to `cpu` first when asked
// (cpu ≥ 0), so both threads share one CPU and every hand-off is a real context switch.
//
// Must never: spin (it only blocks in read), or leave the main thread blocked when it
// fails: on any failed call it writes FAIL to `toMain`, which the main thread checks.
// A set `stop` word (the main thread gave up) ends the loop at the next wake-up.
import * as libc from "../../../ffi/libc.ts";
import { pinToCpu } from "./ffi.ts";

declare const self: Worker;

/** What the main thread sends to start the loop. */
interface Start {
  toWorker: number;
  toMain: number;
  total: number;
  cpu: number;
  stop: SharedArrayBuffer;
}

/** Written to `toMain` instead of 1 when this side failed. */
const FAIL = 0x10000;

self.onmessage = (e: MessageEvent) => {
  const { toWorker, toMain, total, cpu, stop } = e.data as Start;
  const stopWord = new Int32Array(stop);
  const pinned = cpu >= 0 && pinToCpu(cpu) !== null;
  self.postMessage({ kind: "ready", pinned });
  const buf = new Uint8Array(new ArrayBuffer(8));
  const one = new Uint8Array(new ArrayBuffer(8));
  one[0] = 1;
  let failed = "";
  for (let i = 0; i < total; i++) {
    const r = libc.read(toWorker, buf);
    if (Atomics.load(stopWord, 0) !== 0) break;
    if (r !== 8) failed = `read returned ${r}`;
    else {
      const w = libc.write(toMain, one);
      if (w !== 8) failed = `write returned ${w}`;
    }
    if (failed !== "") {
      const f = new Uint8Array(new ArrayBuffer(8));
      new Uint32Array(f.buffer)[0] = FAIL;
      libc.write(toMain, f);
      break;
    }
  }
  self.postMessage({ kind: "done", failed });
};

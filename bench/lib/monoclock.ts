// A CLOCK_MONOTONIC reading shared by all threads of the process (process.hrtime in a Bun
// Worker has its own origin), for cross-thread latency stamps in the benches. Linux only.
import { dlopen } from "bun:ffi";

const CLOCK_MONOTONIC = 1;
const { symbols } = dlopen("libc.so.6", { clock_gettime: { args: ["i32", "ptr"], returns: "i32" } });
// SAFETY: ArrayBuffer-backed, module-lifetime; the kernel writes it only during the call.
const ts = new BigInt64Array(new ArrayBuffer(16));

/** Monotonic time in nanoseconds, as a Number (exact to well below 1 µs for months). */
export function monoNs(): number {
  symbols.clock_gettime(CLOCK_MONOTONIC, ts);
  return Number(ts[0]!) * 1e9 + Number(ts[1]!);
}

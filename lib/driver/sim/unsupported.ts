/**
 * What the simulator does not model — files, standard I/O, child processes, signals,
 * pipes, the blocking pool's threads, a real fd handed back — fails with one error:
 * RuntimeError ESIM naming it and what to do instead. Never a silent fallback to the
 * real machine.
 *
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { RuntimeError } from "../../errors.ts";

/**
 * The error for something the simulator does not model (`what` includes its verb).
 *
 * @example
 * ```ts
 * throw notSimulated("Child processes are", "run them on a real backend");
 * ```
 */
export function notSimulated(what: string, hint: string): RuntimeError {
  return new RuntimeError(`${what} not simulated: the simulation backend runs sockets and timers only (${hint})`, "ESIM");
}

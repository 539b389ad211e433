/**
 * reel's error types. Small classes with predicates, never string matching.
 *
 * - {@link SysError}: a failed system call, from ffi/'s −errno results, in one helper
 *   ({@link check}). EAGAIN never becomes an error: it is the signal to wait.
 * - {@link TimeoutError}: `timeout()` ran out.
 * - {@link JoinError}: a task was cancelled or failed (see lib/task).
 * - Bad arguments are TypeError/RangeError naming the value (see {@link checkBuffer}).
 *
 * Must never: import the executor or driver (everything imports this).
 * Must never import: lib/**, bun:ffi
 */
import { errnoName } from "../ffi/errno.ts";

/**
 * A failed system call: `.code` is the errno name ("ECONNREFUSED"), `.errno` the positive
 * number, `.syscall` the call ("connect").
 *
 * @example
 * ```ts
 * import { SysError } from "reel";
 * try { yield* TcpStream.connect({ hostname: "127.0.0.1", port: 1 }); }
 * catch (e) { if (e instanceof SysError && e.code === "ECONNREFUSED") console.log("nobody home"); }
 * ```
 */
export class SysError extends Error {
  override name = "SysError";
  constructor(
    readonly errno: number,
    readonly syscall: string,
    readonly code: string = errnoName(errno),
    detail?: string,
  ) {
    super(`${syscall} failed: ${code}${detail ? ` (${detail})` : ""}`);
  }
}

/**
 * Turns an ffi result into a value: returns `r` when ≥ 0, throws SysError(−r) otherwise.
 *
 * @example
 * ```ts
 * const fd = check(libc.socket(AF_INET, SOCK_STREAM, 0), "socket");
 * ```
 */
export function check(r: number, syscall: string, detail?: string): number {
  if (r < 0) throw new SysError(-r, syscall, undefined, detail);
  return r;
}

/**
 * Thrown by `timeout(fut, ms)` when `ms` passes first; the inner future has been cancelled.
 *
 * @example
 * ```ts
 * try { yield* timeout(stream.read(buf), 100); }
 * catch (e) { if (e instanceof TimeoutError) console.log(`no data within ${e.ms} ms`); }
 * ```
 */
export class TimeoutError extends Error {
  override name = "TimeoutError";
  readonly code = "ETIMEDOUT";
  constructor(readonly ms: number) {
    super(`Timed out after ${ms} ms`);
  }
}

/**
 * The peer closed the stream before `readExact` filled its buffer (tokio's UnexpectedEof).
 * `.read` is how many bytes did arrive, `.wanted` how many were asked for.
 *
 * @example
 * ```ts
 * import { TcpStream, UnexpectedEofError, blockOn } from "reel";
 * blockOn(function* () {
 *   const stream = yield* TcpStream.connect({ hostname: "127.0.0.1", port: 7000 });
 *   const header = new Uint8Array(4);
 *   try {
 *     yield* stream.readExact(header);
 *   } catch (e) {
 *     if (!(e instanceof UnexpectedEofError)) throw e;
 *     console.log(`the peer left after ${e.read} of ${e.wanted} bytes`);
 *   }
 *   stream.close();
 * });
 * ```
 */
export class UnexpectedEofError extends Error {
  override name = "UnexpectedEofError";
  readonly code = "UNEXPECTED_EOF";
  constructor(
    readonly read: number,
    readonly wanted: number,
  ) {
    super(`Unexpected end of stream after ${read} of ${wanted} bytes`);
  }
}

/**
 * The codes a {@link RuntimeError} carries:
 * - EREENTRANT: blockOn/runTicks inside a runtime; ECLOSED: the runtime is closed;
 * - ENORUNTIME: spawn, a timer or an fd op outside any runtime; EBUSY: closing a runtime
 *   from inside it or while hosted; EDEADLK: nothing can ever wake the blockOn future;
 * - EFOREIGN: an fd polled on a runtime other than the one it is bound to;
 * - ECANCELED: a hosted run was cancelled; ERELEASED: a lock guard or permit used after
 *   release; ENOTURING / ENOLIBURING: an io_uring-only call elsewhere, liburing missing;
 * - ECLEANUP: a cancelled future's cleanup outlived its bound (or threw); ESCOPE: a spawn
 *   into a scope that is not running; ENOHOST: `for await` over a stream without reel's
 *   interop layer loaded;
 * - ESIM: something the simulator cannot run reproducibly (a real fd or a file inside a
 *   simulation, real time or Math.random read in strict mode, resuming virtual time).
 */
export type RuntimeErrorCode =
  | "EREENTRANT"
  | "ECLOSED"
  | "ENORUNTIME"
  | "EBUSY"
  | "EDEADLK"
  | "EFOREIGN"
  | "ECANCELED"
  | "ERELEASED"
  | "ENOTURING"
  | "ENOLIBURING"
  | "ECLEANUP"
  | "ESCOPE"
  | "ENOHOST"
  | "ESIM";

/**
 * The runtime is not in a state for the call: `blockOn` inside `blockOn`, `spawn` with no
 * runtime, a stream used after `close()`. `.code` says which (`EREENTRANT`, `ENORUNTIME`,
 * `ECLOSED`, `EBUSY`, `EDEADLK`, `EFOREIGN`: the README's table has each).
 *
 * @example
 * ```ts
 * import { RuntimeError, spawn } from "reel";
 * try {
 *   spawn(function* () {}); // outside blockOn()/run(): no runtime to spawn on
 * } catch (e) {
 *   if (e instanceof RuntimeError && e.code === "ENORUNTIME") console.log("spawn inside blockOn() or run()");
 * }
 * ```
 */
export class RuntimeError extends Error {
  override name = "RuntimeError";
  constructor(
    message: string,
    readonly code: RuntimeErrorCode,
  ) {
    super(message);
  }
}

/**
 * Validates a byte buffer argument: a Uint8Array whose ArrayBuffer is not detached.
 * Throws TypeError naming `what` otherwise.
 */
export function checkBuffer(buf: unknown, what: string): asserts buf is Uint8Array {
  if (!(buf instanceof Uint8Array)) {
    throw new TypeError(`${what} must be a Uint8Array, got ${buf === null ? "null" : typeof buf}`);
  }
  if ((buf.buffer as ArrayBuffer).detached) throw new TypeError(`${what} is backed by a detached ArrayBuffer`);
}

/** Validates a port number: an integer 0–65535. */
export function checkPort(port: unknown, what = "port"): number {
  if (typeof port !== "number" || !Number.isInteger(port)) {
    throw new TypeError(`Invalid ${what} ${String(port)}: must be an integer 0-65535`);
  }
  if (port < 0 || port > 65535) throw new RangeError(`Invalid ${what} ${port}: must be 0-65535`);
  return port;
}

/** Validates a non-negative finite duration in ms. */
export function checkMs(ms: unknown, what: string): number {
  if (typeof ms !== "number" || Number.isNaN(ms)) throw new TypeError(`${what} must be a number of ms, got ${String(ms)}`);
  if (ms < 0 || !Number.isFinite(ms)) throw new RangeError(`${what} must be a finite number ≥ 0, got ${ms}`);
  return ms;
}

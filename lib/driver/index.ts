/**
 * Backend selection: one block that picks the Poller for this platform, or the one named
 * by `REEL_BACKEND` (so the same tests run on every backend, as smol's polling forces its
 * poll fallback). "sim" is the deterministic simulator (lib/driver/sim/): no kernel, a
 * virtual clock and a seed (`REEL_SEED`, or a fresh one); it is not a platform backend, so
 * it is never the default and not among {@link availableBackends}.
 *
 * Must never: fall back silently from a backend the user named explicitly.
 * Must never import: lib/executor.ts, lib/task/**, lib/net/**, lib/fs/**, lib/interop/**
 */
import { EpollPoller } from "./readiness/epoll.ts";
import { PollPoller } from "./readiness/poll.ts";
import { KqueuePoller } from "./readiness/kqueue.ts";
import { HAVE_KQUEUE, kqueueUnavailable } from "../../ffi/kqueue.ts";
import type { Driver } from "./driver.ts";
import { ReadinessDriver } from "./readiness/driver.ts";
import { UringDriver } from "./uring/driver.ts";
import { SimDriver } from "./sim/driver.ts";
import type { SimOptions } from "./sim/config.ts";
import { SysError } from "../errors.ts";

/**
 * The backends reel knows, in the order `REEL_BACKEND` accepts them.
 *
 * @example
 * ```ts
 * const backend: Backend = process.platform === "linux" ? "uring" : "kqueue";
 * const rt = new Runtime({ backend });
 * ```
 */
export type Backend = "epoll" | "kqueue" | "poll" | "uring" | "sim";

const KNOWN: readonly Backend[] = ["epoll", "kqueue", "poll", "uring", "sim"];

/** What a backend may be given besides its name: the simulator's seed and settings. */
export interface DriverOptions {
  /** The simulator's seed (default: {@link simSeed}). */
  seed?: number;
  /** The simulator's settings. */
  sim?: SimOptions;
}

/**
 * The random number a simulation draws its choices from when none is given: `REEL_SEED`,
 * or a fresh random one.
 * `fromEnv` says which, so a failure can print a seed nobody chose.
 */
export function simSeed(env: string | undefined = process.env.REEL_SEED): { seed: number; fromEnv: boolean } {
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new RangeError(`Invalid REEL_SEED "${env}": must be an integer 0-4294967295`);
    return { seed: n, fromEnv: true };
  }
  return { seed: Math.floor(Math.random() * 0x1_0000_0000) >>> 0, fromEnv: false };
}

/** The platform's default backend: epoll on Linux, kqueue on macOS and the BSDs. */
export function defaultBackend(): Backend {
  return process.platform === "linux" ? "epoll" : "kqueue";
}

/** The backend named by REEL_BACKEND (validated), or the platform default. */
export function selectedBackend(env: string | undefined = process.env.REEL_BACKEND): Backend {
  if (env === undefined || env === "") return defaultBackend();
  if (!(KNOWN as readonly string[]).includes(env)) {
    throw new RangeError(`Unknown REEL_BACKEND "${env}": expected one of ${KNOWN.join(", ")}`);
  }
  return env as Backend;
}

/** How each backend available in this build is constructed. */
const factories = new Map<Backend, () => Driver>([
  ["epoll", () => new ReadinessDriver(new EpollPoller())],
  ["poll", () => new ReadinessDriver(new PollPoller())],
]);
// kqueue on macOS and FreeBSD, and on Linux over libkqueue when REEL_KQUEUE_LIB names it;
// epoll only on Linux.
if (HAVE_KQUEUE) factories.set("kqueue", () => new ReadinessDriver(new KqueuePoller()));
if (process.platform !== "linux") factories.delete("epoll");
// io_uring on Linux, falling back to epoll (with a notice) when the kernel refuses it.
if (process.platform === "linux") factories.set("uring", makeUring);

let uringNoticed = false;

/**
 * A UringDriver, or an epoll Driver when io_uring_setup fails (EPERM under
 * kernel.io_uring_disabled, ENOSYS, a kernel too old): one line on stderr per process
 * says so. Other errors (a bad REEL_URING) are thrown.
 */
function makeUring(): Driver {
  try {
    return new UringDriver();
  } catch (err) {
    if (!(err instanceof SysError) || (err.syscall !== "io_uring_setup" && err.syscall !== "mmap")) throw err;
    if (!uringNoticed) {
      uringNoticed = true;
      console.error(`reel: io_uring unavailable (${err.message}); using the epoll backend instead`);
    }
    return new ReadinessDriver(new EpollPoller());
  }
}

/** Creates a driver for `backend`; throws naming the backend when it is not available here. */
export function createDriver(backend: Backend = selectedBackend(), options: DriverOptions = {}): Driver {
  if (backend === "sim") return new SimDriver(options.seed ?? simSeed().seed, options.sim);
  const make = factories.get(backend);
  if (make === undefined) {
    if (backend === "kqueue") throw new RangeError(`The kqueue backend is not available: ${kqueueUnavailable()}`);
    throw new RangeError(`The ${backend} backend is not available on ${process.platform} in this build of reel`);
  }
  return make();
}

/** The backends this build can construct on this platform, default first. */
export function availableBackends(): Backend[] {
  const names = [...factories.keys()];
  return names.sort((a, b) => (a === defaultBackend() ? -1 : b === defaultBackend() ? 1 : 0));
}

/**
 * The break-even batch size, measured: batched submission beats one syscall per op
 * above B* = 2(t_s + t_k) / (2(t_s + t_k) − t_r), with t_s the syscall cost, t_k the
 * context-switch cost and t_r the per-request bookkeeping of the batched interface. (The
 * model: an op done alone pays 2(t_s + t_k); a batch of B pays that once plus B·t_r.)
 *
 *   bun run bench/batching.ts [--json] [--write] [--samples N] [--path liburing|raw]
 *                             [--op eventfd-read|null-write]
 *
 * 1. t_s: getppid() through bun:ffi minus abs() (a libc call with no syscall).
 * 2. t_k: main thread ⇄ Bun Worker ping-pong over two blocking eventfds, pinned to one
 *    CPU: RTT/2 − (eventfd write + read). Unpinned too, for reference.
 * 3. t_r: k NOPs per io_uring_enter on reel's Ring (lib/driver/uring_ring.ts), k = 1…256:
 *    the slope of batch time over k; the intercept is the per-enter cost.
 * 4. The real per-op cost at B = 1, 2, 4 … 256 of one cheap op (default: an 8-byte read of
 *    a semaphore eventfd) done one read() syscall each (epoll style, once readiness is
 *    known) vs B SQEs per enter; the measured crossover beside the predicted B*.
 *
 * Prints markdown (or, with --json, one JSON object). --write replaces the
 * `bench:batching` section of bench/RESULTS.md (bench/lib/results.ts). Linux only; runs in
 * well under a minute. Must never: leave a Worker, a ring or a pinned thread behind, or
 * print a number a failed call produced (every timed loop is checksummed).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { Ring, type RingPath } from "../lib/driver/uring/ring.ts";
import { closeTarget, openTarget, TARGET_DESCRIPTIONS, TARGET_KINDS, type TargetKind } from "./lib/batching/ring.ts";
import { jsonReport, markdown, type Results } from "./lib/batching/report.ts";
import { loadAverage } from "./lib/batching/stats.ts";
import { sweep, type Sweep } from "./lib/batching/sweep.ts";
import { measureSwitch, measureSyscall } from "./lib/batching/terms.ts";
import { commandLine, machineLine, writeSection } from "./lib/results.ts";

/** Parsed command line. */
interface Options {
  json: boolean;
  write: boolean;
  samples: number;
  path: RingPath | undefined;
  op: TargetKind;
}

const USAGE = `usage: bun run bench/batching.ts [--json] [--write] [--samples N] [--path liburing|raw] [--op ${TARGET_KINDS.join("|")}]
  --json        print the results as JSON instead of markdown
  --write       also write the markdown into the bench:batching section of bench/RESULTS.md
  --samples N   timed runs per median (default 21, 3-101)
  --path P      io_uring setup path (default: reel's choice, REEL_URING or liburing when installed)
  --op K        the op both sides repeat (default eventfd-read)`;

/** Exits with status 2 and a message naming the bad value. */
function die(msg: string): never {
  console.error(`${msg}\n${USAGE}`);
  process.exit(2);
}

/** Reads the command line (exits with the usage on a bad value). */
function parseOptions(): Options {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        json: { type: "boolean", default: false },
        write: { type: "boolean", default: false },
        samples: { type: "string" },
        path: { type: "string" },
        op: { type: "string" },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (err) {
    die((err as Error).message);
  }
  if (values.help) die("");
  const samples = values.samples === undefined ? 21 : Number(values.samples);
  if (!Number.isInteger(samples) || samples < 3 || samples > 101) die(`Cannot use --samples ${values.samples}: must be an integer 3-101`);
  const path = values.path;
  if (path !== undefined && path !== "liburing" && path !== "raw") die(`Cannot use --path ${path}: must be liburing or raw`);
  const op = (values.op ?? "eventfd-read") as TargetKind;
  if (!TARGET_KINDS.includes(op)) die(`Cannot use --op ${values.op}: must be one of ${TARGET_KINDS.join(", ")}`);
  return { json: values.json, write: values.write, samples, path, op };
}

/** spectre_v2 and spec_rstack_overflow from sysfs: the mitigations that tax syscalls and kernel calls. */
function mitigations(): string {
  const dir = "/sys/devices/system/cpu/vulnerabilities";
  const read = (f: string) => {
    try {
      return readFileSync(`${dir}/${f}`, "utf8").trim();
    } catch {
      return "unknown";
    }
  };
  return `spectre_v2: ${read("spectre_v2")}; spec_rstack_overflow: ${read("spec_rstack_overflow")}`;
}

/** Opens reel's ring, or returns why it could not (the report then omits t_r and the sweep). */
function openRing(path: RingPath | undefined): Ring | string {
  try {
    return Ring.open({ entries: 256, path });
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Runs the sweep on a fresh ring and target, closing both whatever happens. */
function runSweep(opts: Options): { ring: Results["ring"]; sweep: Sweep | null } {
  const ring = openRing(opts.path);
  if (typeof ring === "string") return { ring: { error: ring }, sweep: null };
  const t = openTarget(opts.op);
  try {
    return { ring: { path: ring.path, flags: ring.flags }, sweep: sweep(ring, t, opts.samples) };
  } finally {
    ring.close();
    closeTarget(t);
  }
}

async function main(): Promise<void> {
  const opts = parseOptions();
  if (process.platform !== "linux") die(`bench/batching.ts needs Linux (io_uring, eventfd); this is ${process.platform}`);
  const t0 = Bun.nanoseconds();
  const loadBefore = loadAverage();
  const sys = measureSyscall(opts.samples);
  const sw = await measureSwitch(Math.max(5, Math.ceil(opts.samples / 2)), sys);
  const { ring, sweep: sw2 } = runSweep(opts);
  const results: Results = {
    date: new Date().toISOString(),
    machine: machineLine(),
    mitigations: mitigations(),
    command: commandLine("bench/batching.ts"),
    loadBefore,
    loadAfter: loadAverage(),
    samples: opts.samples,
    elapsedS: (Bun.nanoseconds() - t0) / 1e9,
    sys,
    sw,
    ring,
    target: { kind: opts.op, describe: TARGET_DESCRIPTIONS[opts.op] },
    sweep: sw2,
  };
  const md = markdown(results);
  console.log(opts.json ? jsonReport(results) : md);
  if (opts.write) {
    const file = resolve(import.meta.dir, "RESULTS.md");
    writeSection(file, "bench:batching", md);
    console.error(`wrote the bench:batching section of ${file}`);
  }
}

await main();

/**
 * The simulation backend ("sim"): a Driver whose kernel is a simulated network in this
 * process, whose clock is virtual, and whose every choice comes from one seed. The same
 * program — TCP, UDP and Unix sockets, name lookups, timers, channels, combinators — runs
 * on it unchanged: net/ makes its socket calls through `sockets` (SimSockets), its I/O
 * through the SimFds `socket(fd)` hands out, and its lookups through `resolver`
 * (SimResolver: the simulation's host names).
 *
 * Time: the clock starts at 0 and moves only when every task is idle (the executor's idle
 * turn): the driver's frozen-clock turn (driver.ts) jumps it to the next timer or network
 * event, whichever comes first. `sleep(3_600_000)` costs one jump. A turn never blocks.
 *
 * Work: what may still wake a task is a timer or an event in flight in the network; a
 * socket waiting for data nobody sends is not (nothing outside the simulation can send
 * it), so a simulation where every task waits on such a socket is a deadlock (EDEADLK)
 * rather than a hang.
 *
 * Which host runs the code: tasks of a host (lib/sim, `sim.host()`) descend from a root task
 * registered with {@link SimDriver.setHost}; sockets are created on the host of the task
 * being polled (found by walking the task tree to its root), on "main" otherwise.
 *
 * Determinism: the trace (trace.ts) records and hashes every event; the interceptor
 * (intercept.ts) keeps real time and Math.random out while the runtime runs; a real fd
 * handed to `socket()` is refused (RuntimeError EFOREIGN), and so is what needs the real
 * machine — files, standard I/O, child processes, signals, pipes, the blocking pool
 * (`requireOs`) — with RuntimeError ESIM (unsupported.ts).
 *
 * Must never: block, read real time, or call into the kernel.
 * Must never import: lib/executor.ts, bun:ffi
 */
import { Driver } from "../driver.ts";
import type { FileFd, FileFuture, IoFd, PathOps, StatFields } from "../fd.ts";
import type { SocketApi } from "../sockets.ts";
import { Clock } from "../../time/clock.ts";
import { RuntimeError, SysError } from "../../errors.ts";
import { running } from "../../current.ts";
import type { Node } from "../../task/tree.ts";
import { EBADF } from "./errno.ts";
import { simConfig, type SimConfig, type SimOptions } from "./config.ts";
import { SimRng } from "./rng.ts";
import { EV_JUMP, EV_POLL, SimTrace } from "./trace.ts";
import type { SchedulePolicy } from "../../task/seeded.ts";
import { SIM_FD_BASE, SimNet } from "./net.ts";
import type { SimHost } from "./host.ts";
import { SimFd } from "./fd.ts";
import { SimSockets } from "./sockets.ts";
import { Interceptor } from "./intercept.ts";
import { notSimulated } from "./unsupported.ts";
import { SimResolver } from "./resolver.ts";
import type { ResolverClient } from "../resolver.ts";

/**
 * The simulation driver.
 *
 * @example
 * ```ts
 * const d = new SimDriver(42, { link: { latency: [1, 3] } });
 * d.net.partition(d.net.main, d.net.addHost("db"));
 * console.log(d.trace.hash());
 * ```
 */
export class SimDriver extends Driver {
  readonly name = "sim";
  readonly watchFd = -1;
  readonly cfg: SimConfig;
  /** The root of every random stream of this simulation. */
  readonly rng: SimRng;
  readonly trace: SimTrace;
  readonly net: SimNet;
  readonly intercept: Interceptor;
  private readonly api: SimSockets;
  private names: SimResolver | null = null;
  /** Host of each host's root task (lib/sim registers them). */
  private readonly hostRoots = new Map<object, SimHost>();

  constructor(
    /** The random number every choice of this simulation is drawn from (REEL_SEED). */
    readonly seed: number,
    options: SimOptions = {},
  ) {
    super(new Clock(true));
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
      throw new RangeError(`Invalid simulation seed ${String(seed)}: must be an integer 0-4294967295`);
    }
    this.cfg = simConfig(options);
    this.rng = new SimRng(seed);
    this.trace = new SimTrace(this.cfg.trace);
    this.net = new SimNet(this.cfg, this.rng.fork("net"), this.rng.fork("io"), this.trace, this.clock);
    this.net.currentHost = () => this.hostOfRunning();
    this.api = new SimSockets(this.net);
    this.intercept = new Interceptor(this.cfg.intercept, this.rng.fork("user"), this.clock, this.cfg.epochMs, this.trace, seed);
  }

  override get sockets(): SocketApi {
    return this.api;
  }

  /** Lookups answered from the simulation's hosts (resolver.ts): no thread, no fd. */
  override get resolver(): ResolverClient {
    return (this.names ??= new SimResolver(this, this.net));
  }

  /** The per-fd interface of a simulated socket; a real fd (or any other number) is refused. */
  socket(fd: number): IoFd {
    const s = this.net.socketOf(fd);
    if (s !== undefined) return new SimFd(this, fd, s, this.net);
    if (this.net.forgetCrashed(fd)) throw new SysError(EBADF, "socket", undefined, "its host crashed");
    throw new RuntimeError(
      fd >= SIM_FD_BASE
        ? `fd ${fd} is not a socket of this simulation (another simulation's, or closed)`
        : `fd ${fd} is a real descriptor: a simulation only runs sockets it created (make them inside the simulation)`,
      "EFOREIGN",
    );
  }

  file(_fd: number): FileFd {
    throw filesError();
  }

  openFile(_path: string, _flags: number, _mode: number): FileFuture<number> {
    throw filesError();
  }

  statPath(_path: string): FileFuture<StatFields> {
    throw filesError();
  }

  /** Path operations (mkdir, rename, readDir, …): files are not simulated, each throws ESIM. */
  readonly paths: PathOps = {
    mkdir: () => { throw filesError(); },
    rename: () => { throw filesError(); },
    unlink: () => { throw filesError(); },
    symlink: () => { throw filesError(); },
    readLink: () => { throw filesError(); },
    readDir: () => { throw filesError(); },
    realPath: () => { throw filesError(); },
    truncate: () => { throw filesError(); },
    stat: () => { throw filesError(); },
  };

  /** Processes, signals, pipes and threads are the real machine's: refused (see Driver.requireOs). */
  override requireOs(what: string): void {
    throw notSimulated(what, "run it on a real backend");
  }

  /** Standard I/O (an inherited terminal, pipe or file) is the real process's: not simulated. */
  inherited(_fd: number): IoFd {
    throw notSimulated("Standard input and output are", "a simulation has no terminal; print with console.log");
  }

  /** Delivers what the network has due now; never waits (virtual time moves in turnFrozen). */
  protected poll(_timeoutMs: number): number {
    return this.net.deliverDue();
  }

  protected shutdown(): void {
    this.intercept.uninstall();
  }

  /** Simulated sockets open (owned by an fd). */
  get registrations(): number {
    return this.net.openSockets;
  }

  /** Events in flight in the network. */
  override get pendingWork(): number {
    return this.net.inFlight;
  }

  /** A timer, or an event in flight: nothing else can wake a task in a closed world. */
  override hasWork(): boolean {
    return this.net.inFlight > 0 || this.wheel.size > 0;
  }

  override nextTimedEvent(): number {
    const t = this.wheel.size > 0 ? this.wheel.nextDeadline() : -1;
    const n = this.net.nextTime();
    if (t < 0) return n;
    return n >= 0 && n < t ? n : t;
  }

  /** Tasks kept the executor busy for a batch: virtual CPU time passes (SimOptions.busyTurnMs). */
  override busy(): void {
    const cost = this.cfg.busyTurnMs;
    if (cost > 0) {
      const t = this.clock.now();
      this.clockJumped(t, t + cost);
    }
  }

  protected override clockJumped(from: number, to: number): void {
    this.trace.ev(to, EV_JUMP, Math.round(from * 1000), 0, 0);
    this.clock.advanceTo(to);
  }

  override deadlockDetail(): string {
    return (
      ` Simulation seed ${this.seed}, virtual time ${this.clock.now().toFixed(3)} ms: no timer is armed and nothing is in flight ` +
      `in the simulated network (${this.net.openSockets} socket(s) open, waiting for data nobody sends).`
    );
  }

  override enter(): void {
    super.enter();
    this.intercept.install();
  }

  override leave(): void {
    this.intercept.uninstall();
    super.leave();
  }

  /**
   * The executor's seeded pick (lib/task/runqueue.ts): a uniform choice among the ready
   * tasks from the "schedule" stream ("random"), or the oldest ("fifo"); every poll traced
   * with the task's number relative to the first one polled (task ids are process-wide).
   */
  schedulePolicy(): SchedulePolicy {
    const rng = this.rng.fork("schedule");
    const fifo = this.cfg.schedule === "fifo";
    const trace = this.trace;
    const clock = this.clock;
    let base = -1;
    return {
      pick: fifo ? () => 0 : (n) => rng.below(n),
      picked(task) {
        if (base < 0) base = task.id - 1;
        trace.ev(clock.now(), EV_POLL, task.id - base, 0, 0);
      },
    };
  }

  /** Marks `root` (a root task) as the start of a host's tasks: sockets its tree makes are that host's. */
  setHost(root: object, host: SimHost | null): void {
    if (host === null) this.hostRoots.delete(root);
    else this.hostRoots.set(root, host);
  }

  /** The host of the task being polled: its tree's root's host, or "main". */
  hostOfRunning(): SimHost {
    let n = running.node as Node | null;
    if (n === null || this.hostRoots.size === 0) return this.net.main;
    while (n.parent !== null) n = n.parent;
    return this.hostRoots.get(n) ?? this.net.main;
  }

  /** A line for failure reports: the seed, the virtual time, the trace's length and hash. */
  describe(): string {
    return `seed ${this.seed}, virtual time ${this.clock.now().toFixed(3)} ms, ${this.trace.count} events, trace ${this.trace.hash()}`;
  }
}

function filesError(): RuntimeError {
  return notSimulated("Files are", "use a real backend for file I/O");
}


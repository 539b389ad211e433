/**
 * Simulations of several hosts in one process: `new Sim({ seed })`, then `sim.host(name,
 * main)` for servers and `sim.client(name, main)` for the programs whose end ends the run,
 * then `sim.run()`. Every host's code is ordinary reel code (TcpListener, TcpStream,
 * timers, channels); it runs on the simulation backend (lib/driver/sim/), on its own
 * simulated machine with its own address (`sim.ip(name)`), in virtual time, with every
 * choice drawn from the seed. Faults, on demand from any task or before the run, or at
 * random (`chaos`): `partition`/`repair` links, `hold`/`release` them, `crash`/`restart`
 * (or `bounce`) a host, `resetConnections` of a host.
 *
 * A run is replayable: the same seed and the same program give the same trace (its hash is
 * in the result). A failure is a {@link SimulationError} naming the seed, the virtual time
 * and the trace hash; `REEL_SEED=<seed>` replays it. With `REEL_SIM_CHECK=1` every run
 * runs twice and fails at the first event where the two traces differ.
 *
 * Hosts: each host's `main` runs as a root task of its own (what it spawns, detached or
 * not, stays on that host). A crash ends the host's tasks at once — force-ended, their
 * asynchronous cleanup not driven (a machine that loses power runs no `finally`; the
 * synchronous part of a generator's `finally` still runs, JavaScript cannot skip it) — and
 * its sockets vanish; `restart` runs `main` again as a new incarnation. `ctx.disk` is a Map
 * that survives crashes: the host's durable storage.
 *
 * Must never: let a simulation's task or socket outlive `run()`, or read real time.
 */
import { Runtime, type RuntimeOptions } from "../executor.ts";
import { gen, intoFuture, type IntoFuture } from "../future.ts";
import { JoinHandle, forceEndTree, type Task } from "../task/task.ts";
import { Notify } from "../sync/notify.ts";
import { select } from "../combinators/group.ts";
import { sleep } from "../time/sleep.ts";
import { simSeed } from "../driver/index.ts";
import { SimDriver } from "../driver/sim/driver.ts";
import { linkConfig, type LinkOptions, type SimOptions } from "../driver/sim/config.ts";
import type { SimHost } from "../driver/sim/host.ts";
import { SimRng } from "../driver/sim/rng.ts";
import { EV_MARK, firstDivergence } from "../driver/sim/trace.ts";
import { running } from "../current.ts";
import { chaosTask, type ChaosOptions } from "./chaos.ts";

export type { ChaosOptions } from "./chaos.ts";

/**
 * What a host's `main` is given: who it is, and what survives its crashes.
 *
 * @example
 * ```ts
 * sim.host("db", (ctx) => function* () {
 *   const l = TcpListener.bind({ hostname: ctx.ip, port: 5432 });
 *   ctx.disk.set("boots", ((ctx.disk.get("boots") as number) ?? 0) + 1);
 * });
 * ```
 */
export interface SimHostContext {
  readonly name: string;
  /** Its IPv4 address ("10.0.0.2"). */
  readonly ip: string;
  /** Its IPv6 address ("fd00::2"). */
  readonly ip6: string;
  /** How many times it was restarted before this run of `main` (0 the first time). */
  readonly restarts: number;
  /** Durable storage: survives crashes and restarts (not the run). */
  readonly disk: Map<string, unknown>;
  /** The simulation (faults, seeded randomness). */
  readonly sim: Sim;
}

/**
 * Options of {@link Sim}: the seed, and the simulation backend's settings. Scheduling
 * defaults to "random" here (a seeded pick among all ready tasks).
 *
 * @example
 * ```ts
 * const sim = new Sim({ seed: 7, link: { latency: [1, 10] }, shortIo: 0.2 });
 * ```
 */
export interface SimRunOptions extends SimOptions {
  /** The seed (default `REEL_SEED`, or a fresh one). */
  seed?: number;
}

/**
 * What {@link Sim.run} reports.
 *
 * @example
 * ```ts
 * const r = sim.run();
 * console.log(r.seed, r.virtualMs, r.traceHash, r.clients.get("c1"));
 * ```
 */
export interface SimResult {
  seed: number;
  /** Virtual time when the run ended, ms. */
  virtualMs: number;
  /** Events traced, and their hash: equal for two runs that made the same choices. */
  events: number;
  traceHash: string;
  /** Each client's return value. */
  clients: Map<string, unknown>;
  /** Errors of tasks nobody awaited (a connection handler that failed), with their host. */
  taskErrors: { host: string; error: unknown }[];
  /** Real time or randomness read inside the run and answered by the simulation ("Math.random ×2"), or "". */
  intercepted: string;
  /** Faults injected. */
  faults: number;
}

/**
 * A simulation failed: a client or host threw, it deadlocked, it ran out of virtual time,
 * or two runs of one seed diverged. `.cause` is the error; the message names the seed.
 *
 * @example
 * ```ts
 * try { sim.run(); } catch (e) { if (e instanceof SimulationError) console.log(`replay: REEL_SEED=${e.seed}`); }
 * ```
 */
export class SimulationError extends Error {
  override name = "SimulationError";
  constructor(
    message: string,
    readonly seed: number,
    readonly virtualMs: number,
    readonly traceHash: string,
    override readonly cause: unknown,
  ) {
    super(message);
  }
}

type Main = (ctx: SimHostContext) => IntoFuture<unknown>;

interface HostSpec {
  readonly name: string;
  readonly main: Main;
  readonly client: boolean;
}

/** One host during one run. */
class HostRun {
  task: JoinHandle<unknown> | null = null;
  restarts = 0;
  done = false;
  value: unknown = undefined;
  /** A crash was asked from inside the host's own tasks: ended by the supervisor. */
  crashPending = false;
  readonly disk = new Map<string, unknown>();
  constructor(
    readonly spec: HostSpec,
    readonly host: SimHost,
  ) {}
}

/** The state of a run in progress. */
class World {
  readonly hosts = new Map<string, HostRun>();
  readonly changed = new Notify();
  failure: { host: string; error: unknown } | null = null;
  readonly taskErrors: { host: string; error: unknown }[] = [];
  faults = 0;
  constructor(
    readonly rt: Runtime,
    readonly driver: SimDriver,
    readonly rng: SimRng,
  ) {}
}

/**
 * A simulation of hosts talking over a simulated network.
 *
 * @example
 * ```ts
 * import { Sim, TcpListener, TcpStream } from "reel";
 * const sim = new Sim({ seed: 1 });
 * sim.host("server", () => function* () {
 *   const l = TcpListener.bind({ hostname: "0.0.0.0", port: 7 });
 *   for (;;) {
 *     const [s] = yield* l.accept();
 *     const b = new Uint8Array(64);
 *     const n = yield* s.read(b);
 *     yield* s.writeAll(b.subarray(0, n));
 *     s.close();
 *   }
 * });
 * sim.client("client", () => function* () {
 *   const s = yield* TcpStream.connect({ hostname: sim.ip("server"), port: 7 });
 *   yield* s.writeAll(new TextEncoder().encode("hi"));
 *   const b = new Uint8Array(2);
 *   yield* s.readExact(b);
 *   s.close();
 *   return new TextDecoder().decode(b);
 * });
 * console.log(sim.run().clients.get("client")); // "hi"
 * ```
 */
export class Sim {
  readonly seed: number;
  /** The seed came from REEL_SEED or was drawn (not passed): failures say how to replay it. */
  private readonly seedFromEnv: boolean;
  private readonly options: SimOptions;
  private readonly specs: HostSpec[] = [];
  private readonly links: { a: string; b: string; cfg: LinkOptions }[] = [];
  private readonly before: ((w: World) => void)[] = [];
  private world: World | null = null;

  constructor(options: SimRunOptions = {}) {
    if (typeof options !== "object" || options === null) throw new TypeError(`new Sim() options must be an object, got ${String(options)}`);
    const { seed, ...rest } = options;
    this.seedFromEnv = seed === undefined;
    this.seed = seed ?? simSeed().seed;
    if (!Number.isInteger(this.seed) || this.seed < 0 || this.seed > 0xffff_ffff) {
      throw new RangeError(`Invalid simulation seed ${String(seed)}: must be an integer 0-4294967295`);
    }
    this.options = { schedule: "random", ...rest };
  }

  /** Adds a server host: `main(ctx)` runs until the clients are done (or forever; it is halted then). */
  host(name: string, main: Main): this {
    return this.add(name, main, false);
  }

  /** Adds a client host: the run ends once every client's `main` has returned; its value is in the result. */
  client(name: string, main: Main): this {
    return this.add(name, main, true);
  }

  private add(name: string, main: Main, client: boolean): this {
    if (this.world !== null) throw new RangeError("Hosts are added before run()");
    if (typeof name !== "string" || name === "" || name === "main") throw new TypeError(`Invalid simulated host name ${JSON.stringify(name)}`);
    if (this.specs.some((s) => s.name === name)) throw new RangeError(`A simulated host named "${name}" exists already`);
    if (typeof main !== "function") throw new TypeError(`sim.${client ? "client" : "host"}("${name}", main): main must be a function (ctx) => future, got ${typeof main}`);
    this.specs.push({ name, main, client });
    return this;
  }

  /** The IPv4 address `name` has in the simulation (hosts get 10.0.0.2, .3, … in the order they were added). */
  ip(name: string): string {
    const i = this.specs.findIndex((s) => s.name === name);
    if (i < 0 && name !== "main") throw new RangeError(`No simulated host is named "${name}"`);
    const n = i + 2;
    return `10.0.${n >> 8}.${n & 0xff}`;
  }

  /** Sets the links between two hosts (both ways): latency, bandwidth, and UDP loss / duplication / reordering. */
  link(a: string, b: string, cfg: LinkOptions): this {
    linkConfig(cfg, { latencyMin: 0, latencyMax: 0, bandwidth: 0, loss: 0, duplicate: 0, reorder: 0 }, `link(${a}, ${b})`);
    this.links.push({ a, b, cfg });
    return this;
  }

  // ---- faults: applied at once during a run, at its start when called before ----

  private fault(f: (w: World) => void): void {
    if (this.world !== null) {
      this.world.faults++;
      f(this.world);
    } else this.before.push(f);
  }

  private hostOf(w: World, name: string): SimHost {
    return name === "main" ? w.driver.net.main : this.run_(w, name).host;
  }

  private run_(w: World, name: string): HostRun {
    const h = w.hosts.get(name);
    if (h === undefined) throw new RangeError(`No simulated host is named "${name}"`);
    return h;
  }

  /** Cuts the links between `a` and `b` (or between `a` and every other host): segments are lost and retransmitted. */
  partition(a: string, b?: string): void {
    this.fault((w) => this.pairs(w, a, b, (x, y) => w.driver.net.partition(x, y)));
  }

  /** Repairs what {@link partition} cut (both names: that pair; one: all of its links; none: every link). */
  repair(a?: string, b?: string): void {
    this.fault((w) => {
      if (a === undefined) {
        const hs = w.driver.net.hosts;
        for (let i = 0; i < hs.length; i++) for (let j = i + 1; j < hs.length; j++) w.driver.net.repair(hs[i]!, hs[j]!);
      } else this.pairs(w, a, b, (x, y) => w.driver.net.repair(x, y));
    });
  }

  /** Holds what travels between `a` and `b` until {@link release}. */
  hold(a: string, b: string): void {
    this.fault((w) => w.driver.net.hold(this.hostOf(w, a), this.hostOf(w, b)));
  }

  /** Lets what was held between `a` and `b` go on, in order. */
  release(a: string, b: string): void {
    this.fault((w) => w.driver.net.release(this.hostOf(w, a), this.hostOf(w, b)));
  }

  /** Resets every connection of `name`: both ends of each see ECONNRESET. */
  resetConnections(name: string): void {
    this.fault((w) => w.driver.net.resetConnections(this.hostOf(w, name)));
  }

  /** Crashes `name`: its tasks end at once, its sockets vanish, packets to it go unanswered. */
  crash(name: string): void {
    this.fault((w) => this.doCrash(w, this.run_(w, name)));
  }

  /** Restarts a crashed host: its `main` runs again (`ctx.restarts` one higher), with the same `disk`. */
  restart(name: string): void {
    this.fault((w) => {
      const h = this.run_(w, name);
      if (h.host.up) return;
      w.driver.net.restart(h.host);
      h.restarts++;
      this.start(w, h);
    });
  }

  /** Crashes and restarts `name` at once. */
  bounce(name: string): void {
    this.crash(name);
    this.restart(name);
  }

  private pairs(w: World, a: string, b: string | undefined, f: (x: SimHost, y: SimHost) => void): void {
    const x = this.hostOf(w, a);
    if (b !== undefined) return f(x, this.hostOf(w, b));
    for (const y of w.driver.net.hosts) if (y !== x) f(x, y);
  }

  // ---- inside a run ----

  /** A seeded random number in [0, 1) (the simulation's own stream; also what Math.random gives inside). */
  random(): number {
    return this.live("random()").rng.float();
  }

  /** A seeded random integer in [0, n). */
  randomInt(n: number): number {
    return this.live("randomInt()").rng.below(n);
  }

  /** The virtual time, ms. */
  now(): number {
    return this.live("now()").driver.clock.now();
  }

  /** Puts a mark with a number in the trace (to see where a program is when traces are compared). */
  mark(n: number): void {
    const w = this.live("mark()");
    w.driver.trace.ev(w.driver.clock.now(), EV_MARK, n | 0, 0, 0);
  }

  /** True while `name` is up (not crashed). */
  isUp(name: string): boolean {
    const w = this.live("isUp()");
    return this.hostOf(w, name).up;
  }

  private live(what: string): World {
    if (this.world === null) throw new RangeError(`sim.${what} is only available while the simulation runs`);
    return this.world;
  }

  // ---- running ----

  /**
   * Runs the simulation: every host's and client's `main`, until every client returned;
   * then the hosts are halted. Throws SimulationError when a client or a host fails, when
   * nothing can happen any more before the clients finish (a deadlock), or when
   * `limitMs` of virtual time pass first.
   */
  run(opts: { limitMs?: number; chaos?: ChaosOptions } = {}): SimResult {
    if (this.world !== null) throw new RangeError("This simulation is already running");
    if (!this.specs.some((s) => s.client)) throw new RangeError("A simulation needs at least one sim.client(): its end ends the run");
    if (process.env.REEL_SIM_CHECK !== "1") return this.runOnce(opts, false).result;
    const a = this.runOnce(opts, true);
    const b = this.runOnce(opts, true);
    const d = firstDivergence(a.driver.trace, b.driver.trace);
    if (d !== null) {
      throw new SimulationError(`REEL_SIM_CHECK: seed ${this.seed}: ${d.message}`, this.seed, b.result.virtualMs, b.result.traceHash, null);
    }
    return b.result;
  }

  private runOnce(opts: { limitMs?: number; chaos?: ChaosOptions }, keep: boolean): { result: SimResult; driver: SimDriver } {
    const taskErrors: { host: string; error: unknown }[] = [];
    let world: World | null = null;
    const rtOptions: RuntimeOptions = {
      backend: "sim",
      seed: this.seed,
      sim: { ...this.options, trace: keep || this.options.trace === true },
      onTaskError: (error) => {
        const host = world?.driver.hostOfRunning().name ?? "main";
        taskErrors.push({ host, error });
      },
    };
    const rt = new Runtime(rtOptions);
    const driver = rt.driver as SimDriver;
    world = new World(rt, driver, driver.rng.fork("sim"));
    for (const spec of this.specs) world.hosts.set(spec.name, new HostRun(spec, driver.net.addHost(spec.name)));
    for (const l of this.links) {
      const cfg = linkConfig(l.cfg, driver.cfg.link, `link(${l.a}, ${l.b})`);
      driver.net.configureLink(this.hostOf(world, l.a), this.hostOf(world, l.b), cfg);
    }
    this.world = world;
    const w = world;
    try {
      rt.blockOn(gen(() => this.supervise(w, opts)));
      if (w.failure !== null) throw w.failure.error;
    } catch (e) {
      const fail = w.failure;
      const where = fail !== null ? `host "${fail.host}" failed` : "the simulation failed";
      const cause = fail !== null ? fail.error : e;
      throw new SimulationError(
        `${where} (${driver.describe()}): ${cause instanceof Error ? cause.message : String(cause)}\n  replay: ` +
          (this.seedFromEnv ? `REEL_SEED=${this.seed}` : `the same program with seed ${this.seed}`),
        this.seed,
        driver.clock.now(),
        driver.trace.hash(),
        cause,
      );
    } finally {
      this.world = null;
      rt.close();
    }
    const clients = new Map<string, unknown>();
    for (const h of w.hosts.values()) if (h.spec.client) clients.set(h.spec.name, h.value);
    return {
      driver,
      result: {
        seed: this.seed,
        virtualMs: driver.clock.now(),
        events: driver.trace.count,
        traceHash: driver.trace.hash(),
        clients,
        taskErrors,
        intercepted: driver.intercept.report(),
        faults: w.faults,
      },
    };
  }

  /** The run's root task: starts the hosts, waits for the clients, halts the hosts. */
  private *supervise(w: World, opts: { limitMs?: number; chaos?: ChaosOptions }): Generator<unknown, void, unknown> {
    for (const f of this.before) {
      w.faults++;
      f(w);
    }
    for (const h of w.hosts.values()) this.start(w, h);
    const limit = opts.limitMs;
    const deadline = limit === undefined ? -1 : w.driver.clock.now() + limit;
    let chaos: JoinHandle<void> | null = null;
    if (opts.chaos !== undefined) chaos = this.startChaos(w, opts.chaos);
    try {
      for (;;) {
        const changed = w.changed.notified();
        if (w.failure !== null) return;
        this.finishCrashes(w);
        let pending = 0;
        for (const h of w.hosts.values()) if (h.spec.client && !h.done) pending++;
        if (pending === 0) break;
        if (deadline >= 0) {
          const left = deadline - w.driver.clock.now();
          if (left <= 0) throw new RangeError(`the clients did not finish within ${limit} ms of virtual time`);
          const t = sleep(left);
          // Whichever comes first: a change, or the limit.
          yield* select(changed, t);
        } else yield* changed;
      }
    } finally {
      chaos?.abort();
      // Halt every host still running and wait for its cleanup.
      for (const h of w.hosts.values()) h.task?.abort();
      for (const h of w.hosts.values()) {
        const t = h.task;
        if (t === null) continue;
        try {
          yield* t;
        } catch {
          // Cancelled, or already reported as the failure.
        }
      }
      if (chaos !== null) {
        try {
          yield* chaos;
        } catch {
          // Aborted.
        }
      }
    }
  }

  /** Runs `h`'s main as a root task of its own, marked as the host's. */
  private start(w: World, h: HostRun): void {
    const incarnation = h.restarts;
    const ctx: SimHostContext = {
      name: h.spec.name,
      ip: h.host.v4,
      ip6: h.host.v6,
      restarts: h.restarts,
      disk: h.disk,
      sim: this,
    };
    h.done = false;
    const task = w.rt.spawnUnder(
      null,
      gen(function* () {
        try {
          // A gen body may yield a future directly: the value of the yield is its result.
          const v: unknown = yield intoFuture(h.spec.main(ctx), `sim.${h.spec.client ? "client" : "host"}("${h.spec.name}") main`);
          if (h.restarts === incarnation) {
            h.value = v;
            h.done = true;
          }
          return v;
        } catch (e) {
          if (h.restarts === incarnation && h.host.up) w.failure ??= { host: h.spec.name, error: e };
          throw e;
        } finally {
          w.changed.notifyWaiters();
        }
      }),
      { name: `${h.spec.client ? "client" : "host"} ${h.spec.name}${h.restarts > 0 ? ` (restart ${h.restarts})` : ""}` },
    );
    (task as unknown as { observed: boolean }).observed = true;
    h.task = task;
    w.driver.setHost(task, h.host);
  }

  private doCrash(w: World, h: HostRun): void {
    if (!h.host.up) return;
    w.driver.net.crash(h.host);
    // A host cannot end the task that is asking for its crash: the supervisor does it next.
    if (w.driver.hostOfRunning() === h.host && running.node !== null) {
      h.crashPending = true;
      w.changed.notifyWaiters();
      return;
    }
    this.endTasks(w, h);
  }

  private finishCrashes(w: World): void {
    for (const h of w.hosts.values()) {
      if (!h.crashPending) continue;
      h.crashPending = false;
      this.endTasks(w, h);
    }
  }

  /** Ends every task of a crashed host now, without driving any cleanup. */
  private endTasks(w: World, h: HostRun): void {
    const t = h.task as Task<unknown> | null;
    if (t === null || t.isFinished) return;
    w.driver.setHost(t, null);
    forceEndTree(t, () => {});
    h.task = null;
    w.changed.notifyWaiters();
  }

  /** The chaos task (chaos.ts): random faults from the seed's "chaos" stream while the clients run. */
  private startChaos(w: World, o: ChaosOptions): JoinHandle<void> {
    const names = o.hosts ?? [...w.hosts.keys()];
    for (const n of names) this.run_(w, n);
    return w.rt.spawn(gen(chaosTask(this, o, names, [...w.hosts.keys(), "main"], w.driver.rng.fork("chaos"))), { name: "chaos" });
  }
}

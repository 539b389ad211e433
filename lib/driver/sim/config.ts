/**
 * The simulator's settings: the network's links (latency, jitter, bandwidth), TCP's
 * buffers and timeouts, the chaos knobs (short reads and writes, the scheduling policy),
 * tracing, and what to do when code inside the simulation reads real time or Math.random.
 * Validated once, when a simulation starts: bad values are TypeError/RangeError naming
 * the option.
 *
 * Must never: read the environment after validation (a simulation's behaviour is fixed by
 * its options and seed).
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */

/**
 * A link's behaviour: one-way latency (a number, or `[min, max]` for uniform jitter),
 * bandwidth in bytes per ms (0 = unlimited), and what happens to UDP datagrams on it:
 * the probability that one is lost, sent twice, or held back one more latency (so later
 * ones overtake it). TCP is not affected by the datagram knobs (its segments are
 * retransmitted and ordered: partitions and holds are its faults).
 *
 * @example
 * ```ts
 * const wan: LinkOptions = { latency: [20, 40], bandwidth: 1250 }; // 20–40 ms, 10 Mbit/s
 * const lossy: LinkOptions = { latency: [1, 5], loss: 0.1, duplicate: 0.02, reorder: 0.05 };
 * ```
 */
export interface LinkOptions {
  latency?: number | readonly [number, number];
  bandwidth?: number;
  /** UDP: probability that a datagram is lost (default 0). */
  loss?: number;
  /** UDP: probability that a datagram arrives twice (default 0). */
  duplicate?: number;
  /** UDP: probability that a datagram is held back one more latency (default 0; jitter alone also reorders). */
  reorder?: number;
}

/**
 * Options of the simulation backend (`new Runtime({ backend: "sim", seed, sim: {...} })`).
 *
 * @example
 * ```ts
 * const rt = new Runtime({ backend: "sim", seed: 7, sim: { link: { latency: [1, 5] }, shortIo: 0.3 } });
 * ```
 */
export interface SimOptions {
  /** Links between different hosts. Default `{ latency: [0.5, 2], bandwidth: 0 }`. */
  link?: LinkOptions;
  /** A host talking to itself (127.0.0.1, its own address). Default `{ latency: [0, 0.05] }`. */
  loopback?: LinkOptions;
  /** Probability that a read or write moves fewer bytes than it could. Default 0.1. */
  shortIo?: number;
  /**
   * Which ready task runs next. "fifo" (the default; `REEL_SIM_SCHEDULE` overrides): the
   * executor's own order, so code and tests that rely on it (a spawned task runs before its
   * spawner's next turn, waiters queue in spawn order) behave as on the real backends; the
   * seed still decides latency, jitter, the order of simultaneous network events and short
   * transfers. "random": a seeded pick among all ready tasks, exploring orders the FIFO
   * executor never produces — for code that must not depend on scheduling order (the `Sim`
   * API's default).
   */
  schedule?: "random" | "fifo";
  /**
   * Virtual CPU time, in ms, that a batch of polls costs when tasks are still ready after it
   * (the executor turns the driver without waiting): the clock moves by this much, so timers
   * fire and packets arrive under tasks that never go idle, as on a real machine (madsim
   * charges each poll likewise). Default 0.05 (50 µs per batch of up to POLLS_PER_TICK
   * polls). 0: the clock moves only when every task is idle (tokio's paused time), and tasks
   * that keep re-waking themselves stop it.
   */
  busyTurnMs?: number;
  /** SO_SNDBUF default, bytes (default 131072). */
  sendBuffer?: number;
  /** SO_RCVBUF default, bytes (default 131072). */
  receiveBuffer?: number;
  /** Retransmissions of an undelivered segment before the connection fails with ETIMEDOUT (default 15, as Linux's tcp_retries2: ~15 min). */
  tcpRetries?: number;
  /** SYN retransmissions before connect fails with ETIMEDOUT (default 6, as Linux: 127 s). */
  synRetries?: number;
  /** Record every trace event, not only the hash (needed to compare runs; `REEL_SIM_TRACE=1`). */
  trace?: boolean;
  /**
   * Real time or randomness read inside the simulation (Math.random, Date.now, new Date(),
   * performance.now, crypto.getRandomValues/randomUUID): "virtualize" (default: answered
   * from the seed and the virtual clock, counted and traced), "throw" (RuntimeError ESIM;
   * `REEL_SIM_STRICT=1`), or "off" (left alone: not deterministic).
   */
  intercept?: "virtualize" | "throw" | "off";
  /** Date.now() at virtual time 0 (default 946684800000, 2000-01-01T00:00:00Z). */
  epochMs?: number;
}

/**
 * A link's settings, resolved.
 *
 * @example
 * ```ts
 * const c: LinkConfig = { latencyMin: 1, latencyMax: 3, bandwidth: 0, loss: 0, duplicate: 0, reorder: 0 };
 * ```
 */
export interface LinkConfig {
  latencyMin: number;
  latencyMax: number;
  /** Bytes per ms; 0 = unlimited. */
  bandwidth: number;
  /** UDP datagrams: probabilities of loss, duplication, reordering. */
  loss: number;
  duplicate: number;
  reorder: number;
}

/**
 * Every setting, resolved and validated.
 *
 * @example
 * ```ts
 * const cfg: SimConfig = simConfig({ shortIo: 0 });
 * ```
 */
export interface SimConfig {
  link: LinkConfig;
  loopback: LinkConfig;
  shortIo: number;
  schedule: "random" | "fifo";
  busyTurnMs: number;
  sendBuffer: number;
  receiveBuffer: number;
  tcpRetries: number;
  synRetries: number;
  trace: boolean;
  intercept: "virtualize" | "throw" | "off";
  epochMs: number;
}

function num(v: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || Number.isNaN(v)) throw new TypeError(`Invalid sim option ${what} ${String(v)}: must be a number`);
  if (v < min || v > max) throw new RangeError(`Invalid sim option ${what} ${v}: must be ${min}–${max}`);
  return v;
}

/**
 * A link's options resolved against defaults; throws naming `what`.
 *
 * @example
 * ```ts
 * linkConfig({ latency: [1, 5] }, cfg.link, "link(a, b)"); // { latencyMin: 1, latencyMax: 5, bandwidth: …, loss: … }
 * ```
 */
export function linkConfig(o: LinkOptions | undefined, dflt: LinkConfig, what: string): LinkConfig {
  if (o === undefined) return { ...dflt };
  if (typeof o !== "object" || o === null) throw new TypeError(`Invalid sim option ${what}: expected { latency, bandwidth, loss, duplicate, reorder }`);
  let lo = dflt.latencyMin;
  let hi = dflt.latencyMax;
  if (o.latency !== undefined) {
    if (typeof o.latency === "number") lo = hi = num(o.latency, `${what}.latency`, 0, 3_600_000);
    else if (Array.isArray(o.latency) && o.latency.length === 2) {
      lo = num(o.latency[0], `${what}.latency[0]`, 0, 3_600_000);
      hi = num(o.latency[1], `${what}.latency[1]`, lo, 3_600_000);
    } else throw new TypeError(`Invalid sim option ${what}.latency: a number of ms or [min, max]`);
  }
  const bw = o.bandwidth === undefined ? dflt.bandwidth : o.bandwidth === Infinity ? 0 : num(o.bandwidth, `${what}.bandwidth`, 0);
  const p = (v: number | undefined, name: string, d: number) => (v === undefined ? d : num(v, `${what}.${name}`, 0, 1));
  return {
    latencyMin: lo,
    latencyMax: hi,
    bandwidth: bw,
    loss: p(o.loss, "loss", dflt.loss),
    duplicate: p(o.duplicate, "duplicate", dflt.duplicate),
    reorder: p(o.reorder, "reorder", dflt.reorder),
  };
}

/**
 * Resolves `o` against the defaults and the environment (REEL_SIM_TRACE, REEL_SIM_STRICT,
 * REEL_SIM_SCHEDULE, REEL_SIM_CHECK, which needs the trace); throws TypeError/RangeError
 * naming a bad option.
 *
 * @example
 * ```ts
 * const cfg = simConfig({ shortIo: 0 });
 * ```
 */
export function simConfig(o: SimOptions = {}, env: Record<string, string | undefined> = process.env): SimConfig {
  if (typeof o !== "object" || o === null) throw new TypeError(`Invalid sim options: expected an object, got ${String(o)}`);
  const calm = { loss: 0, duplicate: 0, reorder: 0 };
  const link = linkConfig(o.link, { latencyMin: 0.5, latencyMax: 2, bandwidth: 0, ...calm }, "link");
  const loopback = linkConfig(o.loopback, { latencyMin: 0, latencyMax: 0.05, bandwidth: 0, ...calm }, "loopback");
  const envSchedule = env.REEL_SIM_SCHEDULE;
  const schedule = o.schedule ?? (envSchedule === undefined || envSchedule === "" ? "fifo" : (envSchedule as "random" | "fifo"));
  if (schedule !== "random" && schedule !== "fifo") {
    throw new TypeError(`Invalid sim option schedule (or REEL_SIM_SCHEDULE) "${String(schedule)}": "random" or "fifo"`);
  }
  const strict = env.REEL_SIM_STRICT === "1";
  const intercept = o.intercept ?? (strict ? "throw" : "virtualize");
  if (intercept !== "virtualize" && intercept !== "throw" && intercept !== "off") {
    throw new TypeError(`Invalid sim option intercept "${String(intercept)}": "virtualize", "throw" or "off"`);
  }
  return {
    link,
    loopback,
    shortIo: o.shortIo === undefined ? 0.1 : num(o.shortIo, "shortIo", 0, 1),
    schedule,
    busyTurnMs: o.busyTurnMs === undefined ? 0.05 : num(o.busyTurnMs, "busyTurnMs", 0, 1000),
    sendBuffer: o.sendBuffer === undefined ? 131072 : num(o.sendBuffer, "sendBuffer", 1, 1 << 30),
    receiveBuffer: o.receiveBuffer === undefined ? 131072 : num(o.receiveBuffer, "receiveBuffer", 1, 1 << 30),
    tcpRetries: o.tcpRetries === undefined ? 15 : num(o.tcpRetries, "tcpRetries", 0, 100),
    synRetries: o.synRetries === undefined ? 6 : num(o.synRetries, "synRetries", 0, 100),
    trace: o.trace ?? (env.REEL_SIM_TRACE === "1" || env.REEL_SIM_CHECK === "1"),
    intercept,
    epochMs: o.epochMs === undefined ? 946684800000 : num(o.epochMs, "epochMs", 0),
  };
}

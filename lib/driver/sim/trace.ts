/**
 * The simulation's trace: every event that decides what happens next — a task polled, the
 * clock jumping, a socket created, a segment sent or delivered, a connection refused or
 * reset, a fault injected, a wall-clock read intercepted — with its virtual time. Each
 * event is five numbers (time, code, three arguments); all of them feed a 64-bit hash, so
 * two runs that agree on the hash made the same choices in the same order. When kept
 * (`REEL_SIM_CHECK=1`, or asked for) the events are also recorded, so two runs can be
 * compared and the first diverging event named ({@link firstDivergence}).
 *
 * Invariants: the hash depends only on the events (numbers, not object identities or
 * process-wide ids); recording allocates only when the buffer grows.
 *
 * Must never: read real time, or record strings (events are rendered on demand).
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */

/** A task was polled (a: the task's number in this simulation, 1-based). */
export const EV_POLL = 1;
/** Everything was idle: the clock jumped (a: the time it left, in µs). */
export const EV_JUMP = 2;
/** A socket was created (a: socket, b: host). */
export const EV_SOCKET = 3;
/** bind (a: socket, b: port). */
export const EV_BIND = 4;
/** listen (a: socket, b: backlog). */
export const EV_LISTEN = 5;
/** connect started (a: socket, b: destination host or -1, c: port). */
export const EV_CONNECT = 6;
/** A SYN reached its host (a: client socket, b: outcome, see SYN_*). */
export const EV_SYN = 7;
/** A connect completed (a: client socket, b: server socket). */
export const EV_ESTABLISHED = 8;
/** accept handed out a connection (a: listener, b: socket). */
export const EV_ACCEPT = 9;
/** write accepted bytes (a: socket, b: bytes). */
export const EV_WRITE = 10;
/** read returned bytes (a: socket, b: bytes). */
export const EV_READ = 11;
/** Data reached a socket (a: socket, b: bytes). */
export const EV_DATA = 12;
/** A FIN reached a socket (a: socket). */
export const EV_FIN = 13;
/** A reset reached a socket, or a socket was reset (a: socket, b: errno it reports). */
export const EV_RST = 14;
/** The owner closed a socket (a: socket, b: 1 when it sent a reset). */
export const EV_CLOSE = 15;
/** shutdown (a: socket, b: how). */
export const EV_SHUTDOWN = 16;
/** An op failed (a: socket, b: errno). */
export const EV_ERROR = 17;
/** A segment could not be delivered and will be sent again (a: socket, b: attempt). */
export const EV_RETRY = 18;
/** A fault was injected (a: kind, see FAULT_*, b, c: hosts). */
export const EV_FAULT = 19;
/** A wall-clock or randomness read from inside the simulation was intercepted (a: which). */
export const EV_INTERCEPT = 20;
/** A mark the program made (`sim.mark(n)`; a: n). */
export const EV_MARK = 21;

/** A datagram was sent, delivered or lost (a: socket — the sender, or the receiver once delivered —, b: bytes, c: outcome, see DGRAM_*). */
export const EV_DGRAM = 22;

/** EV_DGRAM outcomes. */
export const DGRAM_DELIVERED = 0;
/** Lost on the way (the link's loss, a cut link, a crashed host). */
export const DGRAM_LOST = 1;
/** Sent twice (the link's duplicate). */
export const DGRAM_DUPLICATED = 2;
/** Nobody has the address, or nobody is bound to the port. */
export const DGRAM_UNREACHED = 3;
/** The receiver's queue was over its SO_RCVBUF. */
export const DGRAM_DROPPED = 4;

/** EV_SYN outcomes. */
export const SYN_QUEUED = 0;
export const SYN_REFUSED = 1;
export const SYN_DROPPED = 2;

/** EV_FAULT kinds. */
export const FAULT_PARTITION = 1;
export const FAULT_REPAIR = 2;
export const FAULT_CRASH = 3;
export const FAULT_RESTART = 4;
export const FAULT_HOLD = 5;
export const FAULT_RELEASE = 6;
export const FAULT_RESET = 7;

const NAMES: Record<number, string> = {
  [EV_POLL]: "poll task",
  [EV_JUMP]: "clock jump",
  [EV_SOCKET]: "socket",
  [EV_BIND]: "bind",
  [EV_LISTEN]: "listen",
  [EV_CONNECT]: "connect",
  [EV_SYN]: "syn",
  [EV_ESTABLISHED]: "established",
  [EV_ACCEPT]: "accept",
  [EV_WRITE]: "write",
  [EV_READ]: "read",
  [EV_DATA]: "data arrives",
  [EV_FIN]: "fin arrives",
  [EV_RST]: "reset",
  [EV_CLOSE]: "close",
  [EV_SHUTDOWN]: "shutdown",
  [EV_ERROR]: "error",
  [EV_RETRY]: "retransmit",
  [EV_FAULT]: "fault",
  [EV_INTERCEPT]: "intercepted",
  [EV_MARK]: "mark",
  [EV_DGRAM]: "datagram",
};

const FAULTS = ["", "partition", "repair", "crash", "restart", "hold", "release", "reset connections"];
const INTERCEPTS = ["", "Math.random", "Date.now", "performance.now", "new Date()", "crypto.getRandomValues", "crypto.randomUUID", "Bun.nanoseconds", "process.hrtime"];

/** Which intercepted call an EV_INTERCEPT names (its `a`). */
export const INTERCEPTED_NAMES: readonly string[] = INTERCEPTS;

const scratch = new Float64Array(1);
const words = new Uint32Array(scratch.buffer);

/**
 * One simulation's event trace: a running hash, a count, and (when kept) the events.
 *
 * @example
 * ```ts
 * const trace = new SimTrace(true);
 * trace.ev(0, EV_POLL, 1, 0, 0);
 * console.log(trace.count, trace.hash());
 * ```
 */
export class SimTrace {
  /** Events so far. */
  count = 0;
  private h1 = 0x811c9dc5 | 0;
  private h2 = 0x9e3779b9 | 0;
  private log: Float64Array | null;
  /** Names hosts in rendered events (set by the network). */
  hostName: (i: number) => string = (i) => `host ${i}`;

  /** @param keep record the events too (for comparing two runs), not only the hash. */
  constructor(readonly keep = false) {
    this.log = keep ? new Float64Array(5 * 4096) : null;
  }

  /** Records an event at virtual time `t` (ms) with code and three integer arguments. */
  ev(t: number, code: number, a: number, b: number, c: number): void {
    // Two 32-bit lanes (FNV-1a-like and a multiply-rotate one) over the event's six words,
    // in locals: this runs for every event of every simulation.
    scratch[0] = t;
    let h1 = this.h1;
    let h2 = this.h2;
    const w0 = words[0]!;
    const w1 = words[1]!;
    h1 = Math.imul(h1 ^ w0, 0x01000193);
    h2 = Math.imul((h2 + w0) ^ (h2 >>> 15), 0x2c1b3c6d);
    h1 = Math.imul(h1 ^ w1, 0x01000193);
    h2 = Math.imul((h2 + w1) ^ (h2 >>> 15), 0x2c1b3c6d);
    h1 = Math.imul(h1 ^ code, 0x01000193);
    h2 = Math.imul((h2 + code) ^ (h2 >>> 15), 0x2c1b3c6d);
    h1 = Math.imul(h1 ^ (a | 0), 0x01000193);
    h2 = Math.imul((h2 + (a | 0)) ^ (h2 >>> 15), 0x2c1b3c6d);
    h1 = Math.imul(h1 ^ (b | 0), 0x01000193);
    h2 = Math.imul((h2 + (b | 0)) ^ (h2 >>> 15), 0x2c1b3c6d);
    h1 = Math.imul(h1 ^ (c | 0), 0x01000193);
    h2 = Math.imul((h2 + (c | 0)) ^ (h2 >>> 15), 0x2c1b3c6d);
    this.h1 = h1;
    this.h2 = h2;
    const log = this.log;
    if (log !== null) {
      let i = this.count * 5;
      let l = log;
      if (i + 5 > l.length) {
        l = new Float64Array(l.length * 2);
        l.set(log);
        this.log = l;
      }
      l[i++] = t;
      l[i++] = code;
      l[i++] = a | 0;
      l[i++] = b | 0;
      l[i] = c | 0;
    }
    this.count++;
  }

  /** The trace's hash so far: 16 hex digits. */
  hash(): string {
    return (this.h1 >>> 0).toString(16).padStart(8, "0") + (this.h2 >>> 0).toString(16).padStart(8, "0");
  }

  /** The recorded event `i` as five numbers, or null (not kept, or out of range). */
  event(i: number): [number, number, number, number, number] | null {
    const l = this.log;
    if (l === null || i < 0 || i >= this.count) return null;
    const o = i * 5;
    return [l[o]!, l[o + 1]!, l[o + 2]!, l[o + 3]!, l[o + 4]!];
  }

  /** Event `i` as text: "#12 at 3.250 ms: data arrives socket 4, 64 B". */
  render(i: number): string {
    const e = this.event(i);
    if (e === null) return `#${i}: (not recorded)`;
    return `#${i} at ${e[0].toFixed(3)} ms: ${describeEvent(e, this.hostName)}`;
  }
}

/**
 * What an event's numbers mean, in words.
 *
 * @example
 * ```ts
 * describeEvent([12.5, EV_POLL, 3, 0, 0]); // "poll task 3"
 * ```
 */
export function describeEvent(e: readonly number[], hostName: (i: number) => string = (i) => `host ${i}`): string {
  const [, code, a, b, c] = e as [number, number, number, number, number];
  const name = NAMES[code] ?? `event ${code}`;
  switch (code) {
    case EV_POLL:
      return `${name} ${a}`;
    case EV_JUMP:
      return `${name} from ${(a / 1000).toFixed(3)} ms`;
    case EV_SOCKET:
      return `${name} ${a} on ${hostName(b)}`;
    case EV_CONNECT:
      return `${name} socket ${a} to ${b < 0 ? "no host" : hostName(b)} port ${c}`;
    case EV_SYN:
      return `${name} of socket ${a}: ${["queued", "refused", "dropped"][b] ?? b}`;
    case EV_WRITE:
    case EV_READ:
    case EV_DATA:
      return `${name} socket ${a}, ${b} B`;
    case EV_FAULT:
      return `${name} ${FAULTS[a] ?? a} ${hostName(b)}${c >= 0 ? ` ${hostName(c)}` : ""}`;
    case EV_INTERCEPT:
      return `${name} ${INTERCEPTS[a] ?? a}`;
    case EV_DGRAM:
      return `${name} socket ${a}, ${b} B: ${["delivered", "lost", "duplicated", "unreached", "dropped (queue full)"][c] ?? c}`;
    case EV_RST:
    case EV_ERROR:
      return `${name} socket ${a} (errno ${b})`;
    default:
      return `${name} ${a} ${b} ${c}`;
  }
}

/**
 * Where two recorded traces first differ: null when they are the same; otherwise the
 * index, both events, and the events just before it, as text.
 *
 * @example
 * ```ts
 * const d = firstDivergence(run1.trace, run2.trace);
 * if (d !== null) throw new Error(d.message);
 * ```
 */
export function firstDivergence(a: SimTrace, b: SimTrace): { index: number; message: string } | null {
  if (!a.keep || !b.keep) throw new RangeError("firstDivergence() needs two traces that recorded their events");
  const n = Math.min(a.count, b.count);
  let i = 0;
  for (; i < n; i++) {
    const x = a.event(i)!;
    const y = b.event(i)!;
    if (x[0] !== y[0] || x[1] !== y[1] || x[2] !== y[2] || x[3] !== y[3] || x[4] !== y[4]) break;
  }
  if (i === n && a.count === b.count) return null;
  const before: string[] = [];
  for (let k = Math.max(0, i - 5); k < i; k++) before.push(`  ${a.render(k)}`);
  const first = i < a.count ? a.render(i) : `(run 1 ended after ${a.count} events)`;
  const second = i < b.count ? b.render(i) : `(run 2 ended after ${b.count} events)`;
  const message =
    `The simulation is not deterministic: the runs diverge at event #${i}\n` +
    `  run 1: ${first}\n  run 2: ${second}\n` +
    (before.length > 0 ? `after the same events:\n${before.join("\n")}` : "at the first event");
  return { index: i, message };
}

/**
 * Hosts and links of the simulated network. A host is a machine with a name, an IPv4
 * address (10.0.0.N) and an IPv6 one (fd00::N), its own port tables (TCP, UDP), its own
 * Unix socket names and its own loopback;
 * it can be crashed (its sockets vanish, packets to it go unanswered) and restarted (a new
 * incarnation: packets for the old one's connections are answered with a reset). A link
 * is one direction between two hosts (or a host and itself): its latency and jitter, its
 * bandwidth (serialisation: a link sends one segment at a time), and its faults — cut
 * (partitioned: segments are lost and retransmitted) or held (segments wait, then go on
 * when released).
 *
 * Addresses are handled as canonical text ("10.0.0.2", "fd00::2") with a family flag: a
 * bind or connect parses once, nothing on the data path looks at them.
 *
 * Must never: read real time or Math.random (the network's seeded generator decides jitter).
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import type { LinkConfig } from "./config.ts";
import type { SimRng } from "./rng.ts";
import type { SimEvent } from "./events.ts";
import type { SimSocket } from "./socket.ts";

/** The IPv4 wildcard. */
export const ANY4 = "0.0.0.0";
/** The IPv6 wildcard. */
export const ANY6 = "::";

/**
 * True for an address of the loopback interface (127.0.0.0/8, ::1).
 *
 * @example
 * ```ts
 * isLoopback("127.0.0.2", false); // true
 * ```
 */
export function isLoopback(ip: string, v6: boolean): boolean {
  return v6 ? ip === "::1" : ip.startsWith("127.");
}

/**
 * A simulated machine.
 *
 * @example
 * ```ts
 * const h = net.addHost("db");   // 10.0.0.2, fd00::2
 * net.crash(h); net.restart(h);
 * ```
 */
export class SimHost {
  readonly v4: string;
  readonly v6: string;
  /** False while crashed. */
  up = true;
  /** Bumped by every crash: sockets of an older incarnation are gone. */
  incarnation = 0;
  /** TCP sockets bound to each port (explicitly, or implicitly by connect/listen). */
  readonly ports = new Map<number, SimSocket[]>();
  /** UDP sockets bound to each port (explicitly, or implicitly by a send or connect). */
  readonly udpPorts = new Map<number, SimSocket[]>();
  /**
   * Unix socket names on this host (its filesystem's socket files, and on Linux abstract
   * names): the socket bound there, or null for a stale file (its socket closed; it stays
   * until unlinked). `id` tells one file from a later one at the same path.
   */
  readonly unixNames = new Map<string, { sock: SimSocket | null; readonly id: number }>();
  /** Sockets of this incarnation that still exist (owned by an fd, or a connection in progress). */
  readonly sockets = new Set<SimSocket>();

  constructor(
    /** Its number in the network (0 is the default host, "main"). */
    readonly index: number,
    readonly name: string,
  ) {
    const n = index + 1;
    this.v4 = `10.0.${n >> 8}.${n & 0xff}`;
    // Already canonical (RFC 5952): one group after the compressed zeros, lowercase hex.
    this.v6 = `fd00::${n.toString(16)}`;
  }

  /** True when `ip` is one of this host's own addresses (its own, or loopback). */
  owns(ip: string, v6: boolean): boolean {
    return isLoopback(ip, v6) || ip === (v6 ? this.v6 : this.v4);
  }

  /** Its address in a family. */
  address(v6: boolean): string {
    return v6 ? this.v6 : this.v4;
  }
}

/**
 * One direction of the network between two hosts.
 *
 * @example
 * ```ts
 * const at = link.arrival(now, 1500, rng); // when 1500 bytes sent now arrive
 * ```
 */
export class Link {
  /** Partitioned: what is sent is lost (and retransmitted by TCP). */
  cut = false;
  /** Held: what arrives waits here until released. */
  held = false;
  /** Events that arrived while held, in arrival order. */
  readonly waiting: SimEvent[] = [];
  /** When the link finishes sending what it was given (bandwidth). */
  private busyUntil = 0;

  constructor(
    readonly from: SimHost,
    readonly to: SimHost,
    public cfg: LinkConfig,
  ) {}

  /** The arrival time of `bytes` handed to the link at `now`: serialisation, latency, jitter. */
  arrival(now: number, bytes: number, rng: SimRng): number {
    const c = this.cfg;
    let t = now;
    if (c.bandwidth > 0) {
      t = (this.busyUntil > now ? this.busyUntil : now) + bytes / c.bandwidth;
      this.busyUntil = t;
    }
    return t + (c.latencyMax > c.latencyMin ? rng.range(c.latencyMin, c.latencyMax) : c.latencyMin);
  }

  /** One-way latency without the serialisation (for control segments). */
  latency(rng: SimRng): number {
    const c = this.cfg;
    return c.latencyMax > c.latencyMin ? rng.range(c.latencyMin, c.latencyMax) : c.latencyMin;
  }
}

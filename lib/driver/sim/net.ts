/**
 * The simulated network: hosts, the links between them, the sockets and their fd
 * numbers, port tables, the event queue of everything in flight, and faults. TCP's own
 * behaviour (handshake, data, FIN, reset, flow control, retransmission) is in tcp.ts; this
 * module is the world it runs in.
 *
 * Time: the network never reads a clock of its own; it reads the simulation's virtual
 * clock. `deliverDue()` fires every event due by now (the driver calls it each turn);
 * `nextTime()` tells the driver when the next one is due, so an idle simulation jumps
 * there. Every random choice (jitter, tie-breaks, ephemeral ports, short transfers) comes
 * from the simulation's seeded generator.
 *
 * fd numbers: simulated sockets get numbers from 2^30 up, never valid for the kernel, so a
 * real syscall made on one by mistake fails with EBADF instead of touching a real file,
 * and a real fd handed to the simulator is recognised as foreign.
 *
 * Datagrams and Unix sockets: dgram.ts sends UDP datagrams as one-off events through the
 * same links (loss, duplication and reordering drawn from the seed) and queues Unix
 * datagrams at their receiver at once; unix.ts names Unix sockets per host and makes Unix
 * streams — the same flows as TCP, over the host's loopback. SimSockets.socket()
 * dispatches on the type and family it is given.
 *
 * Must never: read real time or Math.random, hand out a number the kernel could own, or
 * keep a crashed host's sockets reachable.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { SysError } from "../../errors.ts";
import type { Clock } from "../../time/clock.ts";
import { EBADF } from "../../../ffi/errno.ts";
import type { SimConfig, LinkConfig } from "./config.ts";
import { EventQueue, type SimEvent } from "./events.ts";
import { ANY4, ANY6, Link, SimHost, isLoopback } from "./host.ts";
import type { SimRng } from "./rng.ts";
import { Flow, K_TCP, K_UDP, K_UNIX_DGRAM, K_UNIX_STREAM, ST_LISTEN, SimSocket } from "./socket.ts";
import { Dgram } from "./dgram.ts";
import {
  EV_FAULT, EV_SOCKET, FAULT_CRASH, FAULT_HOLD, FAULT_PARTITION, FAULT_RELEASE, FAULT_REPAIR, FAULT_RESET, FAULT_RESTART,
  type SimTrace,
} from "./trace.ts";
import { Tcp } from "./tcp.ts";

/** The first fd number a simulated socket gets: above any kernel's limit (Linux caps at 2^20). */
export const SIM_FD_BASE = 1 << 30;
let nextFd = SIM_FD_BASE;

/** Ephemeral ports, as Linux's default ip_local_port_range. */
const EPHEMERAL_LO = 32768;
const EPHEMERAL_HI = 60999;

/**
 * One simulated network.
 *
 * @example
 * ```ts
 * const net = new SimNet(cfg, rng, trace, clock);
 * const db = net.addHost("db");
 * net.partition(net.main, db);
 * ```
 */
export class SimNet {
  readonly hosts: SimHost[] = [];
  private readonly byName = new Map<string, SimHost>();
  private readonly byAddr = new Map<string, SimHost>();
  private readonly links = new Map<number, Link>();
  private readonly queue = new EventQueue();
  /** Sockets owned by an fd, by number. */
  private readonly fds = new Map<number, SimSocket>();
  /** fds a crash released: their owners' close() is then a no-op, not EBADF. */
  private readonly crashed = new Set<number>();
  private nextSocket = 1;
  private seq = 0;
  /** Events delivered so far. */
  delivered = 0;
  readonly tcp: Tcp;
  /** UDP and Unix datagrams (dgram.ts). */
  readonly dgram: Dgram;
  /** Unix socket files ever made (their ids). */
  private unixIds = 0;
  /** The host running the code that asks (the driver sets it: it knows the task tree). */
  currentHost: () => SimHost = () => this.main;
  /** The default host: where code outside any `sim.host()` runs. */
  readonly main: SimHost;

  constructor(
    readonly cfg: SimConfig,
    /** The network's random stream (jitter, tie-breaks, ports). */
    readonly rng: SimRng,
    /** Short reads and writes. */
    readonly ioRng: SimRng,
    readonly trace: SimTrace,
    readonly clock: Clock,
  ) {
    this.tcp = new Tcp(this);
    this.dgram = new Dgram(this);
    this.main = this.addHost("main");
    trace.hostName = (i) => this.hosts[i]?.name ?? `host ${i}`;
  }

  /** The virtual time now. */
  get now(): number {
    return this.clock.now();
  }

  /** Records a trace event at the current virtual time. */
  ev(code: number, a: number, b: number, c: number): void {
    this.trace.ev(this.clock.now(), code, a, b, c);
  }

  // ---- hosts and links ----

  /** Adds a host; names are unique. */
  addHost(name: string): SimHost {
    if (typeof name !== "string" || name === "") throw new TypeError(`A simulated host needs a non-empty name, got ${String(name)}`);
    if (this.byName.has(name)) throw new RangeError(`A simulated host named "${name}" exists already`);
    const h = new SimHost(this.hosts.length, name);
    this.hosts.push(h);
    this.byName.set(name, h);
    this.byAddr.set(h.v4, h);
    this.byAddr.set(h.v6, h);
    return h;
  }

  /** The host named `name`; RangeError when there is none. */
  host(name: string): SimHost {
    const h = this.byName.get(name);
    if (h === undefined) throw new RangeError(`No simulated host is named "${name}"`);
    return h;
  }

  /** The host named `name` (case-insensitive, as host names are), or null: what a simulated lookup answers. */
  hostNamed(name: string): SimHost | null {
    const h = this.byName.get(name);
    if (h !== undefined) return h;
    for (const x of this.hosts) if (x.name.toLowerCase() === name) return x;
    return null;
  }

  /** The host that owns `ip` (another host's address), or null (nobody: packets vanish). */
  hostAt(ip: string): SimHost | null {
    return this.byAddr.get(ip) ?? null;
  }

  /** The link from `a` to `b` (a host to itself: its loopback). */
  link(a: SimHost, b: SimHost): Link {
    const k = a.index * 65536 + b.index;
    let l = this.links.get(k);
    if (l === undefined) {
      l = new Link(a, b, a === b ? this.cfg.loopback : this.cfg.link);
      this.links.set(k, l);
    }
    return l;
  }

  /** Sets the behaviour of the links between `a` and `b` (both directions). */
  configureLink(a: SimHost, b: SimHost, cfg: LinkConfig): void {
    this.link(a, b).cfg = cfg;
    this.link(b, a).cfg = cfg;
  }

  // ---- the event queue ----

  /** Queues `e` at virtual time `at` (not before now) with a seeded tie-break. */
  schedule(e: SimEvent, at: number): void {
    const now = this.clock.now();
    e.at = at > now ? at : now;
    // 20 random bits above a sequence number: a seeded order among simultaneous events, still unique.
    e.key = (this.rng.u32() >>> 12) * 4294967296 + this.seq++;
    this.queue.push(e);
  }

  /** Removes a queued event. */
  unschedule(e: SimEvent): void {
    this.queue.remove(e);
  }

  /** Events queued (in flight). */
  get inFlight(): number {
    return this.queue.size;
  }

  /** When the next event is due, or -1 when nothing is in flight. */
  nextTime(): number {
    const e = this.queue.peek();
    return e === undefined ? -1 : e.at;
  }

  /** Fires every event due by now, in (time, tie-break) order; returns how many. */
  deliverDue(): number {
    const now = this.clock.now();
    let n = 0;
    for (let e = this.queue.peek(); e !== undefined && e.at <= now; e = this.queue.peek()) {
      this.queue.pop();
      n++;
      e.fire();
    }
    this.delivered += n;
    return n;
  }

  // ---- sockets and fds ----

  /** A new socket of `kind` (K_TCP …) on the current host, owned by a new fd. */
  newSocket(v6: boolean, kind = K_TCP): SimSocket {
    const host = this.currentHost();
    const s = new SimSocket(this.nextSocket++, host, v6, this.cfg.sendBuffer, this.cfg.receiveBuffer);
    s.kind = kind;
    this.giveFd(s);
    host.sockets.add(s);
    this.ev(EV_SOCKET, s.id, host.index, kind === K_TCP ? (v6 ? 6 : 4) : kind === K_UDP ? (v6 ? 16 : 14) : kind === K_UNIX_STREAM ? 1 : 2);
    return s;
  }

  /** A socket made by the network itself (the server end of a connection), not yet owned by an fd. */
  connectionSocket(host: SimHost, v6: boolean, from: SimSocket): SimSocket {
    const s = new SimSocket(this.nextSocket++, host, v6, from.sndCap, from.rcvCap);
    s.kind = from.kind;
    s.noDelay = from.noDelay;
    host.sockets.add(s);
    return s;
  }

  /** Gives `s` an fd number (at socket() or accept()). */
  giveFd(s: SimSocket): number {
    const fd = nextFd++;
    s.fd = fd;
    this.fds.set(fd, s);
    return fd;
  }

  /** Releases `s`'s fd (its owner closed it, or its host crashed). */
  dropFd(s: SimSocket): void {
    if (s.fd >= 0) this.fds.delete(s.fd);
    s.fd = -1;
  }

  /** Its owner closed `s`: fd, port, Unix name (stale or gone) and host membership are released. */
  releaseSocket(s: SimSocket): void {
    s.closed = true;
    this.dropFd(s);
    this.unbindPort(s);
    this.unbindName(s);
    s.host.sockets.delete(s);
  }

  /** The socket owned by `fd`, or undefined (not a simulated socket, or closed). */
  socketOf(fd: number): SimSocket | undefined {
    return this.fds.get(fd);
  }

  /** Sockets owned by an fd right now (what a leak check counts). */
  get openSockets(): number {
    return this.fds.size;
  }

  /** Wakers stored in sockets right now (a leftover check: 0 once every waiting future is gone). */
  storedWakers(): number {
    let n = 0;
    for (const s of this.fds.values()) n += (s.readWaker !== null ? 1 : 0) + (s.writeWaker !== null ? 1 : 0) + (s.senders?.size ?? 0);
    for (const h of this.hosts) for (const s of h.sockets) if (s.fd < 0) n += (s.readWaker !== null ? 1 : 0) + (s.writeWaker !== null ? 1 : 0);
    return n;
  }

  /** The open sockets, described ("fd 1073741825: TCP 127.0.0.1:40000 → 127.0.0.1:32768 on main"). */
  describeOpen(): string[] {
    const out: string[] = [];
    for (const [fd, s] of this.fds) {
      const unix = s.kind === K_UNIX_STREAM || s.kind === K_UNIX_DGRAM;
      const local = unix ? JSON.stringify(s.path) : `${s.localIp || "-"}:${s.localPort}`;
      const peer = unix ? (s.peerPath !== "" ? ` → ${JSON.stringify(s.peerPath)}` : "") : s.remotePort !== 0 ? ` → ${s.remoteIp}:${s.remotePort}` : "";
      const kind = ["TCP", "UDP", "Unix stream", "Unix datagram"][s.kind]!;
      out.push(`fd ${fd}: ${kind}${s.state === ST_LISTEN ? " listener" : ""} ${local}${peer} on ${s.host.name}`);
    }
    return out;
  }

  /** The socket behind `fd` for a socket call, or a negative errno. */
  lookup(fd: number): SimSocket | number {
    const s = this.fds.get(fd);
    if (s === undefined || s.gone) return -EBADF;
    return s;
  }

  /** True (once) for an fd a crash released: closing it is a no-op. */
  forgetCrashed(fd: number): boolean {
    return this.crashed.delete(fd);
  }

  /** Throws EBADF for a socket whose host crashed (its process is gone). */
  checkAlive(s: SimSocket, syscall: string): void {
    if (s.gone) throw new SysError(EBADF, syscall, undefined, `the host "${s.host.name}" crashed`);
  }

  // ---- ports ----

  /** The port table `s` binds in: its host's TCP or UDP one. */
  portsOf(s: SimSocket): Map<number, SimSocket[]> {
    return s.kind === K_UDP ? s.host.udpPorts : s.host.ports;
  }

  /** Enters `s` in its host's Unix names at `path` (bind). */
  bindName(s: SimSocket, path: string): void {
    s.path = path;
    s.host.unixNames.set(path, { sock: s, id: ++this.unixIds });
  }

  /**
   * `s` closed: its Unix name stays as a stale file (a socket file outlives its socket
   * until unlinked), or goes with it (a Linux abstract name).
   */
  unbindName(s: SimSocket): void {
    const e = s.path === "" ? undefined : s.host.unixNames.get(s.path);
    if (e === undefined || e.sock !== s) return;
    if (s.path.charCodeAt(0) === 0) s.host.unixNames.delete(s.path);
    else e.sock = null;
  }

  /** True when binding `s` to ip:port on its host would clash with a socket already bound. */
  portTaken(s: SimSocket, ip: string, port: number): boolean {
    const list = this.portsOf(s).get(port);
    if (list === undefined) return false;
    for (const o of list) {
      if (o === s) continue;
      const wild = (x: string) => x === ANY4 || x === ANY6;
      const overlap = o.v6 === s.v6 ? o.localIp === ip || wild(o.localIp) || wild(ip) : (o.v6 && o.localIp === ANY6) || (s.v6 && ip === ANY6);
      if (!overlap) continue;
      if (o.reusePort && s.reusePort) continue;
      if (o.reuseAddr && s.reuseAddr && o.state !== ST_LISTEN) continue;
      return true;
    }
    return false;
  }

  /** A free port for `s` on its host (seeded, in the ephemeral range), or 0 when none is. */
  ephemeralPort(s: SimSocket, ip: string): number {
    const span = EPHEMERAL_HI - EPHEMERAL_LO + 1;
    const start = this.rng.below(span);
    for (let i = 0; i < span; i++) {
      const p = EPHEMERAL_LO + ((start + i) % span);
      if (!this.portsOf(s).has(p) || !this.portTaken(s, ip, p)) return p;
    }
    return 0;
  }

  /** Enters `s` in its host's port table at ip:port. */
  bindPort(s: SimSocket, ip: string, port: number): void {
    s.localIp = ip;
    s.localPort = port;
    s.bound = true;
    const ports = this.portsOf(s);
    const list = ports.get(port);
    if (list === undefined) ports.set(port, [s]);
    else list.push(s);
  }

  /** Takes `s` out of its host's port table. */
  unbindPort(s: SimSocket): void {
    if (!s.bound) return;
    s.bound = false;
    const ports = this.portsOf(s);
    const list = ports.get(s.localPort);
    if (list === undefined) return;
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) ports.delete(s.localPort);
  }

  /** The listener on `host` that a SYN to ip:port reaches, or null (the SYN is refused). */
  findListener(host: SimHost, ip: string, port: number, v6: boolean): SimSocket | null {
    const list = host.ports.get(port);
    if (list === undefined) return null;
    let exact: SimSocket[] | null = null;
    let wild: SimSocket[] | null = null;
    for (const l of list) {
      if (l.state !== ST_LISTEN || l.closed) continue;
      // A v6 wildcard listener without IPV6_V6ONLY takes IPv4 too (Linux's default).
      const dual = !v6 && l.v6 && l.localIp === ANY6 && !l.v6only;
      if (l.v6 !== v6 && !dual) continue;
      if (l.localIp === ip) (exact ??= []).push(l);
      else if (l.localIp === ANY4 || l.localIp === ANY6) (wild ??= []).push(l);
    }
    const pool = exact ?? wild;
    if (pool === null) return null;
    return pool.length === 1 ? pool[0]! : pool[this.rng.below(pool.length)]!;
  }

  /** The host a connection to `ip` reaches from `from`, or null (no such address). */
  destination(from: SimHost, ip: string, v6: boolean): SimHost | null {
    if (ip === ANY4 || ip === ANY6 || from.owns(ip, v6)) return from;
    if (!v6 && isLoopback(ip, false)) return from;
    return this.hostAt(ip);
  }

  // ---- faults ----

  /** Cuts the links between `a` and `b` (both ways): segments are lost and retransmitted. */
  partition(a: SimHost, b: SimHost): void {
    this.link(a, b).cut = true;
    this.link(b, a).cut = true;
    this.ev(EV_FAULT, FAULT_PARTITION, a.index, b.index);
  }

  /** Repairs the links between `a` and `b`: retransmissions get through again. */
  repair(a: SimHost, b: SimHost): void {
    this.link(a, b).cut = false;
    this.link(b, a).cut = false;
    this.ev(EV_FAULT, FAULT_REPAIR, a.index, b.index);
  }

  /** Holds what travels between `a` and `b` (both ways) until {@link release}. */
  hold(a: SimHost, b: SimHost): void {
    this.link(a, b).held = true;
    this.link(b, a).held = true;
    this.ev(EV_FAULT, FAULT_HOLD, a.index, b.index);
  }

  /** Lets what was held between `a` and `b` go on, in order, one latency from now. */
  release(a: SimHost, b: SimHost): void {
    this.ev(EV_FAULT, FAULT_RELEASE, a.index, b.index);
    for (const l of [this.link(a, b), this.link(b, a)]) {
      l.held = false;
      const waiting = l.waiting.splice(0, l.waiting.length);
      for (const e of waiting) {
        const at = this.clock.now() + l.latency(this.rng);
        if (e instanceof Flow) this.tcp.wire.released(e, at);
        else this.schedule(e, at);
      }
    }
  }

  /**
   * Crashes `host`: its sockets vanish (their fds are released), nothing it had queued is
   * sent; packets already on the wire still arrive; packets to it go unanswered (TCP
   * retransmits) until it restarts. The host's tasks are the caller's to end.
   */
  crash(host: SimHost): void {
    if (!host.up) return;
    this.ev(EV_FAULT, FAULT_CRASH, host.index, -1);
    host.up = false;
    host.incarnation++;
    const socks = [...host.sockets];
    host.sockets.clear();
    host.ports.clear();
    host.udpPorts.clear();
    // The simulator has no disk: a crashed host's socket files go with it (a restart can bind them again).
    host.unixNames.clear();
    for (const s of socks) {
      if (s.fd >= 0) this.crashed.add(s.fd);
      this.dropFd(s);
      s.dead = true;
      s.dropSend();
      s.dropDgrams();
      if (s.acceptQ !== null) s.acceptQ.length = 0;
      s.wakeAll();
      this.dgram.wakeSenders(s);
    }
  }

  /** Brings a crashed host back (a new incarnation: old connections are answered with resets). */
  restart(host: SimHost): void {
    if (host.up) return;
    host.up = true;
    this.ev(EV_FAULT, FAULT_RESTART, host.index, -1);
  }

  /** Resets every connection of `host`: both ends see ECONNRESET. */
  resetConnections(host: SimHost): void {
    this.ev(EV_FAULT, FAULT_RESET, host.index, -1);
    for (const s of [...host.sockets]) this.tcp.abort(s);
  }
}

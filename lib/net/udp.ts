/**
 * UDP: UdpSocket over the per-fd message interface (dgram.ts → IoSource.pollMsg), the
 * same on every backend: sendmsg/recvmsg (sendmmsg/recvmmsg for batches) on epoll, poll
 * and kqueue, SENDMSG/RECVMSG ops on io_uring.
 *
 * Addresses: a destination is a SocketAddr (what recvFrom returns) or `{ hostname, port }`.
 * IP literals are encoded at once; a host name is looked up first (dns/lookup.ts, the
 * socket's family), so such a send is a lookup plus a send. `bind` is synchronous and
 * takes literals and "localhost" only, as TcpListener.bind.
 *
 * Truncation: a datagram larger than the receive buffer fails recvFrom/recv with
 * TruncatedError (dgram.ts); recvMany marks it `truncated`. Never cut silently.
 *
 * Options are plain setsockopt calls through the current backend's SocketApi: broadcast,
 * TTL (IPv4 TTL / IPv6 unicast hops), multicast TTL/hops, loop, membership (IPv4 by
 * interface address, IPv6 by interface index).
 *
 * Must never: block, leak the fd on a failed set-up, or send to an address of the wrong
 * family silently (the kernel's EAFNOSUPPORT / EINVAL is reported).
 */
import { NET, SYS } from "../../ffi/constants.ts";
import { SocketAddr, encodeIPv4, encodeIPv6, parseIPv4, parseIPv6 } from "../../ffi/sockaddr.ts";
import { BaseFuture, FutureStateError, PENDING, type Context, type Poll, type Waker } from "../future.ts";
import { DIR_WRITE, FD_DATAGRAM, closedError } from "../driver/fd.ts";
import { check, checkPort } from "../errors.ts";
import { IoSource } from "../io/source.ts";
import { isHostName, resolve, type HostPort } from "./addr.ts";
import { DgramCore, type Datagram, type OutDatagram } from "./dgram.ts";
import { lookup, type LookupAddress } from "./lookup.ts";
import { closeAndThrow, getIntOption, newSocket, setIntOption, sockName, sockets } from "./socket.ts";

/**
 * Where a UDP datagram goes: a SocketAddr, or `{ hostname, port }` (a literal, "localhost" or a name).
 *
 * @example
 * ```ts
 * yield* sock.sendTo(data, { hostname: "127.0.0.1", port: 9000 });
 * yield* sock.sendTo(data, from); // a SocketAddr from recvFrom
 * ```
 */
export type UdpTarget = SocketAddr | HostPort;

/**
 * Options for {@link UdpSocket.bind}.
 *
 * @example
 * ```ts
 * const sock = UdpSocket.bind({ hostname: "::", port: 5353, reuseAddr: true, ipv6Only: false });
 * ```
 */
export interface UdpBindOptions extends HostPort {
  /** SO_REUSEADDR; default false. */
  reuseAddr?: boolean;
  /** SO_REUSEPORT; default false. */
  reusePort?: boolean;
  /** IPV6_V6ONLY on an IPv6 socket; default: the system's (usually dual-stack). */
  ipv6Only?: boolean;
}

/**
 * Encodes a SocketAddr or a literal `{ hostname, port }` into `out` for a socket of
 * family v6 or v4: an IPv4 destination on an IPv6 socket becomes ::ffff:a.b.c.d (the
 * dual-stack form), "localhost" is the socket family's loopback.
 */
function encodeUdp(addr: unknown, out: Uint8Array, v6: boolean): number {
  let family: string;
  let text: string;
  let port: number;
  let scope = 0;
  if (addr instanceof SocketAddr) {
    if (addr.family === "unix") throw new TypeError(`Invalid UDP destination ${addr.toString()}: a Unix socket address`);
    family = addr.family;
    text = addr.address;
    port = addr.port;
    scope = addr.scopeId;
  } else {
    const hp = addr as HostPort;
    if (v6 && typeof hp === "object" && hp !== null && hp.hostname === "localhost") {
      return encodeIPv6(out, parseIPv6("::1")!.bytes, checkPort(hp.port, "port for a UDP send"));
    }
    const r = resolve(hp, "a UDP send");
    if (!v6 || r.domain === SYS.AF_INET6) {
      out.set(r.sockaddr.subarray(0, r.length));
      return r.length;
    }
    family = "IPv4";
    text = hp.hostname ?? "127.0.0.1";
    port = hp.port;
  }
  if (family === "IPv6") return encodeIPv6(out, parseIPv6(text)!.bytes, port, scope);
  const a4 = parseIPv4(text)!;
  if (!v6) return encodeIPv4(out, a4, port);
  const mapped = new Uint8Array(16);
  mapped[10] = mapped[11] = 0xff;
  mapped.set(a4, 12);
  return encodeIPv6(out, mapped, port);
}

/**
 * A UDP socket.
 *
 * @example
 * ```ts
 * import { UdpSocket, blockOn } from "reel";
 * blockOn(function* () {
 *   const sock = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
 *   const buf = new Uint8Array(65536);
 *   for (;;) {
 *     const [n, from] = yield* sock.recvFrom(buf);
 *     yield* sock.sendTo(buf.subarray(0, n), from); // echo
 *   }
 * });
 * ```
 */
export class UdpSocket {
  private readonly core: DgramCore;
  private readonly src: IoSource;
  private connected = false;

  private constructor(
    fd: number,
    /** AF_INET or AF_INET6: the family names are looked up in. */
    private readonly domain: number,
  ) {
    this.src = new IoSource(fd, FD_DATAGRAM);
    const v6 = domain === SYS.AF_INET6;
    this.core = new DgramCore(this.src, (addr, out) => encodeUdp(addr, out, v6), true);
  }

  /**
   * A socket bound to `{ hostname, port }` (an IP literal or "localhost"; port 0 picks a
   * free one: read it from `localAddr`). "0.0.0.0" / "::" receive on every interface.
   */
  static bind(opts: UdpBindOptions): UdpSocket {
    const addr = resolve(opts, "UdpSocket.bind()");
    const fd = newSocket(addr.domain, SYS.SOCK_DGRAM);
    try {
      if (opts.reuseAddr ?? false) setIntOption(fd, SYS.SOL_SOCKET, SYS.SO_REUSEADDR, 1, "SO_REUSEADDR");
      if (opts.reusePort ?? false) setIntOption(fd, SYS.SOL_SOCKET, SYS.SO_REUSEPORT, 1, "SO_REUSEPORT");
      if (opts.ipv6Only !== undefined && addr.domain === SYS.AF_INET6) {
        setIntOption(fd, SYS.IPPROTO_IPV6, SYS.IPV6_V6ONLY, opts.ipv6Only ? 1 : 0, "IPV6_V6ONLY");
      }
      check(sockets().bind(fd, addr.sockaddr, addr.length), "bind", `${opts.hostname ?? "127.0.0.1"}:${opts.port}`);
    } catch (err) {
      closeAndThrow(fd, err);
    }
    return new UdpSocket(fd, addr.domain);
  }

  /** The socket's fd (-1 once closed). */
  get fd(): number {
    return this.src.fd;
  }

  /** The bound address (with the real port when bound to port 0). */
  get localAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getsockname");
    return sockName(this.src.fd, false);
  }

  /** The connected peer's address (SysError ENOTCONN when not connected). */
  get peerAddr(): SocketAddr {
    if (this.src.isClosed) throw closedError("getpeername");
    return sockName(this.src.fd, true);
  }

  /** Sends `buf` as one datagram to `addr`: the bytes sent. A host name is looked up first. */
  sendTo(buf: Uint8Array, addr: UdpTarget): BaseFuture<number> {
    const t = this.target(addr);
    return t === null ? this.core.sendTo(buf, addr) : new Resolving(t, (a) => this.core.sendTo(buf, a));
  }

  /** Receives one datagram: `[bytes, source]`. TruncatedError when it did not fit `buf`. Cancel-safe. */
  recvFrom(buf: Uint8Array): BaseFuture<[number, SocketAddr]> {
    return this.core.recvFrom(buf);
  }

  /**
   * Sets the default destination and filters what arrives to datagrams from it (UDP
   * connect sends nothing). A host name is looked up first (this socket's family).
   */
  connect(addr: UdpTarget): BaseFuture<void> {
    const t = this.target(addr);
    return t === null ? new UdpConnect(this, addr, this.v6) : new Resolving(t, (a) => new UdpConnect(this, a, this.v6));
  }

  /** @internal The connect itself, once the address is known. */
  markConnected(): void {
    this.connected = true;
  }

  /** @internal */
  get source(): IoSource {
    return this.src;
  }

  /** Sends `buf` to the connected peer. */
  send(buf: Uint8Array): BaseFuture<number> {
    return this.core.sendTo(buf, null);
  }

  /** Receives one datagram from the connected peer: its length. TruncatedError when it did not fit. Cancel-safe. */
  recv(buf: Uint8Array): BaseFuture<number> {
    return this.core.recv(buf);
  }

  /**
   * Sends up to 64 datagrams in one call (sendmmsg; one SQE each on io_uring): how many
   * went out, a prefix of `msgs` (≥ 1). `addr` may be left out on a connected socket; it
   * must be a SocketAddr or an IP literal here (no lookups in a batch).
   */
  sendMany(msgs: readonly OutDatagram<SocketAddr | HostPort>[]): BaseFuture<number> {
    return this.core.sendMany(msgs, this.connected);
  }

  /**
   * Receives up to bufs.length (≤ 64) datagrams in one call (recvmmsg; armed SQEs on
   * io_uring): at least one; datagram i is in bufs[i]. Cancel-safe.
   */
  recvMany(bufs: readonly Uint8Array[]): BaseFuture<Datagram[]> {
    return this.core.recvMany(bufs);
  }

  /** SO_BROADCAST: allow sending to broadcast addresses. */
  setBroadcast(on: boolean): void {
    this.setInt(SYS.SOL_SOCKET, NET.SO_BROADCAST, on ? 1 : 0, "SO_BROADCAST");
  }

  /** SO_BROADCAST's current value. */
  get broadcast(): boolean {
    return this.getInt(SYS.SOL_SOCKET, NET.SO_BROADCAST, "SO_BROADCAST") !== 0;
  }

  /** The unicast TTL (IPv4 IP_TTL, IPv6 IPV6_UNICAST_HOPS), 1–255. */
  setTtl(ttl: number): void {
    checkByte(ttl, "TTL", 1);
    if (this.v6) this.setInt(SYS.IPPROTO_IPV6, NET.IPV6_UNICAST_HOPS, ttl, "IPV6_UNICAST_HOPS");
    else this.setInt(NET.IPPROTO_IP, NET.IP_TTL, ttl, "IP_TTL");
  }

  get ttl(): number {
    return this.v6 ? this.getInt(SYS.IPPROTO_IPV6, NET.IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS") : this.getInt(NET.IPPROTO_IP, NET.IP_TTL, "IP_TTL");
  }

  /** The multicast TTL / hop limit, 0–255 (default 1: the local network). */
  setMulticastTtl(ttl: number): void {
    checkByte(ttl, "multicast TTL", 0);
    if (this.v6) this.setInt(SYS.IPPROTO_IPV6, NET.IPV6_MULTICAST_HOPS, ttl, "IPV6_MULTICAST_HOPS");
    else this.setByteOpt(NET.IP_MULTICAST_TTL, ttl, "IP_MULTICAST_TTL");
  }

  get multicastTtl(): number {
    return this.v6 ? this.getInt(SYS.IPPROTO_IPV6, NET.IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS") : this.getByteOpt(NET.IP_MULTICAST_TTL, "IP_MULTICAST_TTL");
  }

  /** Whether this host's own multicast sends are delivered back to its sockets (default on). */
  setMulticastLoop(on: boolean): void {
    if (this.v6) this.setInt(SYS.IPPROTO_IPV6, NET.IPV6_MULTICAST_LOOP, on ? 1 : 0, "IPV6_MULTICAST_LOOP");
    else this.setByteOpt(NET.IP_MULTICAST_LOOP, on ? 1 : 0, "IP_MULTICAST_LOOP");
  }

  get multicastLoop(): boolean {
    return (this.v6 ? this.getInt(SYS.IPPROTO_IPV6, NET.IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP") : this.getByteOpt(NET.IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP")) !== 0;
  }

  /**
   * Sets the interface multicast sends leave by: an IPv4 interface address ("127.0.0.1")
   * on an IPv4 socket, an interface index on an IPv6 one (0: the system's choice).
   */
  setMulticastInterface(iface: string | number): void {
    if (this.v6) {
      const idx = checkIfIndex(iface);
      this.setInt(SYS.IPPROTO_IPV6, NET.IPV6_MULTICAST_IF, idx, "IPV6_MULTICAST_IF");
      return;
    }
    const a = typeof iface === "string" ? parseIPv4(iface) : null;
    if (a === null) throw new TypeError(`Invalid multicast interface ${String(iface)} for an IPv4 socket: expected an IPv4 address`);
    this.setOpt(NET.IPPROTO_IP, NET.IP_MULTICAST_IF, a, "IP_MULTICAST_IF");
  }

  /**
   * Joins the multicast group `group` (IPv4 "239.1.2.3" or IPv6 "ff02::1:3") on
   * `iface`: for IPv4 the interface's address (default "0.0.0.0": the system's choice),
   * for IPv6 its index (default 0).
   */
  joinMulticast(group: string, iface?: string | number): void {
    this.membership(group, iface, true);
  }

  /** Leaves a group joined with {@link joinMulticast} (same arguments). */
  leaveMulticast(group: string, iface?: string | number): void {
    this.membership(group, iface, false);
  }

  private membership(group: string, iface: string | number | undefined, join: boolean): void {
    const what = join ? "joinMulticast()" : "leaveMulticast()";
    if (typeof group !== "string") throw new TypeError(`Invalid multicast group for ${what}: expected an IP address string`);
    const g4 = parseIPv4(group);
    if (g4 !== null) {
      if (g4[0]! < 224 || g4[0]! > 239) throw new RangeError(`Invalid multicast group "${group}" for ${what}: IPv4 groups are 224.0.0.0-239.255.255.255`);
      const ifa = iface === undefined ? new Uint8Array(4) : typeof iface === "string" ? parseIPv4(iface) : null;
      if (ifa === null) throw new TypeError(`Invalid interface ${String(iface)} for ${what} of an IPv4 group: expected an IPv4 address`);
      const mreq = new Uint8Array(8);
      mreq.set(g4, 0);
      mreq.set(ifa, 4);
      this.setOpt(NET.IPPROTO_IP, join ? NET.IP_ADD_MEMBERSHIP : NET.IP_DROP_MEMBERSHIP, mreq, join ? "IP_ADD_MEMBERSHIP" : "IP_DROP_MEMBERSHIP");
      return;
    }
    const g6 = parseIPv6(group);
    if (g6 === null) throw new TypeError(`Invalid multicast group "${group}" for ${what}: not an IP address`);
    if (g6.bytes[0] !== 0xff) throw new RangeError(`Invalid multicast group "${group}" for ${what}: IPv6 groups are ff00::/8`);
    const idx = checkIfIndex(iface ?? 0);
    const mreq = new Uint8Array(20);
    mreq.set(g6.bytes, 0);
    new Uint32Array(mreq.buffer, 16, 1)[0] = idx;
    this.setOpt(SYS.IPPROTO_IPV6, join ? NET.IPV6_JOIN_GROUP : NET.IPV6_LEAVE_GROUP, mreq, join ? "IPV6_JOIN_GROUP" : "IPV6_LEAVE_GROUP");
  }

  private get v6(): boolean {
    return this.domain === SYS.AF_INET6;
  }

  private fdOrThrow(call: string): number {
    if (this.src.isClosed) throw closedError(call);
    return this.src.fd;
  }

  private setInt(level: number, name: number, v: number, label: string): void {
    setIntOption(this.fdOrThrow("setsockopt"), level, name, v, label);
  }

  private getInt(level: number, name: number, label: string): number {
    return getIntOption(this.fdOrThrow("getsockopt"), level, name, label);
  }

  private setOpt(level: number, name: number, value: Uint8Array, label: string): void {
    check(sockets().setsockopt(this.fdOrThrow("setsockopt"), level, name, value), "setsockopt", label);
  }

  /** IPv4 multicast TTL / loop: a u_char on the BSDs, an int on Linux. */
  private setByteOpt(name: number, v: number, label: string): void {
    if (NET.IP_MULTICAST_BYTE) this.setOpt(NET.IPPROTO_IP, name, Uint8Array.of(v), label);
    else this.setInt(NET.IPPROTO_IP, name, v, label);
  }

  private getByteOpt(name: number, label: string): number {
    if (!NET.IP_MULTICAST_BYTE) return this.getInt(NET.IPPROTO_IP, name, label);
    const out = new Uint8Array(4);
    check(sockets().getsockopt(this.fdOrThrow("getsockopt"), NET.IPPROTO_IP, name, out), "getsockopt", label);
    return out[0]!;
  }

  /** A `{ hostname, port }` whose hostname needs a lookup, else null (encoded at the send). */
  private target(addr: UdpTarget): { host: string; port: number; family: 4 | 6 } | null {
    if (addr instanceof SocketAddr || typeof addr !== "object" || addr === null || !isHostName(addr.hostname) || addr.hostname === "localhost") return null;
    return { host: addr.hostname, port: checkPort(addr.port, "port for a UDP send"), family: this.v6 ? 6 : 4 };
  }

  /** Closes the socket; pending operations fail with EBADF. Idempotent. */
  close(): void {
    this.src.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function checkByte(v: unknown, what: string, min: number): void {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError(`Invalid ${what} ${String(v)}: must be an integer ${min}-255`);
  if (v < min || v > 255) throw new RangeError(`Invalid ${what} ${v}: must be ${min}-255`);
}

function checkIfIndex(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new TypeError(`Invalid interface ${String(v)} for an IPv6 socket: expected an interface index (an integer ≥ 0)`);
  }
  return v;
}

/** connect(2) of a UDP socket (immediate; through the driver's connect for uniformity). */
class UdpConnect extends BaseFuture<void> {
  private waker: Waker | null = null;
  private done = false;
  private readonly raw = new Uint8Array(new ArrayBuffer(128));
  private len = -1;
  constructor(
    private readonly sock: UdpSocket,
    private readonly addr: unknown,
    private readonly v6: boolean,
  ) {
    super();
  }

  poll(cx: Context): Poll<void> {
    if (this.done) throw new FutureStateError("connect() future polled after completion");
    try {
      if (this.len < 0) this.len = encodeUdp(this.addr, this.raw, this.v6);
      const r = this.sock.source.pollConnect(cx, this.raw, this.len, String(this.addr instanceof SocketAddr ? this.addr : `${(this.addr as HostPort).hostname}:${(this.addr as HostPort).port}`));
      if (r === PENDING) {
        this.waker = cx.waker;
        return PENDING;
      }
      this.done = true;
      this.sock.markConnected();
      return undefined;
    } catch (e) {
      this.done = true;
      throw e;
    }
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.sock.source.dropWaker(DIR_WRITE, this.waker);
  }
}

/** A lookup of a destination's name (the socket's family), then the operation on its first address. */
class Resolving<T> extends BaseFuture<T> {
  private lk: BaseFuture<LookupAddress[]> | null;
  private inner: BaseFuture<T> | null = null;
  private done = false;
  constructor(
    private readonly t: { host: string; port: number; family: 4 | 6 },
    private readonly then: (a: SocketAddr) => BaseFuture<T>,
  ) {
    super();
    this.lk = lookup(t.host, { family: t.family });
  }

  poll(cx: Context): Poll<T> {
    if (this.done) throw new FutureStateError("UDP future polled after completion");
    try {
      if (this.inner === null) {
        const addrs = this.lk!.poll(cx);
        if (addrs === PENDING) return PENDING;
        this.lk = null;
        const a = addrs[0]!;
        const pct = a.address.indexOf("%");
        const scope = pct < 0 ? 0 : Number(a.address.slice(pct + 1));
        this.inner = this.then(new SocketAddr(a.family, pct < 0 ? a.address : a.address.slice(0, pct), this.t.port, scope));
      }
      const r = this.inner.poll(cx);
      if (r !== PENDING) this.done = true;
      return r;
    } catch (e) {
      this.done = true;
      throw e;
    }
  }

  override cancel(): void {
    if (this.done) return;
    this.done = true;
    this.lk?.cancel();
    this.inner?.cancel();
  }
}


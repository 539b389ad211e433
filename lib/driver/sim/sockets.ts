/**
 * The non-I/O socket calls (lib/driver/sockets.ts's SocketApi) answered by the simulated
 * network: socket, bind, listen, options, names, shutdown and close of simulated sockets.
 * net/ makes these through the current driver, so TcpListener.bind and TcpStream.connect
 * create simulated sockets without knowing it. Every call returns its result or −errno,
 * as the kernel's do, with the errno the kernel would give (EADDRINUSE, EADDRNOTAVAIL,
 * ENOTCONN, …).
 *
 * Supported: TCP and UDP over IPv4 and IPv6 (dual-stack wildcard sockets as Linux's
 * default; separate port tables), Unix stream and datagram sockets (names per host,
 * socketpair, SO_PEERCRED: this process's identity, as every simulated host runs in it),
 * SO_REUSEADDR/SO_REUSEPORT (Linux's rules), SO_SNDBUF/SO_RCVBUF (doubled, as Linux
 * reports them), SO_LINGER {on, 0}, SO_KEEPALIVE, TCP_NODELAY, IPV6_V6ONLY, SO_ERROR; UDP's
 * SO_BROADCAST, TTLs and multicast TTL/loop are stored and read back. Multicast
 * membership is not simulated (ENOPROTOOPT); other families and types EAFNOSUPPORT /
 * EPROTONOSUPPORT.
 *
 * Must never: throw, call into the kernel, or act on an fd the simulation did not hand out.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { NET, SYS } from "../../../ffi/constants.ts";
import { decodeSockaddr } from "../../../ffi/sockaddr.ts";
import type { SocketApi } from "../sockets.ts";
import { EADDRINUSE, EADDRNOTAVAIL, EAFNOSUPPORT, EBADF, EINVAL, ENOENT, ENOPROTOOPT, ENOTCONN, EOPNOTSUPP, EPROTONOSUPPORT } from "./errno.ts";
import { ANY4, ANY6 } from "./host.ts";
import type { SimNet } from "./net.ts";
import { K_TCP, K_UDP, K_UNIX_DGRAM, K_UNIX_STREAM, ST_CONNECTING, ST_LISTEN, ST_NEW, ST_OPEN, type SimSocket } from "./socket.ts";
import { encodeAddr } from "./tcp.ts";
import { encodeUnixName, unixPair } from "./unix.ts";
import { EV_BIND, EV_LISTEN } from "./trace.ts";

/** IPPROTO_UDP (17 everywhere). */
const IPPROTO_UDP = 17;

const FLAGS = SYS.SOCK_NONBLOCK > 0 ? SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC : 0;

/** O_RDWR (the same on Linux and the BSDs): what F_GETFL reports for a socket besides O_NONBLOCK. */
const O_RDWR = 2;

/** UDP options the simulator stores and reads back, by level << 16 | name, with Linux's defaults. */
const STORED: ReadonlyMap<number, number> = new Map([
  [(SYS.SOL_SOCKET << 16) | NET.SO_BROADCAST, 0],
  [(NET.IPPROTO_IP << 16) | NET.IP_TTL, 64],
  [(SYS.IPPROTO_IPV6 << 16) | NET.IPV6_UNICAST_HOPS, 64],
  [(NET.IPPROTO_IP << 16) | NET.IP_MULTICAST_TTL, 1],
  [(NET.IPPROTO_IP << 16) | NET.IP_MULTICAST_LOOP, 1],
  [(SYS.IPPROTO_IPV6 << 16) | NET.IPV6_MULTICAST_HOPS, 1],
  [(SYS.IPPROTO_IPV6 << 16) | NET.IPV6_MULTICAST_LOOP, 1],
]);

const isUnix = (s: SimSocket) => s.kind === K_UNIX_STREAM || s.kind === K_UNIX_DGRAM;

/** Linux's SOMAXCONN (the backlog cap). */
const SOMAXCONN = 4096;

/**
 * The simulated network's SocketApi.
 *
 * @example
 * ```ts
 * const api = new SimSockets(net);
 * const fd = api.socket(SYS.AF_INET, SYS.SOCK_STREAM, 0); // a simulated socket's fd
 * ```
 */
export class SimSockets implements SocketApi {
  constructor(private readonly net: SimNet) {}

  private sock(fd: number): SimSocket | number {
    return this.net.lookup(fd);
  }

  socket(domain: number, type: number, protocol: number): number {
    const t = type & ~FLAGS;
    if (t !== SYS.SOCK_STREAM && t !== SYS.SOCK_DGRAM) return -EPROTONOSUPPORT;
    const stream = t === SYS.SOCK_STREAM;
    if (domain === SYS.AF_UNIX) {
      if (protocol !== 0) return -EPROTONOSUPPORT;
      return this.net.newSocket(false, stream ? K_UNIX_STREAM : K_UNIX_DGRAM).fd;
    }
    if (domain !== SYS.AF_INET && domain !== SYS.AF_INET6) return -EAFNOSUPPORT;
    if (protocol !== 0 && protocol !== (stream ? SYS.IPPROTO_TCP : IPPROTO_UDP)) return -EPROTONOSUPPORT;
    return this.net.newSocket(domain === SYS.AF_INET6, stream ? K_TCP : K_UDP).fd;
  }

  adopt(fd: number): number {
    const s = this.sock(fd);
    return typeof s === "number" ? s : fd;
  }

  bind(fd: number, addr: Uint8Array, len: number): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    const a = decodeSockaddr(addr, len);
    if (isUnix(s)) {
      if (a === null || a.family !== "unix") return -EAFNOSUPPORT;
      if (s.path !== "") return -EINVAL;
      if (s.host.unixNames.has(a.address)) return -EADDRINUSE;
      this.net.bindName(s, a.address);
      this.net.ev(EV_BIND, s.id, 0, 0);
      return 0;
    }
    if (a === null || a.family === "unix" || (a.family === "IPv6") !== s.v6) return -EAFNOSUPPORT;
    if (s.bound || (s.state !== ST_NEW && s.kind === K_TCP)) return -EINVAL;
    const ip = a.address;
    const net = this.net;
    if (ip !== ANY4 && ip !== ANY6 && !s.host.owns(ip, s.v6)) return -EADDRNOTAVAIL;
    let port = a.port;
    if (port === 0) {
      port = net.ephemeralPort(s, ip);
      if (port === 0) return -EADDRINUSE;
    } else if (net.portTaken(s, ip, port)) return -EADDRINUSE;
    net.bindPort(s, ip, port);
    net.ev(EV_BIND, s.id, port, 0);
    return 0;
  }

  listen(fd: number, backlog: number): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    if (s.kind === K_UDP || s.kind === K_UNIX_DGRAM) return -EOPNOTSUPP;
    if (s.state === ST_OPEN || s.state === ST_CONNECTING) return -EINVAL;
    const net = this.net;
    if (s.kind === K_UNIX_STREAM) {
      if (s.path === "") return -EINVAL; // Linux would autobind an abstract name: net/ always binds first
      if (s.state !== ST_LISTEN) {
        s.state = ST_LISTEN;
        s.acceptQ = [];
      }
      s.backlog = backlog < 0 ? 0 : backlog > SOMAXCONN ? SOMAXCONN : backlog;
      net.ev(EV_LISTEN, s.id, s.backlog, 0);
      return 0;
    }
    if (!s.bound) {
      const ip = s.v6 ? ANY6 : ANY4;
      const p = net.ephemeralPort(s, ip);
      if (p === 0) return -EADDRINUSE;
      net.bindPort(s, ip, p);
    }
    if (s.state !== ST_LISTEN) {
      // Two listeners on one port need SO_REUSEPORT on both, whatever SO_REUSEADDR says.
      for (const o of s.host.ports.get(s.localPort) ?? []) {
        if (o === s || o.state !== ST_LISTEN || o.v6 !== s.v6) continue;
        const overlap = o.localIp === s.localIp || o.localIp === ANY4 || o.localIp === ANY6 || s.localIp === ANY4 || s.localIp === ANY6;
        if (overlap && !(o.reusePort && s.reusePort)) return -EADDRINUSE;
      }
      s.state = ST_LISTEN;
      s.acceptQ = [];
    }
    s.backlog = backlog < 0 ? 0 : backlog > SOMAXCONN ? SOMAXCONN : backlog;
    net.ev(EV_LISTEN, s.id, s.backlog, 0);
    return 0;
  }

  setsockoptInt(fd: number, level: number, name: number, value: number): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    const on = value !== 0;
    if (level === SYS.SOL_SOCKET) {
      if (name === SYS.SO_REUSEADDR) s.reuseAddr = on;
      else if (name === SYS.SO_REUSEPORT) s.reusePort = on;
      else if (name === SYS.SO_KEEPALIVE) s.keepAlive = on;
      // Linux doubles the value (room for its bookkeeping) and reports the doubled size.
      else if (name === SYS.SO_SNDBUF) {
        s.sndCap = Math.max(4608, value * 2);
        if (s.sendSpace > 0) s.wakeWrite();
      } else if (name === SYS.SO_RCVBUF) {
        s.rcvCap = Math.max(2304, value * 2);
        const p = s.peer;
        if (p !== null && p.sndBytes > 0) this.net.tcp.pump(p);
      } else return -ENOPROTOOPT;
      return 0;
    }
    if (level === SYS.IPPROTO_TCP && name === SYS.TCP_NODELAY) {
      s.noDelay = on;
      return 0;
    }
    if (level === SYS.IPPROTO_IPV6 && name === SYS.IPV6_V6ONLY && s.v6) {
      if (s.bound) return -EINVAL;
      s.v6only = on;
      return 0;
    }
    return this.setStored(s, level, name, value);
  }

  /** A UDP option that is only stored (see STORED), or −ENOPROTOOPT. */
  private setStored(s: SimSocket, level: number, name: number, value: number): number {
    const key = (level << 16) | name;
    if (s.kind !== K_UDP || !STORED.has(key)) return -ENOPROTOOPT;
    (s.opts ??= new Map()).set(key, value);
    return 0;
  }

  getsockoptInt(fd: number, level: number, name: number): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    if (level === SYS.SOL_SOCKET) {
      if (name === SYS.SO_ERROR) {
        const e = s.err;
        s.err = 0;
        return e;
      }
      if (name === SYS.SO_REUSEADDR) return s.reuseAddr ? 1 : 0;
      if (name === SYS.SO_REUSEPORT) return s.reusePort ? 1 : 0;
      if (name === SYS.SO_KEEPALIVE) return s.keepAlive ? 1 : 0;
      if (name === SYS.SO_SNDBUF) return s.sndCap;
      if (name === SYS.SO_RCVBUF) return s.rcvCap;
    }
    if (level === SYS.IPPROTO_TCP && name === SYS.TCP_NODELAY) return s.noDelay ? 1 : 0;
    if (level === SYS.IPPROTO_IPV6 && name === SYS.IPV6_V6ONLY && s.v6) return s.v6only ? 1 : 0;
    const key = (level << 16) | name;
    const dflt = s.kind === K_UDP ? STORED.get(key) : undefined;
    return dflt === undefined ? -ENOPROTOOPT : (s.opts?.get(key) ?? dflt);
  }

  setsockopt(fd: number, level: number, name: number, value: Uint8Array): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    if (level === SYS.SOL_SOCKET && name === SYS.SO_LINGER) {
      if (value.byteLength < 8) return -EINVAL;
      const v = new DataView(value.buffer, value.byteOffset, 8);
      s.lingerOn = v.getInt32(0, true);
      s.lingerSecs = v.getInt32(4, true);
      s.lingerZero = s.lingerOn !== 0 && s.lingerSecs === 0;
      return 0;
    }
    // A one-byte IPv4 multicast TTL / loop (the BSDs' form); membership and interfaces are not simulated.
    if (value.byteLength === 1) return this.setStored(s, level, name, value[0]!);
    return -ENOPROTOOPT;
  }

  getsockname(fd: number, addr: Uint8Array, len: Uint32Array): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    if (isUnix(s)) {
      len[0] = encodeUnixName(addr, s.path);
      return 0;
    }
    const ip = s.localIp !== "" ? s.localIp : s.v6 ? ANY6 : ANY4;
    len[0] = encodeAddr(addr, ip, s.localPort, s.v6);
    return 0;
  }

  getpeername(fd: number, addr: Uint8Array, len: Uint32Array): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    if (s.kind === K_UNIX_DGRAM) {
      if (s.dgPeer === null) return -ENOTCONN;
      len[0] = encodeUnixName(addr, s.dgPeer.path);
      return 0;
    }
    if (s.state !== ST_OPEN || s.dead) return -ENOTCONN;
    len[0] = s.kind === K_UNIX_STREAM ? encodeUnixName(addr, s.peerPath) : encodeAddr(addr, s.remoteIp, s.remotePort, s.v6);
    return 0;
  }

  shutdown(fd: number, how: number): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    if (s.kind === K_UDP || s.kind === K_UNIX_DGRAM) return s.state === ST_OPEN || s.dgPeer !== null ? 0 : -ENOTCONN;
    return this.net.tcp.shutdown(s, how);
  }

  close(fd: number): number {
    const s = this.net.socketOf(fd);
    if (s === undefined) return this.net.forgetCrashed(fd) ? 0 : -EBADF;
    if (s.kind === K_UDP || s.kind === K_UNIX_DGRAM) this.net.dgram.close(s);
    else this.net.tcp.close(s);
    return 0;
  }

  socketpair(domain: number, type: number, protocol: number, fds: Int32Array): number {
    const t = type & ~FLAGS;
    if (domain !== SYS.AF_UNIX) return domain === SYS.AF_INET || domain === SYS.AF_INET6 ? -EOPNOTSUPP : -EAFNOSUPPORT;
    if ((t !== SYS.SOCK_STREAM && t !== SYS.SOCK_DGRAM) || protocol !== 0) return -EPROTONOSUPPORT;
    return unixPair(this.net, t, fds);
  }

  /** SO_PEERCRED of a connected Unix stream: this process's pid, uid and gid (every simulated host runs in it). */
  getsockopt(fd: number, level: number, name: number, out: Uint8Array): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    if (level !== SYS.SOL_SOCKET || name !== NET.SO_PEERCRED || NET.SO_PEERCRED < 0 || s.kind !== K_UNIX_STREAM) return -ENOPROTOOPT;
    if (s.state !== ST_OPEN || out.byteLength < 12) return s.state !== ST_OPEN ? -ENOTCONN : -EINVAL;
    const v = new DataView(out.buffer, out.byteOffset, 12);
    v.setInt32(0, process.pid, true);
    v.setUint32(4, process.getuid?.() ?? 0, true);
    v.setUint32(8, process.getgid?.() ?? 0, true);
    return 12;
  }

  /** The identity of the socket file at `path` on the current host (its own names), or null. */
  socketFileId(path: string): string | null {
    const e = this.net.currentHost().unixNames.get(path);
    return e === undefined ? null : `sim:${e.id}`;
  }

  /** Removes the name `path` from the current host (a bound socket keeps its name, unreachable). */
  unlink(path: string): number {
    return this.net.currentHost().unixNames.delete(path) ? 0 : -ENOENT;
  }

  fdFlags(fd: number): number {
    const s = this.sock(fd);
    return typeof s === "number" ? s : SYS.O_NONBLOCK | O_RDWR;
  }
}

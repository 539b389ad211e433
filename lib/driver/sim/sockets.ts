/**
 * The non-I/O socket calls (lib/driver/sockets.ts's SocketApi) answered by the simulated
 * network: socket, bind, listen, options, names, shutdown and close of simulated sockets.
 * net/ makes these through the current driver, so TcpListener.bind and TcpStream.connect
 * create simulated sockets without knowing it. Every call returns its result or −errno,
 * as the kernel's do, with the errno the kernel would give (EADDRINUSE, EADDRNOTAVAIL,
 * ENOTCONN, …).
 *
 * Supported now: TCP over IPv4 and IPv6 (dual-stack wildcard listeners as Linux's
 * default), SO_REUSEADDR/SO_REUSEPORT (Linux's rules), SO_SNDBUF/SO_RCVBUF (doubled, as
 * Linux reports them), SO_LINGER {on, 0}, SO_KEEPALIVE, TCP_NODELAY, IPV6_V6ONLY, SO_ERROR.
 * Datagram and Unix sockets answer EPROTONOSUPPORT/EAFNOSUPPORT until they are simulated
 * (see net.ts for how they plug in).
 *
 * Must never: throw, call into the kernel, or act on an fd the simulation did not hand out.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { SYS } from "../../../ffi/constants.ts";
import { decodeSockaddr } from "../../../ffi/sockaddr.ts";
import type { SocketApi } from "../sockets.ts";
import { EADDRINUSE, EADDRNOTAVAIL, EAFNOSUPPORT, EBADF, EINVAL, ENOENT, ENOPROTOOPT, ENOTCONN, EPROTONOSUPPORT } from "./errno.ts";
import { ANY4, ANY6 } from "./host.ts";
import type { SimNet } from "./net.ts";
import { ST_CONNECTING, ST_LISTEN, ST_NEW, ST_OPEN, type SimSocket } from "./socket.ts";
import { encodeAddr } from "./tcp.ts";
import { EV_BIND, EV_LISTEN } from "./trace.ts";

const FLAGS = SYS.SOCK_NONBLOCK > 0 ? SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC : 0;

/** O_RDWR (the same on Linux and the BSDs): what F_GETFL reports for a socket besides O_NONBLOCK. */
const O_RDWR = 2;

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
    if (domain !== SYS.AF_INET && domain !== SYS.AF_INET6) return -EAFNOSUPPORT;
    if ((type & ~FLAGS) !== SYS.SOCK_STREAM) return -EPROTONOSUPPORT;
    if (protocol !== 0 && protocol !== SYS.IPPROTO_TCP) return -EPROTONOSUPPORT;
    return this.net.newSocket(domain === SYS.AF_INET6).fd;
  }

  adopt(fd: number): number {
    const s = this.sock(fd);
    return typeof s === "number" ? s : fd;
  }

  bind(fd: number, addr: Uint8Array, len: number): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    const a = decodeSockaddr(addr, len);
    if (a === null || a.family === "unix" || (a.family === "IPv6") !== s.v6) return -EAFNOSUPPORT;
    if (s.bound || s.state !== ST_NEW) return -EINVAL;
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
    if (s.state === ST_OPEN || s.state === ST_CONNECTING) return -EINVAL;
    const net = this.net;
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
    return -ENOPROTOOPT;
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
    return -ENOPROTOOPT;
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
    return -ENOPROTOOPT;
  }

  getsockname(fd: number, addr: Uint8Array, len: Uint32Array): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    const ip = s.localIp !== "" ? s.localIp : s.v6 ? ANY6 : ANY4;
    len[0] = encodeAddr(addr, ip, s.localPort, s.v6);
    return 0;
  }

  getpeername(fd: number, addr: Uint8Array, len: Uint32Array): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    if (s.state !== ST_OPEN || s.dead) return -ENOTCONN;
    len[0] = encodeAddr(addr, s.remoteIp, s.remotePort, s.v6);
    return 0;
  }

  shutdown(fd: number, how: number): number {
    const s = this.sock(fd);
    if (typeof s === "number") return s;
    return this.net.tcp.shutdown(s, how);
  }

  close(fd: number): number {
    const s = this.net.socketOf(fd);
    if (s === undefined) return this.net.forgetCrashed(fd) ? 0 : -EBADF;
    this.net.tcp.close(s);
    return 0;
  }

  socketpair(_domain: number, _type: number, _protocol: number, _fds: Int32Array): number {
    return -EAFNOSUPPORT;
  }

  getsockopt(fd: number, _level: number, _name: number, _out: Uint8Array): number {
    const s = this.sock(fd);
    return typeof s === "number" ? s : -ENOPROTOOPT;
  }

  socketFileId(_path: string): string | null {
    return null;
  }

  unlink(_path: string): number {
    return -ENOENT;
  }

  fdFlags(fd: number): number {
    const s = this.sock(fd);
    return typeof s === "number" ? s : SYS.O_NONBLOCK | O_RDWR;
  }
}

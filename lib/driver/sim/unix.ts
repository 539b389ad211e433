/**
 * Unix sockets in the simulator, within one host: names and streams (datagrams are
 * dgram.ts). A host's names (net.ts: bindName/unbindName) are its socket files — a file
 * stays, stale, after its socket closes until it is unlinked — and Linux abstract names
 * ("\0name"), gone with their socket; a crash takes them all (the simulator has no disk).
 *
 * A Unix stream connect completes at once, as Linux's does: ENOENT (no such name),
 * ECONNREFUSED (a stale file, or not a stream listener), EAGAIN when the listener's
 * backlog is full (net/unix.ts waits and retries). Both ends are then TCP-like sockets
 * joined by two flows over the host's loopback link, so data, flow control, half-close,
 * resets and close behave as tcp.ts/wire.ts make them.
 *
 * Must never: cross hosts, or remove a name another socket holds.
 * Must never import: lib/executor.ts, lib/task/**, bun:ffi
 */
import { SysError } from "../../errors.ts";
import { SYS } from "../../../ffi/constants.ts";
import { encodeUnix } from "../../../ffi/sockaddr.ts";
import { EAGAIN, ECONNREFUSED, EISCONN, ENOENT } from "./errno.ts";
import type { SimNet } from "./net.ts";
import { Flow, K_UNIX_DGRAM, K_UNIX_STREAM, ST_LISTEN, ST_NEW, ST_OPEN, type SimSocket } from "./socket.ts";
import { EV_CONNECT, EV_ESTABLISHED, EV_SYN, SYN_QUEUED } from "./trace.ts";

/**
 * Encodes a Unix socket name into `out` (a sockaddr_un); "" is an unnamed socket (the
 * family alone). Returns its length.
 *
 * @example
 * ```ts
 * acceptAddrLen[0] = encodeUnixName(acceptAddr, peer.path); // 2 for an unnamed client
 * ```
 */
export function encodeUnixName(out: Uint8Array, path: string): number {
  if (path !== "") return encodeUnix(out, path);
  encodeUnix(out, "-"); // writes the family (and on the BSDs the length byte, unused here)
  out[2] = 0;
  return 2;
}

/**
 * connect(2) of a Unix stream socket to `path` on its own host: connected at once, or a
 * SysError (see the module header).
 *
 * @example
 * ```ts
 * unixConnect(net, sock, "/run/app.sock", "/run/app.sock"); // then sock is ST_OPEN
 * ```
 */
export function unixConnect(net: SimNet, c: SimSocket, path: string, detail: string): void {
  if (c.state === ST_OPEN || c.state === ST_LISTEN) throw new SysError(EISCONN, "connect", undefined, detail);
  const host = c.host;
  const e = host.unixNames.get(path);
  if (e === undefined) throw new SysError(ENOENT, "connect", undefined, detail);
  const l = e.sock;
  if (l === null || l.closed || l.kind !== K_UNIX_STREAM || l.state !== ST_LISTEN) throw new SysError(ECONNREFUSED, "connect", undefined, detail);
  if (l.acceptQ!.length > l.backlog) throw new SysError(EAGAIN, "connect", undefined, detail);
  net.ev(EV_CONNECT, c.id, host.index, 0);
  const s = net.connectionSocket(host, false, l);
  s.path = l.path;
  s.peerPath = c.path;
  c.peerPath = l.path;
  join(net, c, s);
  s.listener = l;
  l.acceptQ!.push(s);
  net.ev(EV_SYN, c.id, SYN_QUEUED, s.id);
  net.ev(EV_ESTABLISHED, c.id, s.id, 0);
  l.wakeRead();
}

/** Makes `a` and `b` the two ends of one connection: open, peers, a flow each way over their host's loopback. */
function join(net: SimNet, a: SimSocket, b: SimSocket): void {
  const link = net.link(a.host, a.host);
  for (const [x, y] of [[a, b], [b, a]] as const) {
    x.state = ST_OPEN;
    x.peer = y;
    x.out = new Flow(x, y, link, net.tcp.wire.deliverFn);
  }
}

/**
 * socketpair(AF_UNIX, type): two connected sockets on the current host, their fds in
 * `fds`; 0, or −EPROTONOSUPPORT for a type that is not SOCK_STREAM or SOCK_DGRAM.
 *
 * @example
 * ```ts
 * unixPair(net, SYS.SOCK_STREAM, fds); // fds[0], fds[1]
 * ```
 */
export function unixPair(net: SimNet, type: number, fds: Int32Array): number {
  const kind = type === SYS.SOCK_STREAM ? K_UNIX_STREAM : K_UNIX_DGRAM;
  const a = net.newSocket(false, kind);
  const b = net.newSocket(false, kind);
  if (kind === K_UNIX_STREAM) join(net, a, b);
  else {
    a.dgPeer = b;
    b.dgPeer = a;
    a.state = b.state = ST_NEW;
  }
  fds[0] = a.fd;
  fds[1] = b.fd;
  return 0;
}

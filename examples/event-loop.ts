/**
 * Seed 003, step 2: a mio-style event loop on the ffi layer — Poll, Token, Events.
 *
 * Instead of spinning on EAGAIN, register interest with epoll and sleep in epoll_wait
 * until the kernel reports readiness. Each fd carries a token; the loop dispatches on it.
 * This serves a tiny echo on a listening socket for a few connections, then exits.
 *
 *   bun run examples/event-loop.ts
 */
import * as libc from "../ffi/libc.ts";
import * as ep from "../ffi/epoll.ts";
import { SYS } from "../ffi/constants.ts";
import { EAGAIN, errnoName } from "../ffi/errno.ts";
import { SOCKADDR_MAX, decodeSockaddr, encodeIPv4, parseIPv4 } from "../ffi/sockaddr.ts";

if (!ep.HAVE_EPOLL) {
  console.error("event-loop.ts demonstrates epoll and runs on Linux only");
  process.exit(0);
}
const ok = (r: number, what: string) => {
  if (r < 0) throw new Error(`${what}: ${errnoName(-r)}`);
  return r;
};

const LISTENER = 0; // token 0 is the listener; connections get 1, 2, …
const NB = SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC;
const lfd = ok(libc.socket(SYS.AF_INET, SYS.SOCK_STREAM | NB, 0), "socket");
const addr = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
ok(libc.bind(lfd, addr, encodeIPv4(addr, parseIPv4("127.0.0.1")!, 0)), "bind");
ok(libc.listen(lfd, 128), "listen");
const len = new Uint32Array([SOCKADDR_MAX]);
ok(libc.getsockname(lfd, addr, len), "getsockname");
const port = decodeSockaddr(addr, len[0]!)!.port;

const epfd = ok(ep.epollCreate(ep.EPOLL_CLOEXEC), "epoll_create1");
ok(ep.epollCtl(epfd, ep.EPOLL_CTL_ADD, lfd, ep.EPOLLIN, LISTENER), "epoll_ctl");
const conns = new Map<number, number>(); // token → fd
let nextToken = 1;

// Three clients (blocking, plain sockets) connect and send once; the loop echoes.
const clients: number[] = [];
for (let i = 0; i < 3; i++) {
  const c = ok(libc.socket(SYS.AF_INET, SYS.SOCK_STREAM | SYS.SOCK_CLOEXEC, 0), "socket");
  const sa = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
  ok(libc.connect(c, sa, encodeIPv4(sa, parseIPv4("127.0.0.1")!, port)), "connect");
  ok(libc.write(c, new TextEncoder().encode(`client ${i}`)), "write");
  clients.push(c);
}

const events = new Uint32Array(new ArrayBuffer(64 * ep.EPOLL_EVENT_SIZE));
const buf = new Uint8Array(4096);
let echoed = 0;
while (echoed < clients.length) {
  const n = ok(ep.epollWait(epfd, events, 64, 1000), "epoll_wait");
  for (let i = 0; i < n; i++) {
    const token = events[i * ep.EPOLL_EVENT_WORDS + ep.EPOLL_DATA_WORD]!;
    if (token === LISTENER) {
      // Accept until EAGAIN: edge or level, the backlog may hold several.
      for (let fd; (fd = libc.accept4(lfd, null, null, NB)) >= 0; ) {
        const t = nextToken++;
        conns.set(t, fd);
        ok(ep.epollCtl(epfd, ep.EPOLL_CTL_ADD, fd, ep.EPOLLIN, t), "epoll_ctl");
        console.log(`token ${t}: accepted fd ${fd}`);
      }
      continue;
    }
    const fd = conns.get(token)!;
    const r = libc.read(fd, buf);
    if (r === -EAGAIN) continue;
    if (r > 0) {
      libc.write(fd, buf.subarray(0, r));
      console.log(`token ${token}: echoed "${new TextDecoder().decode(buf.subarray(0, r))}"`);
      echoed++;
    }
  }
}
for (const c of clients) libc.close(c);
for (const fd of conns.values()) libc.close(fd);
libc.close(lfd);
libc.close(epfd);
console.log("done: every fd was asleep in epoll_wait until the kernel said it was ready");

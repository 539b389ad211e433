// The echo over reel's driver and per-fd interface alone — no executor, no task, no
// connection state machine, no handler call: a plain loop turns the driver and serves the
// connections its wakers queued (up to 4 reads each, as listen() does). bench/echo.ts runs
// it as reel-epoll-driver / reel-uring-driver, between the raw ceilings (../shared/tools)
// and listen() (examples/echo-handlers.ts): the gap from the ceiling to this server is the
// driver's (readiness bookkeeping, the registration slab, the io_uring op table and copies),
// from this server to listen() the runtime's.
//
//   REEL_BACKEND=epoll bun run bench/servers/reel-driver.ts PORT
//
// Must never: be taken for a way to use reel (it skips the runtime, its lifetimes and
// every check but the fd rule), or outlive its port (it serves until killed).
import { SYS } from "../../ffi/constants.ts";
import { encodeIPv4 } from "../../ffi/sockaddr.ts";
import { createDriver, selectedBackend } from "../../lib/driver/index.ts";
import { NO_BUFS, OP_ACCEPT, OP_READ, OP_WRITE, type IoFd } from "../../lib/driver/fd.ts";
import { PENDING, type Context, type Waker } from "../../lib/future.ts";

const port = Number(process.argv[2] ?? 7000);
const backend = selectedBackend();
const d = createDriver(backend);
const api = d.sockets;

/** A connection (or the listener) is its own waker: woken, it joins the ready list once. */
class Conn implements Waker, Context {
  queued = false;
  /** io_uring: a send is in flight (it took a copy); its count is collected before the next send. */
  sending = false;
  constructor(readonly io: IoFd) {}
  get waker(): Waker {
    return this;
  }
  wake(): void {
    if (this.queued) return;
    this.queued = true;
    ready.push(this);
  }
}

const ready: Conn[] = [];
const check = (r: number, what: string) => {
  if (r < 0) throw new Error(`${what} failed: errno ${-r}`);
  return r;
};
const lfd = check(api.socket(SYS.AF_INET, SYS.SOCK_STREAM, 0), "socket");
check(api.setsockoptInt(lfd, SYS.SOL_SOCKET, SYS.SO_REUSEADDR, 1), "setsockopt");
const sa = new Uint8Array(new ArrayBuffer(128));
check(api.bind(lfd, sa, encodeIPv4(sa, Uint8Array.of(127, 0, 0, 1), port)), "bind");
check(api.listen(lfd, 1024), "listen");
const listener = new Conn(d.socket(lfd));
listener.wake();
const buf = new Uint8Array(new ArrayBuffer(64 * 1024));
const views: Uint8Array[] = [];
console.error(`reel echo server: ${backend} backend`);
console.log(`listening on 127.0.0.1:${port}`);

for (;;) {
  for (let k = 0; k < ready.length; k++) {
    const c = ready[k]!;
    c.queued = false;
    if (c === listener) {
      for (;;) {
        const fd = c.io.pollOp(c, OP_ACCEPT, null, NO_BUFS);
        if (fd === PENDING) break;
        const conn = new Conn(d.socket(check(api.adopt(fd), "fcntl")));
        conn.wake();
      }
      continue;
    }
    try {
      for (let i = 0; i < 4; i++) {
        const n = c.io.pollOp(c, OP_READ, buf, NO_BUFS);
        if (n === PENDING) break;
        if (n === 0) {
          c.io.close();
          break;
        }
        // An echo of ≤ 64 KiB to a peer that reads: one send takes it (or an op takes a copy).
        const view = (views[n] ??= buf.subarray(0, n));
        // io_uring: the last send's count first (the closed-loop client only sends again once
        // it has the echo, so that send is done: this call returns its count).
        if (c.sending && c.io.pollOp(c, OP_WRITE, view, NO_BUFS) === PENDING) throw new Error("a send still in flight");
        c.sending = c.io.pollOp(c, OP_WRITE, view, NO_BUFS) === PENDING;
      }
    } catch {
      c.io.close(); // a reset peer: this connection only
    }
  }
  ready.length = 0;
  d.turn(-1);
}

/**
 * The fd rule for the networking fd types, case by case, in the spirit of
 * fd_lifecycle.test.ts: each test pins one hazard that is specific to datagram sockets,
 * Unix sockets with fd passing, or AsyncFd, on every backend where the case exists; the
 * closed number is reused on purpose at once, and the fd table is checked around every
 * test (helpers.ts).
 */
import { expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import { AsyncFd, PENDING, SysError, UdpSocket, UnixDatagram, UnixStream, sleep, type Context } from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";

const noop: Context = { waker: { wake() {} } };
const enc = new TextEncoder();

/** A non-blocking datagram socketpair made with libc: a "next owner" a stray op could hit. */
function dgramPair(): [number, number] {
  const fds = new Int32Array(new ArrayBuffer(8));
  const r = libc.socketpair(SYS.AF_UNIX, SYS.SOCK_DGRAM | SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC, 0, fds);
  if (r < 0) throw new SysError(-r, "socketpair");
  return [fds[0]!, fds[1]!];
}

/** Datagrams readable on a non-blocking fd right now (drains it). */
function drainCount(fd: number): number {
  const buf = new Uint8Array(65536);
  let n = 0;
  for (let i = 0; i < 1000 && libc.read(fd, buf) >= 0; i++) n++;
  return n;
}

forEachBackend("fd lifecycle: networking", ({ run, runtime }) => {
  test("armed_recvmsg_dies_with_close: a cancelled receive's armed op never takes the next owner's datagram", () => {
    run(function* () {
      const s = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
      const fdS = s.fd;
      const r = s.recvMany([new Uint8Array(64), new Uint8Array(64), new Uint8Array(64)]);
      expect(r.poll(noop)).toBe(PENDING); // io_uring: three RECVMSG ops armed for the socket
      yield* sleep(1);
      r.cancel(); // the ops stay armed (receives are cancel-safe) …
      s.close(); // … until close
      const [x, y] = dgramPair(); // the lowest free number: fdS again
      expect([x, y]).toContain(fdS);
      const mine = x === fdS ? x : y;
      const other = mine === x ? y : x;
      for (let i = 0; i < 3; i++) libc.write(other, enc.encode(`for the next owner ${i}`));
      yield* sleep(5); // driver turns: a surviving recvmsg would take one now
      expect(drainCount(mine)).toBe(3);
      libc.close(x);
      libc.close(y);
    });
  });

  test("linked_sendmsg_chain_never_reaches_the_next_owner: a batch waiting on a full peer, closed, sends nothing to the number's next owner", () => {
    run(function* () {
      const [a, b] = UnixDatagram.pair();
      // Fill b's queue (raw sends: on io_uring a send future never completes in its first
      // poll). a's sends now wait — on io_uring the chain's head is poll-armed and the links
      // behind it would resolve the fd only when issued.
      let filled = 0;
      for (let i = 0; i < 10_000 && libc.send(a.fd, new Uint8Array(16).fill(1), SYS.MSG_DONTWAIT) > 0; i++) filled++;
      expect(filled).toBeGreaterThan(0);
      const batch = a.sendMany(Array.from({ length: 5 }, () => ({ data: new Uint8Array(16).fill(2) })));
      expect(batch.poll(noop)).toBe(PENDING);
      yield* sleep(1);
      expect(batch.poll(noop)).toBe(PENDING); // still waiting for room
      const fdA = a.fd;
      batch.cancel();
      a.close();
      const [x, y] = dgramPair();
      expect([x, y]).toContain(fdA);
      const mine = x === fdA ? x : y;
      const other = mine === x ? y : x;
      // Drain b: room again for anything still pending anywhere.
      let fromA = 0;
      for (let k = 0; k < 500 && fromA < filled; k++) {
        const bufs = Array.from({ length: 64 }, () => new Uint8Array(64));
        const r = b.recvMany(bufs);
        const v = r.poll(noop);
        if (v === PENDING) {
          r.cancel(); // cancel-safe: what its armed ops take waits for the next call
          yield* sleep(1);
          continue;
        }
        v.forEach((_, i) => {
          if (bufs[i]![0] === 2) throw new Error("a datagram of the cancelled batch arrived after close");
        });
        fromA += v.length;
      }
      yield* sleep(5); // a late one would arrive now
      const tail = b.recvMany(Array.from({ length: 8 }, () => new Uint8Array(64)));
      expect(tail.poll(noop)).toBe(PENDING);
      tail.cancel();
      expect(fromA).toBe(filled);
      expect(drainCount(other)).toBe(0); // the next owner sent nothing on its own …
      expect(drainCount(mine)).toBe(0); // … and received nothing meant for b
      libc.close(x);
      libc.close(y);
      b.close();
    });
  });

  test("received_fds_of_an_untaken_message_are_closed_with_the_stream: fds the kernel installed for a read nobody took are not leaked", () => {
    run(function* () {
      const [a, b] = UnixStream.pair();
      const r = b.read(new Uint8Array(8));
      expect(r.poll(noop)).toBe(PENDING); // io_uring: a RECVMSG armed, with room for fds
      yield* sleep(1);
      r.cancel();
      const p = new Int32Array(2);
      libc.pipe2(p, SYS.O_NONBLOCK | SYS.O_CLOEXEC);
      yield* a.sendFds(enc.encode("f"), [p[0]!, p[1]!]);
      yield* sleep(2); // the armed receive completes: two fds now exist in this process
      b.close(); // must close them (the fd check after this test sees any leak)
      libc.close(p[0]!);
      libc.close(p[1]!);
      a.close();
    });
  });

  test("asyncfd_into_inner_leaves_no_op_on_the_number: after intoInner() and the owner's close, reel holds nothing on it", () => {
    run(function* () {
      const d = runtime().driver;
      const before = d.pendingWork;
      const p = new Int32Array(2);
      libc.pipe2(p, SYS.O_NONBLOCK | SYS.O_CLOEXEC);
      const afd = new AsyncFd(p[0]!);
      const w = afd.readable();
      expect(w.poll(noop)).toBe(PENDING); // registered (io_uring: a multishot POLL_ADD)
      yield* sleep(1);
      const fd = afd.intoInner();
      expect(d.pendingWork).toBe(before); // no registration, no op left
      libc.close(fd); // the caller's close, as the ownership rule says
      const q = new Int32Array(2);
      libc.pipe2(q, SYS.O_NONBLOCK | SYS.O_CLOEXEC); // the next owner of the number
      expect([q[0], q[1]]).toContain(fd);
      libc.write(q[1]!, enc.encode("next"));
      yield* sleep(2);
      expect(drainCount(q[0]!)).toBe(1);
      expect(() => w.poll(noop)).toThrow(/closed/);
      libc.close(q[0]!);
      libc.close(q[1]!);
      libc.close(p[1]!);
    });
  });
}, { kernel: "kernel fd numbers, reused at once by raw libc sockets; fd passing; AsyncFd over a pipe" });

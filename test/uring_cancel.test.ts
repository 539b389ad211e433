/**
 * io_uring cancellation races, one test per race (the kernel's cancel-vs-completion race): cancel before submit, cancel
 * in flight, complete-then-cancel before the re-poll, and a completion racing its cancel.
 * Every test also checks that no op, owned buffer or fd is left behind.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import { EAGAIN } from "../ffi/errno.ts";
import { PENDING, Runtime, TcpListener, TcpStream, timeout, yieldNow, type Context } from "../lib/index.ts";
import { IoSource } from "../lib/io/source.ts";
import { UringDriver } from "../lib/driver/uring/driver.ts";
import type { RingPath } from "../lib/driver/uring/ring.ts";
import { fdCount } from "./helpers.ts";

const noop: Context = { waker: { wake() {} } };
const enc = new TextEncoder();
const dec = new TextDecoder();

function uringRuntime(path: RingPath): Runtime {
  const prev = process.env.REEL_URING;
  process.env.REEL_URING = path;
  try {
    return new Runtime({ backend: "uring" });
  } finally {
    if (prev === undefined) delete process.env.REEL_URING;
    else process.env.REEL_URING = prev;
  }
}

/** A connected non-blocking AF_UNIX stream pair: [reel stream, raw peer fd]. */
function pair(): [TcpStream, number] {
  const fds = new Int32Array(2);
  expect(libc.socketpair(SYS.AF_UNIX, SYS.SOCK_STREAM | SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC, 0, fds)).toBe(0);
  return [new TcpStream(new IoSource(fds[0]!)), fds[1]!];
}

/** Turns the driver until no op is in flight (bounded: 200 waits of ≤ 10 ms). */
function* settle(d: UringDriver) {
  for (let i = 0; i < 200 && d.inflight > 0; i++) d.turn(10);
  expect(d.inflight).toBe(0);
  yield* yieldNow();
}

/** Turns the driver until `done()` (bounded: 200 waits of ≤ 10 ms); multishot ops are not `inflight`. */
function turnUntil(d: UringDriver, done: () => boolean): void {
  for (let i = 0; i < 200 && !done(); i++) d.turn(10);
  expect(done()).toBe(true);
}

/** Whether this run has multishot recv (REEL_URING_PBUF=0 turns it off). */
const MULTISHOT_RECV = process.env.REEL_URING_PBUF !== "0";

/** A uring Runtime whose provided buffer ring holds only `count` buffers. */
function smallRingRuntime(path: RingPath, count: number): Runtime {
  const prev = process.env.REEL_URING_PBUF;
  process.env.REEL_URING_PBUF = String(count);
  try {
    return uringRuntime(path);
  } finally {
    if (prev === undefined) delete process.env.REEL_URING_PBUF;
    else process.env.REEL_URING_PBUF = prev;
  }
}

/** One driver turn from inside a task: whatever was written to the SQ is now in the kernel. */
function submitNow(d: UringDriver): void {
  d.turn(0);
}

for (const path of ["liburing", "raw"] as RingPath[]) {
  describe(`io_uring cancellation [${path}]`, () => {
    let rt: Runtime;
    let d: UringDriver;
    let fds = 0;
    let ops = 0;
    beforeAll(() => {
      rt = uringRuntime(path);
      d = rt.driver as UringDriver;
    });
    afterAll(() => rt.close());
    beforeEach(() => {
      d.caps.multishotAccept = true;
      fds = fdCount();
      ops = d.opsInUse;
    });
    afterEach(() => {
      // A closed stream's multishot recv ends at its ASYNC_CANCEL's CQE: let it arrive.
      for (let i = 0; i < 100 && (d.opsInUse > ops || (d.pbuf?.held ?? 0) > 0); i++) d.turn(10);
      expect(d.opsInUse).toBe(ops);
      expect(d.pbuf?.held ?? 0).toBe(0);
      expect(d.pool.outstanding).toBe(0);
      expect(fdCount()).toBe(fds);
    });

    test("uring_write_cancelled_before_submit_sends_nothing", () => {
      const [s, peer] = pair();
      rt.blockOn(function* () {
        const w = s.write(enc.encode("never"));
        expect(w.poll(noop)).toBe(PENDING); // the SQE is in the ring, not yet submitted
        expect(d.ring.pending).toBeGreaterThan(0);
        w.cancel(); // rewritten into a NOP before the kernel saw it
        yield* settle(d);
      });
      expect(libc.read(peer, new Uint8Array(new ArrayBuffer(16)))).toBe(-EAGAIN);
      s.close();
      libc.close(peer);
    });

    test("uring_read_cancelled_in_flight_is_cancelled_and_frees_its_buffer", () => {
      const [s, peer] = pair();
      const got = rt.blockOn(function* () {
        const r = s.read(new Uint8Array(16));
        expect(r.poll(noop)).toBe(PENDING);
        submitNow(d); // the recv is now in the kernel
        expect(d.ring.pending).toBe(0);
        r.cancel(); // ASYNC_CANCEL; the CQE says -ECANCELED
        yield* settle(d);
        libc.write(peer, enc.encode("after"));
        const buf = new Uint8Array(16);
        const n = yield* timeout(s.read(buf), 2000);
        return dec.decode(buf.subarray(0, n));
      });
      expect(got).toBe("after");
      s.close();
      libc.close(peer);
    });

    test("uring_read_completed_then_cancelled_before_repoll_keeps_bytes_for_next_read", () => {
      const [s, peer] = pair();
      const got = rt.blockOn(function* () {
        const r = s.read(new Uint8Array(16));
        expect(r.poll(noop)).toBe(PENDING);
        libc.write(peer, enc.encode("kept"));
        yield* settle(d); // the recv's CQE arrived: the op is DONE, never re-polled
        r.cancel(); // too late to cancel: the bytes go to the stream's stash
        const buf = new Uint8Array(16);
        const n = yield* timeout(s.read(buf), 2000);
        return dec.decode(buf.subarray(0, n));
      });
      expect(got).toBe("kept");
      s.close();
      libc.close(peer);
    });

    test("uring_read_cancel_racing_its_completion_loses_no_bytes", () => {
      const [s, peer] = pair();
      const got = rt.blockOn(function* () {
        const out: string[] = [];
        for (let i = 0; i < 50; i++) {
          const r = s.read(new Uint8Array(16));
          expect(r.poll(noop)).toBe(PENDING);
          submitNow(d);
          libc.write(peer, enc.encode(`m${i};`)); // completes in the kernel…
          r.cancel(); // …while the cancel is queued: either outcome keeps the bytes
          yield* settle(d);
          const buf = new Uint8Array(16);
          const n = yield* timeout(s.read(buf), 2000);
          out.push(dec.decode(buf.subarray(0, n)));
        }
        return out.join("");
      });
      expect(got).toBe(Array.from({ length: 50 }, (_, i) => `m${i};`).join(""));
      s.close();
      libc.close(peer);
    });

    test("uring_accept_completed_then_cancelled_hands_the_connection_to_the_next_accept", () => {
      d.caps.multishotAccept = false; // single-shot: the accept op belongs to the future
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = listener.localAddr.port;
      const echoed = rt.blockOn(function* () {
        const a = listener.accept();
        expect(a.poll(noop)).toBe(PENDING);
        const client = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
        yield* settle(d); // the accept's CQE carries the new fd; nobody re-polls
        a.cancel(); // the connection is kept for the listener, not closed, not leaked
        const [srv] = yield* timeout(listener.accept(), 2000);
        yield* client.writeAll(new Uint8Array([42]));
        const b = new Uint8Array(1);
        yield* srv.readExact(b);
        srv.close();
        client.close();
        return b[0];
      });
      expect(echoed).toBe(42);
      listener.close();
    });

    test("uring_accept_completed_then_cancelled_and_never_accepted_is_closed_with_the_listener", () => {
      d.caps.multishotAccept = false;
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = listener.localAddr.port;
      const eof = rt.blockOn(function* () {
        const a = listener.accept();
        expect(a.poll(noop)).toBe(PENDING);
        const client = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
        yield* settle(d);
        a.cancel();
        listener.close(); // closes the queued connection: the client sees EOF
        const n = yield* timeout(client.read(new Uint8Array(8)), 2000);
        client.close();
        return n;
      });
      expect(eof).toBe(0);
    });

    test("uring_accept_cancelled_in_flight_frees_the_op_and_the_listener_keeps_serving", () => {
      d.caps.multishotAccept = false;
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = listener.localAddr.port;
      rt.blockOn(function* () {
        const a = listener.accept();
        expect(a.poll(noop)).toBe(PENDING);
        submitNow(d);
        a.cancel();
        yield* settle(d);
        const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
        const [srv] = yield* listener.accept();
        srv.close();
        c.close();
      });
      listener.close();
    });

    test("uring_multishot_accept_connections_queued_for_nobody_are_closed_with_the_listener", () => {
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = listener.localAddr.port;
      rt.blockOn(function* () {
        const a = listener.accept();
        expect(a.poll(noop)).toBe(PENDING); // arms the multishot accept
        a.cancel(); // the listener's op stays armed
        const clients: TcpStream[] = [];
        for (let i = 0; i < 3; i++) clients.push(yield* TcpStream.connect({ hostname: "127.0.0.1", port }));
        for (let i = 0; i < 5; i++) submitNow(d); // let the CQEs queue the connections
        listener.close(); // closes the queued fds and cancels the multishot op
        for (const c of clients) {
          expect(yield* timeout(c.read(new Uint8Array(8)), 2000)).toBe(0);
          c.close();
        }
        yield* settle(d);
      });
    });

    test.skipIf(!MULTISHOT_RECV)("uring_multishot_recv_queues_bytes_across_cancelled_reads", () => {
      expect(d.caps.multishotRecv).toBe(true);
      const [s, peer] = pair();
      const got = rt.blockOn(function* () {
        const ops0 = d.opsInUse;
        for (let i = 0; i < 3; i++) {
          const r = s.read(new Uint8Array(64));
          expect(r.poll(noop)).toBe(PENDING); // the first arms the multishot recv; the others wait on it
          r.cancel(); // the reader is gone; the op stays armed
        }
        expect(d.opsInUse).toBe(ops0 + 1); // one op for all three reads
        for (let i = 0; i < 3; i++) {
          libc.write(peer, enc.encode(`q${i};`));
          turnUntil(d, () => d.pbuf!.held === i + 1); // a CQE named a ring buffer: queued
        }
        const first = new Uint8Array(3);
        expect(s.read(first).poll(noop)).toBe(3); // ready at the first poll: "q0;" …
        expect(dec.decode(first)).toBe("q0;");
        expect(d.pbuf!.held).toBe(2); // …it took q0; q1 and q2 are still queued
        const buf = new Uint8Array(64);
        const n = yield* timeout(s.read(buf), 2000); // one read drains all three buffers, in order
        expect(d.pbuf!.held).toBe(0); // each consumed buffer went back to the ring
        libc.write(peer, enc.encode("tail"));
        libc.close(peer); // EOF behind the queued "tail"
        const t = new Uint8Array(2);
        const parts = [dec.decode(buf.subarray(0, n))];
        for (let k = 0; k < 3; k++) parts.push(dec.decode(t.subarray(0, yield* timeout(s.read(t), 2000))));
        expect(yield* timeout(s.read(t), 2000)).toBe(0);
        return parts.join("|");
      });
      expect(got).toBe("q1;q2;|ta|il|");
      s.close();
    });

    test.skipIf(!MULTISHOT_RECV)("uring_multishot_recv_close_cancels_the_op_and_recycles_queued_buffers", () => {
      const [s, peer] = pair();
      rt.blockOn(function* () {
        const r = s.read(new Uint8Array(8));
        expect(r.poll(noop)).toBe(PENDING);
        libc.write(peer, enc.encode("unread"));
        turnUntil(d, () => d.pbuf!.held === 1);
        r.cancel();
        s.close(); // recycles the queued buffer at once; the op ends at its cancel's CQE
        expect(d.pbuf!.held).toBe(0);
        libc.write(peer, enc.encode("late")); // never lands in a ring buffer of a closed socket
        yield* yieldNow();
      });
      libc.close(peer);
    });

    test("uring_connect_cancelled_before_submit_closes_its_socket", () => {
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = listener.localAddr.port;
      rt.blockOn(function* () {
        const c = TcpStream.connect({ hostname: "127.0.0.1", port });
        expect(c.poll(noop)).toBe(PENDING);
        c.cancel();
        yield* settle(d);
      });
      listener.close();
    });
  });
}

for (const path of ["liburing", "raw"] as RingPath[]) {
  describe.skipIf(!MULTISHOT_RECV)(`io_uring multishot recv, 2-buffer ring [${path}]`, () => {
    test("uring_multishot_recv_enobufs_rearms_without_loss", () => {
      const fds = fdCount();
      const rt = smallRingRuntime(path, 2);
      const d = rt.driver as UringDriver;
      const ops0 = d.opsInUse;
      const [a, peerA] = pair();
      const [b, peerB] = pair();
      const got = rt.blockOn(function* () {
        const r = a.read(new Uint8Array(8));
        expect(r.poll(noop)).toBe(PENDING);
        r.cancel();
        for (let i = 0; i < 2; i++) {
          libc.write(peerA, enc.encode(`x${i}`));
          turnUntil(d, () => d.pbuf!.held === i + 1);
        }
        const ops = d.opsInUse;
        libc.write(peerA, enc.encode("x2")); // no buffer left: the op ends with ENOBUFS
        turnUntil(d, () => d.opsInUse === ops - 1);
        expect(d.pbuf!.available).toBe(0);
        // The ring is dry: b's read goes single-shot (an owned buffer) and is not delayed.
        libc.write(peerB, enc.encode("b!"));
        const bb = new Uint8Array(8);
        const nb = yield* timeout(b.read(bb), 2000);
        // a: the two queued buffers first, then "x2" from the kernel's socket buffer (re-armed).
        const out: string[] = [dec.decode(bb.subarray(0, nb))];
        const ab = new Uint8Array(8);
        for (let k = 0; k < 2; k++) out.push(dec.decode(ab.subarray(0, yield* timeout(a.read(ab), 2000))));
        return out.join("|");
      });
      expect(got).toBe("b!|x0x1|x2");
      a.close();
      b.close();
      libc.close(peerA);
      libc.close(peerB);
      for (let i = 0; i < 100 && (d.pbuf!.held > 0 || d.opsInUse > ops0); i++) d.turn(10);
      expect(d.pbuf!.held).toBe(0);
      expect(d.opsInUse).toBe(ops0);
      expect(d.pool.outstanding).toBe(0);
      rt.close();
      expect(fdCount()).toBe(fds);
    });
  });
}

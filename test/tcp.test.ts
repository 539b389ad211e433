// TCP on real loopback sockets, on every backend: echo, connect paths, large transfers,
// half-close, EPIPE, timeouts, bad arguments, and no fd leaks (checked around each test).
import { expect, test } from "bun:test";
import {
  SysError,
  TcpListener,
  TcpStream,
  TimeoutError,
  UnexpectedEofError,
  spawn,
  timeout,
  yieldNow,
  type JoinHandle,
} from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";
import { pattern } from "./fault_util.ts";

/**
 * Spawns an echo server task on a fresh listener; returns its port and `stop`, a
 * generator that closes the listener and waits for every connection task to finish.
 */
function* startEcho(): Generator<unknown, { port: number; stop: () => Generator<unknown, void, unknown> }, unknown> {
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<JoinHandle<void>>();
  const acceptor = spawn(function* () {
    for (;;) {
      const [s] = yield* listener.accept();
      const h: JoinHandle<void> = spawn(function* () {
        const buf = new Uint8Array(16384);
        try {
          for (let n; (n = yield* s.read(buf)) > 0; ) yield* s.writeAll(buf.subarray(0, n));
        } finally {
          s.close();
          conns.delete(h);
        }
      });
      conns.add(h);
    }
  });
  const stop = function* () {
    acceptor.abort();
    listener.close();
    for (const h of [...conns]) yield* h;
  };
  return { port: listener.localAddr.port, stop };
}


forEachBackend("tcp", ({ run }) => {
  test("100 concurrent clients each get their own bytes echoed back", () => {
    run(function* () {
      const { port, stop } = yield* startEcho();
      const clients = [];
      for (let i = 0; i < 100; i++) {
        clients.push(
          spawn(function* () {
            const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
            const msg = pattern(1000 + i, i + 1);
            yield* s.writeAll(msg);
            const back = new Uint8Array(msg.length);
            yield* s.readExact(back);
            s.close();
            return Buffer.compare(back, msg) === 0;
          }),
        );
      }
      const ok = [];
      for (const c of clients) ok.push(yield* c);
      yield* stop();
      expect(ok.every(Boolean)).toBe(true);
      expect(ok.length).toBe(100);
    });
  });

  test("connect to a closed port fails with ECONNREFUSED as a SysError", () => {
    const err = run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const port = l.localAddr.port;
      l.close();
      try {
        yield* TcpStream.connect({ hostname: "127.0.0.1", port });
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).code).toBe("ECONNREFUSED");
    expect((err as SysError).syscall).toBe("connect");
    expect((err as SysError).errno).toBeGreaterThan(0);
  });

  test("connect completes against a listener that has not accepted yet (EINPROGRESS path)", () => {
    run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
      expect(c.peerAddr.port).toBe(l.localAddr.port);
      const [s, peer] = yield* l.accept();
      expect(peer.port).toBe(c.localAddr.port);
      expect(peer.address).toBe("127.0.0.1");
      s.close();
      c.close();
      l.close();
    });
  });

  test("8 MB each way with partial writes arrives intact", () => {
    run(function* () {
      const { port, stop } = yield* startEcho();
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
      const data = pattern(8 * 1024 * 1024, 7);
      // Write and read concurrently: neither side's buffers can hold 8 MB.
      const writer = spawn(s.writeAll(data));
      const back = new Uint8Array(data.length);
      yield* s.readExact(back);
      yield* writer;
      s.close();
      yield* stop();
      expect(Buffer.compare(back, data)).toBe(0);
    });
  });

  test("half-close: the peer reads EOF and can still answer", () => {
    const reply = run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const server = spawn(function* () {
        const [s] = yield* l.accept();
        const buf = new Uint8Array(64);
        let total = 0;
        for (let n; (n = yield* s.read(buf.subarray(total))) > 0; ) total += n;
        yield* s.writeAll(new TextEncoder().encode(`got ${total}`));
        s.close();
      });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      yield* c.writeAll(new TextEncoder().encode("hello"));
      c.shutdown("write");
      const buf = new Uint8Array(64);
      let total = 0;
      for (let n; (n = yield* c.read(buf.subarray(total))) > 0; ) total += n;
      yield* server;
      c.close();
      l.close();
      return new TextDecoder().decode(buf.subarray(0, total));
    });
    expect(reply).toBe("got 5");
  });

  test("writing to a peer that has gone fails with EPIPE/ECONNRESET, never SIGPIPE", () => {
    const err = run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      s.close();
      const chunk = new Uint8Array(65536);
      try {
        for (let i = 0; i < 1000; i++) yield* c.writeAll(chunk);
      } catch (e) {
        return e;
      } finally {
        c.close();
        l.close();
      }
    });
    expect(err).toBeInstanceOf(SysError);
    expect(["EPIPE", "ECONNRESET"]).toContain((err as SysError).code);
  });

  test("a read that never completes times out, and the stream still works afterwards", () => {
    run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      const buf = new Uint8Array(16);
      let err: unknown;
      try {
        yield* timeout(c.read(buf), 20);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TimeoutError);
      yield* s.writeAll(new Uint8Array([1, 2, 3]));
      // readExact: a stream may hand the bytes over in parts (the simulator's short reads do).
      yield* c.readExact(buf.subarray(0, 3));
      expect([...buf.subarray(0, 3)]).toEqual([1, 2, 3]);
      s.close();
      c.close();
      l.close();
    });
  });

  test("readExact fails with UnexpectedEofError when the peer closes early", () => {
    const err = run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      yield* s.writeAll(new Uint8Array(3));
      s.close();
      try {
        yield* c.readExact(new Uint8Array(10));
      } catch (e) {
        return e;
      } finally {
        c.close();
        l.close();
      }
    });
    expect(err).toBeInstanceOf(UnexpectedEofError);
    expect((err as UnexpectedEofError).read).toBe(3);
  });

  test("closing a stream fails its pending read with EBADF", () => {
    const err = run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      const reader = spawn(c.read(new Uint8Array(8)));
      yield* yieldNow();
      c.close();
      try {
        yield* reader;
      } catch (e) {
        return (e as Error).cause;
      } finally {
        s.close();
        l.close();
      }
    });
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).code).toBe("EBADF");
  });

  test("IPv6 loopback echo works", () => {
    run(function* () {
      let l: TcpListener;
      try {
        l = TcpListener.bind({ hostname: "::1", port: 0 });
      } catch (e) {
        // A kernel without IPv6 is a machine fact, not a failure of reel.
        expect((e as SysError).code).toBe("EADDRNOTAVAIL");
        return;
      }
      const c = yield* TcpStream.connect({ hostname: "::1", port: l.localAddr.port });
      const [s, peer] = yield* l.accept();
      expect(peer.family).toBe("IPv6");
      expect(peer.address).toBe("::1");
      yield* c.writeAll(new Uint8Array([9]));
      const b = new Uint8Array(1);
      yield* s.readExact(b);
      expect(b[0]).toBe(9);
      s.close();
      c.close();
      l.close();
    });
  });

  test("bad arguments are TypeError/RangeError naming the value; a closed stream is EBADF", () => {
    expect(() => TcpListener.bind({ port: 70000 })).toThrow(/70000/);
    expect(() => TcpListener.bind({ port: -1 })).toThrow(RangeError);
    run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      const detached = new Uint8Array(new ArrayBuffer(8));
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      expect(() => c.read(detached)).toThrow(TypeError);
      expect(() => c.write("text" as never)).toThrow(TypeError);
      expect(() => c.shutdown("sideways" as never)).toThrow(TypeError);
      c.close();
      c.close(); // idempotent
      let err: unknown;
      try {
        yield* c.read(new Uint8Array(1));
      } catch (e) {
        err = e;
      }
      expect((err as SysError).code).toBe("EBADF");
      s.close();
      l.close();
    });
  });

  test("a zero-length read or write completes at once with 0", () => {
    run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      expect(yield* c.read(new Uint8Array(0))).toBe(0);
      expect(yield* c.write(new Uint8Array(0))).toBe(0);
      s.close();
      c.close();
      l.close();
    });
  });

  test("an aborted accept leaves no waker behind and the listener keeps serving", () => {
    run(function* () {
      const l = TcpListener.bind({ port: 0 });
      const pending = spawn(l.accept());
      yield* yieldNow();
      pending.abort();
      const c = yield* TcpStream.connect({ port: l.localAddr.port });
      const [s] = yield* l.accept();
      s.close();
      c.close();
      l.close();
    });
  });
});

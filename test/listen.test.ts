// listen(): the handler-style server (Bun.listen's shape) on every backend — echo, the
// handlers' order, backpressure and drain, end(), stop() with and without closing the
// connections, the signal, task-tree cancellation, handler errors, and no fd leaks
// (checked around each test by forEachBackend).
import { expect, test } from "bun:test";
import {
  JoinError,
  RuntimeError,
  SysError,
  TcpStream,
  listen,
  sleep,
  spawn,
  yieldNow,
  type SocketHandler,
  type TcpConn,
} from "../lib/index.ts";
import { fdCount, forEachBackend } from "./helpers.ts";
import { echoClients, readAll, until } from "./listen_util.ts";
import { pattern } from "./fault_util.ts";

const echo: SocketHandler = { data: (conn, bytes) => void conn.write(bytes) };

forEachBackend("listen", ({ run }) => {
  test("50 concurrent clients each get their own bytes echoed back, and every connection's close handler runs", () => {
    run(function* () {
      let opened = 0;
      let closed = 0;
      const server = listen({ port: 0, socket: { ...echo, open: () => void opened++, close: () => void closed++ } });
      const ok = yield* echoClients(50, () => TcpStream.connect({ hostname: "127.0.0.1", port: server.port }), (i) => 3000 + i * 97);
      expect(ok).toEqual(new Array(50).fill(true));
      yield* until(() => closed === 50, "50 close handlers");
      expect(opened).toBe(50);
      expect(server.connections).toBe(0);
      server.stop();
      yield* server.closed();
    });
  });

  test("a peer's EOF calls end() then close() without an error, after the queued bytes went out", () => {
    run(function* () {
      const events: string[] = [];
      const server = listen({
        port: 0,
        socket: {
          data: (conn, b) => void conn.write(b),
          end: () => void events.push("end"),
          close: (_c, err) => void events.push(err ? `close ${err.message}` : "close"),
        },
      });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* s.writeAll(new TextEncoder().encode("bye"));
      s.shutdown("write");
      expect(new TextDecoder().decode(yield* readAll(s))).toBe("bye");
      s.close();
      yield* until(() => events.length === 2, "end and close");
      expect(events).toEqual(["end", "close"]);
      server.stop();
      yield* server.closed();
    });
  });

  test("conn.end(bytes) sends them, then closes: the client reads them and EOF", () => {
    run(function* () {
      const server = listen({ port: 0, socket: { open: (conn) => conn.end("hello\n") } });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      expect(new TextDecoder().decode(yield* readAll(s))).toBe("hello\n");
      s.close();
      server.stop();
      yield* server.closed();
    });
  });

  test("write() takes at most maxBuffered while the peer does not read, and drain() follows once it reads", () => {
    run(function* () {
      const big = pattern(4 << 20, 7);
      let took = -1;
      let drained = 0;
      const server = listen({
        port: 0,
        maxBuffered: 64 * 1024,
        socket: {
          open(conn) {
            took = conn.write(big);
          },
          drain(conn) {
            drained++;
            conn.end();
          },
        },
      });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* until(() => took >= 0, "open");
      expect(took).toBeLessThan(big.length);
      expect(took).toBeGreaterThan(0);
      const back = yield* readAll(s);
      expect(back.length).toBe(took);
      expect(Buffer.from(back).equals(Buffer.from(big.subarray(0, took)))).toBe(true);
      expect(drained).toBe(1);
      s.close();
      server.stop();
      yield* server.closed();
    });
  });

  test("stop(true) closes every connection (close handlers run), frees the port, and closed() returns", () => {
    run(function* () {
      const conns = new Set<TcpConn>();
      const server = listen({ port: 0, socket: { open: (c) => void conns.add(c), close: (c) => void conns.delete(c) } });
      const clients = [];
      for (let i = 0; i < 5; i++) clients.push(yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port }));
      yield* until(() => conns.size === 5, "5 connections");
      server.stop(true);
      expect(conns.size).toBe(0);
      yield* server.closed();
      for (const c of clients) {
        expect((yield* readAll(c)).length).toBe(0); // EOF: the server closed it
        c.close();
      }
      const err = yield* refused(server.port);
      expect(err).toBe("ECONNREFUSED");
    });
  });

  test("stop() keeps the open connections serving; the task ends when the last one closes", () => {
    run(function* () {
      const server = listen({ port: 0, socket: echo });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* until(() => server.connections === 1, "the connection");
      server.stop();
      expect(yield* refused(server.port)).toBe("ECONNREFUSED");
      yield* s.writeAll(new Uint8Array([1, 2, 3]));
      const buf = new Uint8Array(3);
      yield* s.readExact(buf);
      expect([...buf]).toEqual([1, 2, 3]);
      const done = server.closed();
      expect(done.isFinished).toBe(false);
      s.close();
      yield* done;
    });
  });

  test("aborting the signal stops the server and closes its connections", () => {
    run(function* () {
      const ac = new AbortController();
      let closed = 0;
      const server = listen({ port: 0, signal: ac.signal, socket: { close: () => void closed++ } });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* until(() => server.connections === 1, "the connection");
      ac.abort();
      yield* server.closed();
      expect(closed).toBe(1);
      expect((yield* readAll(s)).length).toBe(0);
      s.close();
    });
  });

  test("cancelling the task that called listen() closes the server and its connections (the task tree)", () => {
    run(function* () {
      let closed = 0;
      let port = 0;
      const parent = spawn(function* () {
        const server = listen({ port: 0, socket: { close: () => void closed++ } });
        port = server.port;
        yield* server.closed();
      });
      yield* until(() => port !== 0, "the server");
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
      yield* sleep(5);
      parent.abort();
      const err = yield* caught(parent);
      expect(err instanceof JoinError && err.isCancelled()).toBe(true);
      expect(closed).toBe(1);
      expect((yield* readAll(s)).length).toBe(0);
      s.close();
      expect(yield* refused(port)).toBe("ECONNREFUSED");
    });
  });

  test("a data() handler that throws closes only its connection when there is an error handler", () => {
    run(function* () {
      const seen: string[] = [];
      const server = listen({
        port: 0,
        socket: {
          data(conn, b) {
            if (b[0] === 0x21) throw new Error("bang");
            conn.write(b);
          },
          error: (_c, err) => void seen.push(err.message),
        },
      });
      const bad = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      const good = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* bad.writeAll(new Uint8Array([0x21]));
      expect((yield* readAll(bad)).length).toBe(0);
      yield* good.writeAll(new Uint8Array([1]));
      const one = new Uint8Array(1);
      yield* good.readExact(one);
      expect(one[0]).toBe(1);
      expect(seen).toEqual(["bang"]);
      bad.close();
      good.close();
      server.stop();
      yield* server.closed();
    });
  });

  test("a handler that throws with no error handler fails the server: everything closes and closed() throws it", () => {
    run(function* () {
      const server = listen({ port: 0, socket: { data: () => { throw new Error("unhandled"); } } });
      const other = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* s.writeAll(new Uint8Array([1]));
      const err = yield* caught(server.closed());
      expect(err instanceof JoinError && err.isFailed()).toBe(true);
      expect(((err as JoinError).cause as Error).message).toBe("unhandled");
      expect((yield* readAll(other)).length).toBe(0);
      other.close();
      s.close();
    });
  });

  test("a reset peer reaches error() as a typed SysError and close(conn, err) follows", () => {
    run(function* () {
      const got: string[] = [];
      const server = listen({
        port: 0,
        socket: {
          open: (conn) => void conn.write(pattern(1 << 20, 3)), // unread bytes: close() sends RST
          error: (_c, err) => void got.push(`error ${(err as SysError).code}`),
          close: (_c, err) => void got.push(err ? `close ${(err as SysError).code}` : "close"),
        },
      });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      s.setNoDelay(true);
      yield* s.writeAll(new Uint8Array([1])); // unread by the server's data (none): the RST needs unread bytes here too
      yield* sleep(5);
      s.close();
      yield* until(() => got.some((g) => g.startsWith("close")), "close");
      const close = got.find((g) => g.startsWith("close"))!;
      // Reset (ECONNRESET/EPIPE, reported to error() then close) or, if the RST raced the
      // reads, a plain EOF: never anything else.
      if (close !== "close") {
        expect(["close ECONNRESET", "close EPIPE"]).toContain(close);
        expect(got[0]).toBe(`error ${close.slice(6)}`);
      }
      server.stop();
      yield* server.closed();
    });
  });

  test("bad options are a RangeError/TypeError naming the value, and leave no fd open", () => {
    run(function* () {
      expect(() => listen({ port: 0, maxBuffered: 0, socket: {} })).toThrow(/maxBuffered 0/);
      expect(() => listen({ port: 0, readBufferSize: 1.5, socket: {} })).toThrow(RangeError);
      expect(() => listen({ port: 0 } as never)).toThrow(TypeError);
      expect(() => listen({ port: 0, signal: {} as AbortSignal, socket: {} })).toThrow(/signal must be an AbortSignal/);
    });
  });

  test("reload() swaps the handlers for the open connection and the next one; a bad argument is a TypeError", () => {
    run(function* () {
      const server = listen({ port: 0, socket: { data: (c, b) => void c.write(b) } });
      const one = new Uint8Array(3);
      const a = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* a.writeAll(Uint8Array.of(1, 2, 3));
      yield* a.readExact(one);
      expect([...one]).toEqual([1, 2, 3]); // echoed
      let closes = 0;
      // A byte-wise change: a stream may deliver the three bytes in more than one data() call.
      server.reload({ socket: { data: (c, b) => void c.write(b.map((x) => x + 10)), close: () => void closes++ } });
      yield* a.writeAll(Uint8Array.of(4, 5, 6));
      yield* a.readExact(one);
      expect([...one]).toEqual([14, 15, 16]); // the open connection: the new data handler
      const b = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* b.writeAll(Uint8Array.of(7, 8, 9));
      yield* b.readExact(one);
      expect([...one]).toEqual([17, 18, 19]); // a new connection too
      a.close();
      b.close();
      yield* until(() => closes === 2, "both close handlers (the new ones)");
      expect(() => server.reload({} as never)).toThrow(TypeError);
      server.stop();
      yield* server.closed();
    });
  });

  test("write() after close returns -1 and handlers are never called again", () => {
    run(function* () {
      let after = -2;
      let dataCalls = 0;
      const server = listen({
        port: 0,
        socket: {
          data(conn) {
            dataCalls++;
            conn.close();
            after = conn.write("x");
          },
        },
      });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      yield* s.writeAll(new Uint8Array([1]));
      expect((yield* readAll(s)).length).toBe(0);
      yield* yieldNow();
      expect(after).toBe(-1);
      expect(dataCalls).toBe(1);
      s.close();
      server.stop();
      yield* server.closed();
    });
  });
});

/** Connects to `port` expecting a refusal: the error code. */
function* refused(port: number): Generator<unknown, string, unknown> {
  try {
    const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
    s.close();
    return "connected";
  } catch (e) {
    return e instanceof SysError ? e.code : String(e);
  }
}

/** Runs a future expecting it to throw: the error. */
function* caught(fut: { [Symbol.iterator](): Iterator<unknown, unknown, unknown> }): Generator<unknown, unknown, unknown> {
  try {
    yield* fut as Iterable<unknown>;
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

test("listen() outside a runtime throws a RuntimeError and closes the socket it bound", () => {
  const before = fdCount();
  expect(() => listen({ port: 0, socket: {} })).toThrow(RuntimeError);
  expect(fdCount()).toBe(before);
});

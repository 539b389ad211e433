// Listeners as streams of connections (TcpListener.incoming(), UnixListener.incoming()) and
// the { signal } option of connect and accept, on every backend, with the fd-count check
// around each test.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PENDING, TcpListener, TcpStream, UnixListener, UnixStream, each, spawn, yieldNow, type Context } from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";

const noop: Context = { waker: { wake() {} } };

forEachBackend("accept streams and signals", ({ run }) => {
  test("incoming() yields each accepted connection in turn, and ends when the listener is closed", () => {
    run(function* () {
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = listener.localAddr.port;
      const clients: TcpStream[] = [];
      for (let i = 0; i < 3; i++) clients.push(yield* TcpStream.connect({ hostname: "127.0.0.1", port }));
      const conns = listener.incoming();
      const got: TcpStream[] = [];
      for (let i = 0; i < 3; i++) {
        const s = yield* conns.next();
        expect(s).toBeInstanceOf(TcpStream);
        got.push(s!);
      }
      // Each accepted stream is connected to one client: a byte written by client i arrives on one of them.
      for (const [i, c] of clients.entries()) yield* c.writeAll(new Uint8Array([i]));
      const seen: number[] = [];
      for (const s of got) {
        const b = new Uint8Array(1);
        yield* s.readExact(b);
        seen.push(b[0]!);
      }
      expect(seen.sort()).toEqual([0, 1, 2]);
      listener.close();
      expect(yield* conns.next()).toBeNull(); // ended, not an EBADF
      expect(yield* conns.next()).toBeNull();
      for (const s of [...got, ...clients]) s.close();
    });
  });

  test("a task waiting in incoming() sees the end when another task closes the listener", () => {
    run(function* () {
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const accepted: TcpStream[] = [];
      const loop = spawn(function* () {
        for (const s of yield* each(listener.incoming())) {
          accepted.push(s);
          yield* each.next();
        }
        return "ended";
      });
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: listener.localAddr.port });
      for (let i = 0; i < 1000 && accepted.length === 0; i++) yield* yieldNow();
      expect(accepted.length).toBe(1);
      listener.close();
      expect(yield* loop).toBe("ended");
      c.close();
      for (const s of accepted) s.close();
    });
  });

  test("accept({ signal }): an abort ends the wait with the signal's reason; the next accept still gets the connection", () => {
    run(function* () {
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const ac = new AbortController();
      const waiting = spawn(function* () {
        try {
          yield* listener.accept({ signal: ac.signal });
          return "accepted";
        } catch (e) {
          return e;
        }
      });
      yield* yieldNow(); // the accept is pending
      ac.abort(new Error("stop accepting"));
      const err = yield* waiting;
      expect((err as Error).message).toBe("stop accepting");
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: listener.localAddr.port });
      const [s] = yield* listener.accept({ signal: new AbortController().signal });
      expect(s).toBeInstanceOf(TcpStream);
      for (const x of [s, c, listener]) x.close();
    });
  });

  test("connect({ signal }): aborted before the first poll it opens nothing; aborted while in flight it closes its socket", () => {
    run(function* () {
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = listener.localAddr.port;
      const pre = new AbortController();
      pre.abort();
      let caught: unknown = null;
      try {
        yield* TcpStream.connect({ hostname: "127.0.0.1", port, signal: pre.signal });
      } catch (e) {
        caught = e;
      }
      expect((caught as DOMException).name).toBe("AbortError");

      const ac = new AbortController();
      const f = TcpStream.connect({ hostname: "127.0.0.1", port, signal: ac.signal });
      expect(f.poll(noop)).toBe(PENDING); // the handshake is under way (a socket is open)
      ac.abort(new Error("gave up"));
      expect(() => f.poll(noop)).toThrow("gave up");
      // The fd check after the test proves the in-flight socket was closed; a connection the
      // kernel completed meanwhile sits in the backlog: accept it and close it.
      listener.close();
    });
  });

  test("bad { signal } values are a TypeError naming the call", () => {
    run(function* () {
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      expect(() => listener.accept({ signal: "soon" as unknown as AbortSignal })).toThrow(/TcpListener\.accept\(\) \{ signal \} must be an AbortSignal/);
      expect(() => TcpStream.connect({ hostname: "127.0.0.1", port: 1, signal: {} as AbortSignal })).toThrow(TypeError);
      listener.close();
    });
  });

  test("UnixListener.incoming() and accept({ signal }) behave as TCP's", () => {
    const dir = mkdtempSync(join(tmpdir(), "reel-incoming-"));
    try {
      run(function* () {
        const listener = UnixListener.bind(join(dir, "s.sock"));
        const c = yield* UnixStream.connect(listener.path);
        const conns = listener.incoming();
        const s = yield* conns.next();
        expect(s).toBeInstanceOf(UnixStream);
        const ac = new AbortController();
        const waiting = spawn(function* () {
          try {
            return yield* listener.accept({ signal: ac.signal });
          } catch (e) {
            return e;
          }
        });
        yield* yieldNow();
        ac.abort(new Error("enough"));
        expect(((yield* waiting) as Error).message).toBe("enough");
        listener.close();
        expect(yield* conns.next()).toBeNull();
        s!.close();
        c.close();
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

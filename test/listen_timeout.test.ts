// listen(): the idle timeout (`conn.timeout(seconds)` and the `timeout` handler, Bun's) on
// every backend. The clock is paused (time control), so a timeout fires when the runtime
// is idle and jumps to it, or when advance() moves the clock — never by real waiting; a
// spinning task keeps the runtime from going idle (and jumping) while bytes are in flight.
import { expect, test } from "bun:test";
import { TcpStream, advance, listen, now, pause, sleep, spawn, yieldNow, type JoinHandle, type SocketHandler, type TcpConn } from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";

/** Keeps the runtime busy (so a paused clock does not jump) until stop() — bounded. */
function spinner(): { stop(): void; done: JoinHandle<void> } {
  let on = true;
  const done = spawn(function* () {
    for (let i = 0; on && i < 10_000_000; i++) yield* yieldNow();
  });
  return { stop: () => void (on = false), done };
}

/** One byte over `s`, and its echo back. */
function* ping(s: TcpStream, b: number): Generator<unknown, number, unknown> {
  yield* s.writeAll(Uint8Array.of(b));
  const one = new Uint8Array(1);
  expect(yield* s.read(one)).toBe(1);
  return one[0]!;
}

const echo: SocketHandler = { data: (conn, bytes) => void conn.write(bytes) };

forEachBackend("listen idle timeout", ({ run }) => {
  test("an idle connection times out: the timeout handler, then close; the client reads EOF", () => {
    run(function* () {
      pause();
      const events: string[] = [];
      let firedAt = -1;
      const t0 = now();
      const server = listen({
        port: 0,
        socket: {
          open: (conn) => conn.timeout(5),
          timeout: () => {
            events.push("timeout");
            firedAt = now() - t0;
          },
          close: (_c, err) => void events.push(err === undefined ? "close" : `close ${err.message}`),
        },
      });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      const buf = new Uint8Array(8);
      expect(yield* s.read(buf)).toBe(0); // idle: the clock jumps to the timeout
      expect(events).toEqual(["timeout", "close"]);
      expect(firedAt).toBeGreaterThanOrEqual(5000);
      s.close();
      server.stop();
      yield* server.closed();
    });
  });

  test("bytes received start the period over: no timeout while active, then one after the last activity", () => {
    run(function* () {
      pause();
      let firedAt = -1;
      const t0 = now();
      const server = listen({
        port: 0,
        socket: { ...echo, open: (conn) => conn.timeout(5), timeout: () => void (firedAt = now() - t0) },
      });
      const spin = spinner();
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      expect(yield* ping(s, 1)).toBe(1);
      yield* advance(3000);
      expect(yield* ping(s, 2)).toBe(2); // activity at ~3000: the period now ends at ~8000
      yield* advance(3000); // 6000: the first timer fires, finds the activity, re-arms
      const lastSent = now() - t0;
      expect(yield* ping(s, 3)).toBe(3);
      expect(firedAt).toBe(-1);
      spin.stop();
      yield* spin.done;
      const buf = new Uint8Array(8);
      expect(yield* s.read(buf)).toBe(0); // idle now: it times out 5 s after the last ping
      // Activity is stamped in whole ms of the timer wheel: at most 1 ms before the send.
      expect(firedAt).toBeGreaterThanOrEqual(lastSent + 5000 - 1);
      expect(firedAt).toBeLessThan(lastSent + 5000 + 1000);
      s.close();
      server.stop();
      yield* server.closed();
    });
  });

  test("a timeout handler that calls timeout() again keeps the connection for another period", () => {
    run(function* () {
      pause();
      let calls = 0;
      const server = listen({
        port: 0,
        socket: {
          open: (conn) => conn.timeout(1),
          timeout(conn) {
            if (++calls === 1) conn.timeout(2); // once more, then let it close
          },
        },
      });
      const t0 = now();
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      const buf = new Uint8Array(8);
      expect(yield* s.read(buf)).toBe(0);
      expect(calls).toBe(2);
      expect(now() - t0).toBeGreaterThanOrEqual(3000);
      s.close();
      server.stop();
      yield* server.closed();
    });
  });

  test("a timeout handler that calls end(bytes) says goodbye: the client reads the bytes, then EOF", () => {
    run(function* () {
      pause();
      const server = listen({
        port: 0,
        socket: {
          open: (conn) => conn.timeout(2),
          timeout: (conn) => conn.end("idle too long\n"),
        },
      });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      const got: number[] = [];
      const buf = new Uint8Array(64);
      for (let n, i = 0; i < 100 && (n = yield* s.read(buf)) > 0; i++) got.push(...buf.subarray(0, n));
      expect(new TextDecoder().decode(Uint8Array.from(got))).toBe("idle too long\n");
      s.close();
      server.stop();
      yield* server.closed();
    });
  });

  test("timeout(0) turns it off; a bad value is a RangeError naming it", () => {
    run(function* () {
      pause();
      let timedOut = false;
      const errors: string[] = [];
      let live: TcpConn | null = null;
      const server = listen({
        port: 0,
        socket: {
          open(conn) {
            for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
              try {
                conn.timeout(bad);
              } catch (e) {
                errors.push(`${(e as Error).name}: ${(e as Error).message}`);
              }
            }
            conn.timeout(1);
            conn.timeout(0);
            live = conn;
          },
          timeout: () => void (timedOut = true),
        },
      });
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port: server.port });
      for (let i = 0; i < 1000 && live === null; i++) yield* yieldNow();
      yield* sleep(60_000); // the idle runtime jumps a minute: nothing may fire
      expect(timedOut).toBe(false);
      expect(live).not.toBeNull();
      expect(live!.isClosed).toBe(false);
      expect(errors).toEqual([
        "RangeError: Invalid timeout -1: must be a finite number of seconds ≥ 0",
        "RangeError: Invalid timeout NaN: must be a finite number of seconds ≥ 0",
        "RangeError: Invalid timeout Infinity: must be a finite number of seconds ≥ 0",
      ]);
      s.close();
      server.stop(true);
      yield* server.closed();
    });
  });
});

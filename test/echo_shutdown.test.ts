/**
 * examples/echo-server.ts shuts down gracefully, on every backend: the test runs it as a
 * child (through reel's own Command), opens clients that are mid-conversation, sends it
 * SIGTERM (or SIGINT), and checks that it stops accepting at once, that every client
 * still gets back every byte it sends until it closes, and that the server then exits 0.
 * A client that never closes is cut off when the grace period ends, and the exit is
 * still 0.
 */
import { expect, test } from "bun:test";
import { join as joinPath } from "node:path";
import { BufReader, Command, SysError, TcpStream, gen, join, timeout, type Child } from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";

const ECHO = joinPath(import.meta.dir, "../examples/echo-server.ts");
const enc = new TextEncoder();


/** Starts the server: the child, a line reader on its stdout, and its port. */
function* startServer(backend: string, graceMs: number): Generator<unknown, { child: Child; lines: BufReader; port: number }, unknown> {
  const child = new Command("bun")
    .args([ECHO, "0"])
    .env("REEL_BACKEND", backend)
    .env("ECHO_GRACE_MS", String(graceMs))
    .stdout("pipe")
    .stderr("null")
    .killOnCancel()
    .spawn();
  const lines = new BufReader(child.stdout!);
  const first = (yield* timeout(lines.readLine(), 20_000)) ?? "";
  const m = /listening on 127\.0\.0\.1:(\d+)/.exec(first);
  if (m === null) throw new Error(`the echo server did not start: ${JSON.stringify(first)}`);
  return { child, lines, port: Number(m[1]) };
}

/** One echo round trip of `msg` on `s`; returns the bytes that came back. */
function* roundTrip(s: TcpStream, msg: Uint8Array): Generator<unknown, Uint8Array, unknown> {
  yield* s.writeAll(msg);
  const back = new Uint8Array(msg.length);
  yield* s.readExact(back);
  return back;
}

/** A message of `n` bytes unique to (client, round). */
function message(client: number, round: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (client * 31 + round * 7 + i) & 0xff;
  return out;
}

/** Every line the server still prints, until EOF. */
function* rest(lines: BufReader): Generator<unknown, string[], unknown> {
  const out: string[] = [];
  for (let l; (l = yield* lines.readLine()) !== null; ) out.push(l);
  return out;
}

forEachBackend("echo server graceful shutdown", ({ run, backend }) => {
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    test(`on ${sig}: stops accepting, open connections finish with every byte echoed, exit 0`, () => {
      const r = run(function* () {
        const { child, lines, port } = yield* startServer(backend, 10_000);
        const clients: TcpStream[] = [];
        try {
          // Five clients, each mid-conversation: one round trip done, so the server serves them.
          for (let c = 0; c < 5; c++) {
            const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
            clients.push(s);
            const back = yield* roundTrip(s, message(c, 0, 100));
            expect(back).toEqual(message(c, 0, 100));
          }
          expect(child.kill(sig)).toBe(true);
          const said = yield* timeout(lines.readLine(), 10_000);
          // New clients are refused now: the listener is closed.
          let refused = "";
          try {
            (yield* TcpStream.connect({ hostname: "127.0.0.1", port })).close();
          } catch (e) {
            refused = (e as SysError).code;
          }
          // The open ones keep going — 20 more round trips of 4 KiB each — and every byte comes back.
          let lost = 0;
          yield* join(
            ...clients.map((s, c) =>
              gen(function* () {
                for (let round = 1; round <= 20; round++) {
                  const msg = message(c, round, 4096);
                  const back = yield* roundTrip(s, msg);
                  for (let i = 0; i < msg.length; i++) if (back[i] !== msg[i]) lost++;
                }
                s.close();
              }),
            ),
          );
          const tail = yield* timeout(gen(() => rest(lines)), 10_000);
          const status = yield* timeout(child.wait(), 10_000);
          return { said, refused, lost, tail, code: status.code };
        } finally {
          for (const s of clients) s.close();
          child.stdout?.close();
        }
      });
      expect(r).toEqual({
        said: `${sig}: shutting down, 5 connection(s) open`,
        refused: "ECONNREFUSED",
        lost: 0,
        tail: ["all connections finished; exiting"],
        code: 0,
      });
    }, 60_000);
  }

  test("a connection that never finishes is cut off when the grace period ends; the exit is still 0", () => {
    const r = run(function* () {
      const { child, lines, port } = yield* startServer(backend, 300);
      const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
      try {
        yield* roundTrip(s, enc.encode("hello"));
        child.kill("SIGTERM");
        const out = yield* timeout(gen(() => rest(lines)), 10_000);
        const status = yield* timeout(child.wait(), 10_000);
        // The server is gone: the idle client reads EOF.
        const n = yield* timeout(s.read(new Uint8Array(8)), 10_000);
        return { out, code: status.code, eof: n };
      } finally {
        s.close();
        child.stdout?.close();
      }
    });
    expect(r).toEqual({ out: ["SIGTERM: shutting down, 1 connection(s) open", "1 connection(s) still open after 300 ms; exiting anyway"], code: 0, eof: 0 });
  }, 60_000);
}, { kernel: "the server is a child process, stopped by real signals" });



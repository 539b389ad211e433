/**
 * The tokio echo server, in reel: accept in a loop (serve()), one task per
 * connection, read into a 64 KiB buffer and write everything back — and a graceful
 * shutdown on SIGINT (Ctrl-C) or SIGTERM.
 *
 *   bun run examples/echo-server.ts [port]     (default 7000; 0 picks a free port)
 *   REEL_BACKEND=poll bun run examples/echo-server.ts 0
 *   ECHO_GRACE_MS=2000 bun run examples/echo-server.ts 0   (default grace: 5000 ms)
 *
 * Prints `listening on 127.0.0.1:PORT` once it accepts connections (the benchmark
 * harness waits for that line). On SIGINT or SIGTERM it prints `SIGTERM: shutting down,
 * N connection(s) open`, stops accepting (the listener is closed: new clients are
 * refused), lets the open connections finish — each ends when its client closes — for at
 * most the grace period, then exits 0, saying how it ended.
 *
 * The task tree does the rest: serve() runs in a task of its own; closing the listener ends
 * it, and its connection tasks — children that keep running when their parent returns —
 * are adopted by the main task. The main task waits for them (counted here with a counter
 * and a Notify) for at most the grace period; when it returns, blockOn halts whatever is
 * still running, each connection's cleanup closing its socket.
 */
import { Notify, TcpListener, TimeoutError, blockOn, currentRuntime, race, serve, signal, spawn, timeout, type TcpStream } from "../lib/index.ts";

const arg = process.argv[2] ?? "7000";
const port = Number(arg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: bun run examples/echo-server.ts [port]  (got "${arg}": must be 0-65535)`);
  process.exit(2);
}
const graceMs = Number(process.env.ECHO_GRACE_MS ?? 5000);
if (!Number.isFinite(graceMs) || graceMs < 0) {
  console.error(`ECHO_GRACE_MS must be a number of ms ≥ 0, got "${process.env.ECHO_GRACE_MS}"`);
  process.exit(2);
}

/** Connections being served now, and a Notify raised when the count drops to zero. */
let open = 0;
const allDone = new Notify();

/**
 * Echoes until the peer closes. serve() closes the stream when this returns or throws, and
 * a peer that reset or went away (ECONNRESET, EPIPE) ends just this connection, quietly.
 */
function* echo(stream: TcpStream) {
  open++;
  try {
    stream.setNoDelay(true);
    const buf = new Uint8Array(65536);
    for (let n; (n = yield* stream.read(buf)) > 0; ) yield* stream.writeAll(buf.subarray(0, n));
  } finally {
    if (--open === 0) allDone.notifyWaiters();
  }
}

/** Waits until no connection is open, for at most `ms`: true when they all finished. */
function* drained(ms: number): Generator<unknown, boolean, unknown> {
  const deadline = performance.now() + ms;
  for (;;) {
    const done = allDone.notified(); // made before the check: a notifyWaiters() after it still counts
    if (open === 0) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    try {
      yield* timeout(done, left);
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      return open === 0;
    }
  }
}

blockOn(function* () {
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port });
  console.log(`listening on ${listener.localAddr}`);
  console.error(`reel echo server: ${currentRuntime()!.backend} backend`);
  using term = signal("SIGTERM");
  using int = signal("SIGINT");
  // One task per connection; out of fds (EMFILE), serve() logs, backs off and keeps accepting.
  const server = spawn(serve(listener, echo), { name: "echo server" });
  // The first signal: close the listener — serve() ends (no more accepts), its connections go on.
  const got = yield* race(term.recv(), int.recv());
  listener.close();
  yield* server;
  console.log(`${got ?? "signal"}: shutting down, ${open} connection(s) open`);
  if (yield* drained(graceMs)) console.log("all connections finished; exiting");
  else console.log(`${open} connection(s) still open after ${graceMs} ms; exiting anyway`);
});
process.exit(0);

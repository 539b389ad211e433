/**
 * The echo server in Bun.listen's shape: listen() with `{ data, drain, close }` handlers.
 * No task, generator or buffer per connection — the fastest way to serve on reel.
 *
 *   bun run examples/echo-handlers.ts [port]     (default 7000; 0 picks a free port)
 *   REEL_BACKEND=uring bun run examples/echo-handlers.ts 0
 *
 * Prints `listening on 127.0.0.1:PORT` once it accepts connections. On SIGINT or SIGTERM
 * it stops accepting and closes every connection (`server.stop(true)`), then exits 0.
 *
 * `bytes` in data() is lent (the server's one read buffer, valid for the call only);
 * write() copies what the kernel does not take at once, so echoing it back is safe. When
 * write() takes less than it was given (the peer does not read and the connection's queue
 * is full), the rest waits in `conn.data` and goes out from drain(), as with Bun.listen.
 */
import { blockOn, currentRuntime, listen, race, signal, type TcpConn } from "../lib/index.ts";

const arg = process.argv[2] ?? "7000";
const port = Number(arg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: bun run examples/echo-handlers.ts [port]  (got "${arg}": must be 0-65535)`);
  process.exit(2);
}

/** Per connection: bytes write() did not take, oldest first (null when none). */
type Backlog = Uint8Array[] | null;

/** Sends the backlog until the connection pushes back again. */
function flush(conn: TcpConn<Backlog>): void {
  const q = conn.data;
  while (q !== null && q.length > 0) {
    const head = q[0]!;
    const n = conn.write(head);
    if (n < 0) return; // closed
    if (n < head.byteLength) {
      q[0] = head.subarray(n);
      return; // drain() comes again
    }
    q.shift();
  }
}

blockOn(function* () {
  const server = listen<Backlog>({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(conn) {
        conn.data = null;
      },
      data(conn, bytes) {
        if (conn.data !== null && conn.data.length > 0) {
          conn.data.push(bytes.slice()); // behind older bytes; a copy: `bytes` is lent
          return;
        }
        const n = conn.write(bytes);
        if (n >= 0 && n < bytes.byteLength) (conn.data ??= []).push(bytes.slice(n));
      },
      drain: flush,
      error() {
        // a reset peer ends only its connection (close follows)
      },
    },
  });
  console.log(`listening on ${server.localAddr}`);
  console.error(`reel echo server: ${currentRuntime()!.backend} backend`);
  using term = signal("SIGTERM");
  using int = signal("SIGINT");
  const got = yield* race(term.recv(), int.recv());
  const open = server.connections;
  server.stop(true);
  yield* server.closed();
  console.log(`${got ?? "signal"}: closed the listener and ${open} connection(s); exiting`);
});
process.exit(0);

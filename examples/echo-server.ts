/**
 * The tokio echo server, in reel: accept in a loop (serve()), one task per
 * connection, read into a 64 KiB buffer and write everything back.
 *
 *   bun run examples/echo-server.ts [port]     (default 7000; 0 picks a free port)
 *   REEL_BACKEND=poll bun run examples/echo-server.ts 0
 *
 * Prints `listening on 127.0.0.1:PORT` once it accepts connections (the benchmark
 * harness waits for that line). Ctrl-C stops it.
 */
import { TcpListener, blockOn, currentRuntime, serve, type TcpStream } from "../lib/index.ts";

const arg = process.argv[2] ?? "7000";
const port = Number(arg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: bun run examples/echo-server.ts [port]  (got "${arg}": must be 0-65535)`);
  process.exit(2);
}

/**
 * Echoes until the peer closes. serve() closes the stream when this returns or throws, and
 * a peer that reset or went away (ECONNRESET, EPIPE) ends just this connection, quietly.
 */
function* echo(stream: TcpStream) {
  stream.setNoDelay(true);
  const buf = new Uint8Array(65536);
  for (let n; (n = yield* stream.read(buf)) > 0; ) yield* stream.writeAll(buf.subarray(0, n));
}

blockOn(function* () {
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port });
  console.log(`listening on ${listener.localAddr}`);
  console.error(`reel echo server: ${currentRuntime()!.backend} backend`);
  // One task per connection; out of fds (EMFILE), serve() logs, backs off and keeps accepting.
  yield* serve(listener, echo);
});

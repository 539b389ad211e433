/**
 * The echo server of examples/echo-server.ts in hosted mode: reel runs inside Bun's event
 * loop (`run()` instead of `blockOn()`), so the same process could also serve HTTP with
 * Bun.serve, use fetch or setTimeout. Compare the two under the same load to see what
 * living inside Bun costs.
 *
 *   bun run examples/echo-server-hosted.ts [port]     (default 7000; 0 picks a free port)
 *   bash /work/shared/tools/build-anchors.sh /tmp/anch && /tmp/anch/echo-load 127.0.0.1 PORT 64 64 5
 *
 * Prints `listening on 127.0.0.1:PORT` once it accepts connections. Ctrl-C stops it.
 */
import { TcpListener, currentRuntime, spawn, type TcpStream } from "../lib/index.ts";
import { run } from "../lib/interop/hosted.ts";

const arg = process.argv[2] ?? "7000";
const port = Number(arg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: bun run examples/echo-server-hosted.ts [port]  (got "${arg}": must be 0-65535)`);
  process.exit(2);
}

/** Echoes until the peer closes; a reset peer ends just this connection. */
function* echo(stream: TcpStream) {
  const buf = new Uint8Array(65536);
  try {
    for (;;) {
      const n = yield* stream.read(buf);
      if (n === 0) return;
      yield* stream.writeAll(buf.subarray(0, n));
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== "ECONNRESET" && code !== "EPIPE") throw err;
  } finally {
    stream.close();
  }
}

await run(function* () {
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port });
  console.log(`listening on ${listener.localAddr}`);
  console.error(`reel echo server (hosted): ${currentRuntime()!.backend} backend`);
  for (;;) {
    const [stream] = yield* listener.accept();
    stream.setNoDelay(true);
    spawn(() => echo(stream));
  }
});

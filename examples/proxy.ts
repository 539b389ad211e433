/**
 * A TCP proxy: every connection accepted on the listening port is joined to a new
 * connection to the upstream, and bytes are copied both ways with copyBidirectional until
 * both sides have finished (a half-close on one side is passed on to the other).
 *
 *   bun run examples/echo-server.ts 7000 &                 (something to proxy to)
 *   bun run examples/proxy.ts [listenPort] [upstreamHost:port]   (default 7002 → 127.0.0.1:7000)
 *   echo hello | nc -q1 127.0.0.1 7002                     (prints hello, via the proxy)
 *
 * Prints `listening on 127.0.0.1:PORT`, then one line per finished connection with the
 * bytes copied each way. Ctrl-C stops it.
 */
import { TcpListener, TcpStream, blockOn, spawn } from "../lib/index.ts";
import { copyBidirectional } from "../lib/io/copy.ts";

const usage = "usage: bun run examples/proxy.ts [listenPort] [upstreamHost:port]";
const listenPort = Number(process.argv[2] ?? "7002");
const upstreamArg = process.argv[3] ?? "127.0.0.1:7000";
const colon = upstreamArg.lastIndexOf(":");
const upstream = { hostname: upstreamArg.slice(0, colon), port: Number(upstreamArg.slice(colon + 1)) };
if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535) {
  console.error(`${usage}  (listen port "${process.argv[2]}": must be 0-65535)`);
  process.exit(2);
}
if (colon <= 0 || !Number.isInteger(upstream.port) || upstream.port < 1 || upstream.port > 65535) {
  console.error(`${usage}  (upstream "${upstreamArg}": must be host:port with port 1-65535)`);
  process.exit(2);
}

/** Proxies one client to a fresh upstream connection. */
function* proxy(id: number, client: TcpStream) {
  let server: TcpStream | null = null;
  try {
    server = yield* TcpStream.connect(upstream);
    client.setNoDelay(true);
    server.setNoDelay(true);
    const [up, down] = yield* copyBidirectional(client, server);
    console.log(`#${id}: ${up} bytes up, ${down} bytes down`);
  } catch (err) {
    console.error(`#${id}: ${(err as Error).message}`);
  } finally {
    server?.close();
    client.close();
  }
}

blockOn(function* () {
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port: listenPort });
  console.log(`listening on ${listener.localAddr}`);
  console.error(`proxying to ${upstream.hostname}:${upstream.port}`);
  for (let id = 1; ; id++) {
    const [client] = yield* listener.accept();
    spawn(() => proxy(id, client));
  }
});

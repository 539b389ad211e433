/**
 * Hosted mode: one process serving HTTP with Bun.serve and a line-based TCP service with
 * reel, the two talking to each other. reel runs inside Bun's event loop (`run()`), so
 * neither stalls the other:
 *
 * - TCP (reel): each line is a command. `time` makes the reel task `fetch()` this
 *   process's own HTTP /time endpoint (a Promise awaited from a reel task: fromPromise);
 *   anything else is echoed upper-cased. Every client also receives HTTP /say messages.
 * - HTTP (Bun.serve): `/time`, `/stats` (counters kept by the reel tasks), and
 *   `/say?msg=…`, which broadcasts to all TCP clients — ordinary Bun code waking reel tasks.
 *
 *   bun run examples/hosted.ts [httpPort] [tcpPort]     (defaults 0 0: free ports)
 *   curl http://127.0.0.1:HTTP/stats
 *   nc 127.0.0.1 TCP   → type `time`, `hello`;   curl 'http://127.0.0.1:HTTP/say?msg=hi'
 *   bun run examples/hosted.ts 0 0 --demo                (runs the steps above and exits)
 *
 * Prints `http on http://127.0.0.1:PORT/` and `listening on 127.0.0.1:PORT` (the TCP port).
 */
import { TcpListener, TcpStream, spawn } from "../lib/index.ts";
import { run } from "../lib/interop/hosted.ts";
import { fromPromise } from "../lib/interop/promise.ts";
import { Framed, FramedRead, FramedWrite } from "../lib/io/framed.ts";
import { LinesCodec } from "../lib/io/codec.ts";
import { split } from "../lib/io/split.ts";
import { broadcast, type BroadcastReceiver } from "../lib/sync/index.ts";

// Positional ports; flags (--demo) may stand anywhere.
const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const [httpPort, tcpPort] = [Number(positional[0] ?? "0"), Number(positional[1] ?? "0")];
for (const p of [httpPort, tcpPort]) {
  if (!Number.isInteger(p) || p < 0 || p > 65535) {
    console.error(`usage: bun run examples/hosted.ts [httpPort] [tcpPort] [--demo]  (got "${p}": must be 0-65535)`);
    process.exit(2);
  }
}

const stats = { connections: 0, lines: 0, fetches: 0 };
const [say, first] = broadcast<string>(64);
first.close();

const http = Bun.serve({
  hostname: "127.0.0.1",
  port: httpPort,
  fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === "/time") return new Response(new Date().toISOString());
    if (url.pathname === "/stats") return Response.json(stats);
    if (url.pathname === "/say") {
      const msg = url.searchParams.get("msg") ?? "";
      // Bun code waking reel tasks: the send wakes each client's writer task.
      const n = say.receiverCount > 0 ? say.send(msg) : 0;
      return new Response(`sent to ${n} client(s)\n`);
    }
    return new Response("try /time, /stats, /say?msg=hi\n", { status: 404 });
  },
});
console.log(`http on ${http.url}`);

/** Forwards /say messages to one client until cancelled. */
function* relay(rx: BroadcastReceiver<string>, out: FramedWrite<string>) {
  for (let msg; (msg = yield* rx.recv()) !== null; ) yield* out.send(`say: ${msg}`);
}

/** Serves one TCP client: commands in, replies out. */
function* client(stream: TcpStream) {
  stats.connections++;
  const [rd, wr] = split(stream);
  const lines = new FramedRead(rd, new LinesCodec());
  const out = new FramedWrite(wr, new LinesCodec());
  const rx = say.subscribe();
  const relayTask = spawn(() => relay(rx, out));
  try {
    for (let line; (line = yield* lines.next()) !== null; ) {
      stats.lines++;
      if (line === "time") {
        stats.fetches++;
        const res = yield* fromPromise(fetch(new URL("/time", http.url)));
        yield* out.send(`time: ${yield* fromPromise(res.text())}`);
      } else yield* out.send(line.toUpperCase());
    }
  } finally {
    relayTask.abort();
    rx.close();
    stream.close();
  }
}

const listener = TcpListener.bind({ hostname: "127.0.0.1", port: tcpPort });
const tcpAddr = listener.localAddr;
console.log(`listening on ${tcpAddr}`);
const server = run(function* () {
  for (;;) {
    const [stream] = yield* listener.accept();
    spawn(() => client(stream));
  }
});

if (process.argv.includes("--demo")) {
  // A reel client in a second hosted run, an HTTP client with fetch, side by side.
  const replies = await run(function* () {
    const c = new Framed(yield* TcpStream.connect({ hostname: "127.0.0.1", port: tcpAddr.port }), new LinesCodec());
    yield* c.send("hello");
    const a = yield* c.next();
    yield* c.send("time");
    const b = yield* c.next();
    // The /say request is made from Bun's side while this reel task waits for the relay.
    const said = fromPromise(fetch(new URL("/say?msg=from+http", http.url)).then((r) => r.text()));
    const d = yield* c.next();
    const sent = yield* said;
    (c.stream as TcpStream).close();
    return [a, b, d, sent.trim()];
  });
  console.log(replies.join("\n"));
  console.log(JSON.stringify(await (await fetch(new URL("/stats", http.url))).json()));
  listener.close(); // the accept loop ends with EBADF
  await server.catch(() => {});
  await http.stop(true);
} else {
  await server;
}

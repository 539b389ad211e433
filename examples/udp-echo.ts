/**
 * A UDP echo server in reel, and a client to try it.
 *
 *   bun run examples/udp-echo.ts [port]            the server (default 7001; 0 picks a free port)
 *   bun run examples/udp-echo.ts --many [port]     the same with recvMany/sendMany (batches)
 *   bun run examples/udp-echo.ts --ping PORT [n]   the client: n pings (default 5), round-trip times
 *   REEL_BACKEND=uring bun run examples/udp-echo.ts 0
 *
 * The server prints `listening on 127.0.0.1:PORT` once bound (the benchmark harness waits
 * for that line) and its backend on stderr. Every datagram goes straight back to its
 * sender; `recvFrom`'s address is handed to `sendTo` as is, so the server allocates no
 * address per datagram. Ctrl-C stops it.
 */
import { SysError, TruncatedError, UdpSocket, blockOn, currentRuntime, now, select, sleep, type SocketAddr } from "../lib/index.ts";

const args = process.argv.slice(2);
const many = args[0] === "--many";
const ping = args[0] === "--ping";
const rest = many || ping ? args.slice(1) : args;

function portArg(s: string | undefined, fallback: number): number {
  const port = Number(s ?? fallback);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`usage: bun run examples/udp-echo.ts [--many] [port] | --ping PORT [count]  (bad port "${s}")`);
    process.exit(2);
  }
  return port;
}

/** One datagram at a time: recvFrom, sendTo. */
function* echo(sock: UdpSocket) {
  const buf = new Uint8Array(65536);
  for (;;) {
    let n: number;
    let from: SocketAddr;
    try {
      [n, from] = yield* sock.recvFrom(buf);
    } catch (e) {
      if (e instanceof TruncatedError) continue; // cannot happen with a 64 KiB buffer
      throw e;
    }
    yield* sock.sendTo(buf.subarray(0, n), from);
  }
}

/** Batches: up to 32 datagrams per recvMany, answered with one sendMany. */
function* echoMany(sock: UdpSocket) {
  const bufs = Array.from({ length: 32 }, () => new Uint8Array(2048));
  for (;;) {
    const got = yield* sock.recvMany(bufs);
    const out = got.filter((d) => !d.truncated).map((d, i) => ({ data: bufs[i]!.subarray(0, d.length), addr: d.addr }));
    for (let sent = 0; sent < out.length; ) sent += yield* sock.sendMany(out.slice(sent));
  }
}

/** The client: `count` pings, each waiting at most a second for its echo. */
function* pinger(port: number, count: number) {
  const sock = UdpSocket.bind({ hostname: "127.0.0.1", port: 0 });
  yield* sock.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(64);
  for (let i = 0; i < count; i++) {
    const t0 = now();
    yield* sock.send(new TextEncoder().encode(`ping ${i}`));
    try {
      const r = yield* select(sock.recv(buf), sleep(1000));
      if (r.index === 1) console.log(`ping ${i}: no answer within 1 s`);
      else console.log(`${new TextDecoder().decode(buf.subarray(0, r.value))}: ${((now() - t0) * 1000).toFixed(0)} µs`);
    } catch (e) {
      // Nobody listens there: the kernel's ICMP "port unreachable" comes back as ECONNREFUSED.
      if (!(e instanceof SysError) || e.code !== "ECONNREFUSED") throw e;
      console.log(`ping ${i}: nothing listens on 127.0.0.1:${port} (ECONNREFUSED)`);
    }
  }
  sock.close();
}

if (ping) {
  const port = portArg(rest[0], -1);
  const count = Number(rest[1] ?? 5);
  blockOn(() => pinger(port, count));
} else {
  const port = portArg(rest[0], 7001);
  blockOn(function* () {
    const sock = UdpSocket.bind({ hostname: "127.0.0.1", port });
    console.log(`listening on ${sock.localAddr}`);
    console.error(`reel udp echo server: ${currentRuntime()!.backend} backend${many ? " (batches)" : ""}`);
    yield* many ? echoMany(sock) : echo(sock);
  });
}

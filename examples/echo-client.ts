/**
 * An echo client: connects, sends a few messages, checks each comes back, prints the
 * round-trip time.
 *
 *   bun run examples/echo-server.ts 7000 &
 *   bun run examples/echo-client.ts 7000 [count]
 */
import { TcpStream, blockOn, now, SysError } from "../lib/index.ts";

const port = Number(process.argv[2] ?? "7000");
const count = Number(process.argv[3] ?? "5");
if (!Number.isInteger(port) || port < 1 || port > 65535 || !Number.isInteger(count) || count < 1) {
  console.error("usage: bun run examples/echo-client.ts PORT [COUNT]");
  process.exit(2);
}

try {
  blockOn(function* () {
    const stream = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
    stream.setNoDelay(true);
    console.log(`connected ${stream.localAddr} → ${stream.peerAddr}`);
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    for (let i = 1; i <= count; i++) {
      const msg = enc.encode(`message ${i} at ${new Date().toISOString()}`);
      const back = new Uint8Array(msg.length);
      const t0 = now();
      yield* stream.writeAll(msg);
      yield* stream.readExact(back);
      const rtt = (now() - t0) * 1000;
      console.log(`echoed "${dec.decode(back)}" in ${rtt.toFixed(0)} µs`);
    }
    stream.close();
  });
} catch (e) {
  if (e instanceof SysError && e.code === "ECONNREFUSED") {
    console.error(`nothing listens on 127.0.0.1:${port}: start examples/echo-server.ts first`);
    process.exit(1);
  }
  throw e;
}

// node-net: a node:net TCP echo server, run by `node` as a reference point.
//
// usage: node bench/servers/node-net.mjs [PORT]   (PORT 0 or absent: any free port)
// Prints exactly one line `listening on 127.0.0.1:PORT` to stdout once it accepts connections.
// pipe() handles partial writes and backpressure (pauses reading while writes are queued).
// It must never crash on a reset connection: every socket has an 'error' handler.
import net from "node:net";

const port = Number(process.argv[2] ?? "0");
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`Cannot listen on port ${process.argv[2]}: must be 0-65535`);
  process.exit(2);
}

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.setNoDelay(true);
  socket.on("error", () => socket.destroy());
  socket.pipe(socket);
});
server.on("error", (err) => {
  console.error(`node-net: ${err.message}`);
  process.exit(1);
});
server.listen({ host: "127.0.0.1", port, backlog: 1024 }, () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});

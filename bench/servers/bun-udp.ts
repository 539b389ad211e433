// The Bun.udpSocket echo server the UDP benchmark compares reel against: every datagram
// goes back to its sender. Prints `listening on 127.0.0.1:PORT` once bound.
//   bun run bench/servers/bun-udp.ts [port]     (0 picks a free port)
const port = Number(process.argv[2] ?? 0);
const sock = await Bun.udpSocket({
  hostname: "127.0.0.1",
  port,
  socket: {
    data(s, buf, rport, addr) {
      s.send(buf, rport, addr);
    },
  },
});
console.log(`listening on 127.0.0.1:${sock.port}`);

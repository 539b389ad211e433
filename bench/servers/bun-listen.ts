// bun-listen: a Bun.listen TCP echo server, the baseline reel is compared against.
//
// usage: bun run bench/servers/bun-listen.ts [PORT]   (PORT 0 or absent: any free port)
// Prints exactly one line `listening on 127.0.0.1:PORT` to stdout once it accepts connections.
//
// Correct for any message size: write() may accept only part of a chunk, so the rest waits
// in a per-socket queue, in order, and goes out from the `drain` handler. It must never drop
// or reorder bytes, and never write while older bytes are still queued.

/** Per-socket state: bytes the kernel has not accepted yet, oldest first. */
interface Pending {
  queue: Uint8Array[];
}

/** Writes queued chunks until the queue is empty or the socket pushes back. */
function flush(socket: Bun.Socket<Pending>): void {
  const q = socket.data.queue;
  while (q.length > 0) {
    const head = q[0]!;
    const n = socket.write(head);
    if (n < 0) {
      q.length = 0; // closed or shutting down: nothing more can go out
      return;
    }
    if (n < head.byteLength) {
      q[0] = head.subarray(n);
      return; // `drain` calls back when there is room again
    }
    q.shift();
  }
}

/** Echoes one chunk, queueing a copy of what the kernel did not take. */
function echo(socket: Bun.Socket<Pending>, data: Uint8Array): void {
  const q = socket.data.queue;
  if (q.length > 0) {
    q.push(new Uint8Array(data)); // keep order behind older bytes; copy: Bun may reuse `data`
    return;
  }
  const n = socket.write(data);
  if (n >= 0 && n < data.byteLength) q.push(new Uint8Array(data.subarray(n)));
}

const port = Number(process.argv[2] ?? "0");
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`Cannot listen on port ${process.argv[2]}: must be 0-65535`);
  process.exit(2);
}

const server = Bun.listen<Pending>({
  hostname: "127.0.0.1",
  port,
  socket: {
    open(socket) {
      socket.data = { queue: [] };
      socket.setNoDelay(true);
    },
    data: echo,
    drain: flush,
    close(socket) {
      if (socket.data) socket.data.queue.length = 0;
    },
    error() {
      // a reset peer only ends that connection; the server keeps serving
    },
  },
});

console.log(`listening on 127.0.0.1:${server.port}`);

/**
 * Seeing inside a running server: runtime.metrics() and runtime.dump() (the task tree,
 * with what each task waits on), then a graceful shutdown through serve()'s { signal }.
 *
 *   bun run examples/inspect.ts            (REEL_BACKEND=uring for io_uring's counters)
 *   REEL_SPAWN_SITES=1 bun run examples/inspect.ts   (spawn sites in the dump)
 *
 * It starts an echo server (serve()), a ticker task iterating an interval stream with
 * each(), and a few clients — one echoing, one idle, one waiting on a lock — then prints
 * the metrics and the tree, aborts the server's signal (every connection is halted with
 * its cleanup) and prints them again. Must never: leave a socket or a task behind (blockOn
 * halts whatever is still running when its body returns).
 */
import {
  Mutex,
  TcpListener,
  TcpStream,
  blockOn,
  currentRuntime,
  each,
  interval,
  serve,
  sleep,
  spawn,
  type TcpStream as Stream,
} from "../lib/index.ts";

/** Echoes until the peer closes; logs when serve() halts it. */
function* echo(stream: Stream) {
  const buf = new Uint8Array(4096);
  try {
    for (let n; (n = yield* stream.read(buf)) > 0; ) yield* stream.writeAll(buf.subarray(0, n));
  } finally {
    yield* sleep(1); // an asynchronous cleanup step: serve() waits for it before closing
  }
}

blockOn(function* main() {
  const rt = currentRuntime()!;
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  const port = listener.localAddr.port;
  const shutdown = new AbortController();
  const server = spawn(serve(listener, echo, { signal: shutdown.signal }), { name: "echo server" });

  spawn(function* ticker() {
    for (const _at of yield* each(interval(50))) yield* each.next();
  }, { name: "ticker" });

  // Clients: one that echoes once and waits, one idle, and one waiting for a lock.
  const lock = new Mutex(0);
  const held = lock.tryLock()!;
  spawn(function* chatty() {
    const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
    yield* s.writeAll(new TextEncoder().encode("hello"));
    yield* s.readExact(new Uint8Array(5));
    try {
      yield* s.read(new Uint8Array(16)); // until the server goes away
    } finally {
      s.close();
    }
  }, { name: "client: chatty" });
  spawn(function* idle() {
    const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
    try {
      yield* s.read(new Uint8Array(16));
    } finally {
      s.close();
    }
  }, { name: "client: idle" });
  spawn(function* waiting() {
    using g = yield* lock.lock();
    g.value++;
  }, { name: "client: waits for a lock" });

  yield* sleep(20); // let everyone connect and park

  console.log("— metrics —");
  console.log(rt.metrics());
  console.log("\n— the task tree —");
  console.log(String(rt.dump()));

  shutdown.abort(); // serve(): stop accepting, halt every connection with its cleanup
  yield* server;
  held.release();
  listener.close();

  console.log("\n— after the graceful shutdown —");
  console.log(String(rt.dump()));
  // Returning here halts what still runs under main (the ticker, the clients).
});
console.log("\nblockOn returned: nothing is left running");

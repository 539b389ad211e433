/**
 * A Unix-socket echo server and a client, in one program: the server listens on a socket
 * file, each connection is a task that echoes what it reads; the client connects, sends a
 * few lines, prints the echoes, then everything shuts down — and the socket file is gone.
 *
 *   bun run examples/unix-echo.ts [path]          (default: a fresh path under the temp dir)
 *   REEL_BACKEND=uring bun run examples/unix-echo.ts
 *
 * Also shows the peer's credentials (who connected: pid, uid, gid) and a clear error for
 * a stale socket file (try running it with the path of a file that exists).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SysError, UnixListener, UnixStream, blockOn, currentRuntime, spawn } from "../lib/index.ts";

const dir = process.argv[2] === undefined ? mkdtempSync(join(tmpdir(), "reel-unix-echo-")) : null;
const path = process.argv[2] ?? join(dir!, "echo.sock");
const enc = new TextEncoder();
const dec = new TextDecoder();

function* echo(stream: UnixStream) {
  const { pid, uid, gid } = stream.peerCred();
  console.log(`server: a client connected (pid ${pid}, uid ${uid}, gid ${gid})`);
  const buf = new Uint8Array(4096);
  for (let n; (n = yield* stream.read(buf)) > 0; ) yield* stream.writeAll(buf.subarray(0, n));
  stream.close();
}

try {
  blockOn(function* () {
    let listener: UnixListener;
    try {
      listener = UnixListener.bind(path);
    } catch (e) {
      if (e instanceof SysError && e.code === "EADDRINUSE") {
        console.error(`cannot listen: ${e.message}`);
        process.exitCode = 1;
        return;
      }
      throw e;
    }
    console.log(`server: listening on ${listener.localAddr} (${currentRuntime()!.backend} backend)`);
    const server = spawn(function* () {
      for (;;) {
        const [stream] = yield* listener.accept();
        spawn(() => echo(stream));
      }
    });

    const client = yield* UnixStream.connect(path);
    for (const line of ["hello", "over a Unix socket", "bye"]) {
      yield* client.writeAll(enc.encode(line));
      const buf = new Uint8Array(line.length);
      yield* client.readExact(buf);
      console.log(`client: echoed "${dec.decode(buf)}"`);
    }
    client.close();

    server.abort();
    listener.close();
    console.log(`server: closed; ${path} ${existsSync(path) ? "is still there (!)" : "was removed"}`);
  });
} finally {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
}

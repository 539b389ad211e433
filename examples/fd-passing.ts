/**
 * Passing file descriptors over a Unix socket (SCM_RIGHTS): a "broker" task owns a file it
 * opened and hands each client an fd for it; the client reads the file through the fd it
 * received, never having opened the file itself. Across processes it works the same way —
 * that is how privilege-separated servers give workers access to files or sockets.
 *
 *   bun run examples/fd-passing.ts
 *   REEL_BACKEND=uring bun run examples/fd-passing.ts
 *
 * The received fd belongs to the receiver: it reads it with node:fs and closes it.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UnixListener, UnixStream, blockOn, spawn } from "../lib/index.ts";

const dir = mkdtempSync(join(tmpdir(), "reel-fd-passing-"));
const secret = join(dir, "secret.txt");
writeFileSync(secret, "only the broker opened this file\n");
const sockPath = join(dir, "broker.sock");

try {
  blockOn(function* () {
    const listener = UnixListener.bind(sockPath);
    const fileFd = openSync(secret, "r"); // the broker's own fd
    const broker = spawn(function* () {
      for (;;) {
        const [client] = yield* listener.accept();
        // One byte of data carries the fd; the client gets its own copy of it.
        yield* client.sendFds(new TextEncoder().encode("!"), [fileFd]);
        client.close();
      }
    });

    for (const name of ["client A", "client B"]) {
      const s = yield* UnixStream.connect(sockPath);
      const [n, fds] = yield* s.recvFds(new Uint8Array(1));
      s.close();
      const fd = fds[0]!;
      const buf = Buffer.alloc(256);
      const k = readSync(fd, buf, 0, buf.length, 0); // read at offset 0: the copies share a file position
      console.log(`${name}: got ${n} byte and fd ${fd}; it reads: ${buf.subarray(0, k).toString().trim()}`);
      closeSync(fd);
    }

    broker.abort();
    listener.close();
    closeSync(fileFd);
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}

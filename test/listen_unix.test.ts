// listen({ unix }): the handler-style server on a Unix stream socket (Bun.listen's `unix`),
// on every backend: echo to many clients, the server's and the connection's addresses, the
// socket file's life (there while serving, removed when the server stops), abstract names,
// the task tree, and the options that cannot go together. Fd leaks are checked around each
// test by forEachBackend.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JoinError, UnixStream, listen, sleep, spawn, type SocketHandler } from "../lib/index.ts";
import { sockets } from "../lib/net/socket.ts";
import { forEachBackend } from "./helpers.ts";
import { echoClients, readAll, until } from "./listen_util.ts";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "reel-listen-unix-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const echo: SocketHandler = { data: (conn, bytes) => void conn.write(bytes) };
const linux = process.platform === "linux";

forEachBackend("listen on a Unix socket", ({ run, backend }) => {
  let n = 0;
  const p = (name: string) => join(dir, `${backend}-${name}-${n++}.sock`);
  /** A socket file at `path`: on the simulator, in the simulated host's names (it has no files). */
  const isSocketFile = (path: string) => (backend === "sim" ? sockets().socketFileId(path) !== null : existsSync(path) && statSync(path).isSocket());

  test("20 concurrent clients each get their own bytes echoed back; the socket file is there while serving and gone after stop", () => {
    const path = p("echo");
    run(function* () {
      let closed = 0;
      const server = listen({ unix: path, socket: { ...echo, close: () => void closed++ } });
      expect(server.unix).toBe(path);
      expect(server.port).toBe(0);
      expect(server.hostname).toBe("");
      expect(server.localAddr.toString()).toContain(path);
      expect(isSocketFile(path)).toBe(true);
      const ok = yield* echoClients(20, () => UnixStream.connect(path), (i) => 2000 + i * 131);
      expect(ok).toEqual(new Array(20).fill(true));
      yield* until(() => closed === 20, "20 close handlers");
      server.stop(true);
      yield* server.closed();
      expect(server.fd).toBe(-1);
      expect(isSocketFile(path)).toBe(false);
    });
  });

  test("a connection's addresses are Unix addresses: the server's path locally, unnamed for the peer", () => {
    const path = p("addr");
    run(function* () {
      let local = "";
      let remote = "?";
      const server = listen({
        unix: path,
        socket: {
          open(conn) {
            local = conn.localAddr.toString();
            remote = conn.remoteAddr.toString();
            conn.end("bye");
          },
        },
      });
      const s = yield* UnixStream.connect(path);
      expect(new TextDecoder().decode(yield* readAll(s))).toBe("bye");
      s.close();
      expect(local).toContain(path);
      expect(remote).not.toContain(path);
      server.stop();
      yield* server.closed();
    });
  });

  test.if(linux)("an abstract name (leading NUL) serves and leaves no file", () => {
    const name = `\0reel-listen-${backend}-${process.pid}-${n++}`;
    run(function* () {
      const server = listen({ unix: name, socket: echo });
      expect(server.unix).toBe(name);
      const s = yield* UnixStream.connect(name);
      yield* s.writeAll(new Uint8Array([7, 8, 9]));
      s.shutdown("write");
      expect([...(yield* readAll(s))]).toEqual([7, 8, 9]);
      s.close();
      server.stop(true);
      yield* server.closed();
    });
  });

  test("cancelling the task that called listen() closes the server, its connections and its socket file", () => {
    const path = p("cancel");
    run(function* () {
      let closed = 0;
      const owner = spawn(function* () {
        listen({ unix: path, socket: { ...echo, close: () => void closed++ } });
        yield* sleep(60_000);
      });
      yield* until(() => isSocketFile(path), "the socket file");
      const s = yield* UnixStream.connect(path);
      yield* s.writeAll(new Uint8Array([1]));
      const one = new Uint8Array(1);
      expect(yield* s.read(one)).toBe(1);
      owner.abort();
      let err: unknown = null;
      try {
        yield* owner;
      } catch (e) {
        err = e;
      }
      expect(err instanceof JoinError && err.isCancelled()).toBe(true);
      expect(closed).toBe(1); // closed before the cancel returned
      expect(yield* s.read(one)).toBe(0); // the server closed its end
      s.close();
      expect(isSocketFile(path)).toBe(false);
    });
  });

  test("unix with hostname/port, or a unix that is not a string, is a TypeError and leaves no fd or file", () => {
    const path = p("bad");
    run(function* () {
      expect(() => listen({ unix: path, port: 0, socket: echo } as never)).toThrow(/either unix or hostname\/port/);
      expect(() => listen({ unix: path, hostname: "127.0.0.1", socket: echo } as never)).toThrow(TypeError);
      expect(() => listen({ unix: 42, socket: echo } as never)).toThrow(/unix must be a path string/);
      expect(isSocketFile(path)).toBe(false);
    });
  });
});

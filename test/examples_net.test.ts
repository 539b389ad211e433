/**
 * The networking examples run as the README shows them (`bun run examples/…`), each in a
 * child process, on every backend this machine runs: they must exit 0 and print what they
 * promise. udp-echo.ts is started as a server and pinged by its own client mode.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { kernelTest, testBackends } from "./helpers.ts";

const root = join(import.meta.dir, "..");

function runExample(args: string[], backend: string): { code: number; out: string } {
  const r = Bun.spawnSync([process.execPath, "run", ...args], { cwd: root, env: { ...process.env, REEL_BACKEND: backend }, stdout: "pipe", stderr: "pipe", timeout: 20_000 });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

/** Starts an example server on port 0: the child, its stdout reader, what it printed, and the port (0 if none). */
async function startServer(example: string, backend: string) {
  const server = Bun.spawn([process.execPath, "run", example, "0"], { cwd: root, env: { ...process.env, REEL_BACKEND: backend }, stdout: "pipe", stderr: "pipe" });
  const reader = server.stdout.getReader();
  let text = "";
  for (let i = 0; i < 100 && !/listening on 127\.0\.0\.1:(\d+)/.test(text); i++) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(text)?.[1] ?? 0);
  return { server, reader, text, port };
}

for (const backend of testBackends()) {
  test(`examples/unix-echo.ts echoes over a Unix socket and removes its file [${backend}]`, () => {
    const { code, out } = runExample(["examples/unix-echo.ts"], backend);
    expect(out).toContain('client: echoed "over a Unix socket"');
    expect(out).toContain("was removed");
    expect(code).toBe(0);
  });

  kernelTest(backend, "fd passing")(`examples/fd-passing.ts reads a file through a received fd [${backend}]`, () => {
    const { code, out } = runExample(["examples/fd-passing.ts"], backend);
    expect(out).toContain("client B: got 1 byte");
    expect(out).toContain("only the broker opened this file");
    expect(code).toBe(0);
  });

  kernelTest(backend, "inotify through AsyncFd on a real fd, over real files")(`examples/inotify.ts reports the changes it makes [${backend}]`, () => {
    if (process.platform !== "linux") return;
    const { code, out } = runExample(["examples/inotify.ts"], backend);
    expect(out).toContain("a.txt: created");
    expect(out).toContain("b.txt: deleted");
    expect(code).toBe(0);
  });

  test(`examples/lookup.ts resolves localhost and reports a name that does not exist [${backend}]`, () => {
    const ok = runExample(["examples/lookup.ts", "localhost"], backend);
    expect(ok.out).toContain("127.0.0.1");
    expect(ok.code).toBe(0);
    const bad = runExample(["examples/lookup.ts", "no-such-host.invalid"], backend);
    expect(bad.out).toContain("no-such-host.invalid: ENOTFOUND");
    expect(bad.code).toBe(1);
  });

  test(`examples/udp-echo.ts serves, and its --ping client gets every echo [${backend}]`, async () => {
    const { server, port: p } = await startServer("examples/udp-echo.ts", backend);
    try {
      const port = p > 0 ? String(p) : undefined;
      expect(port).toBeDefined();
      const { code, out } = runExample(["examples/udp-echo.ts", "--ping", port!, "3"], backend);
      expect(out).toContain("ping 0: ");
      expect(out).toContain("ping 2: ");
      expect(out).not.toContain("no answer");
      expect(code).toBe(0);
    } finally {
      server.kill();
      await server.exited;
    }
  });
}

for (const backend of testBackends()) {
  kernelTest(backend, "a real client (Bun.connect) reaches the server only over loopback")(`examples/echo-handlers.ts echoes 256 KiB back and closes everything on SIGTERM [${backend}]`, async () => {
    const started = await startServer("examples/echo-handlers.ts", backend);
    const { server, reader, port } = started;
    let text = started.text;
    try {
      expect(port).toBeGreaterThan(0);
      const msg = new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 0xff);
      const got: Uint8Array[] = [];
      let gotLen = 0;
      const { promise: echoed, resolve } = Promise.withResolvers<void>();
      const sock = await Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          data(_s, d) {
            got.push(new Uint8Array(d));
            gotLen += d.length;
            if (gotLen >= msg.length) resolve();
          },
        },
      });
      let off = 0;
      const pump = () => {
        while (off < msg.length) {
          const n = sock.write(msg.subarray(off));
          if (n <= 0) return;
          off += n;
        }
      };
      pump();
      const timer = setInterval(pump, 5);
      await Promise.race([echoed, Bun.sleep(15_000)]);
      clearInterval(timer);
      expect(Buffer.concat(got).equals(Buffer.from(msg))).toBe(true);
      server.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text).toContain("SIGTERM: closed the listener and 1 connection(s); exiting");
      sock.end();
    } finally {
      server.kill();
      await server.exited;
    }
  });
}

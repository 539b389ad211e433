// Loopback helpers for the bench harnesses: probe a port until it accepts, find a free port.
// Loopback only. Every wait here is bounded by a number of tries; none sleeps blindly.
import net from "node:net";
import { sleep } from "./children.ts";

/** Tries one TCP connect; resolves true when it is accepted, false on refusal or after `timeoutMs`. */
export function tryConnect(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on("error", () => {});
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

/**
 * Polls `host:port` with connects until one is accepted: at most `tries` attempts, `gapMs` apart.
 * `giveUp` is checked between attempts (e.g. "the server process has exited").
 * @returns true once a connection was accepted, false when the tries ran out or `giveUp` said so.
 */
export async function waitForAccept(
  host: string,
  port: number,
  opts: { tries?: number; gapMs?: number; giveUp?: () => boolean } = {},
): Promise<boolean> {
  const tries = opts.tries ?? 200;
  const gapMs = opts.gapMs ?? 25;
  for (let i = 0; i < tries; i++) {
    if (opts.giveUp?.()) return false;
    if (await tryConnect(host, port)) return true;
    await sleep(gapMs);
  }
  return false;
}

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
 * Another process may take it before the caller binds it: callers retry on bind failure.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error("Cannot find a free port: bind returned none"))));
    });
  });
}

// Helpers the listen() suites share: read to EOF, a bounded wait, and many clients that
// each send their own bytes and check the echo.
import { spawn, sleep, type BaseFuture, type TcpStream, type UnixStream } from "../lib/index.ts";
import { pattern } from "./fault_util.ts";

/** Reads until EOF: all the bytes. */
export function* readAll(s: TcpStream | UnixStream): Generator<unknown, Uint8Array, unknown> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (let n; (n = yield* s.read(buf)) > 0; ) parts.push(buf.slice(0, n));
  return new Uint8Array(Buffer.concat(parts));
}

/** Waits (bounded) until `cond()` holds. */
export function* until(cond: () => boolean, what: string): Generator<unknown, void, unknown> {
  for (let i = 0; i < 2000 && !cond(); i++) yield* sleep(1);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/**
 * `k` concurrent clients, each connecting with `connect()`, sending `size(i)` bytes of its
 * own pattern, shutting down its write side and reading to EOF: whether each got exactly
 * its bytes back.
 */
export function* echoClients(k: number, connect: () => BaseFuture<TcpStream | UnixStream>, size: (i: number) => number): Generator<unknown, boolean[], unknown> {
  const clients = [];
  for (let i = 0; i < k; i++) {
    clients.push(
      spawn(function* () {
        const s = yield* connect();
        const msg = pattern(size(i), i + 1);
        yield* s.writeAll(msg);
        s.shutdown("write");
        const back = yield* readAll(s);
        s.close();
        return Buffer.from(back).equals(Buffer.from(msg));
      }),
    );
  }
  const ok: boolean[] = [];
  for (const c of clients) ok.push(yield* c);
  return ok;
}

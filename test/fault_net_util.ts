/**
 * Helpers shared by the network fault tests (fault_faults, fault_traffic): a serve()d
 * server with a clean stop, a connected pair, and typed-error assertions. Test-only (it
 * uses bun:test); fixtures import fault_util.ts instead.
 */
import { expect } from "bun:test";
import { JoinError, SysError, TcpListener, TcpStream, gen, spawn, timeout, yieldNow, type BaseFuture } from "../lib/index.ts";
import { serve, type ConnectionHandler } from "../lib/net/serve.ts";
import { Tracker } from "./fault_util.ts";

/** The error `fut` fails with (undefined if it succeeds). A failed task's error is its JoinError's cause. */
export function* failure(fut: BaseFuture<unknown>): Generator<unknown, unknown, unknown> {
  try {
    yield* fut;
  } catch (e) {
    return e instanceof JoinError && e.isFailed() ? e.cause : e;
  }
  return undefined;
}

/** An echo-style server run by serve() in this runtime, and how to stop it cleanly. */
export function* startServer(handler: ConnectionHandler, setup?: (l: TcpListener) => void) {
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  setup?.(listener);
  const conns = new Tracker();
  const errors: unknown[] = [];
  const server = spawn(serve(listener, conns.wrap(handler as (s: TcpStream) => Generator<unknown, void, unknown>), { onError: (e) => errors.push(e) }));
  yield* yieldNow();
  return {
    port: listener.localAddr.port,
    conns,
    errors,
    *stop(): Generator<unknown, void, unknown> {
      listener.close();
      yield* server;
      yield* timeout(gen(() => conns.drained()), 10_000);
    },
  };
}

/** A connected pair on a fresh listener: [client, server side]. */
export function* connectedPair(): Generator<unknown, [TcpStream, TcpStream], unknown> {
  const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  try {
    const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
    const [s] = yield* l.accept();
    return [c, s];
  } finally {
    l.close();
  }
}

export function expectSys(err: unknown, codes: string[]): void {
  expect(err).toBeInstanceOf(SysError);
  expect(codes).toContain((err as SysError).code);
}


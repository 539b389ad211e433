// Opens many idle TCP connections to a loopback server from this process (Bun.connect), each
// optionally pinging once so the server has really handled it, and keeps them open until
// closed. Bounded: connects run `inFlight` at a time and the whole open has a deadline.
// Must never leave sockets open after `closeAll`, and never throw for a refused connection.
import type { Socket, SocketHandler } from "bun";

/** Per-socket client state. */
interface ClientState {
  got: number;
  settled: boolean;
  settle: (error: string | null) => void;
}

/** The message each connection sends once and waits to see echoed. */
const PING = new TextEncoder().encode("reel-memory-ping");

/** Sockets that are open, and how many failed (with the first reason). */
export interface IdleClients {
  sockets: Socket<ClientState>[];
  failed: number;
  firstError: string | null;
  timedOut: boolean;
}

/** Ends a client's wait once: null for success, else the reason. */
function finish(s: Socket<ClientState>, error: string | null): void {
  if (!s.data.settled) {
    s.data.settled = true;
    s.data.settle(error);
  }
}

/** The shared handler: ping on open (when asked), done when the ping is echoed. */
function handler(ping: boolean): SocketHandler<ClientState> {
  return {
    open(s) {
      if (!ping) return finish(s, null);
      if (s.write(PING) !== PING.byteLength) finish(s, "could not write the ping");
    },
    data(s, d) {
      s.data.got += d.byteLength;
      if (s.data.got >= PING.byteLength) finish(s, null);
    },
    close: (s) => finish(s, "closed by the server"),
    error: (s, e) => finish(s, e.message),
    connectError: (s, e) => finish(s, e.message),
  };
}

/** Opens one connection; resolves with the socket, or the reason it failed (by `deadline`). */
async function openOne(host: string, port: number, h: SocketHandler<ClientState>, deadline: number): Promise<Socket<ClientState> | string> {
  let settle: (error: string | null) => void = () => {};
  const done = new Promise<string | null>((r) => (settle = r));
  const state: ClientState = { got: 0, settled: false, settle };
  const fail = (why: string): void => {
    if (!state.settled) {
      state.settled = true;
      settle(why);
    }
  };
  const timer = setTimeout(() => fail("timed out"), Math.max(0, deadline - Date.now()));
  const conn = Bun.connect<ClientState>({ hostname: host, port, data: state, socket: h }).catch((e: unknown) => {
    fail(e instanceof Error ? e.message : String(e));
    return null;
  });
  const error = await done;
  clearTimeout(timer);
  if (error !== null) {
    void conn.then((sock) => sock?.terminate()); // it may still connect after a timeout
    return error;
  }
  return (await conn) ?? "connect failed";
}

/**
 * Opens `count` connections to host:port, `inFlight` at a time, stopping at `deadline`
 * (a Date.now() value). With `ping`, each connection counts only once its ping came back.
 */
export async function openIdle(
  host: string,
  port: number,
  count: number,
  opts: { ping: boolean; inFlight: number; deadline: number },
): Promise<IdleClients> {
  const out: IdleClients = { sockets: [], failed: 0, firstError: null, timedOut: false };
  const h = handler(opts.ping);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      if (Date.now() > opts.deadline) {
        out.timedOut = true;
        return;
      }
      next++;
      const r = await openOne(host, port, h, opts.deadline);
      if (typeof r !== "string") out.sockets.push(r);
      else {
        out.failed++;
        out.firstError ??= r;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.inFlight, count) }, worker));
  return out;
}

/** Closes every socket of `clients` (abortively: nothing is pending on an idle connection). */
export function closeAll(clients: IdleClients): void {
  for (const s of clients.sockets) s.terminate();
  clients.sockets.length = 0;
}

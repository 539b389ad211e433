/**
 * A line-based chat server: every line a client sends goes to every other client. One
 * broadcast channel (lib/sync) fans messages out; each client is two tasks over the two
 * halves of its socket — a reader turning lines (LinesCodec) into broadcasts, and a writer
 * turning broadcasts into lines. A slow client that falls behind is told how many messages
 * it missed (the channel's LaggedError) instead of slowing everyone else down.
 *
 *   bun run examples/chat-server.ts [port]      (default 7001; 0 picks a free port)
 *   nc 127.0.0.1 7001                            (in two or more terminals; type lines)
 *
 * Commands: `/nick NAME` renames you, `/quit` leaves. Prints `listening on 127.0.0.1:PORT`.
 */
import { TcpListener, blockOn, spawn, type TcpStream } from "../lib/index.ts";
import { broadcast, LaggedError, type BroadcastReceiver, type BroadcastSender } from "../lib/sync/index.ts";
import { FramedRead, FramedWrite } from "../lib/io/framed.ts";
import { LinesCodec } from "../lib/io/codec.ts";
import { FrameTooLargeError } from "../lib/io/stream.ts";
import { split } from "../lib/io/split.ts";

const arg = process.argv[2] ?? "7001";
const port = Number(arg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: bun run examples/chat-server.ts [port]  (got "${arg}": must be 0-65535)`);
  process.exit(2);
}

/** One chat message: who sent it (client id, 0 = the server) and the text. */
interface Message {
  from: number;
  text: string;
}

/** Messages kept for slow clients before they lag. */
const HISTORY = 256;

/** Sends to everyone still connected (nobody listening is fine). */
function announce(tx: BroadcastSender<Message>, msg: Message): void {
  if (tx.receiverCount > 0) tx.send(msg);
}

/** Writes every broadcast not sent by `id` to the client, until cancelled. */
function* writer(id: number, out: FramedWrite<string>, rx: BroadcastReceiver<Message>) {
  for (;;) {
    let msg: Message | null;
    try {
      msg = yield* rx.recv();
    } catch (err) {
      if (!(err instanceof LaggedError)) throw err;
      yield* out.send(`* you missed ${err.missed} messages`);
      continue;
    }
    if (msg === null) return; // the server shut the channel
    if (msg.from !== id) yield* out.send(msg.text);
  }
}

/** Runs one client until it quits or disconnects. */
function* client(id: number, stream: TcpStream, tx: BroadcastSender<Message>) {
  const [rd, wr] = split(stream);
  const lines = new FramedRead(rd, new LinesCodec({ maxLength: 4096 }));
  const out = new FramedWrite(wr, new LinesCodec());
  const rx = tx.subscribe();
  let nick = `guest${id}`;
  const w = spawn(() => writer(id, out, rx));
  try {
    yield* out.send(`* welcome, ${nick}. /nick NAME to rename, /quit to leave`);
    announce(tx, { from: id, text: `* ${nick} joined` });
    for (;;) {
      let line: string | null;
      try {
        line = yield* lines.next();
      } catch (err) {
        if (!(err instanceof FrameTooLargeError)) throw err;
        yield* out.send("* line too long, dropped");
        continue;
      }
      if (line === null || line === "/quit") break;
      if (line.startsWith("/nick ")) {
        const old = nick;
        nick = line.slice(6).trim() || nick;
        announce(tx, { from: 0, text: `* ${old} is now ${nick}` });
      } else if (line !== "") announce(tx, { from: id, text: `${nick}: ${line}` });
    }
    announce(tx, { from: id, text: `* ${nick} left` });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== "ECONNRESET" && code !== "EPIPE") console.error(`client ${id}:`, err);
  } finally {
    w.abort(); // its recv() is cancel-safe; the writer just stops
    rx.close();
    stream.close();
  }
}

blockOn(function* () {
  const listener = TcpListener.bind({ hostname: "127.0.0.1", port });
  const [tx, first] = broadcast<Message>(HISTORY);
  first.close(); // every client subscribes its own receiver
  console.log(`listening on ${listener.localAddr}`);
  for (let id = 1; ; id++) {
    const [stream, peer] = yield* listener.accept();
    console.error(`client ${id} connected from ${peer}`);
    spawn(() => client(id, stream, tx));
  }
});

/**
 * Byte streams (lib/io/stream.ts, buf.ts, copy.ts, split.ts) and the Web Stream adapters
 * (lib/interop/web.ts), over TCP on every backend and over in-memory mocks.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import {
  Runtime,
  TcpListener,
  TcpStream,
  TimeoutError,
  UnexpectedEofError,
  gen,
  sleep,
  spawn,
  timeout,
} from "../lib/index.ts";
import { BufReader, BufWriter } from "../lib/io/buf.ts";
import { copy, copyBidirectional } from "../lib/io/copy.ts";
import { reunite, split } from "../lib/io/split.ts";
import { FrameTooLargeError, WriteZeroError, flush, read, readExact, shutdown, writeAll } from "../lib/io/stream.ts";
import { run } from "../lib/interop/hosted.ts";
import { toReadableStream, toWritableStream } from "../lib/interop/web.ts";
import { watcherReady } from "../lib/interop/watcher.ts";
import { forEachBackend } from "./helpers.ts";
import { MockReader, MockWriter } from "./io_mock.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

beforeAll(async () => {
  await watcherReady(); // process-wide: before any fd baseline
});

/** A connected pair of TCP streams (the listener is closed again). */
function* tcpPair() {
  const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
  try {
    const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
    const [s] = yield* l.accept();
    return [c, s] as const;
  } finally {
    l.close();
  }
}

/** Reads until EOF. */
function* readAll(r: { pollRead: TcpStream["pollRead"] }) {
  const out: number[] = [];
  const buf = new Uint8Array(4096);
  for (let n; (n = yield* read(r, buf)) > 0; ) for (let i = 0; i < n; i++) out.push(buf[i]!);
  return new Uint8Array(out);
}

/** A deterministic payload of `n` bytes. */
const payload = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);

forEachBackend("BufReader over TCP", ({ run: block }) => {
  test("readLine splits lines across writes, strips \\r\\n, returns the last unterminated line, then null", () => {
    const lines = block(function* () {
      const [c, s] = yield* tcpPair();
      const r = new BufReader(s, { capacity: 16 });
      yield* c.writeAll(enc.encode("first li"));
      const got: (string | null)[] = [];
      const t = spawn(gen(function* () {
        for (let i = 0; i < 4; i++) got.push(yield* r.readLine());
      }));
      yield* sleep(2);
      yield* c.writeAll(enc.encode("ne\r\nsecond\n\nlast without newline"));
      c.shutdown("write");
      yield* t;
      c.close();
      s.close();
      return got;
    });
    expect(lines).toEqual(["first line", "second", "", "last without newline"]);
  });

  test("readUntil keeps the delimiter; read() drains the buffer before reading the socket", () => {
    const out = block(function* () {
      const [c, s] = yield* tcpPair();
      yield* c.writeAll(enc.encode("a;bb;rest"));
      c.shutdown("write");
      const r = new BufReader(s);
      const a = yield* r.readUntil(0x3b);
      const b = yield* r.readUntil(0x3b);
      const rest = yield* readAll(r);
      const end = yield* r.readUntil(0x3b);
      c.close();
      s.close();
      return [dec.decode(a!), dec.decode(b!), dec.decode(rest), end];
    });
    expect(out).toEqual(["a;", "bb;", "rest", null]);
  });

  test("readLine is cancel-safe: a timed-out readLine loses nothing of the partial line", () => {
    const out = block(function* () {
      const [c, s] = yield* tcpPair();
      const r = new BufReader(s);
      yield* c.writeAll(enc.encode("partial "));
      let err: unknown = null;
      try {
        yield* timeout(r.readLine(), 5);
      } catch (e) {
        err = e;
      }
      yield* c.writeAll(enc.encode("line\n"));
      const line = yield* r.readLine();
      c.close();
      s.close();
      return [err instanceof TimeoutError, line];
    });
    expect(out).toEqual([true, "partial line"]);
  });

  test("a line over maxLength throws FrameTooLargeError and the next line reads normally", () => {
    const out = block(function* () {
      const [c, s] = yield* tcpPair();
      const r = new BufReader(s, { capacity: 8, maxLength: 10 });
      yield* c.writeAll(enc.encode("x".repeat(40)));
      const t = spawn(gen(function* () {
        let err: unknown = null;
        try {
          yield* r.readLine();
        } catch (e) {
          err = e;
        }
        return [err, yield* r.readLine()] as const;
      }));
      yield* sleep(2);
      yield* c.writeAll(enc.encode("yyyy\nshort\n"));
      const [err, next] = yield* t;
      c.close();
      s.close();
      return [err instanceof FrameTooLargeError && (err as FrameTooLargeError).max === 10, next];
    });
    expect(out).toEqual([true, "short"]);
  });
});

describe("BufReader and BufWriter over mocks", () => {
  const rt = new Runtime();

  test("BufReader bypasses its buffer for reads at least its capacity, and refills for small ones", () => {
    const m = new MockReader("0123456789abcdef", "ghij");
    const r = new BufReader(m, { capacity: 8 });
    const out = rt.blockOn(function* () {
      const big = new Uint8Array(16);
      const n1 = yield* r.read(big);
      const small = new Uint8Array(2);
      const n2 = yield* r.read(small);
      return [dec.decode(big.subarray(0, n1)), dec.decode(small.subarray(0, n2)), dec.decode(r.buffer)];
    });
    expect(out).toEqual(["0123456789abcdef", "gh", "ij"]);
  });

  test("BufWriter batches small writes into one inner write on flush", () => {
    const w = new MockWriter();
    const bw = new BufWriter(w, { capacity: 64 });
    rt.blockOn(function* () {
      for (let i = 0; i < 10; i++) yield* bw.writeAll(enc.encode(`${i},`));
      expect(w.writes).toBe(0);
      expect(bw.buffered).toBe(20);
      yield* bw.flush();
    });
    expect(w.writes).toBe(1);
    expect(w.flushes).toBe(1);
    expect(w.text()).toBe("0,1,2,3,4,5,6,7,8,9,");
  });

  test("BufWriter writes big buffers straight through and shutdown flushes first", () => {
    const w = new MockWriter(10);
    const bw = new BufWriter(w, { capacity: 8 });
    rt.blockOn(function* () {
      yield* bw.writeAll(enc.encode("ab"));
      yield* bw.writeAll(enc.encode("0123456789XYZ"));
      yield* bw.shutdown();
    });
    expect(w.text()).toBe("ab0123456789XYZ");
    expect(w.shutdowns).toBe(1);
  });

  test("BufWriter flush is cancel-safe: a cancelled flush keeps the bytes for the next one", () => {
    const w = new MockWriter();
    const bw = new BufWriter(w);
    const err = rt.blockOn(function* () {
      yield* bw.writeAll(enc.encode("kept"));
      w.blocked = true;
      try {
        yield* timeout(bw.flush(), 2);
        return null;
      } catch (e) {
        return e;
      }
    });
    expect(err).toBeInstanceOf(TimeoutError);
    expect(bw.buffered).toBe(4);
    w.unblock();
    rt.blockOn(flush(bw));
    expect(w.text()).toBe("kept");
  });

  test("writeAll to a writer that accepts 0 bytes throws WriteZeroError; readExact at EOF throws UnexpectedEofError", () => {
    const zero = { pollWrite: () => 0, pollFlush: () => undefined, pollShutdown: () => undefined };
    expect(() => rt.blockOn(writeAll(zero, enc.encode("x")))).toThrow(WriteZeroError);
    expect(() => rt.blockOn(readExact(new MockReader("ab", ""), new Uint8Array(4)))).toThrow(UnexpectedEofError);
  });

  test("copy flushes a buffered writer while the reader waits, and at EOF", () => {
    const m = new MockReader("hello ");
    const w = new MockWriter();
    const bw = new BufWriter(w);
    const n = rt.blockOn(function* () {
      const h = spawn(copy(m, bw));
      yield* sleep(1);
      const flushedWhileWaiting = w.text();
      m.push("world");
      m.end();
      const total = yield* h;
      return [flushedWhileWaiting, total];
    });
    expect(n).toEqual(["hello ", 11]);
    expect(w.text()).toBe("hello world");
  });
});

forEachBackend("copy and split over TCP", ({ run: block }) => {
  test("copy moves 1 MiB from one socket to another, byte for byte", () => {
    const data = payload(1 << 20);
    const [n, got] = block(function* () {
      const [a1, a2] = yield* tcpPair();
      const [b1, b2] = yield* tcpPair();
      const writer = spawn(gen(function* () {
        yield* a1.writeAll(data);
        a1.shutdown("write");
      }));
      const copier = spawn(gen(function* () {
        const n = yield* copy(a2, b1);
        b1.shutdown("write");
        return n;
      }));
      const got = yield* readAll(b2);
      yield* writer;
      const n = yield* copier;
      for (const s of [a1, a2, b1, b2]) s.close();
      return [n, got] as const;
    });
    expect(n).toBe(data.length);
    expect(got).toEqual(data);
  });

  test("copyBidirectional proxies both ways and propagates half-close to each side", () => {
    const out = block(function* () {
      const [client, proxyIn] = yield* tcpPair();
      const [proxyOut, upstream] = yield* tcpPair();
      const proxy = spawn(copyBidirectional(proxyIn, proxyOut));
      // upstream: echo uppercase until EOF, then close its side.
      const echo = spawn(gen(function* () {
        const data = yield* readAll(upstream);
        yield* upstream.writeAll(enc.encode(dec.decode(data).toUpperCase()));
        upstream.shutdown("write");
      }));
      yield* client.writeAll(enc.encode("through the proxy"));
      client.shutdown("write");
      const reply = yield* readAll(client);
      const counts = yield* proxy;
      yield* echo;
      for (const s of [client, proxyIn, proxyOut, upstream]) s.close();
      return [dec.decode(reply), counts];
    });
    expect(out).toEqual(["THROUGH THE PROXY", [17, 17]]);
  });

  test("a copy cancelled by timeout leaves both sockets usable", () => {
    const out = block(function* () {
      const [a1, a2] = yield* tcpPair();
      const [b1, b2] = yield* tcpPair();
      let err: unknown = null;
      try {
        yield* timeout(copy(a2, b1), 3);
      } catch (e) {
        err = e;
      }
      yield* a1.writeAll(enc.encode("after"));
      const buf = new Uint8Array(5);
      yield* a2.readExact(buf);
      for (const s of [a1, a2, b1, b2]) s.close();
      return [err instanceof TimeoutError, dec.decode(buf)];
    });
    expect(out).toEqual([true, "after"]);
  });

  test("a copyBidirectional cancelled by timeout leaves both sockets usable in both directions", () => {
    const out = block(function* () {
      const [c, p1] = yield* tcpPair();
      const [p2, u] = yield* tcpPair();
      let err: unknown = null;
      try {
        yield* timeout(copyBidirectional(p1, p2), 3);
      } catch (e) {
        err = e;
      }
      yield* c.writeAll(enc.encode("up"));
      yield* u.writeAll(enc.encode("dn"));
      const a = new Uint8Array(2);
      const b = new Uint8Array(2);
      yield* p1.readExact(a);
      yield* p2.readExact(b);
      for (const s of [c, p1, p2, u]) s.close();
      return [err instanceof TimeoutError, dec.decode(a), dec.decode(b)];
    });
    expect(out).toEqual([true, "up", "dn"]);
  });

  test("split halves read and write from two tasks at once; reunite gives the stream back", () => {
    const out = block(function* () {
      const [c, s] = yield* tcpPair();
      const [rd, wr] = split(s);
      const reader = spawn(gen(function* () {
        const buf = new Uint8Array(3);
        yield* rd.readExact(buf);
        return dec.decode(buf);
      }));
      const writer = spawn(gen(function* () {
        yield* wr.writeAll(enc.encode("pong"));
        yield* wr.shutdown();
      }));
      yield* sleep(1);
      yield* c.writeAll(enc.encode("png"));
      const got = yield* reader;
      yield* writer;
      const back = yield* readAll(c);
      const same = reunite(rd, wr) === s;
      const [rd2] = split(s);
      let mismatch = "";
      try {
        reunite(rd2, wr);
      } catch (e) {
        mismatch = (e as Error).name;
      }
      c.close();
      s.close();
      return [got, dec.decode(back), same, mismatch];
    });
    expect(out).toEqual(["png", "pong", true, "TypeError"]);
  });
});

forEachBackend("Web streams in hosted mode", ({ runtime }) => {
  test("for await over toReadableStream(socket) yields every byte, then ends at EOF", async () => {
    const rt = runtime();
    const data = payload(100_000);
    const [c, s] = await run(tcpPair, { runtime: rt });
    const sending = run(function* () {
      yield* c.writeAll(data);
      c.shutdown("write");
    }, { runtime: rt });
    const parts: Uint8Array[] = [];
    for await (const chunk of toReadableStream(s, { runtime: rt, chunkSize: 4096 })) parts.push(chunk);
    await sending;
    c.close();
    s.close();
    expect(Buffer.concat(parts)).toEqual(Buffer.from(data));
    expect(parts.every((p) => p.length <= 4096)).toBe(true);
  });

  test("backpressure: the stream reads nothing until the consumer asks", async () => {
    const rt = runtime();
    const m = new MockReader("one", "two");
    const rs = toReadableStream(m, { runtime: rt });
    await Bun.sleep(2);
    expect(m.reads).toBe(0);
    const reader = rs.getReader();
    const first = await reader.read();
    expect(dec.decode(first.value)).toBe("one");
    await Bun.sleep(2);
    expect(m.reads).toBe(1);
    await reader.cancel();
  });

  test("cancel() aborts a pending read and closes the socket: the peer sees EOF", async () => {
    const rt = runtime();
    const [c, s] = await run(tcpPair, { runtime: rt });
    const reader = toReadableStream(s, { runtime: rt }).getReader();
    const pending = reader.read();
    await Bun.sleep(2);
    await reader.cancel();
    expect((await pending).done).toBe(true);
    expect(s.fd).toBe(-1);
    const eof = await run(c.read(new Uint8Array(8)), { runtime: rt });
    expect(eof).toBe(0);
    c.close();
  });

  test("toWritableStream: pipeTo writes every chunk, then close() shuts the write side", async () => {
    const rt = runtime();
    const [c, s] = await run(tcpPair, { runtime: rt });
    const chunks = ["alpha ", "beta ", "gamma"].map((x) => enc.encode(x));
    const received = run(() => readAll(s), { runtime: rt });
    await new ReadableStream<Uint8Array>({
      start(ctl) {
        for (const ch of chunks) ctl.enqueue(ch);
        ctl.close();
      },
    }).pipeTo(toWritableStream(c, { runtime: rt }));
    expect(dec.decode(await received)).toBe("alpha beta gamma");
    c.close();
    s.close();
  });

  test("abort() of a WritableStream cancels the pending write and closes the socket", async () => {
    const rt = runtime();
    const w = new MockWriter();
    w.blocked = true;
    let closed = 0;
    const ws = toWritableStream(Object.assign(w, { close: () => closed++ }), { runtime: rt });
    const writer = ws.getWriter();
    const pending = writer.write(enc.encode("stuck"));
    await Bun.sleep(2);
    await writer.abort(new Error("give up"));
    await expect(pending).rejects.toThrow();
    expect(closed).toBe(1);
    expect(w.text()).toBe("");
  });

  test("a Web stream over a BufWriter flushes on close()", async () => {
    const rt = runtime();
    const w = new MockWriter();
    const ws = toWritableStream(new BufWriter(w), { runtime: rt });
    const writer = ws.getWriter();
    await writer.write(enc.encode("buffered"));
    expect(w.writes).toBe(0);
    await writer.close();
    expect(w.text()).toBe("buffered");
    expect(w.shutdowns).toBe(1);
    await run(shutdown(w), { runtime: rt });
  });
});

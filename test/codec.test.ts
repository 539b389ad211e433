/**
 * Codecs and framing (lib/io/codec.ts, framed.ts, bytes.ts): units over ByteBuffer and
 * mocks, then Framed over TCP on every backend.
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
import { ByteBuffer } from "../lib/io/bytes.ts";
import { LengthDelimitedCodec, LinesCodec } from "../lib/io/codec.ts";
import { Framed, FramedRead, FramedWrite } from "../lib/io/framed.ts";
import { FrameTooLargeError } from "../lib/io/stream.ts";
import { run } from "../lib/interop/hosted.ts";
import { frames } from "../lib/interop/web.ts";
import { watcherReady } from "../lib/interop/watcher.ts";
import { forEachBackend } from "./helpers.ts";
import { MockReader, MockWriter } from "./io_mock.ts";

const enc = new TextEncoder();

beforeAll(async () => {
  await watcherReady();
});

/** A buffer holding `s`. */
const buf = (s: string | Uint8Array) => {
  const b = new ByteBuffer(4);
  b.append(typeof s === "string" ? enc.encode(s) : s);
  return b;
};

/** Every frame `decode` yields from `b`, errors as "ERR:<name>". */
function drain<T>(decode: (b: ByteBuffer) => T | null, b: ByteBuffer): (T | string)[] {
  const out: (T | string)[] = [];
  for (let i = 0; i < 100; i++) {
    try {
      const f = decode(b);
      if (f === null) break;
      out.push(f);
    } catch (e) {
      out.push(`ERR:${(e as Error).name}`);
    }
  }
  return out;
}

describe("ByteBuffer", () => {
  test("append, consume, spare/commit and growth keep the live bytes in order", () => {
    const b = new ByteBuffer(4);
    b.append(enc.encode("abc"));
    b.consume(2);
    b.append(enc.encode("defgh")); // compacts or grows
    expect(new TextDecoder().decode(b.view())).toBe("cdefgh");
    const room = b.spare(100);
    expect(room.length).toBeGreaterThanOrEqual(100);
    room.set(enc.encode("ij"));
    b.commit(2);
    expect(new TextDecoder().decode(b.take(8))).toBe("cdefghij");
    expect(b.length).toBe(0);
    expect(b.indexOf(1)).toBe(-1);
    expect(() => new ByteBuffer(0)).toThrow(RangeError);
  });
});

describe("LinesCodec", () => {
  test("decodes several lines per buffer, strips \\r\\n, keeps a partial line for later", () => {
    const c = new LinesCodec();
    const b = buf("one\r\ntwo\n\nthr");
    expect(drain((x) => c.decode(x), b)).toEqual(["one", "two", ""]);
    b.append(enc.encode("ee\n"));
    expect(c.decode(b)).toBe("three");
    expect(b.length).toBe(0);
  });

  test("multi-byte UTF-8 split across reads decodes whole", () => {
    const c = new LinesCodec();
    const bytes = enc.encode("héllo wörld ✓\n");
    const b = new ByteBuffer(4);
    const got: string[] = [];
    for (const byte of bytes) {
      b.append(Uint8Array.of(byte));
      const l = c.decode(b);
      if (l !== null) got.push(l);
    }
    expect(got).toEqual(["héllo wörld ✓"]);
  });

  test("an over-long line with its newline buffered throws FrameTooLargeError; the next line decodes", () => {
    const c = new LinesCodec({ maxLength: 5 });
    expect(drain((x) => c.decode(x), buf("toolongline\nok\n"))).toEqual(["ERR:FrameTooLargeError", "ok"]);
  });

  test("an over-long line still arriving is discarded up to its newline across decodes", () => {
    const c = new LinesCodec({ maxLength: 5 });
    const b = buf("abcdefgh");
    expect(() => c.decode(b)).toThrow(FrameTooLargeError);
    b.append(enc.encode("ijkl"));
    expect(c.decode(b)).toBeNull();
    b.append(enc.encode("mn\nfine\n"));
    expect(c.decode(b)).toBe("fine");
  });

  test("decodeEof returns the unterminated last line, then null; encode appends a newline", () => {
    const c = new LinesCodec();
    const b = buf("a\nlast\r");
    expect(c.decodeEof(b)).toBe("a");
    expect(c.decodeEof(b)).toBe("last");
    expect(c.decodeEof(b)).toBeNull();
    const out = new ByteBuffer(2);
    c.encode("héllo", out);
    c.encode("", out);
    expect(new TextDecoder().decode(out.view())).toBe("héllo\n\n");
    expect(() => c.encode(5 as unknown as string, out)).toThrow(TypeError);
    expect(() => new LinesCodec({ maxLength: 0 })).toThrow(RangeError);
  });
});

describe("LengthDelimitedCodec", () => {
  test("round-trips frames of 0, 1 and 70 000 bytes with 4-byte big-endian lengths", () => {
    const c = new LengthDelimitedCodec();
    const b = new ByteBuffer(8);
    const frames = [new Uint8Array(0), Uint8Array.of(9), new Uint8Array(70_000).fill(3)];
    for (const f of frames) c.encode(f, b);
    expect(Array.from(b.view().subarray(0, 9))).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 9]);
    expect(drain((x) => c.decode(x), b)).toEqual(frames);
  });

  test("1, 2 and 3-byte fields, little-endian, decode byte by byte", () => {
    for (const [L, le] of [[1, false], [2, true], [3, false], [3, true]] as const) {
      const c = new LengthDelimitedCodec({ lengthFieldLength: L, littleEndian: le, maxFrameLength: 255 });
      const enc1 = new ByteBuffer(4);
      c.encode(Uint8Array.of(1, 2, 3), enc1);
      const wire = enc1.view().slice();
      const b = new ByteBuffer(1);
      let got: Uint8Array | null = null;
      for (const byte of wire) {
        b.append(Uint8Array.of(byte));
        got = c.decode(b) ?? got;
      }
      expect(Array.from(got!)).toEqual([1, 2, 3]);
    }
  });

  test("an announced length over maxFrameLength throws at once and its payload is skipped", () => {
    const c = new LengthDelimitedCodec({ maxFrameLength: 4 });
    const b = buf(Uint8Array.of(0, 0, 0, 10, 1, 2, 3));
    expect(() => c.decode(b)).toThrow(FrameTooLargeError);
    expect(c.decode(b)).toBeNull();
    b.append(Uint8Array.of(4, 5, 6, 7, 8, 9, 10, 0, 0, 0, 2, 42, 43));
    expect(Array.from(c.decode(b)!)).toEqual([42, 43]);
    expect(() => c.encode(new Uint8Array(5), new ByteBuffer())).toThrow(FrameTooLargeError);
  });

  test("EOF inside a frame is UnexpectedEofError; bad options are RangeErrors", () => {
    const c = new LengthDelimitedCodec();
    expect(() => c.decodeEof(buf(Uint8Array.of(0, 0, 0, 5, 1)))).toThrow(UnexpectedEofError);
    expect(() => new LengthDelimitedCodec().decodeEof(buf(Uint8Array.of(0, 0)))).toThrow(UnexpectedEofError);
    expect(() => new LengthDelimitedCodec({ lengthFieldLength: 5 as 4 })).toThrow(RangeError);
    expect(() => new LengthDelimitedCodec({ lengthFieldLength: 1, maxFrameLength: 256 })).toThrow("0-255");
  });
});

describe("FramedRead / FramedWrite over mocks", () => {
  const rt = new Runtime();

  test("FramedRead reads only when no whole frame is buffered, and returns null at EOF", () => {
    const m = new MockReader("a\nb\nc", "\nd");
    m.end();
    const fr = new FramedRead(m, new LinesCodec());
    const got = rt.blockOn(function* () {
      const out: (string | null)[] = [];
      for (let i = 0; i < 6; i++) out.push(yield* fr.next());
      return out;
    });
    expect(got).toEqual(["a", "b", "c", "d", null, null]);
    expect(m.reads).toBe(3); // two chunks, then EOF
  });

  test("next() is cancel-safe: half a frame survives a timeout", () => {
    const m = new MockReader(Uint8Array.of(0, 0, 0, 3, 7));
    const fr = new FramedRead(m, new LengthDelimitedCodec());
    const out = rt.blockOn(function* () {
      let err: unknown = null;
      try {
        yield* timeout(fr.next(), 2);
      } catch (e) {
        err = e;
      }
      m.push(Uint8Array.of(8, 9));
      return [err instanceof TimeoutError, Array.from((yield* fr.next())!)];
    });
    expect(out).toEqual([true, [7, 8, 9]]);
  });

  test("EOF inside a frame ends the frame stream with UnexpectedEofError, then null", () => {
    const m = new MockReader(Uint8Array.of(0, 0, 0, 9, 1, 2));
    m.end();
    const fr = new FramedRead(m, new LengthDelimitedCodec());
    expect(() => rt.blockOn(fr.next())).toThrow(UnexpectedEofError);
    expect(rt.blockOn(fr.next())).toBeNull();
  });

  test("feed batches frames into one write; send flushes", () => {
    const w = new MockWriter();
    const fw = new FramedWrite(w, new LinesCodec());
    rt.blockOn(function* () {
      fw.feed("x");
      fw.feed("y");
      expect(w.writes).toBe(0);
      yield* fw.flush();
      yield* fw.send("z");
      yield* fw.close();
    });
    expect(w.writes).toBe(2);
    expect(w.text()).toBe("x\ny\nz\n");
    expect(w.shutdowns).toBe(1);
  });

  test("flush() cancelled while the writer is blocked keeps the frames; the next flush writes them once", () => {
    const w = new MockWriter();
    const fw = new FramedWrite(w, new LinesCodec());
    fw.feed("a");
    fw.feed("b");
    w.blocked = true;
    expect(() => rt.blockOn(timeout(fw.flush(), 2))).toThrow(TimeoutError);
    expect(fw.buffer.length).toBe(4);
    w.unblock();
    rt.blockOn(fw.flush());
    expect(w.text()).toBe("a\nb\n");
  });

  test("send is cancel-safe: cancelled while blocked it is either untaken or buffered once", () => {
    const w = new MockWriter();
    const fw = new FramedWrite(w, new LinesCodec(), { writeHighWaterMark: 4 });
    w.blocked = true;
    const errs = rt.blockOn(function* () {
      const out: boolean[] = [];
      for (const item of ["first", "second"]) {
        try {
          yield* timeout(fw.send(item), 2);
        } catch (e) {
          out.push(e instanceof TimeoutError);
        }
      }
      return out;
    });
    // "first" was encoded (the buffer was empty) and waits to flush; "second" found the
    // buffer over its high-water mark and was not taken.
    expect(errs).toEqual([true, true]);
    expect(fw.buffer.length).toBe(6);
    w.unblock();
    rt.blockOn(fw.flush());
    expect(w.text()).toBe("first\n");
  });
});

forEachBackend("Framed over TCP", ({ run: block, runtime }) => {
  test("a lines echo server: 200 lines fed in one flush come back in order", () => {
    const got = block(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const server = spawn(gen(function* () {
        const [s] = yield* l.accept();
        const f = new Framed(s, new LinesCodec());
        for (let line; (line = yield* f.next()) !== null; ) yield* f.send(`echo ${line}`);
        s.close();
      }));
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
      const f = new Framed(c, new LinesCodec());
      for (let i = 0; i < 200; i++) f.feed(`line ${i}`);
      yield* f.flush();
      const back: string[] = [];
      for (let i = 0; i < 200; i++) back.push((yield* f.next())!);
      yield* f.close();
      const end = yield* f.next();
      yield* server;
      c.close();
      l.close();
      return [back, end] as const;
    });
    expect(got[0]).toEqual(Array.from({ length: 200 }, (_, i) => `echo line ${i}`));
    expect(got[1]).toBeNull();
  });

  test("length-delimited frames of 1 MiB cross a socket intact; an oversize frame is refused", () => {
    const big = Uint8Array.from({ length: 1 << 20 }, (_, i) => i & 0xff);
    const out = block(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
      const [s] = yield* l.accept();
      const tx = new Framed(c, new LengthDelimitedCodec({ maxFrameLength: 2 << 20 }));
      const rx = new Framed(s, new LengthDelimitedCodec({ maxFrameLength: 1 << 20 }));
      const sender = spawn(gen(function* () {
        yield* tx.send(big);
        yield* tx.send(new Uint8Array((1 << 20) + 1));
        yield* tx.send(Uint8Array.of(1, 2));
        yield* tx.close();
      }));
      const first = yield* rx.next();
      let err: unknown = null;
      try {
        yield* rx.next();
      } catch (e) {
        err = e;
      }
      const third = yield* rx.next();
      const end = yield* rx.next();
      yield* sender;
      c.close();
      s.close();
      l.close();
      return [first!.length === big.length && first!.every((v, i) => v === big[i]), err instanceof FrameTooLargeError, Array.from(third!), end];
    });
    expect(out).toEqual([true, true, [1, 2], null]);
  });

  test("for await over frames() in hosted mode; breaking out leaves the stream readable", async () => {
    const rt = runtime();
    const [c, s] = await run(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
      const [s] = yield* l.accept();
      l.close();
      return [c, s] as const;
    }, { runtime: rt });
    await run(c.writeAll(enc.encode("a\nb\nstop\nafter\n")), { runtime: rt });
    const fr = new FramedRead(s, new LinesCodec());
    const seen: string[] = [];
    for await (const line of frames(fr, { runtime: rt })) {
      if (line === "stop") break;
      seen.push(line);
    }
    expect(seen).toEqual(["a", "b"]);
    expect(await run(fr.next(), { runtime: rt })).toBe("after");
    await run(function* () {
      yield* sleep(1);
    }, { runtime: rt });
    c.close();
    s.close();
  });
});

// Fault suite, traffic faults, on every backend: a client that never reads (no head-of-
// line blocking), slow-loris clients, half-close in both directions, and 64 MB echoed with
// random chunking on both ends, verified by SHA-256. fds are checked around each test.
import { expect, test } from "bun:test";
import { Notify, TcpStream, gen, sleep, spawn, timeout, type JoinHandle } from "../lib/index.ts";
import { forEachBackend } from "./helpers.ts";
import { LONG, Rng, echoHandler, fillPattern, pattern, seedFromEnv, smallBuffers } from "./fault_util.ts";
import { connectedPair, expectSys, startServer } from "./fault_net_util.ts";

const BIG = 64 * 1024 * 1024;

forEachBackend("fault: traffic", ({ run }) => {
  test("a client that never reads blocks only its own connection: the others are served (no head-of-line blocking)", () => {
    run(function* () {
      const srv = yield* startServer(echoHandler(65536), (l) => smallBuffers(l.fd));
      const hog = yield* TcpStream.connect({ port: srv.port });
      smallBuffers(hog.fd);
      let hogSent = 0;
      const hogWriter = spawn(function* () {
        const chunk = new Uint8Array(65536);
        for (;;) {
          yield* hog.writeAll(chunk);
          hogSent += chunk.length;
        }
      });
      // 50 clients × 10 round trips, all while the hog's echo is stuck in the server.
      const others: JoinHandle<void>[] = [];
      for (let i = 0; i < 50; i++) {
        others.push(
          spawn(function* () {
            const c = yield* TcpStream.connect({ port: srv.port });
            for (let k = 0; k < 10; k++) {
              const msg = pattern(2048, i * 16 + k + 1);
              yield* c.writeAll(msg);
              const back = new Uint8Array(msg.length);
              yield* c.readExact(back);
              expect(Buffer.compare(back, msg)).toBe(0);
            }
            c.close();
          }),
        );
      }
      for (const h of others) yield* timeout(h, 10_000);
      // The hog is stuck: it could not push more than the socket buffers hold, because the
      // server's echo to it is blocked (nobody reads), and the server did not buffer more.
      expect(hogSent).toBeGreaterThan(0);
      expect(hogSent).toBeLessThan(2 << 20);
      yield* timeout(gen(() => srv.conns.drained(1)), 10_000); // the others' server sides close
      expect(srv.conns.live).toBe(1);
      hogWriter.abort();
      hog.close(); // the server's blocked write now fails; only that connection ends
      yield* srv.stop();
      expect(srv.errors.length).toBe(1);
      expectSys(srv.errors[0], ["ECONNRESET", "EPIPE"]);
    });
  }, 20_000);

  test("slow-loris clients trickling one byte at a time do not starve the others", () => {
    const TRICKLE_MS = LONG ? 1000 : 20;
    const BYTES = LONG ? 5 : 8;
    run(function* () {
      const srv = yield* startServer(echoHandler(1024));
      const othersDone = new Notify();
      const loris: JoinHandle<number>[] = [];
      for (let i = 0; i < 20; i++) {
        loris.push(
          spawn(function* () {
            const c = yield* TcpStream.connect({ port: srv.port });
            const b = new Uint8Array(1);
            let sentWhenOthersDone = -1;
            const wait = othersDone.notified();
            for (let k = 0; k < BYTES; k++) {
              yield* c.writeAll(new Uint8Array([k + i]));
              yield* c.readExact(b);
              expect(b[0]).toBe((k + i) & 0xff);
              if (k === 0) {
                yield* wait; // the first byte is out: stall mid-stream until the others are done
                sentWhenOthersDone = k + 1;
              } else yield* sleep(TRICKLE_MS);
            }
            c.close();
            return sentWhenOthersDone;
          }),
        );
      }
      const others: JoinHandle<void>[] = [];
      for (let i = 0; i < 50; i++) {
        others.push(
          spawn(function* () {
            const c = yield* TcpStream.connect({ port: srv.port });
            for (let k = 0; k < 10; k++) {
              const msg = pattern(4096, i * 16 + k + 1);
              yield* c.writeAll(msg);
              const back = new Uint8Array(msg.length);
              yield* c.readExact(back);
              expect(Buffer.compare(back, msg)).toBe(0);
            }
            c.close();
          }),
        );
      }
      for (const h of others) yield* timeout(h, 10_000);
      yield* timeout(gen(() => srv.conns.drained(20)), 10_000); // the others' server sides close
      expect(srv.conns.live).toBe(20); // every loris is still connected, mid-stream
      othersDone.notifyWaiters();
      for (const h of loris) expect(yield* timeout(h, 10_000 + BYTES * TRICKLE_MS)).toBe(1);
      yield* srv.stop();
      expect(srv.errors).toEqual([]);
    });
  }, LONG ? 60_000 : 20_000);

  test("half-close from the client: the server reads EOF and still sends its whole reply", () => {
    run(function* () {
      const [c, s] = yield* connectedPair();
      const req = pattern(1 << 20, 11);
      const server = spawn(function* () {
        const got = new Uint8Array(req.length);
        let total = 0;
        for (let n; (n = yield* s.read(got.subarray(total, Math.min(got.length, total + 65536)))) > 0; ) total += n;
        expect(total).toBe(req.length);
        expect(Buffer.compare(got, req)).toBe(0);
        yield* s.writeAll(got.reverse()); // the reply after EOF
        s.close();
      });
      const writer = spawn(function* () {
        yield* c.writeAll(req);
        c.shutdown("write");
      });
      const back = new Uint8Array(req.length);
      yield* c.readExact(back);
      expect(yield* c.read(new Uint8Array(1))).toBe(0);
      yield* writer;
      yield* server;
      expect(Buffer.compare(back, req.slice().reverse())).toBe(0);
      c.close();
    });
  });

  test("half-close from the server: the client reads EOF and can still send, in full", () => {
    run(function* () {
      const [c, s] = yield* connectedPair();
      const greeting = pattern(1 << 20, 12);
      const upload = pattern(1 << 20, 13);
      const server = spawn(function* () {
        yield* s.writeAll(greeting);
        s.shutdown("write");
        const got = new Uint8Array(upload.length + 1);
        let total = 0;
        for (let n; (n = yield* s.read(got.subarray(total))) > 0; ) total += n;
        s.close();
        return Buffer.compare(got.subarray(0, total), upload) === 0 && total === upload.length;
      });
      const got = new Uint8Array(greeting.length + 1);
      let total = 0;
      for (let n; (n = yield* c.read(got.subarray(total))) > 0; ) total += n;
      expect(total).toBe(greeting.length);
      expect(Buffer.compare(got.subarray(0, total), greeting)).toBe(0);
      yield* c.writeAll(upload); // our direction still works after the peer's FIN
      c.shutdown("write");
      expect(yield* server).toBe(true);
      c.close();
    });
  });

  test("both sides half-close at once: each reads the other's data then EOF", () => {
    run(function* () {
      const [c, s] = yield* connectedPair();
      const side = (me: TcpStream, out: Uint8Array, inLen: number) =>
        spawn(function* () {
          const w = spawn(function* () {
            yield* me.writeAll(out);
            me.shutdown("write");
          });
          const got = new Uint8Array(inLen + 1);
          let total = 0;
          for (let n; (n = yield* me.read(got.subarray(total))) > 0; ) total += n;
          yield* w;
          return got.subarray(0, total);
        });
      const a = pattern(300_000, 21);
      const b = pattern(500_000, 22);
      const ha = side(c, a, b.length);
      const hb = side(s, b, a.length);
      expect(Buffer.compare(yield* ha, b)).toBe(0);
      expect(Buffer.compare(yield* hb, a)).toBe(0);
      c.close();
      s.close();
    });
  });

  test(`${BIG >> 20} MB echoed with random chunking on both ends arrives intact (sha256)`, () => {
    const seed = seedFromEnv();
    // One PRNG per actor, so the run is reproducible from the seed whatever the interleaving.
    const [rs, rw, rr] = [new Rng(seed), new Rng(seed ^ 0x5bd1e995), new Rng(seed ^ 0x27d4eb2f)];
    /** Chunk sizes spread over 1 B … 256 KiB (log-uniform). */
    const chunk = (rng: Rng) => Math.max(1, Math.floor(2 ** ((rng.u32() / 0x1_0000_0000) * 18)));
    const result = run(function* () {
      const srv = yield* startServer(function* (s) {
        const buf = new Uint8Array(1 << 18);
        for (let n; (n = yield* s.read(buf.subarray(0, chunk(rs)))) > 0; ) yield* s.writeAll(buf.subarray(0, n));
      });
      const c = yield* TcpStream.connect({ port: srv.port });
      const sentHash = new Bun.CryptoHasher("sha256");
      const writer = spawn(function* () {
        const st = { x: seed | 1 };
        const buf = new Uint8Array(1 << 18);
        for (let left = BIG; left > 0; ) {
          const k = Math.min(left, chunk(rw));
          const part = buf.subarray(0, k);
          fillPattern(part, st);
          sentHash.update(part);
          // Sometimes writeAll, sometimes single writes: both paths.
          if (rw.chance(0.5)) yield* c.writeAll(part);
          else for (let off = 0; off < k; ) off += yield* c.write(part.subarray(off));
          left -= k;
        }
        c.shutdown("write");
      });
      const gotHash = new Bun.CryptoHasher("sha256");
      const buf = new Uint8Array(1 << 18);
      let total = 0;
      for (let n; (n = yield* c.read(buf.subarray(0, chunk(rr)))) > 0; ) {
        gotHash.update(buf.subarray(0, n));
        total += n;
      }
      yield* writer;
      c.close();
      yield* srv.stop();
      expect(srv.errors).toEqual([]);
      return { total, sent: sentHash.digest("hex"), got: gotHash.digest("hex") };
    });
    expect({ seed, total: result.total, hash: result.got }).toEqual({ seed, total: BIG, hash: result.sent });
  }, LONG ? 120_000 : 30_000);
});


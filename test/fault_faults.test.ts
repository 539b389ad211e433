// Fault suite, network faults, on every backend: refused connects, resets (SO_LINGER 0),
// EPIPE without SIGPIPE (checked in a child that restores SIGPIPE's default action), and
// EMFILE during accept (a child with a lowered RLIMIT_NOFILE) with serve()'s backoff.
// fds are checked around each test. Traffic faults are in fault_traffic.test.ts.
import { expect, test } from "bun:test";
import {
  JoinError,
  Notify,
  SysError,
  TcpListener,
  TcpStream,
  TimeoutError,
  UnexpectedEofError,
  gen,
  sleep,
  spawn,
  timeout,
  yieldNow,
  type JoinHandle,
} from "../lib/index.ts";
import { serve } from "../lib/net/serve.ts";
import { forEachBackend, simSkip } from "./helpers.ts";
import { LineReader, Tracker, leftovers, lingerZero, pattern, smallBuffers, spawnFixture } from "./fault_util.ts";
import { connectedPair, expectSys, failure } from "./fault_net_util.ts";

const BIG = 64 * 1024 * 1024;

forEachBackend("fault: network", ({ run, runtime, backend }) => {
  test("connecting where nobody listens fails with SysError ECONNREFUSED, every time, leaking nothing", () => {
    run(function* () {
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = l.localAddr.port;
      l.close();
      for (let i = 0; i < 50; i++) {
        const err = yield* failure(TcpStream.connect({ hostname: "127.0.0.1", port }));
        expectSys(err, ["ECONNREFUSED"]);
        expect((err as SysError).syscall).toBe("connect");
        expect((err as SysError).message).toContain(`127.0.0.1:${port}`);
      }
    });
    expect(leftovers(runtime()).ioWakers).toBe(0);
  });

  for (const turned of [false, true]) {
    test(`a peer reset (SO_LINGER 0) while a read is pending${turned ? " in the kernel" : ""} fails the read with SysError ECONNRESET`, () => {
      run(function* () {
        const [c, s] = yield* connectedPair();
        const reader = spawn(s.read(new Uint8Array(64)));
        yield* yieldNow(); // the read has been polled: pending
        if (turned) yield* sleep(0); // and the driver has turned (io_uring: the recv was submitted)
        expect(reader.isFinished).toBe(false);
        lingerZero(c.fd);
        c.close();
        const err = yield* failure(reader);
        expectSys(err, ["ECONNRESET"]);
        // The error is reported once; the stream then reads EOF, and closes cleanly.
        expect(yield* s.read(new Uint8Array(8))).toBe(0);
        s.close();
      });
    });
  }

  test("bytes that arrived before a reset are still read, then ECONNRESET, never a silent EOF", () => {
    run(function* () {
      const [c, s] = yield* connectedPair();
      const sent = pattern(1000, 3);
      yield* c.writeAll(sent);
      const got = new Uint8Array(1000);
      yield* s.readExact(got.subarray(0, 10));
      lingerZero(c.fd);
      c.close();
      let total = 10;
      let err: unknown;
      try {
        for (let n; (n = yield* s.read(got.subarray(total))) > 0 || total < 1000; ) {
          if (n === 0) throw new Error(`EOF after ${total} bytes instead of ECONNRESET`);
          total += n;
        }
        yield* s.read(new Uint8Array(8));
      } catch (e) {
        err = e;
      }
      expect(Buffer.compare(got, sent)).toBe(0);
      expectSys(err, ["ECONNRESET"]);
      s.close();
    });
  });

  test("a peer reset while our write is blocked fails the write with ECONNRESET or EPIPE", () => {
    run(function* () {
      const [c, s] = yield* connectedPair();
      smallBuffers(c.fd);
      const writer = spawn(s.writeAll(new Uint8Array(BIG))); // nobody reads: it blocks
      yield* sleep(0);
      yield* sleep(1);
      expect(writer.isFinished).toBe(false);
      lingerZero(c.fd);
      c.close();
      expectSys(yield* failure(writer), ["ECONNRESET", "EPIPE"]);
      s.close();
    });
  });

  test("write after the peer closed fails with SysError EPIPE (ECONNRESET at most once first)", () => {
    run(function* () {
      const [c, s] = yield* connectedPair();
      s.close();
      const chunk = new Uint8Array(65536);
      const codes: string[] = [];
      for (let i = 0; i < 1000 && codes.length < 3; i++) {
        const err = yield* failure(c.writeAll(chunk));
        if (err !== undefined) {
          expect(err).toBeInstanceOf(SysError);
          codes.push((err as SysError).code);
        }
      }
      expect(codes.length).toBe(3);
      expect(["EPIPE", "ECONNRESET"]).toContain(codes[0]!);
      expect(codes.slice(1)).toEqual(["EPIPE", "EPIPE"]);
      // Our own shut-down write side: EPIPE at once.
      const [c2, s2] = yield* connectedPair();
      c2.shutdown("write");
      expectSys(yield* failure(c2.write(new Uint8Array(1))), ["EPIPE"]);
      c.close();
      c2.close();
      s2.close();
    });
  });

  const sigpipe = simSkip(backend, "write to a gone peer never raises SIGPIPE (child with SIGPIPE's default action restored)", "a real child process and a real signal");
  test.skipIf(sigpipe[0])(sigpipe[1], async () => {
    const child = spawnFixture("sigpipe.ts", ["reel"], { REEL_BACKEND: backend });
    const end = await child.finish();
    expect({ exit: end.exit, stderr: end.stderr }).toEqual({ exit: 0, stderr: "" });
    const [codes, alive] = end.stdout.trim().split("\n") as [string, string];
    for (const code of codes.split(" ")) expect(["EPIPE", "ECONNRESET"]).toContain(code);
    expect(alive).toBe("alive");
    // The control: a raw write(2) in the same child setup does die of SIGPIPE.
    const raw = await spawnFixture("sigpipe.ts", ["raw"], { REEL_BACKEND: backend }).finish();
    expect(raw.signal).toBe("SIGPIPE");
  }, 20_000);

  const emfile = simSkip(backend, "EMFILE during accept: the server logs once per burst, backs off, and serves everyone once fds free up", "a child process with a lowered RLIMIT_NOFILE, talking over real sockets");
  test.skipIf(emfile[0])(emfile[1], async () => {
    const FREE = 8;
    const CLIENTS = 24;
    const child = spawnFixture("emfile_server.ts", [String(FREE)], { REEL_BACKEND: backend });
    const [, echoPort, ctlPort] = (await child.line()).split(" ").map(Number) as [number, number, number];
    let outcome: { served: number; events: string[]; stats: Record<string, number> } | null = null;
    let failure_: unknown = null;
    try {
      outcome = run(function* () {
        const ctl = yield* TcpStream.connect({ port: ctlPort });
        const lines = new LineReader(ctl);
        expect(yield* lines.line()).toBe("ready");
        const release = new Notify();
        let released = false;
        let served = 0;
        const clients: JoinHandle<void>[] = [];
        for (let i = 0; i < CLIENTS; i++) {
          clients.push(
            spawn(function* () {
              const c = yield* TcpStream.connect({ port: echoPort });
              try {
                const msg = pattern(100 + i, i + 1);
                yield* c.writeAll(msg);
                const back = new Uint8Array(msg.length);
                yield* c.readExact(back);
                expect(Buffer.compare(back, msg)).toBe(0);
                served++;
                const w = release.notified(); // hold the server's fd until told
                if (released) w.cancel();
                else yield* w;
              } finally {
                c.close();
              }
            }),
          );
        }
        // The server runs out of fds with connections still queued: it must say so.
        const events: string[] = [(yield* timeout(gen(() => lines.line()), 10_000))!];
        expect(events[0]).toBe("error EMFILE");
        expect(served).toBeLessThan(CLIENTS);
        // Hold the fds for 50 ms: the server retries with backoff (1, 2, 4, … ms) meanwhile.
        yield* sleep(50);
        // Free the fds: everyone queued is served, fully, while the others hold on.
        released = true;
        release.notifyWaiters();
        for (const h of clients) yield* timeout(h, 10_000);
        expect(served).toBe(CLIENTS);
        // And a fresh client is served at once afterwards.
        const late = yield* TcpStream.connect({ port: echoPort });
        yield* late.writeAll(new Uint8Array([7]));
        const one = new Uint8Array(1);
        yield* late.readExact(one);
        late.close();
        ctl.shutdown("write");
        let stats: Record<string, number> = {};
        for (let l; (l = yield* lines.line()) !== null; ) {
          if (l.startsWith("{")) stats = JSON.parse(l) as Record<string, number>;
          else events.push(l);
        }
        ctl.close();
        return { served, events, stats };
      });
    } catch (e) {
      failure_ = e;
      child.proc.kill();
    }
    const { exit, stderr: errText } = await child.finish();
    if (failure_ !== null) throw failure_;
    expect(exit).toBe(0);
    const { events, stats } = outcome!;
    expect(stats.served).toBe(CLIENTS + 1);
    expect(stats.capacity).toBeGreaterThan(0);
    // Every report is a resource error, one per burst: the retries during the 50 ms hold
    // were not logged, and the backoff kept them few (a busy retry loop makes thousands).
    for (const e of events) expect(["error EMFILE", "error ENFILE"]).toContain(e);
    expect(stats.reported).toBe(events.length);
    expect(stats.failedAccepts).toBeGreaterThanOrEqual(stats.reported! + 3);
    expect(stats.failedAccepts).toBeLessThan(60);
    expect(errText.trim().split("\n").length).toBe(events.length);
  }, 30_000);

  // The rule changed with the task tree (issue 11): serve()'s connections are its
  // descendants, so cancelling serve() halts them, each running its cleanup, instead of
  // leaving them running. (Closing the listener still lets them finish: see
  // test/serve_tree.test.ts.)
  test("serve(): cancelling it stops accepting and halts its running connections after their cleanup; a handler's error ends only its connection", () => {
    run(function* () {
      const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = listener.localAddr.port;
      const conns = new Tracker();
      const errors: unknown[] = [];
      let cleanedUp = 0;
      const server = spawn(
        serve(
          listener,
          conns.wrap(function* (s) {
            try {
              const b = new Uint8Array(1);
              yield* s.readExact(b);
              if (b[0] === 0) throw new Error("handler fails on purpose");
              yield* s.writeAll(b);
              yield* s.readExact(b); // waits until the connection is halted
            } finally {
              yield* sleep(1); // asynchronous cleanup: driven to the end before the stream closes
              cleanedUp++;
            }
          }),
          { onError: (e) => errors.push(e) },
        ),
      );
      const bad = yield* TcpStream.connect({ port });
      yield* bad.writeAll(new Uint8Array([0]));
      expect(yield* bad.read(new Uint8Array(1))).toBe(0); // closed by serve() after the error
      bad.close();
      const live = yield* TcpStream.connect({ port });
      yield* live.writeAll(new Uint8Array([9]));
      const b = new Uint8Array(1);
      yield* live.readExact(b);
      expect(conns.live).toBe(1);
      server.abort(); // stop accepting, halt the connections
      expect((yield* failure(server)) instanceof JoinError).toBe(true);
      // The handle settled after the live connection's cleanup ran and its stream closed.
      expect(cleanedUp).toBe(2);
      expect(conns.live).toBe(0);
      expect(yield* live.read(new Uint8Array(1))).toBe(0);
      // A new connection is queued but never served.
      const late = yield* TcpStream.connect({ port });
      yield* late.writeAll(new Uint8Array([7]));
      expect((yield* failure(timeout(late.read(new Uint8Array(1)), 50))) instanceof TimeoutError).toBe(true);
      late.close();
      live.close();
      listener.close();
      expect(errors.length).toBe(1);
      expect((errors[0] as Error).message).toBe("handler fails on purpose");
    });
  });
});

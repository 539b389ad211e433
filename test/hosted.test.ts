/**
 * Hosted mode: reel inside Bun's event loop (lib/interop/hosted.ts, watcher.ts).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  JoinError,
  Runtime,
  RuntimeError,
  TcpListener,
  TcpStream,
  TimeoutError,
  listen,
  type TcpServer,
  blockOn,
  gen,
  now,
  pollFn,
  PENDING,
  sleep,
  spawn,
  timeout,
  yieldNow,
  type Waker,
} from "../lib/index.ts";
import { isHosted, run } from "../lib/interop/hosted.ts";
import { fromPromise } from "../lib/interop/promise.ts";
import { watcherReady } from "../lib/interop/watcher.ts";
import { forEachBackend, kernelTest } from "./helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

// The watcher thread and Bun's HTTP client live for the whole process: start them before
// any fd baseline is taken.
beforeAll(async () => {
  await watcherReady();
  const warm = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("warm") });
  await (await fetch(warm.url)).text();
  await warm.stop(true);
});

/** A reel echo server task on `listener`: serves `conns` connections, then returns. */
function* echoServer(listener: TcpListener, conns: number) {
  for (let i = 0; i < conns; i++) {
    const [s] = yield* listener.accept();
    const buf = new Uint8Array(1024);
    for (let n; (n = yield* s.read(buf)) > 0; ) yield* s.writeAll(buf.subarray(0, n));
    s.close();
  }
}

/** A listener on 127.0.0.1 made on `rt` (a simulated one on the simulator: its network is the runtime's). */
function bindOn(rt: Runtime): Promise<[TcpListener, number]> {
  return run(function* () {
    const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    return [l, l.localAddr.port] as [TcpListener, number];
  }, { runtime: rt });
}

/** Connects, sends `msg`, reads the same number of bytes back. */
function* roundTrip(port: number, msg: string) {
  const s = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
  try {
    const out = enc.encode(msg);
    yield* s.writeAll(out);
    const back = new Uint8Array(out.length);
    yield* s.readExact(back);
    return dec.decode(back);
  } finally {
    s.close();
  }
}

forEachBackend("hosted run()", ({ runtime, backend }) => {
  const bunIo = kernelTest(backend, "Bun.serve and fetch are real sockets outside the simulation");
  test("run() resolves with the future's value and rejects with its error", async () => {
    const rt = runtime();
    expect(await run(function* () { yield* sleep(1); return 7; }, { runtime: rt })).toBe(7);
    const failing = run(function* () { yield* sleep(1); throw new RangeError("boom"); }, { runtime: rt });
    await expect(failing).rejects.toThrow("boom");
    expect(isHosted(rt)).toBe(false);
  });

  bunIo("a fetch to Bun.serve and a reel TCP echo round trip work side by side in one process", async () => {
    const rt = runtime();
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("from bun") });
    const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = listener.localAddr.port;
      const served = run(() => echoServer(listener, 1), { runtime: rt });
      const [body, echoed] = await Promise.all([
        fetch(server.url, { keepalive: false }).then((r) => r.text()),
        run(() => roundTrip(port, "hello reel"), { runtime: rt }),
      ]);
      await served;
      expect(body).toBe("from bun");
      expect(echoed).toBe("hello reel");
    } finally {
      listener.close();
      await server.stop(true);
    }
  });

  bunIo("a fetch from inside a reel task (fromPromise) completes while reel serves TCP", async () => {
    const rt = runtime();
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(new URL(req.url).pathname) });
    const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = listener.localAddr.port;
      const out = await run(function* () {
        const srv = spawn(() => echoServer(listener, 1));
        const res = yield* fromPromise(fetch(new URL("/path", server.url), { keepalive: false }));
        const text = yield* fromPromise(res.text());
        const echoed = yield* roundTrip(port, text);
        yield* srv;
        return echoed;
      }, { runtime: rt });
      expect(out).toBe("/path");
    } finally {
      listener.close();
      await server.stop(true);
    }
  });

  bunIo("a listen() server in a hosted run() echoes to a Bun.connect client in the same process, then stops", async () => {
    const rt = runtime();
    const { promise: started, resolve: onStart } = Promise.withResolvers<TcpServer>();
    const { promise: closed, resolve: onClose } = Promise.withResolvers<Error | undefined>();
    const served = run(function* () {
      const server = listen({ hostname: "127.0.0.1", port: 0, socket: { data: (c, b) => void c.write(b), close: (_c, err) => onClose(err) } });
      onStart(server);
      yield* server.closed();
    }, { runtime: rt });
    const server = await started;
    const echoed = await new Promise<string>((resolve, reject) => {
      let got = "";
      Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: {
          open: (s) => void s.write("hello from bun"),
          data(s, d) {
            got += dec.decode(d);
            if (got.length >= 14) {
              s.end();
              resolve(got);
            }
          },
          error: (_s, e) => reject(e),
          connectError: (_s, e) => reject(e),
        },
      }).catch(reject);
    });
    expect(echoed).toBe("hello from bun");
    expect(await closed).toBeUndefined(); // the client's end reached the reel server: a clean close
    server.stop();
    await served;
    expect(isHosted(rt)).toBe(false);
  });

  test("Bun's loop runs while a reel task waits: a Bun timer writes the bytes reel is reading", async () => {
    const rt = runtime();
    const [listener, port] = await bindOn(rt);
    let client: TcpStream | null = null;
    try {
      const got = await run(function* () {
        client = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
        const [server] = yield* listener.accept();
        // Only Bun's loop can make this read complete: the write is in a Bun timer callback.
        const c = client;
        setTimeout(() => void run(c.writeAll(enc.encode("tick")), { runtime: rt }), 1);
        // readExact: one read may return part of the bytes (the simulator draws short reads).
        const buf = new Uint8Array(4);
        yield* server.readExact(buf);
        server.close();
        return dec.decode(buf);
      }, { runtime: rt });
      expect(got).toBe("tick");
    } finally {
      (client as TcpStream | null)?.close();
      listener.close();
    }
  });

  test("the watcher wakes at the next timer deadline: a read with timeout() fails with TimeoutError", async () => {
    const rt = runtime();
    const [listener, port] = await bindOn(rt);
    try {
      // Measured on the runtime's clock (virtual on the simulator, where it jumps to the deadline).
      const [err, took] = await run(function* () {
        const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
        const [s] = yield* listener.accept();
        const t0 = now();
        try {
          yield* timeout(s.read(new Uint8Array(8)), 20);
          return [null, now() - t0];
        } catch (e) {
          return [e, now() - t0];
        } finally {
          s.close();
          c.close();
        }
      }, { runtime: rt });
      expect(err).toBeInstanceOf(TimeoutError);
      expect(took).toBeGreaterThanOrEqual(19);
    } finally {
      listener.close();
    }
  });

  test("a busy reel task yields to Bun: a Bun timer fires before the task sees its flag", async () => {
    const rt = runtime();
    let flag = false;
    setTimeout(() => (flag = true), 0);
    const spins = await run(function* () {
      let i = 0;
      for (; i < 10_000_000 && !flag; i++) yield* yieldNow();
      return i;
    }, { runtime: rt });
    expect(flag).toBe(true);
    expect(spins).toBeLessThan(10_000_000);
  });

  test("rt.spawn() from ordinary async code while hosted runs the task on the hosted runtime", async () => {
    const rt = runtime();
    let release: Waker | null = null;
    let released = false;
    const main = run(pollFn<string>((cx) => {
      if (released) return "released";
      release = cx.waker;
      return PENDING;
    }), { runtime: rt });
    await Bun.sleep(1);
    // A task spawned from a Bun callback wakes the main one through the host.
    const h = rt.spawn(gen(function* () {
      yield* sleep(1);
      released = true;
      (release as Waker | null)?.wake();
      return 5;
    }));
    expect(await main).toBe("released");
    expect(h.isFinished).toBe(true);
  });

  test("an AbortSignal cancels a pending hosted run: the accept is cancelled and the run rejects", async () => {
    const rt = runtime();
    const [listener, port] = await bindOn(rt);
    try {
      const ac = new AbortController();
      const p = run(listener.accept(), { runtime: rt, signal: ac.signal });
      await Bun.sleep(2);
      ac.abort(new Error("stop accepting"));
      await expect(p).rejects.toThrow("stop accepting");
      expect(isHosted(rt)).toBe(false);
      // The listener still works: the cancelled accept left nothing behind.
      const again = await run(function* () {
        const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port });
        const [s] = yield* listener.accept();
        s.close();
        c.close();
        return true;
      }, { runtime: rt });
      expect(again).toBe(true);
      await expect(run(sleep(1), { runtime: rt, signal: AbortSignal.abort(new Error("early")) })).rejects.toThrow("early");
    } finally {
      listener.close();
    }
  });

  test("re-entrancy: blockOn inside a hosted task, or on the hosted runtime, throws EREENTRANT", async () => {
    const rt = runtime();
    const inner = await run(function* () {
      try {
        rt.blockOn(sleep(1));
        return "no error";
      } catch (e) {
        return (e as RuntimeError).code;
      }
    }, { runtime: rt });
    expect(inner).toBe("EREENTRANT");
    const pending = run(sleep(20), { runtime: rt });
    expect(() => rt.blockOn(sleep(1))).toThrow(RuntimeError);
    expect(() => rt.close()).toThrow("hosted");
    await pending;
  });

  test("run() inside blockOn throws EREENTRANT; nested run() inside a hosted task adds a root", async () => {
    const rt = runtime();
    const code = rt.blockOn(function* () {
      try {
        void run(sleep(1));
        return "no error";
      } catch (e) {
        return (e as RuntimeError).code;
      }
    });
    expect(code).toBe("EREENTRANT");
    const nested = await run(function* () {
      const p = run(function* () { yield* sleep(2); return "inner"; });
      return yield* fromPromise(p);
    }, { runtime: rt });
    expect(nested).toBe("inner");
  });

  test("two concurrent run() calls each settle their own Promise", async () => {
    const rt = runtime();
    const order: string[] = [];
    const a = run(function* () { yield* sleep(15); order.push("a"); return 1; }, { runtime: rt });
    const b = run(function* () { yield* sleep(1); order.push("b"); return 2; }, { runtime: rt });
    expect(await Promise.all([a, b])).toEqual([1, 2]);
    expect(order).toEqual(["b", "a"]);
  });
});

describe("hosted run() on the default runtime", () => {
  const oneNetwork = kernelTest(null, "two runtimes talk over one network: each simulation is a network of its own");
  test("top-level spawn() from a Bun callback lands on the hosted default runtime", async () => {
    let woke: Waker | null = null;
    let value = 0;
    const main = run(pollFn<number>((cx) => {
      if (value !== 0) return value;
      woke = cx.waker;
      return PENDING;
    }));
    await new Promise((r) => setTimeout(r, 1));
    const h = spawn(function* () {
      yield* sleep(1);
      value = 9;
      (woke as Waker | null)?.wake();
    });
    expect(await main).toBe(9);
    expect(h.isFinished).toBe(true);
    expect(isHosted()).toBe(false);
    // blockOn works again once run() has finished.
    expect(blockOn(function* () { yield* sleep(1); return "ok"; })).toBe("ok");
  });

  oneNetwork("blockOn on another runtime while one is hosted: the hosted one, woken meanwhile, resumes after", async () => {
    const a = new Runtime();
    const b = new Runtime();
    const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    try {
      const served = run(() => echoServer(l, 1), { runtime: a });
      await Bun.sleep(2); // a parks in the watcher
      // b owns the thread for a while; a's readiness arrives meanwhile (b drains microtasks).
      const echoed = b.blockOn(function* () {
        const c = yield* TcpStream.connect({ hostname: "127.0.0.1", port: l.localAddr.port });
        yield* c.writeAll(enc.encode("x"));
        yield* sleep(20);
        c.close();
        return true;
      });
      expect(echoed).toBe(true);
      await served;
    } finally {
      l.close();
      a.close();
      b.close();
    }
  });

  test("run() on a closed runtime rejects with ECLOSED and leaves it unhosted", async () => {
    const rt = new Runtime();
    rt.close();
    await expect(run(sleep(1), { runtime: rt })).rejects.toThrow("closed");
    expect(isHosted(rt)).toBe(false);
  });

  oneNetwork("two runtimes hosted at once both wake on their own I/O", async () => {
    const a = new Runtime();
    const b = new Runtime();
    const la = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    const lb = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
    try {
      const sa = run(() => echoServer(la, 1), { runtime: a });
      const sb = run(() => echoServer(lb, 1), { runtime: b });
      const [x, y] = await Promise.all([
        run(() => roundTrip(lb.localAddr.port, "to b"), { runtime: a }),
        run(() => roundTrip(la.localAddr.port, "to a"), { runtime: b }),
      ]);
      await Promise.all([sa, sb]);
      expect([x, y]).toEqual(["to b", "to a"]);
    } finally {
      la.close();
      lb.close();
      a.close();
      b.close();
    }
  });
});

describe("hosted mode and the process lifetime", () => {
  const script = (body: string) => `
    import { TcpListener, TcpStream, sleep } from ${JSON.stringify(join(import.meta.dir, "../lib/index.ts"))};
    import { run } from ${JSON.stringify(join(import.meta.dir, "../lib/interop/hosted.ts"))};
    import { fromPromise } from ${JSON.stringify(join(import.meta.dir, "../lib/interop/promise.ts"))};
    ${body}`;

  async function runScript(body: string): Promise<{ code: number; out: string }> {
    const proc = Bun.spawn([process.execPath, "-e", script(body)], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill(), 10_000);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    if (err.trim() !== "") console.error(err);
    return { code, out: out.trim() };
  }

  kernelTest(null, "a real client (Bun.connect) connects to it from outside reel")("a parked runtime with a listening socket keeps the process alive until its accept completes", async () => {
    const r = await runScript(`
      const l = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
      const port = l.localAddr.port;
      // The client connects from a second process-free path: a Bun socket, 30 ms later.
      setTimeout(() => Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, open(s) { s.end(); } } }), 30).unref();
      const [s] = await run(l.accept());
      s.close(); l.close();
      console.log("accepted");`);
    expect(r).toEqual({ code: 0, out: "accepted" });
  });

  test("a run that nothing can wake lets the process exit instead of hanging", async () => {
    const r = await runScript(`
      run(fromPromise(new Promise(() => {}))).then(() => console.log("settled"));
      console.log("started");`);
    expect(r).toEqual({ code: 0, out: "started" });
  });
});

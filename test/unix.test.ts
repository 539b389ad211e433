/**
 * Unix domain sockets on every backend: listener/stream, abstract names, the socket file's
 * life (removed at close, never someone else's; a stale one is a clear EADDRINUSE), path
 * length, pairs, peer credentials, fd passing (SCM_RIGHTS) including fds that arrive
 * with bytes taken by read(), datagram sockets, cancellation and close.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { SYS } from "../ffi/constants.ts";
import { encodeUnix } from "../ffi/sockaddr.ts";
import { PENDING, SysError, TruncatedError, UnixDatagram, UnixListener, UnixStream, select, sleep, spawn, type Context } from "../lib/index.ts";
import { sockets } from "../lib/net/socket.ts";
import { forEachBackend, simSkip } from "./helpers.ts";

const noop: Context = { waker: { wake() {} } };
const enc = new TextEncoder();
const dec = new TextDecoder();
const linux = process.platform === "linux";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "reel-unix-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A non-blocking pipe: [read end, write end]. */
function pipe(): [number, number] {
  const p = new Int32Array(2);
  if (libc.pipe2(p, SYS.O_NONBLOCK | SYS.O_CLOEXEC) < 0) throw new Error("pipe2 failed");
  return [p[0]!, p[1]!];
}

/** The error a generator throws (or null). */
function* failure(f: () => Generator<unknown, unknown, unknown>): Generator<unknown, unknown, unknown> {
  try {
    yield* f();
  } catch (e) {
    return (e as { cause?: unknown }).cause ?? e;
  }
  return null;
}

/**
 * A stale socket file at `path`, as a process that died without removing it leaves one:
 * bound through the current backend's socket calls (the kernel's, or inside a simulation
 * the simulated host's names), closed, never unlinked.
 */
function staleSocketFile(path: string): void {
  const api = sockets();
  const fd = api.socket(SYS.AF_UNIX, SYS.SOCK_STREAM, 0);
  const sa = new Uint8Array(new ArrayBuffer(128));
  expect(api.bind(fd, sa, encodeUnix(sa, path))).toBe(0);
  api.close(fd);
}

const NO_FD_PASSING = "fd passing is not simulated (SCM_RIGHTS is RuntimeError ESIM: a simulated socket cannot carry real fds)";

forEachBackend("unix sockets", ({ run, backend }) => {
  let n = 0;
  const p = (name: string) => join(dir, `${backend}-${name}-${n++}.sock`);
  /** A socket file at `path`: on the simulator, in the simulated host's names (it has no files). */
  const isSocketFile = (path: string) => (backend === "sim" ? sockets().socketFileId(path) !== null : existsSync(path) && statSync(path).isSocket());

  test("listener, connect, accept, echo both ways; the socket file is removed when the listener closes", () => {
    const path = p("echo");
    run(function* () {
      const l = UnixListener.bind(path);
      expect(isSocketFile(path)).toBe(true);
      expect(l.localAddr.toString()).toBe(path);
      const acc = spawn(l.accept());
      const c = yield* UnixStream.connect(path);
      const [s, peer] = yield* acc;
      expect(peer.family).toBe("unix");
      expect(c.peerAddr.toString()).toBe(path);
      yield* c.writeAll(enc.encode("ping"));
      const buf = new Uint8Array(4);
      yield* s.readExact(buf);
      expect(dec.decode(buf)).toBe("ping");
      yield* s.writeAll(enc.encode("pong"));
      yield* c.readExact(buf);
      expect(dec.decode(buf)).toBe("pong");
      c.shutdown("write");
      expect(yield* s.read(buf)).toBe(0);
      c.close();
      s.close();
      l.close();
      expect(isSocketFile(path)).toBe(false);
      l.close(); // idempotent
    });
  });

  test("a Linux abstract name needs no file and leaves none", () => {
    if (!linux) return;
    const name = `\0reel-test-${backend}-${process.pid}`;
    run(function* () {
      const l = UnixListener.bind(name);
      const acc = spawn(l.accept());
      const c = yield* UnixStream.connect(name);
      const [s] = yield* acc;
      yield* c.writeAll(enc.encode("abstract"));
      const buf = new Uint8Array(8);
      yield* s.readExact(buf);
      expect(dec.decode(buf)).toBe("abstract");
      expect(l.localAddr.address).toBe(name);
      c.close();
      s.close();
      l.close();
    });
  });

  test("a stale socket file (its process died without removing it) gives EADDRINUSE that says the file is there", () => {
    const path = p("stale");
    // A "crashed" process: bound, never unlinked.
    const fd = libc.socket(SYS.AF_UNIX, SYS.SOCK_STREAM | SYS.SOCK_CLOEXEC, 0);
    const sa = new Uint8Array(new ArrayBuffer(128));
    expect(libc.bind(fd, sa, encodeUnix(sa, path))).toBe(0);
    libc.close(fd);
    expect(existsSync(path)).toBe(true);
    let err: unknown;
    try {
      UnixListener.bind(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).code).toBe("EADDRINUSE");
    expect((err as SysError).message).toContain(path);
    expect((err as SysError).message).toContain("stale");
    expect(existsSync(path)).toBe(true); // reel never removes a file it did not create
    rmSync(path);
  });

  test("closing a listener leaves a file that replaced its own alone", () => {
    const path = p("replaced");
    const l = UnixListener.bind(path);
    rmSync(path);
    const other = UnixListener.bind(path); // another socket took the path meanwhile
    l.close();
    expect(existsSync(path)).toBe(true);
    other.close();
    expect(existsSync(path)).toBe(false);
  });

  test("a path longer than sun_path is a RangeError naming its length; bad paths are TypeErrors", () => {
    const long = join(dir, "x".repeat(200));
    const bytes = enc.encode(long).length;
    expect(() => UnixListener.bind(long)).toThrow(RangeError);
    expect(() => UnixListener.bind(long)).toThrow(new RegExp(`${bytes} bytes`));
    expect(() => UnixDatagram.bind(long)).toThrow(RangeError);
    expect(() => UnixListener.bind("")).toThrow(TypeError);
    expect(() => UnixListener.bind(3 as never)).toThrow(TypeError);
    run(function* () {
      expect(yield* failure(function* () { yield* UnixStream.connect(long); })).toBeInstanceOf(RangeError);
    });
  });

  test("connecting where nobody listens: ENOENT (no file) or ECONNREFUSED (a file, no listener)", () => {
    const none = p("none");
    const dead = p("dead");
    run(function* () {
      staleSocketFile(dead);
      const e1 = (yield* failure(function* () { yield* UnixStream.connect(none); })) as SysError;
      expect(e1.code).toBe("ENOENT");
      expect(e1.message).toContain(none);
      const e2 = (yield* failure(function* () { yield* UnixStream.connect(dead); })) as SysError;
      expect(e2.code).toBe("ECONNREFUSED");
      expect(sockets().unlink(dead)).toBe(0);
    });
  });

  test("unix_connect_full_backlog_waits: a connect to a listener whose backlog is full waits (never EAGAIN) and completes once there is room", () => {
    const path = p("backlog");
    run(function* () {
      const l = UnixListener.bind(path, { backlog: 0 });
      const early: UnixStream[] = [];
      const pending: ReturnType<typeof spawn<UnixStream>>[] = [];
      for (let i = 0; i < 4; i++) pending.push(spawn(UnixStream.connect(path)));
      yield* sleep(20); // some are queued by the kernel, the rest retry on EAGAIN
      for (let i = 0; i < 4; i++) {
        const [s] = yield* l.accept();
        early.push(s);
      }
      for (const h of pending) (yield* h).close();
      for (const s of early) s.close();
      l.close();
    });
  });

  test("UnixStream.pair() and peer credentials report this process", () => {
    run(function* () {
      const [a, b] = UnixStream.pair();
      const cred = a.peerCred();
      expect(cred.pid).toBe(process.pid);
      expect(cred.uid).toBe(process.getuid!());
      expect(cred.gid).toBe(process.getgid!());
      yield* a.writeAll(enc.encode("paired"));
      const buf = new Uint8Array(6);
      yield* b.readExact(buf);
      expect(dec.decode(buf)).toBe("paired");
      a.close();
      b.close();
    });
  });

  test.skipIf(backend === "sim")(simSkip(backend, "sendFds / recvFds pass a pipe's write end: bytes written through the received fd arrive", NO_FD_PASSING)[1], () => {
    run(function* () {
      const [a, b] = UnixStream.pair();
      const [r, w] = pipe();
      expect(yield* a.sendFds(enc.encode("F"), [w])).toBe(1);
      libc.close(w); // the peer has its own copy
      const buf = new Uint8Array(8);
      const [n, fds] = yield* b.recvFds(buf);
      expect(n).toBe(1);
      expect(dec.decode(buf.subarray(0, 1))).toBe("F");
      expect(fds.length).toBe(1);
      if (linux) expect(libc.fcntl(fds[0]!, SYS.F_GETFD, 0) & SYS.FD_CLOEXEC).toBe(SYS.FD_CLOEXEC);
      expect(libc.write(fds[0]!, enc.encode("through"))).toBe(7);
      libc.close(fds[0]!);
      const got = new Uint8Array(16);
      expect(dec.decode(got.subarray(0, libc.read(r, got)))).toBe("through");
      libc.close(r);
      a.close();
      b.close();
    });
  });

  test.skipIf(backend === "sim")(simSkip(backend, "fds that arrive with bytes taken by read() wait for the next recvFds (never lost); close() closes unclaimed ones", NO_FD_PASSING)[1], () => {
    run(function* () {
      const [a, b] = UnixStream.pair();
      const [r1, w1] = pipe();
      const [r2, w2] = pipe();
      yield* a.sendFds(enc.encode("x"), [r1, w1]);
      const buf = new Uint8Array(8);
      expect(yield* b.read(buf)).toBe(1);
      yield* a.sendFds(enc.encode("y"), [r2]);
      const [n, fds] = yield* b.recvFds(buf);
      expect(n).toBe(1);
      expect(fds.length).toBe(3); // the two that came with "x", then the one with "y"
      for (const fd of fds) libc.close(fd);
      // Unclaimed: sent, read past, never asked for — closed with the stream (fd check).
      yield* a.sendFds(enc.encode("z"), [w2]);
      expect(yield* b.read(buf)).toBe(1);
      for (const fd of [r1, w1, r2, w2]) libc.close(fd);
      a.close();
      b.close();
    });
  });

  test.skipIf(backend === "sim")(simSkip(backend, "sendFds checks its arguments: at least one byte, valid fds, at most 253", NO_FD_PASSING)[1], () => {
    run(function* () {
      const [a, b] = UnixStream.pair();
      expect(yield* failure(function* () { yield* a.sendFds(new Uint8Array(0), [0]); })).toBeInstanceOf(RangeError);
      expect(yield* failure(function* () { yield* a.sendFds(new Uint8Array(1), [-1]); })).toBeInstanceOf(TypeError);
      expect(yield* failure(function* () { yield* a.sendFds(new Uint8Array(1), new Array(254).fill(0)); })).toBeInstanceOf(RangeError);
      const e = (yield* failure(function* () { yield* a.sendFds(new Uint8Array(1), [999_999]); })) as SysError;
      expect(e.code).toBe("EBADF"); // the kernel's answer, typed
      a.close();
      b.close();
    });
  });

  test("a read is cancel-safe: bytes that arrive after a cancelled read go to the next one", () => {
    run(function* () {
      const [a, b] = UnixStream.pair();
      const buf = new Uint8Array(16);
      const r = b.read(buf);
      expect(r.poll(noop)).toBe(PENDING);
      yield* sleep(1);
      r.cancel();
      yield* a.writeAll(enc.encode("later"));
      yield* sleep(2);
      // readExact: a stream may hand the bytes over in parts (the simulator's short reads do).
      yield* b.readExact(buf.subarray(0, 5));
      expect(dec.decode(buf.subarray(0, 5))).toBe("later");
      a.close();
      b.close();
    });
  });

  test("a read smaller than what arrived takes it in parts, in order", () => {
    run(function* () {
      const [a, b] = UnixStream.pair();
      yield* a.writeAll(enc.encode("abcdefghij"));
      const small = new Uint8Array(3);
      let got = "";
      while (got.length < 10) got += dec.decode(small.subarray(0, yield* b.read(small)));
      expect(got).toBe("abcdefghij");
      a.close();
      b.close();
    });
  });

  test("closing a stream fails its pending read with EBADF", () => {
    run(function* () {
      const [a, b] = UnixStream.pair();
      const h = spawn(b.read(new Uint8Array(4)));
      yield* sleep(1);
      b.close();
      const e = (yield* failure(function* () { yield* h; })) as SysError;
      expect(e.code).toBe("EBADF");
      a.close();
    });
  });

  test("UnixDatagram: bound and unbound sockets, sendTo/recvFrom with the source path, file removed at close", () => {
    const sp = p("dgram-server");
    const cp = p("dgram-client");
    run(function* () {
      const server = UnixDatagram.bind(sp);
      const client = UnixDatagram.bind(cp);
      const anon = UnixDatagram.unbound();
      yield* client.sendTo(enc.encode("hello"), sp);
      const buf = new Uint8Array(64);
      const [n, from] = yield* server.recvFrom(buf);
      expect(dec.decode(buf.subarray(0, n))).toBe("hello");
      expect(from.address).toBe(cp);
      yield* server.sendTo(enc.encode("back"), from);
      const [m] = yield* client.recvFrom(buf);
      expect(dec.decode(buf.subarray(0, m))).toBe("back");
      yield* anon.sendTo(enc.encode("anon"), sp);
      const [k, who] = yield* server.recvFrom(buf);
      expect(dec.decode(buf.subarray(0, k))).toBe("anon");
      expect(who.address).toBe(""); // an unbound sender has no name
      server.close();
      client.close();
      anon.close();
      expect(existsSync(sp)).toBe(false);
      expect(existsSync(cp)).toBe(false);
    });
  });

  test("UnixDatagram.pair, connect + send/recv, and truncation reported", () => {
    const sp = p("dgram-conn");
    run(function* () {
      const [a, b] = UnixDatagram.pair();
      yield* a.send(enc.encode("pair"));
      const buf = new Uint8Array(8);
      expect(dec.decode(buf.subarray(0, yield* b.recv(buf)))).toBe("pair");
      yield* b.send(new Uint8Array(100));
      const e = (yield* failure(function* () { yield* a.recv(buf); })) as TruncatedError;
      expect(e).toBeInstanceOf(TruncatedError);
      expect(e.received).toBe(8);
      const server = UnixDatagram.bind(sp);
      const c = UnixDatagram.unbound();
      yield* c.connect(sp);
      yield* c.send(enc.encode("conn"));
      const [n] = yield* server.recvFrom(buf);
      expect(dec.decode(buf.subarray(0, n))).toBe("conn");
      expect((yield* select(server.recvFrom(buf), sleep(5))).index).toBe(1);
      a.close();
      b.close();
      c.close();
      server.close();
    });
  });
});

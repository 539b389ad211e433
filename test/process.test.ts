/**
 * Child processes on every backend: Command's stdio modes, env and cwd; output() and
 * status(); spawn errors (ENOENT, EACCES) naming the program; kill; reading after a kill
 * ends; a grandchild holding the pipe does not hold up wait(); killOnCancel; exit through
 * a pidfd bound to the driver (and the SIGCHLD fallback); hosted mode; and after every
 * test, no zombie left and no fd leaked (helpers.ts).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { Command, Runtime, SysError, TimeoutError, copy, gen, join, run, sleep, spawn, timeout, type BaseFuture } from "../lib/index.ts";
import { startSignals } from "../lib/signal/hub.ts";
import { forEachBackend, kernelTest } from "./helpers.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();
let dir = "";

beforeAll(() => {
  startSignals(); // the SIGCHLD fallback's wake-up pipe: made once, before any fd check
  Bun.spawnSync(["true"]); // Bun's own subprocess fds, made once
  dir = mkdtempSync(joinPath(tmpdir(), "reel-proc-"));
});

/** This process's children as [pid, state, command] (from /proc). */
export function children(): [number, string, string][] {
  const out: [number, string, string][] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const close = stat.lastIndexOf(")");
    const [state, ppid] = stat.slice(close + 2).split(" ");
    if (Number(ppid) === process.pid) out.push([Number(name), state!, stat.slice(stat.indexOf("(") + 1, close)]);
  }
  return out;
}

/** Zombies among this process's children (Bun's own helpers excluded by name: none are zombies). */
function zombies(): [number, string, string][] {
  return children().filter(([, state]) => state === "Z");
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

afterEach(() => {
  expect(zombies()).toEqual([]);
});

/** Reads `r` to EOF as text (a future). */
function drain(r: { read(b: Uint8Array): BaseFuture<number> }): BaseFuture<string> {
  return gen(() => drainGen(r));
}

function* drainGen(r: { read(b: Uint8Array): BaseFuture<number> }): Generator<unknown, string, unknown> {
  const buf = new Uint8Array(65536);
  let s = "";
  for (let n; (n = yield* r.read(buf)) > 0; ) s += dec.decode(buf.subarray(0, n));
  return s;
}

forEachBackend("process", ({ run: blockOn }) => {
  test("output() collects stdout and stderr and the exit code", () => {
    const out = blockOn(new Command("sh").args(["-c", "echo out; echo err >&2; exit 3"]).output());
    expect(out.status.code).toBe(3);
    expect(out.status.success).toBe(false);
    expect(String(out.status)).toBe("exit status: 3");
    expect(dec.decode(out.stdout)).toBe("out\n");
    expect(dec.decode(out.stderr)).toBe("err\n");
  });

  test("a piped stdin, stdout round trip through cat: 1 MiB both ways at once, then exit 0", () => {
    const data = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 0xff);
    const r = blockOn(function* () {
      const child = new Command("cat").stdin("pipe").stdout("pipe").spawn();
      const writer = spawn(function* () {
        yield* child.stdin!.writeAll(data);
        child.stdin!.close();
        child.stdin = null;
      });
      const buf = new Uint8Array(data.length + 1);
      let got = 0;
      for (let n; (n = yield* child.stdout!.read(buf.subarray(got))) > 0; ) got += n;
      yield* writer;
      const status = yield* child.wait();
      child.stdout!.close();
      return { got, same: Buffer.compare(buf.subarray(0, got), data) === 0, code: status.code };
    });
    expect(r).toEqual({ got: data.length, same: true, code: 0 });
  });

  test("env, envRemove, envClear and cwd reach the child", () => {
    const out = blockOn(function* () {
      process.env.REEL_TEST_GONE = "x";
      try {
        const a = yield* new Command("sh").args(["-c", 'echo "$FOO|${REEL_TEST_GONE-unset}"; pwd']).env("FOO", "bar").envRemove("REEL_TEST_GONE").cwd("/tmp").output();
        const b = yield* new Command("/usr/bin/env").envClear().env("ONLY", "1").output();
        return [dec.decode(a.stdout), dec.decode(b.stdout)];
      } finally {
        delete process.env.REEL_TEST_GONE;
      }
    });
    expect(out).toEqual(["bar|unset\n/tmp\n", "ONLY=1\n"]);
  });

  test("spawn() of a missing program is SysError ENOENT naming it; a non-executable file EACCES; nothing leaks", () => {
    const noexec = joinPath(dir, "noexec.sh");
    writeFileSync(noexec, "#!/bin/sh\necho hi\n");
    chmodSync(noexec, 0o644);
    const errs = blockOn(function* () {
      const out: [string, string][] = [];
      for (const prog of ["reel-no-such-program", "/nonexistent/prog", noexec]) {
        try {
          new Command(prog).stdout("pipe").stderr("pipe").stdin("pipe").spawn();
          out.push([prog, "spawned"]);
        } catch (e) {
          out.push([(e as SysError).code, (e as SysError).message]);
        }
      }
      return out;
    });
    expect(errs[0]![0]).toBe("ENOENT");
    expect(errs[0]![1]).toContain("reel-no-such-program");
    expect(errs[1]![0]).toBe("ENOENT");
    expect(errs[1]![1]).toContain("/nonexistent/prog");
    expect(errs[2]![0]).toBe("EACCES");
    expect(errs[2]![1]).toContain(noexec);
  });

  test("a missing cwd is an error naming the program and the directory", () => {
    const e = blockOn(function* () {
      try {
        new Command("true").cwd("/nonexistent-dir").spawn();
        return null;
      } catch (err) {
        return err as SysError;
      }
    });
    expect(e?.code).toBe("ENOENT");
    expect(e?.message).toContain("/nonexistent-dir");
  });

  test("kill() ends a child with SIGKILL; a second kill after it was reaped sends nothing", () => {
    const r = blockOn(function* () {
      const child = new Command("sleep").arg("30").spawn();
      expect(child.kill()).toBe(true);
      const st = yield* child.wait();
      return { st: String(st), signal: st.signal, again: child.kill("SIGTERM") };
    });
    expect(r).toEqual({ st: "signal: SIGKILL", signal: "SIGKILL", again: false });
  });

  test("reading a child's stdout after killing it ends, even while a grandchild holds the pipe", () => {
    const r = blockOn(function* () {
      const child = new Command("sh").args(["-c", "sleep 30 & echo $!; wait"]).stdout("pipe").spawn();
      const buf = new Uint8Array(64);
      const n = yield* child.stdout!.read(buf);
      const grandchild = Number(dec.decode(buf.subarray(0, n)).trim());
      child.kill();
      const rest = yield* timeout(drain(child.stdout!), 5000);
      const st = yield* child.wait();
      child.stdout!.close();
      process.kill(grandchild, "SIGKILL"); // reparented to init: not ours to reap
      return { rest, signal: st.signal, grandchild: grandchild > 0 };
    });
    expect(r).toEqual({ rest: "", signal: "SIGKILL", grandchild: true });
  });

  test("a grandchild that keeps the pipe open does not keep wait() from returning", () => {
    const r = blockOn(function* () {
      const child = new Command("sh").args(["-c", "sleep 30 & echo $!"]).stdout("pipe").spawn();
      const st = yield* timeout(child.wait(), 5000);
      const buf = new Uint8Array(64);
      const n = yield* child.stdout!.read(buf);
      child.stdout!.close();
      process.kill(Number(dec.decode(buf.subarray(0, n)).trim()), "SIGKILL");
      return st.code;
    });
    expect(r).toBe(0);
  });

  test("a child nobody waits for is reaped when it exits (its pidfd closed)", () => {
    const st = blockOn(function* () {
      const child = new Command("true").spawn();
      for (let i = 0; i < 5000 && child.exitStatus === null; i++) yield* sleep(1);
      return child.exitStatus;
    });
    expect(st?.code).toBe(0);
  });

  test("killOnCancel: a status() cancelled by a timeout kills and reaps its child", () => {
    const r = blockOn(function* () {
      let err: unknown = null;
      try {
        yield* timeout(new Command("sleep").arg("31").killOnCancel().status(), 20);
      } catch (e) {
        err = e;
      }
      // The watcher reaps it: wait (bounded) until no `sleep 31` child is left.
      for (let i = 0; i < 5000 && children().some(([, , cmd]) => cmd === "sleep"); i++) yield* sleep(1);
      return { timedOut: err instanceof TimeoutError, left: children().filter(([, , cmd]) => cmd === "sleep").length };
    });
    expect(r).toEqual({ timedOut: true, left: 0 });
  });

  test("a cancelled wait() without killOnCancel leaves the child running; a later wait() gets its status", () => {
    const r = blockOn(function* () {
      const child = new Command("sh").args(["-c", "read x; exit 5"]).stdin("pipe").spawn();
      const stdin = child.stdin!;
      child.stdin = null; // keep it open across the first wait()
      try {
        yield* timeout(child.wait(), 10);
      } catch {
        // timed out, as intended
      }
      const running = child.exitStatus === null;
      yield* stdin.writeAll(enc.encode("go\n"));
      stdin.close();
      return { running, code: (yield* child.wait()).code };
    });
    expect(r).toEqual({ running: true, code: 5 });
  });

  test("the child starts with default signal actions (Bun ignores SIGPIPE) and only fds 0, 1, 2", () => {
    const out = blockOn(function* () {
      const st = yield* new Command("grep").args(["-E", "^Sig(Ign|Blk)", "/proc/self/status"]).output();
      const fds = yield* new Command("ls").args(["-1", "/proc/self/fd"]).output();
      return [dec.decode(st.stdout), dec.decode(fds.stdout)];
    });
    const [blk, ign] = [...out[0]!.matchAll(/:\s*([0-9a-f]+)/g)].map((m) => BigInt(`0x${m[1]}`));
    expect(blk).toBe(0n);
    expect((ign! >> 12n) & 1n).toBe(0n); // SIGPIPE (13): default again
    expect((ign! >> 24n) & 1n).toBe(0n); // SIGXFSZ (25), which Bun ignores too
    expect(out[1]).toBe("0\n1\n2\n3\n"); // 3: ls's own directory fd
  });

  test("two children in a pipeline through reel's copy(): ls -A / | wc -l", () => {
    const n = blockOn(function* () {
      const ls = new Command("ls").args(["-A", "/"]).stdout("pipe").spawn();
      const wc = new Command("wc").arg("-l").stdin("pipe").stdout("pipe").spawn();
      yield* copy(ls.stdout!, wc.stdin!);
      ls.stdout!.close();
      const out = yield* join(drain(wc.stdout!), wc.wait(), ls.wait()); // wait() closes wc's stdin
      wc.stdout!.close();
      return Number(out[0].trim());
    });
    expect(n).toBe(readdirSync("/").length);
  });
}, { kernel: "child processes" });

test("SIGCHLD fallback (no pidfd): exit codes and kills arrive through reel's signal hub", () => {
  const rt = new Runtime({ backend: "epoll" });
  process.env.REEL_PIDFD = "0";
  try {
    const r = rt.blockOn(function* () {
      const a = new Command("sh").args(["-c", "exit 7"]).spawn();
      const b = new Command("sleep").arg("30").spawn();
      b.kill();
      const [sa, sb] = yield* join(a.wait(), b.wait());
      return [sa.code, sb.signal];
    });
    expect(r).toEqual([7, "SIGKILL"]);
  } finally {
    delete process.env.REEL_PIDFD;
    rt.close();
  }
});

test("sigchld_reaper_keeps_listening: a second child's SIGCHLD after the first was reaped still wakes its parked waiter", () => {
  const rt = new Runtime({ backend: "epoll" });
  process.env.REEL_PIDFD = "0";
  try {
    const r = rt.blockOn(function* () {
      const b = new Command("sleep").arg("30").spawn();
      const waiter = spawn(b.wait()); // parked: nothing re-polls it until b's SIGCHLD is handled
      yield* sleep(0);
      const a = yield* new Command("true").status(); // the first SIGCHLD, handled by a's own wait
      b.kill();
      const sb = yield* timeout(waiter, 5000); // the second SIGCHLD must reach the reaper alone
      return [a.code, sb.signal];
    });
    expect(r).toEqual([0, "SIGKILL"]);
  } finally {
    delete process.env.REEL_PIDFD;
    rt.close();
  }
});

kernelTest(null, "child processes")("hosted mode: output() through run()", async () => {
  const out = await run(new Command("echo").arg("hosted").output());
  expect(dec.decode(out.stdout)).toBe("hosted\n");
});

test("spawn() outside a runtime is RuntimeError ENORUNTIME and starts nothing", () => {
  const before = children().length;
  expect(() => new Command("true").spawn()).toThrow("No reel runtime");
  expect(children().length).toBe(before);
});


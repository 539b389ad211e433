/**
 * The kqueue backend against the Poller contract (test/poller_contract.ts), in both of its
 * modes, wherever kqueue can be used: macOS and FreeBSD, and Linux over libkqueue when
 * REEL_KQUEUE_LIB names the library. Elsewhere the suite is skipped, with the reason
 * printed: the backend's encodings are still checked on every platform by
 * test/kqueue_encoding.test.ts.
 *
 * What libkqueue does differently from the kernels is listed in docs/platforms.md; the
 * tests below check what kqueue(2) promises and say where libkqueue needs reel's help.
 */
import { describe, expect, test } from "bun:test";
import * as kq from "../ffi/kqueue.ts";
import * as libc from "../ffi/libc.ts";
import * as pf from "../ffi/poll.ts";
import { SYS } from "../ffi/constants.ts";
import { ECONNREFUSED, EINPROGRESS } from "../ffi/errno.ts";
import { SOCKADDR_MAX, decodeSockaddr, encodeIPv4 } from "../ffi/sockaddr.ts";
import { KqueuePoller, defaultKqueueMode } from "../lib/driver/readiness/kqueue.ts";
import { READABLE, READ_CLOSED, READ_WRITE, WRITABLE } from "../lib/driver/readiness/poller.ts";
import { fdCount, fdTable, opened } from "./helpers.ts";
import { collect, makePipe, makeSocketpair, pollerContract } from "./poller_contract.ts";

const LIBKQUEUE = kq.PROFILE?.name === "libkqueue";

if (kq.HAVE_KQUEUE) {
  if (LIBKQUEUE) {
    // libkqueue creates process-wide state with the first kqueue() of a process — the epoll
    // fd and eventfd of the monitoring thread that frees closed kqueues — and keeps it for
    // the life of the process. It belongs to the library, not to any kqueue: create it
    // before the fd counts start, so that they measure what one kqueue holds.
    new KqueuePoller().close();
  }
  const lost = LIBKQUEUE ? { losesOverflow: "libkqueue with EV_CLEAR, upstream issue #89" } : {};
  pollerContract("kqueue, clear", "edge", () => new KqueuePoller({ mode: "clear" }), true, lost);
  const quirks = LIBKQUEUE ? { eofAfterRearm: "libkqueue drops EPOLLRDHUP when it disables a delivered write knote" } : {};
  pollerContract("kqueue, dispatch", "level", () => new KqueuePoller({ mode: "dispatch" }), true, quirks);
} else {
  console.log(
    `kqueue_backend: skipped on ${process.platform}: ${kq.kqueueUnavailable()} ` +
      "(its kevent encodings are tested by kqueue_encoding.test.ts on every platform)",
  );
}

describe.skipIf(!kq.HAVE_KQUEUE)(`kqueue over ${kq.PROFILE?.name ?? "(no kqueue here)"}`, () => {
  test("the default mode is clear on the kernels and dispatch over libkqueue; REEL_KQUEUE_MODE overrides it", () => {
    expect(defaultKqueueMode("")).toBe(LIBKQUEUE ? "dispatch" : "clear");
    expect(defaultKqueueMode("clear")).toBe("clear");
    expect(defaultKqueueMode("dispatch")).toBe("dispatch");
    expect(() => defaultKqueueMode("edge")).toThrow(/REEL_KQUEUE_MODE "edge"/);
  });

  // kqueue(2): "the queue ... can be monitored ... The kqueue fd is returned by poll/select
  // as readable when events are pending" (FreeBSD: "kqueue ... may be passed to select(2),
  // poll(2) and kevent(2)"); hosted mode watches Poller.fd for exactly that. libkqueue's
  // kqueue fd is the write end of a pipe (its close detection), never readable, so over
  // libkqueue the poller reports no pollable fd and hosted mode polls on a timer instead.
  test("Poller.fd is the kqueue fd, readable while events are pending; -1 over libkqueue", () => {
    const p = new KqueuePoller();
    const [r, w] = makePipe();
    p.register(r, 1, READABLE);
    expect(libc.write(w, new Uint8Array(1))).toBe(1);
    if (LIBKQUEUE) {
      expect(p.fd).toBe(-1);
    } else {
      const fds = new pf.PollFds(1);
      fds.push(p.fd, pf.POLLIN);
      expect(pf.pollFds(fds, 2000)).toBe(1);
    }
    expect(collect(p, 1, READABLE) & READABLE).toBe(READABLE);
    p.close();
    libc.close(r);
    libc.close(w);
  });

  // A kernel releases a kqueue's resources in close(2). libkqueue frees a closed kqueue on
  // its monitoring thread some time later (its epoll fd, the read end of its close-detect
  // pipe, the EVFILT_USER eventfd); closeKqueue() waits for that (libkqueue's
  // libkqueue_drain_pending_close()), so close() releases everything before returning.
  test("close() releases every descriptor the kqueue used, before it returns", () => {
    const before = fdTable();
    const count = fdCount();
    const pollers = [new KqueuePoller({ mode: "clear" }), new KqueuePoller({ mode: "dispatch" })];
    const [a, b] = makeSocketpair();
    for (const p of pollers) {
      p.register(a, 3, READ_WRITE);
      p.notify();
      p.wait(0);
    }
    expect(fdCount()).toBeGreaterThan(count + 2);
    for (const p of pollers) p.close();
    libc.close(a);
    libc.close(b);
    expect(opened(before, fdTable())).toEqual([]);
    expect(fdCount()).toBe(count);
  });

  // The hang of issue 17 ("length-delimited frames of 1 MiB cross a socket intact"): the
  // whole frame stream and the FIN were in the socket before the reader's first wait. The
  // first event must carry EV_EOF (FreeBSD kqueue(2), EVFILT_READ: "It is possible for EOF
  // to be returned ... while there is still data pending in the socket buffer"), else the
  // reader drains the data with a short read, clears READABLE and waits for an edge that
  // already came. libkqueue drops EPOLLRDHUP from an fd whose write filter was added after
  // its read filter; reel adds the read filter last (lib/driver/readiness/kqueue.ts).
  test("kqueue_fin_behind_unread_data_sets_ev_eof: both filters on one socket, data and FIN already queued", () => {
    for (const mode of ["clear", "dispatch"] as const) {
      const p = new KqueuePoller({ mode });
      const [a, b] = makeSocketpair();
      p.register(a, 9, READ_WRITE);
      expect(libc.write(b, new Uint8Array(100))).toBe(100);
      expect(libc.shutdown(b, SYS.SHUT_WR)).toBe(0);
      expect(collect(p, 9, READABLE | READ_CLOSED | WRITABLE) & (READ_CLOSED | WRITABLE)).toBe(READ_CLOSED | WRITABLE);
      p.close();
      libc.close(a);
      libc.close(b);
    }
  });

  // kqueue(2), EVFILT_READ/EVFILT_WRITE on sockets: on EOF the filter "returns the socket
  // error (if any) in fflags" — it reads so_error, it does not clear it, so connect()'s
  // caller still finds the error with getsockopt(SO_ERROR) (which does clear it). libkqueue
  // fills fflags with getsockopt(SO_ERROR) itself, so over libkqueue the error reaches the
  // kevent and is gone from the socket; reel keeps the event's error and uses it where the
  // syscall finds none (lib/driver/readiness/fd.ts), so a refused connect still fails.
  test("a refused connect's kevent carries ECONNREFUSED in fflags; SO_ERROR keeps it on the kernels, not over libkqueue", () => {
    const k = kq.KQ;
    const flags = SYS.SOCK_NONBLOCK > 0 ? SYS.SOCK_NONBLOCK | SYS.SOCK_CLOEXEC : 0;
    const holder = libc.socket(SYS.AF_INET, SYS.SOCK_STREAM | flags, 0);
    const addr = new Uint8Array(SOCKADDR_MAX);
    const lo = new Uint8Array([127, 0, 0, 1]);
    expect(libc.bind(holder, addr, encodeIPv4(addr, lo, 0))).toBe(0); // bound, not listening: RST
    const len = new Uint32Array([SOCKADDR_MAX]);
    expect(libc.getsockname(holder, addr, len)).toBe(0);
    const port = decodeSockaddr(addr, len[0]!)!.port;
    const s = libc.socket(SYS.AF_INET, SYS.SOCK_STREAM | flags, 0);
    if (SYS.SOCK_NONBLOCK <= 0) expect(libc.fcntl(s, SYS.F_SETFL, libc.fcntl(s, SYS.F_GETFL, 0) | SYS.O_NONBLOCK)).toBe(0);
    expect(libc.connect(s, addr, encodeIPv4(addr, lo, port))).toBe(-EINPROGRESS);
    const kqfd = kq.kqueue();
    expect(kqfd).toBeGreaterThanOrEqual(0);
    const ch = new kq.KeventList(kq.KEVENT, 2);
    kq.encodeKevent(ch, 0, s, k.EVFILT_WRITE, k.EV_ADD | k.EV_CLEAR, 0, 0, 1);
    kq.encodeKevent(ch, 1, s, k.EVFILT_READ, k.EV_ADD | k.EV_CLEAR, 0, 0, 1);
    expect(kq.kevent(kqfd, ch, 2, null, 0, 0)).toBe(0);
    const ev = new kq.KeventList(kq.KEVENT, 4);
    const errs: number[] = [];
    for (let i = 0; i < 10 && errs.length === 0; i++) {
      const n = kq.kevent(kqfd, null, 0, ev, 4, 2000);
      for (let j = 0; j < n; j++) if ((kq.keventFlags(ev, j) & k.EV_EOF) !== 0 && kq.keventFflags(ev, j) !== 0) errs.push(kq.keventFflags(ev, j));
    }
    expect(errs[0]).toBe(ECONNREFUSED);
    expect(libc.getsockoptInt(s, SYS.SOL_SOCKET, SYS.SO_ERROR)).toBe(LIBKQUEUE ? 0 : ECONNREFUSED);
    kq.closeKqueue(kqfd);
    libc.close(s);
    libc.close(holder);
  });
});

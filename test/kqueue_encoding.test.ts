/**
 * The BSD side of reel, checked byte for byte on any platform: struct kevent change and
 * event lists for Darwin (32 bytes, x86-64 and arm64 alike) and FreeBSD 12+ (64 bytes),
 * the kqueue/errno/socket constants against sys/event.h, sys/errno.h and sys/socket.h,
 * sockaddr_in/in6 with sin_len, the fixed fcntl declaration Darwin uses, and backend
 * selection by platform. Expected bytes are written out by hand (little-endian), field by
 * field, from the struct layouts quoted in ffi/kqueue.ts's header.
 */
import { describe, expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import { DARWIN, FREEBSD, LINUX, SYS } from "../ffi/constants.ts";
import { DARWIN_ERRNO, EBADF, ENOENT, EPIPE, FREEBSD_ERRNO } from "../ffi/errno.ts";
import { SOCKADDR_MAX, decodeSockaddr, encodeIPv4, encodeIPv6, parseIPv6 } from "../ffi/sockaddr.ts";
import { openFixedFcntl } from "../ffi/darwin.ts";
import * as kq from "../ffi/kqueue.ts";
import { OP_ADD, OP_DELETE, OP_DEREGISTER, KqueuePoller, ignorableChangeErrno, keventReadiness, receiptErrno } from "../lib/driver/readiness/kqueue.ts";
import { availableBackends, createDriver, defaultBackend, selectedBackend } from "../lib/driver/index.ts";
import { ERROR, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED } from "../lib/driver/readiness/poller.ts";

/** "05000000 ffff" → bytes; spaces are for the reader. */
function hex(s: string): number[] {
  const t = s.replace(/\s+/g, "");
  const out: number[] = [];
  for (let i = 0; i < t.length; i += 2) out.push(parseInt(t.slice(i, i + 2), 16));
  return out;
}

const ZERO8 = "0000000000000000";
const EXT_ZERO = ZERO8.repeat(4); // FreeBSD's ext[4]
const TOKEN = 7 | (3 << 20); // a driver token: index 7, generation 3 → 0x00300007

/** One struct kevent, fields in order, as hex. */
function kev(ident: string, filter: string, flags: string, fflags: string, data: string, udata: string, ext = ""): string {
  return ident + filter + flags + fflags + data + udata + ext;
}

const LAYOUTS = [
  { name: "darwin-x64", layout: kq.DARWIN_KEVENT, k: kq.DARWIN_KQ, ext: "" },
  { name: "darwin-arm64", layout: kq.DARWIN_KEVENT, k: kq.DARWIN_KQ, ext: "" },
  { name: "freebsd", layout: kq.FREEBSD_KEVENT, k: kq.FREEBSD_KQ, ext: EXT_ZERO },
  { name: "libkqueue (linux)", layout: kq.LIBKQUEUE_KEVENT, k: kq.LIBKQUEUE_KQ, ext: "" },
] as const;

describe("kqueue constants (sys/event.h)", () => {
  test("Darwin: EVFILT_USER is -10 and the flag bits are xnu's", () => {
    const k = kq.DARWIN_KQ;
    expect([k.EVFILT_READ, k.EVFILT_WRITE, k.EVFILT_USER]).toEqual([-1, -2, -10]);
    expect([k.EV_ADD, k.EV_DELETE, k.EV_ENABLE, k.EV_DISABLE, k.EV_ONESHOT]).toEqual([1, 2, 4, 8, 0x10]);
    expect([k.EV_CLEAR, k.EV_RECEIPT, k.EV_DISPATCH, k.EV_ERROR, k.EV_EOF]).toEqual([0x20, 0x40, 0x80, 0x4000, 0x8000]);
    expect([k.NOTE_TRIGGER, k.NOTE_FFNOP, k.NOTE_FFCOPY]).toEqual([0x0100_0000, 0, 0xc000_0000]);
  });

  test("FreeBSD: the same values except EVFILT_USER, which is -11", () => {
    expect({ ...kq.FREEBSD_KQ, EVFILT_USER: -10 }).toEqual(kq.DARWIN_KQ);
    expect(kq.FREEBSD_KQ.EVFILT_USER).toBe(-11);
  });

  test("libkqueue: FreeBSD's values (its include/sys/event.h), so EVFILT_USER is -11", () => {
    expect(kq.LIBKQUEUE_KQ).toEqual(kq.FREEBSD_KQ);
    expect(kq.LIBKQUEUE_KQ.EVFILT_USER).toBe(-11);
  });

  test("struct kevent is 32 bytes on Darwin and over libkqueue, 64 on FreeBSD 12+", () => {
    expect(kq.DARWIN_KEVENT.size).toBe(32);
    expect(kq.LIBKQUEUE_KEVENT.size).toBe(32);
    expect(kq.FREEBSD_KEVENT.size).toBe(64);
    expect(new kq.KeventList(kq.FREEBSD_KEVENT, 3).bytes().length).toBe(192);
  });
});

for (const { name, layout, k, ext } of LAYOUTS) {
  const user = layout.os === "darwin" ? "f6ff" : "f5ff"; // -10 / -11 as little-endian i16

  describe(`kevent encoding [${name}]`, () => {
    test("register: EV_ADD|EV_CLEAR|EV_RECEIPT for the read and write filters, token in udata", () => {
      const ch = new kq.KeventList(layout, 2);
      ch.bytes().fill(0xaa); // stale bytes must all be overwritten
      const flags = k.EV_ADD | k.EV_CLEAR | k.EV_RECEIPT; // 0x61
      kq.encodeKevent(ch, 0, 5, k.EVFILT_READ, flags, 0, 0, TOKEN);
      kq.encodeKevent(ch, 1, 5, k.EVFILT_WRITE, flags, 0, 0, TOKEN);
      const read = kev("0500000000000000", "ffff", "6100", "00000000", ZERO8, "0700300000000000", ext);
      const write = kev("0500000000000000", "feff", "6100", "00000000", ZERO8, "0700300000000000", ext);
      expect([...ch.bytes()]).toEqual(hex(read + write));
    });

    test("deregister: EV_DELETE|EV_RECEIPT with a zero udata", () => {
      const ch = new kq.KeventList(layout, 1);
      kq.encodeKevent(ch, 0, 0x1234, k.EVFILT_WRITE, k.EV_DELETE | k.EV_RECEIPT, 0, 0, 0);
      expect([...ch.bytes()]).toEqual(hex(kev("3412000000000000", "feff", "4200", "00000000", ZERO8, ZERO8, ext)));
    });

    test("notify: EVFILT_USER with NOTE_TRIGGER and the reserved udata", () => {
      const ch = new kq.KeventList(layout, 1);
      kq.encodeKevent(ch, 0, 0, k.EVFILT_USER, k.EV_ADD | k.EV_RECEIPT, k.NOTE_TRIGGER, 0, 0xffff_ffff);
      expect([...ch.bytes()]).toEqual(hex(kev(ZERO8, user, "4100", "00000001", ZERO8, "ffffffff00000000", ext)));
    });

    test("data is a signed 64-bit field: -2 and 2^32 + 5", () => {
      const ch = new kq.KeventList(layout, 2);
      kq.encodeKevent(ch, 0, 1, k.EVFILT_READ, 0, 0, -2, 0);
      kq.encodeKevent(ch, 1, 1, k.EVFILT_READ, 0, 0, 0x1_0000_0005, 0);
      const b = ch.bytes();
      const at = (i: number) => [...b.subarray(i * layout.size + 16, i * layout.size + 24)];
      expect(at(0)).toEqual(hex("feffffffffffffff"));
      expect(at(1)).toEqual(hex("0500000001000000"));
      expect([kq.keventData(ch, 0), kq.keventData(ch, 1)]).toEqual([-2, 0x1_0000_0005]);
    });

    test("an event list decodes field by field, at the layout's stride", () => {
      const ev = new kq.KeventList(layout, 2);
      const garbage = layout.size === 64 ? "ab".repeat(32) : ""; // ext[] must be ignored
      // 0: fd 9 read filter, EV_ADD|EV_CLEAR|EV_EOF, fflags 54 (a socket error), 17 bytes.
      // 1: fd 300 write filter, EV_ADD|EV_CLEAR, 4096 bytes of room.
      const e0 = kev("0900000000000000", "ffff", "2180", "36000000", "1100000000000000", "0700300000000000", garbage);
      const e1 = kev("2c01000000000000", "feff", "2100", "00000000", "0010000000000000", "0b00000000000000", garbage);
      ev.bytes().set(hex(e0 + e1));
      expect([kq.keventIdent(ev, 0), kq.keventFilter(ev, 0), kq.keventFlags(ev, 0)]).toEqual([9, -1, 0x8021]);
      expect([kq.keventFflags(ev, 0), kq.keventData(ev, 0), kq.keventToken(ev, 0)]).toEqual([54, 17, TOKEN]);
      expect([kq.keventIdent(ev, 1), kq.keventFilter(ev, 1), kq.keventFlags(ev, 1)]).toEqual([300, -2, 0x21]);
      expect([kq.keventData(ev, 1), kq.keventToken(ev, 1)]).toEqual([4096, 11]);
      expect(keventReadiness(-1, 0x8021, 54, k)).toBe(READABLE | READ_CLOSED | WRITABLE | ERROR);
      expect(keventReadiness(-2, 0x21, 0, k)).toBe(WRITABLE);
    });

    test("EV_RECEIPT answers decode to 0 on success and to data's errno on failure", () => {
      const rc = new kq.KeventList(layout, 3);
      const ok = kev("0500000000000000", "ffff", "0040", "00000000", ZERO8, ZERO8, ext);
      const noent = kev("0500000000000000", "feff", "0040", "00000000", "0200000000000000", ZERO8, ext);
      const plain = kev("0500000000000000", "ffff", "6100", "00000000", "0900000000000000", ZERO8, ext);
      rc.bytes().set(hex(ok + noent + plain));
      expect([receiptErrno(rc, 0, k), receiptErrno(rc, 1, k), receiptErrno(rc, 2, k)]).toEqual([0, 2, 0]);
    });
  });
}

describe("kevent → readiness", () => {
  const k = kq.DARWIN_KQ;
  test.each([
    ["read", k.EVFILT_READ, 0, 0, READABLE],
    ["read EOF", k.EVFILT_READ, k.EV_EOF, 0, READABLE | READ_CLOSED],
    ["write", k.EVFILT_WRITE, 0, 0, WRITABLE],
    ["write EOF", k.EVFILT_WRITE, k.EV_EOF, 0, WRITABLE | WRITE_CLOSED],
    ["write EOF with a socket error", k.EVFILT_WRITE, k.EV_EOF, 61, WRITABLE | WRITE_CLOSED | READABLE | ERROR],
    ["EV_ERROR", k.EVFILT_READ, k.EV_ERROR, 0, READABLE | WRITABLE | ERROR],
  ])("%s", (_name, filter, flags, fflags, want) => {
    expect(keventReadiness(filter, flags, fflags, k)).toBe(want);
  });

  test("per-change errnos: ENOENT on delete, EBADF on deregister, EPIPE on add are ignored", () => {
    expect(ignorableChangeErrno(ENOENT, OP_DELETE)).toBe(true);
    expect(ignorableChangeErrno(ENOENT, OP_DEREGISTER)).toBe(true);
    expect(ignorableChangeErrno(EBADF, OP_DEREGISTER)).toBe(true);
    expect(ignorableChangeErrno(EPIPE, OP_ADD)).toBe(true);
    expect(ignorableChangeErrno(EBADF, OP_ADD)).toBe(false);
    expect(ignorableChangeErrno(ENOENT, OP_ADD)).toBe(false);
    expect(ignorableChangeErrno(EBADF, OP_DELETE)).toBe(false);
  });
});

describe("sockaddr BSD layout (sin_len first)", () => {
  const out = () => new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
  test.each([
    ["darwin", DARWIN],
    ["freebsd", FREEBSD],
  ] as const)("sockaddr_in on %s: len 16, AF_INET 2, port big-endian", (_os, k) => {
    const b = out();
    expect(encodeIPv4(b, new Uint8Array([127, 0, 0, 1]), 8080, k)).toBe(16);
    expect([...b.subarray(0, 16)]).toEqual(hex("10 02 1f90 7f000001 0000000000000000"));
    const a = decodeSockaddr(b, 16, k)!;
    expect([a.family, a.address, a.port]).toEqual(["IPv4", "127.0.0.1", 8080]);
  });

  test.each([
    ["darwin", DARWIN, "1e"],
    ["freebsd", FREEBSD, "1c"],
  ] as const)("sockaddr_in6 on %s: len 28, the platform's AF_INET6, scope id little-endian", (_os, k, fam) => {
    const b = out();
    const v6 = parseIPv6("fe80::1")!;
    expect(encodeIPv6(b, v6.bytes, 443, 0x0102_0304, k)).toBe(28);
    const want = `1c ${fam} 01bb 00000000 fe800000000000000000000000000001 04030201`;
    expect([...b.subarray(0, 28)]).toEqual(hex(want));
    const a = decodeSockaddr(b, 28, k)!;
    expect([a.family, a.address, a.port, a.scopeId]).toEqual(["IPv6", "fe80::1", 443, 0x0102_0304]);
  });
});

describe("BSD platform constants (errno.h, socket.h, fcntl.h)", () => {
  test("Darwin errno: 45 is ENOTSUP, EOPNOTSUPP is 102, ECANCELED 89", () => {
    expect([DARWIN_ERRNO[35], DARWIN_ERRNO[45], DARWIN_ERRNO[102], DARWIN_ERRNO[89]]).toEqual(["EAGAIN", "ENOTSUP", "EOPNOTSUPP", "ECANCELED"]);
    expect([DARWIN_ERRNO[54], DARWIN_ERRNO[61], DARWIN_ERRNO[92], DARWIN_ERRNO[106]]).toEqual(["ECONNRESET", "ECONNREFUSED", "EILSEQ", "EQFULL"]);
  });

  test("FreeBSD errno: its own numbering from 82 (ECANCELED 85, EBADMSG 89, EPROTO 92)", () => {
    expect([FREEBSD_ERRNO[45], FREEBSD_ERRNO[85], FREEBSD_ERRNO[86], FREEBSD_ERRNO[89]]).toEqual(["EOPNOTSUPP", "ECANCELED", "EILSEQ", "EBADMSG"]);
    expect([FREEBSD_ERRNO[92], FREEBSD_ERRNO[97], FREEBSD_ERRNO[102]]).toEqual(["EPROTO", "EINTEGRITY", undefined]);
  });

  test("no errno name appears under two numbers in any table", () => {
    for (const table of [DARWIN_ERRNO, FREEBSD_ERRNO]) {
      const names = Object.values(table);
      expect(new Set(names).size).toBe(names.length);
    }
  });

  test("socket and fcntl constants differ where the headers do", () => {
    expect([DARWIN.AF_INET6, FREEBSD.AF_INET6, LINUX.AF_INET6]).toEqual([30, 28, 10]);
    expect([DARWIN.SOL_SOCKET, DARWIN.SO_ERROR, DARWIN.SO_NOSIGPIPE, FREEBSD.SO_NOSIGPIPE]).toEqual([0xffff, 0x1007, 0x1022, 0x800]);
    expect([DARWIN.O_NONBLOCK, DARWIN.O_CLOEXEC, FREEBSD.O_CLOEXEC]).toEqual([4, 0x100_0000, 0x10_0000]);
    expect([DARWIN.SOCK_NONBLOCK, FREEBSD.SOCK_NONBLOCK, FREEBSD.SOCK_CLOEXEC]).toEqual([-1, 0x2000_0000, 0x1000_0000]);
    expect([DARWIN.MSG_NOSIGNAL, FREEBSD.MSG_NOSIGNAL, DARWIN.RLIMIT_NOFILE, FREEBSD.RLIMIT_NOFILE]).toEqual([-1, 0x20000, 8, 8]);
  });
});

describe("Darwin's fixed-argument fcntl", () => {
  const LIB = process.platform === "linux" ? "libc.so.6" : process.platform === "freebsd" ? "libc.so.7" : "libSystem.B.dylib";

  test("the 9-argument declaration sets and reads back O_NONBLOCK and FD_CLOEXEC (this platform's libc)", () => {
    const fcntl = openFixedFcntl(LIB);
    const p = new Int32Array(new ArrayBuffer(8));
    expect(libc.pipe2(p, 0)).toBe(0);
    const fd = p[0]!;
    const fl = fcntl(fd, SYS.F_GETFL, 0);
    expect(fl & SYS.O_NONBLOCK).toBe(0);
    expect(fcntl(fd, SYS.F_SETFL, fl | SYS.O_NONBLOCK)).toBe(0);
    expect(fcntl(fd, SYS.F_GETFL, 0) & SYS.O_NONBLOCK).toBe(SYS.O_NONBLOCK);
    expect(fcntl(fd, SYS.F_SETFD, SYS.FD_CLOEXEC)).toBe(0);
    expect(fcntl(fd, SYS.F_GETFD, 0) & SYS.FD_CLOEXEC).toBe(SYS.FD_CLOEXEC);
    libc.close(p[0]!);
    libc.close(p[1]!);
  });
});

describe("backend selection by platform", () => {
  function onPlatform<T>(platform: string, f: () => T): T {
    const orig = Object.getOwnPropertyDescriptor(process, "platform")!;
    Object.defineProperty(process, "platform", { ...orig, value: platform });
    try {
      return f();
    } finally {
      Object.defineProperty(process, "platform", orig);
    }
  }

  test("defaultBackend(): epoll on Linux, kqueue on macOS and FreeBSD", () => {
    expect(onPlatform("linux", defaultBackend)).toBe("epoll");
    expect(onPlatform("darwin", defaultBackend)).toBe("kqueue");
    expect(onPlatform("freebsd", defaultBackend)).toBe("kqueue");
  });

  test("REEL_BACKEND names are validated, kqueue among them", () => {
    expect(selectedBackend("kqueue")).toBe("kqueue");
    expect(selectedBackend("poll")).toBe("poll");
    expect(() => selectedBackend("select")).toThrow(RangeError);
  });

  test("this build offers poll everywhere, kqueue on macOS/FreeBSD (on Linux with REEL_KQUEUE_LIB), epoll only on Linux", () => {
    const names = availableBackends();
    expect(names[0]).toBe(defaultBackend());
    expect(names).toContain("poll");
    expect(names.includes("kqueue")).toBe(kq.HAVE_KQUEUE);
    expect(names.includes("epoll")).toBe(process.platform === "linux");
    if (!kq.HAVE_KQUEUE) {
      expect(() => createDriver("kqueue")).toThrow(/kqueue backend is not available/);
      expect(() => new KqueuePoller()).toThrow(RangeError);
    }
  });

  test("the kqueue profile: native on macOS and FreeBSD, libkqueue on Linux only when REEL_KQUEUE_LIB names it", () => {
    expect(kq.kqueueProfile("darwin", "/x/libkqueue.so")).toEqual({ name: "darwin", lib: "libSystem.B.dylib", layout: kq.DARWIN_KEVENT, k: kq.DARWIN_KQ });
    expect(kq.kqueueProfile("freebsd", undefined)).toEqual({ name: "freebsd", lib: "libc.so.7", layout: kq.FREEBSD_KEVENT, k: kq.FREEBSD_KQ });
    expect(kq.kqueueProfile("linux", "/x/libkqueue.so")).toEqual({ name: "libkqueue", lib: "/x/libkqueue.so", layout: kq.LIBKQUEUE_KEVENT, k: kq.FREEBSD_KQ });
    expect(kq.kqueueProfile("linux", undefined)).toBeNull();
    expect(kq.kqueueProfile("linux", "")).toBeNull();
    expect(kq.kqueueProfile("win32", "/x/libkqueue.so")).toBeNull();
  });

  test("without kqueue, the error says how to get it: build libkqueue and set REEL_KQUEUE_LIB", () => {
    expect(kq.howToGetKqueue("linux")).toMatch(/build-libkqueue\.sh OUTDIR.*REEL_KQUEUE_LIB=OUTDIR\/libkqueue\.so/);
    expect(kq.howToGetKqueue("win32")).toMatch(/macOS and FreeBSD, and on Linux through libkqueue \(REEL_KQUEUE_LIB\)/);
    expect(kq.kqueueUnavailable()).toBe(kq.HAVE_KQUEUE ? null : kq.howToGetKqueue(process.platform));
    if (!kq.HAVE_KQUEUE) expect(() => createDriver("kqueue")).toThrow(/REEL_KQUEUE_LIB/);
  });
});

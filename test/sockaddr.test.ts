// sockaddr encode/decode round trips (Linux layout here; BSD layouts in the kqueue encoding tests).
import { describe, expect, test } from "bun:test";
import { LINUX } from "../ffi/constants.ts";
import {
  SOCKADDR_MAX,
  decodeSockaddr,
  encodeIPv4,
  encodeIPv6,
  encodeUnix,
  formatIPv6,
  parseIPv4,
  parseIPv6,
} from "../ffi/sockaddr.ts";
import { resolve } from "../lib/net/addr.ts";

const buf = () => new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));

describe("sockaddr", () => {
  test.each([
    ["127.0.0.1", 0],
    ["0.0.0.0", 80],
    ["255.255.255.255", 65535],
    ["10.1.2.3", 8080],
  ])("IPv4 %s:%d round-trips", (ip, port) => {
    const b = buf();
    expect(encodeIPv4(b, parseIPv4(ip)!, port, LINUX)).toBe(16);
    const a = decodeSockaddr(b, 16, LINUX)!;
    expect([a.family, a.address, a.port]).toEqual(["IPv4", ip, port]);
  });

  test("IPv4 sockaddr_in bytes: family little-endian, port big-endian", () => {
    const b = buf();
    encodeIPv4(b, parseIPv4("127.0.0.1")!, 0x1f90, LINUX);
    expect([...b.subarray(0, 16)]).toEqual([2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  test.each([
    ["::1", "::1"],
    ["::", "::"],
    ["fe80::1", "fe80::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:DB8::8:800:200C:417A", "2001:db8::8:800:200c:417a"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["::ffff:192.168.1.1", "::ffff:192.168.1.1"],
    ["1:0:0:2::3", "1:0:0:2::3"],
    ["1:0:0:0:2:0:0:3", "1::2:0:0:3"],
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"],
  ])("IPv6 %s round-trips to canonical %s", (text, canonical) => {
    const p = parseIPv6(text)!;
    const b = buf();
    expect(encodeIPv6(b, p.bytes, 443, 0, LINUX)).toBe(28);
    const a = decodeSockaddr(b, 28, LINUX)!;
    expect([a.family, a.address, a.port]).toEqual(["IPv6", canonical, 443]);
    expect(formatIPv6(p.bytes)).toBe(canonical);
  });

  test("IPv6 scope id is encoded at offset 24 and decoded", () => {
    const p = parseIPv6("fe80::1%3")!;
    const b = buf();
    encodeIPv6(b, p.bytes, 1, p.scopeId, LINUX);
    expect(b[24]).toBe(3);
    const a = decodeSockaddr(b, 28, LINUX)!;
    expect(a.scopeId).toBe(3);
    expect(a.toString()).toBe("[fe80::1%3]:1");
  });

  test("Unix path round-trips; an oversized path is refused", () => {
    const b = buf();
    const len = encodeUnix(b, "/tmp/reel.sock", LINUX);
    expect(len).toBe(2 + 14 + 1);
    const a = decodeSockaddr(b, len, LINUX)!;
    expect([a.family, a.address]).toEqual(["unix", "/tmp/reel.sock"]);
    expect(encodeUnix(b, "x".repeat(200), LINUX)).toBe(-1);
    // sun_path is 108 bytes: a path takes 107 and its NUL; an abstract name all 108.
    expect(encodeUnix(b, "p".repeat(107), LINUX)).toBe(2 + 107 + 1);
    expect(encodeUnix(b, "p".repeat(108), LINUX)).toBe(-1);
    expect(encodeUnix(b, `\0${"a".repeat(107)}`, LINUX)).toBe(2 + 108);
    expect(encodeUnix(b, `\0${"a".repeat(108)}`, LINUX)).toBe(-1);
  });

  test.each(["1.2.3", "1.2.3.256", "01.2.3.4", "a.b.c.d", "", "1.2.3.4.5"])("bad IPv4 %p is rejected", (s) => {
    expect(parseIPv4(s)).toBeNull();
  });

  test.each([":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "1.2.3.4::", "::1%x"])("bad IPv6 %p is rejected", (s) => {
    expect(parseIPv6(s)).toBeNull();
  });

  test("resolve() maps localhost and bracketed IPv6, and names bad input", () => {
    expect(resolve({ hostname: "localhost", port: 1 }).length).toBe(16);
    expect(resolve({ hostname: "[::1]", port: 1 }).length).toBe(28);
    expect(() => resolve({ hostname: "127.0.0.1", port: 70000 })).toThrow("70000");
    expect(() => resolve({ hostname: "127.0.0.1", port: 70000 })).toThrow(RangeError);
    expect(() => resolve({ hostname: "127.0.0.1", port: 1.5 })).toThrow(TypeError);
    expect(() => resolve({ hostname: "example.invalid", port: 1 })).toThrow(/example\.invalid/);
  });
});

/**
 * sockaddr encoding and decoding: IPv4, IPv6 and Unix, in the Linux and BSD layouts.
 *
 * Linux: `sa_family` is a host-order u16 at offset 0. BSD (Darwin, FreeBSD): a `sa_len`
 * byte at 0 and a `sa_family` byte at 1. Ports are big-endian at offset 2 in both.
 * sockaddr_in is 16 bytes, sockaddr_in6 28 (flowinfo at 4, address at 8, scope id at 24),
 * sockaddr_un 110 (Linux) / 106 (BSD). All supported CPUs are little-endian.
 *
 * Encoding writes bytes one by one into a caller's buffer (at least {@link SOCKADDR_MAX});
 * the layout is a parameter so the BSD encodings can be tested on Linux.
 *
 * Must never: call libc, or accept a malformed address silently (parse errors return
 * null and the caller throws a TypeError naming the input).
 * Must never import: lib/**, ffi/libc.ts, bun:ffi
 */
import { SYS, type PlatformConstants } from "./constants.ts";

/** Room for any sockaddr (sizeof(struct sockaddr_storage)). */
export const SOCKADDR_MAX = 128;

/**
 * An IP socket address, or a Unix socket path: what `localAddr`, `peerAddr` and
 * `accept()` report.
 *
 * @example
 * ```ts
 * import { TcpListener, blockOn } from "reel";
 * blockOn(function* () {
 *   const listener = TcpListener.bind({ hostname: "127.0.0.1", port: 0 });
 *   const addr = listener.localAddr;
 *   console.log(addr.family, addr.address, addr.port, `${addr}`); // IPv4 127.0.0.1 40123 127.0.0.1:40123
 *   listener.close();
 * });
 * ```
 */
export class SocketAddr {
  constructor(
    /** "IPv4", "IPv6" or "unix" (the names Bun and Node use). */
    readonly family: "IPv4" | "IPv6" | "unix",
    /** The IP address as text ("127.0.0.1", "::1"), or the Unix socket path. */
    readonly address: string,
    /** The port (0 for Unix sockets). */
    readonly port: number,
    /** IPv6 scope id (interface index), 0 when none. */
    readonly scopeId = 0,
  ) {}

  /** "127.0.0.1:8080", "[::1]:8080", or the Unix path. */
  toString(): string {
    if (this.family === "unix") return this.address;
    const host = this.family === "IPv6" ? `[${this.address}${this.scopeId ? `%${this.scopeId}` : ""}]` : this.address;
    return `${host}:${this.port}`;
  }
}

/** Parses dotted-quad IPv4 text into 4 bytes, or null. */
export function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/** Parses IPv6 text ("::1", "fe80::1%3", "::ffff:1.2.3.4") into 16 bytes + scope id, or null. */
export function parseIPv6(s: string): { bytes: Uint8Array; scopeId: number } | null {
  let scopeId = 0;
  const pct = s.indexOf("%");
  if (pct >= 0) {
    const scope = s.slice(pct + 1);
    if (!/^[0-9]{1,10}$/.test(scope)) return null;
    scopeId = Number(scope);
    if (scopeId > 0xffff_ffff) return null;
    s = s.slice(0, pct);
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = halves.length === 2 ? (halves[1] === "" ? [] : halves[1]!.split(":")) : [];
  const groups: number[] = [];
  const all = [...head, ...tail];
  for (let i = 0; i < all.length; i++) {
    const g = all[i]!;
    if (i === all.length - 1 && g.includes(".")) {
      const v4 = parseIPv4(g);
      if (v4 === null) return null;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
      groups.push(parseInt(g, 16));
    } else return null;
  }
  // An embedded IPv4 tail may only end the address, after any "::".
  if (halves.length === 2 && head.some((g) => g.includes("."))) return null;
  const headGroups = halves.length === 1 ? groups.length : head.length;
  if (halves.length === 1 ? groups.length !== 8 : groups.length > 7) return null;
  const bytes = new Uint8Array(16);
  const put = (idx: number, g: number) => {
    bytes[idx * 2] = g >> 8;
    bytes[idx * 2 + 1] = g & 0xff;
  };
  for (let i = 0; i < headGroups; i++) put(i, groups[i]!);
  const tailCount = groups.length - headGroups;
  for (let i = 0; i < tailCount; i++) put(8 - tailCount + i, groups[headGroups + i]!);
  return { bytes, scopeId };
}

/** Formats 4 bytes as dotted-quad IPv4 text. */
export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** Formats 16 bytes as canonical IPv6 text (RFC 5952: longest zero run compressed, lowercase). */
export function formatIPv6(b: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[off + i * 2]! << 8) | b[off + i * 2 + 1]!);
  // IPv4-mapped addresses keep their dotted tail.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatIPv4(b, off + 12)}`;
  }
  let bestAt = -1;
  let bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}

function writeFamily(out: Uint8Array, family: number, len: number, k: PlatformConstants): void {
  if (k.SOCKADDR_HAS_LEN) {
    out[0] = len;
    out[1] = family;
  } else {
    out[0] = family & 0xff;
    out[1] = family >> 8;
  }
}

/** Encodes an IPv4 sockaddr_in into `out`; returns its length (16). */
export function encodeIPv4(out: Uint8Array, addr: Uint8Array, port: number, k: PlatformConstants = SYS): number {
  out.fill(0, 0, 16);
  writeFamily(out, k.AF_INET, 16, k);
  out[2] = port >> 8;
  out[3] = port & 0xff;
  out.set(addr.subarray(0, 4), 4);
  return 16;
}

/** Encodes an IPv6 sockaddr_in6 into `out`; returns its length (28). */
export function encodeIPv6(out: Uint8Array, addr: Uint8Array, port: number, scopeId = 0, k: PlatformConstants = SYS): number {
  out.fill(0, 0, 28);
  writeFamily(out, k.AF_INET6, 28, k);
  out[2] = port >> 8;
  out[3] = port & 0xff;
  out.set(addr.subarray(0, 16), 8);
  out[24] = scopeId & 0xff;
  out[25] = (scopeId >>> 8) & 0xff;
  out[26] = (scopeId >>> 16) & 0xff;
  out[27] = scopeId >>> 24;
  return 28;
}

/**
 * Encodes a sockaddr_un for `path` into `out`; returns its length, or -1 when the path
 * (UTF-8, plus its NUL) does not fit sun_path. A leading NUL makes a Linux abstract name,
 * which has no terminating NUL and may fill sun_path.
 */
export function encodeUnix(out: Uint8Array, path: string, k: PlatformConstants = SYS): number {
  const bytes = new TextEncoder().encode(path);
  const abstract = bytes[0] === 0;
  if (bytes.length === 0 || bytes.length > k.SUN_PATH_MAX - (abstract ? 0 : 1)) return -1;
  const len = 2 + bytes.length + (abstract ? 0 : 1);
  out.fill(0, 0, 2 + k.SUN_PATH_MAX);
  writeFamily(out, k.AF_UNIX, len, k);
  out.set(bytes, 2);
  return len;
}

/** Decodes the sockaddr in `buf[0..len)`; returns null for an unknown family. */
export function decodeSockaddr(buf: Uint8Array, len: number, k: PlatformConstants = SYS): SocketAddr | null {
  if (len < 2) return null;
  const family = k.SOCKADDR_HAS_LEN ? buf[1]! : buf[0]! | (buf[1]! << 8);
  const port = (buf[2]! << 8) | buf[3]!;
  if (family === k.AF_INET && len >= 16) return new SocketAddr("IPv4", formatIPv4(buf, 4), port);
  if (family === k.AF_INET6 && len >= 28) {
    const scope = (buf[24]! | (buf[25]! << 8) | (buf[26]! << 16) | (buf[27]! << 24)) >>> 0;
    return new SocketAddr("IPv6", formatIPv6(buf, 8), port, scope);
  }
  if (family === k.AF_UNIX) {
    let end = 2;
    const abstract = len > 2 && buf[2] === 0;
    const stop = abstract ? len : Math.min(len, 2 + k.SUN_PATH_MAX);
    end = abstract ? stop : buf.indexOf(0, 2);
    if (end < 0 || end > stop) end = stop;
    return new SocketAddr("unix", new TextDecoder().decode(buf.subarray(2, end)), 0);
  }
  return null;
}

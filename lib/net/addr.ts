/**
 * Address resolution without a lookup: `{ hostname, port }` → an encoded sockaddr.
 *
 * Accepts IPv4 literals, IPv6 literals (with or without brackets, with a numeric
 * %scope), and "localhost" (127.0.0.1). This is what synchronous calls (bind) take; other
 * names need a lookup (dns/lookup.ts), which the asynchronous calls (TcpStream.connect,
 * UDP sends) make: here they fail with a TypeError that says so, never with a silent
 * fallback. {@link isHostName} tells a name from a malformed literal.
 *
 * Must never: block on name resolution.
 */
import { SYS } from "../../ffi/constants.ts";
import { SOCKADDR_MAX, encodeIPv4, encodeIPv6, parseIPv4, parseIPv6 } from "../../ffi/sockaddr.ts";
import { checkPort } from "../errors.ts";

/** An address encoded for bind/connect. */
export interface Resolved {
  readonly domain: number;
  readonly sockaddr: Uint8Array;
  readonly length: number;
}

/** Where to bind or connect. */
export interface HostPort {
  /** An IP literal or "localhost"; default "127.0.0.1". */
  hostname?: string;
  port: number;
}

/**
 * Resolves `{ hostname, port }`; throws TypeError/RangeError naming a bad value.
 *
 * @example
 * ```ts
 * resolve({ hostname: "::1", port: 8080 }).domain === SYS.AF_INET6; // true
 * ```
 */
export function resolve(opts: HostPort, what = "address"): Resolved {
  if (typeof opts !== "object" || opts === null) throw new TypeError(`Invalid ${what}: expected { hostname, port }, got ${String(opts)}`);
  const port = checkPort(opts.port, `port for ${what}`);
  const host = opts.hostname ?? "127.0.0.1";
  if (typeof host !== "string") throw new TypeError(`Invalid hostname ${String(host)}: must be a string`);
  // Allocated per call: bind/connect are not hot paths, and the buffer is only read by the syscall.
  const sockaddr = new Uint8Array(new ArrayBuffer(SOCKADDR_MAX));
  const name = host === "localhost" ? "127.0.0.1" : host;
  const v4 = parseIPv4(name);
  if (v4 !== null) return { domain: SYS.AF_INET, sockaddr, length: encodeIPv4(sockaddr, v4, port) };
  const bare = name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
  const v6 = parseIPv6(bare);
  if (v6 !== null) return { domain: SYS.AF_INET6, sockaddr, length: encodeIPv6(sockaddr, v6.bytes, port, v6.scopeId) };
  throw new TypeError(
    isHostName(host)
      ? `Cannot resolve hostname "${host}" in ${what}: it takes an IP literal or "localhost" (names need a lookup: lookup(), TcpStream.connect)`
      : `Cannot resolve hostname "${host}": not an IP address, and not a host name`,
  );
}

/**
 * True when `host` is a name to look up: a non-empty string that is not an IP literal and
 * does not look like a malformed one (no ':', '[', ']', '%'; not digits and dots only).
 *
 * @example
 * ```ts
 * isHostName("db.internal"); // true
 * isHostName("127.0.0.1");   // false: a literal
 * isHostName("1.2.3");       // false: a malformed IPv4 literal, not a name
 * ```
 */
export function isHostName(host: unknown): host is string {
  if (typeof host !== "string" || host.length === 0) return false;
  if (/[:[\]%\s]/.test(host) || /^[0-9.]+$/.test(host)) return false;
  return parseIPv4(host) === null;
}

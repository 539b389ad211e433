/**
 * Bindings to getaddrinfo(3): name → addresses, for the resolver pool's Workers
 * (lib/net/dns/worker.ts), which are the only callers — getaddrinfo blocks (files, DNS),
 * so it never runs on a runtime thread.
 *
 * {@link resolveInto} writes each address as a raw sockaddr into a caller's buffer (32
 * bytes a slot: the sockaddr, its length in the slot's last byte), so the runtime thread
 * decodes them with ffi/sockaddr.ts and no object crosses threads. Failures are numbers:
 * getaddrinfo's own errors come back as −(GAI_BASE + |EAI_*|) (EAI values differ in sign
 * and number between glibc and the BSDs; {@link gaiErrorName} names them), EAI_SYSTEM as
 * −errno. struct addrinfo's layout differs too: ai_addr and ai_canonname are swapped on
 * the BSDs.
 *
 * Must never: throw, keep the addrinfo list past the call (it is freed before returning),
 * or be called on a runtime thread.
 * Must never import: lib/**
 */
import { dlopen, read, type Pointer } from "bun:ffi";
import { SYS } from "./constants.ts";
import { errno } from "./libc.ts";

const LIBC_PATH =
  process.platform === "linux" ? "libc.so.6" : process.platform === "freebsd" ? "libc.so.7" : "libSystem.B.dylib";

/** Bytes per address slot in {@link resolveInto}'s output. */
export const ADDR_SLOT = 32;
/** Negative results at or below −GAI_BASE are getaddrinfo errors, not errnos. */
export const GAI_BASE = 1000;

// struct addrinfo offsets (64-bit): flags, family, socktype, protocol, addrlen, then two
// pointers whose order differs, then ai_next.
const AI_FAMILY = 4;
const AI_SOCKTYPE = 8;
const AI_ADDRLEN = 16;
const AI_ADDR = process.platform === "linux" ? 24 : 32;
const AI_NEXT = 40;
const AI_SIZE = 48;

/** EAI_* magnitudes → names, per platform (glibc's are negative, the BSDs' positive). */
const GLIBC_EAI: Readonly<Record<number, string>> = {
  1: "EAI_BADFLAGS", 2: "EAI_NONAME", 3: "EAI_AGAIN", 4: "EAI_FAIL", 5: "EAI_NODATA", 6: "EAI_FAMILY",
  7: "EAI_SOCKTYPE", 8: "EAI_SERVICE", 9: "EAI_ADDRFAMILY", 10: "EAI_MEMORY", 11: "EAI_SYSTEM", 12: "EAI_OVERFLOW",
};
const BSD_EAI: Readonly<Record<number, string>> = {
  1: "EAI_ADDRFAMILY", 2: "EAI_AGAIN", 3: "EAI_BADFLAGS", 4: "EAI_FAIL", 5: "EAI_FAMILY", 6: "EAI_MEMORY",
  7: "EAI_NODATA", 8: "EAI_NONAME", 9: "EAI_SERVICE", 10: "EAI_SOCKTYPE", 11: "EAI_SYSTEM", 12: "EAI_BADHINTS",
  13: "EAI_PROTOCOL", 14: "EAI_OVERFLOW",
};
const EAI_NAMES = process.platform === "linux" ? GLIBC_EAI : BSD_EAI;
const EAI_SYSTEM = 11;

/**
 * The EAI_* name of a {@link resolveInto} failure (r ≤ −GAI_BASE), e.g. "EAI_NONAME".
 *
 * @example
 * ```ts
 * const r = resolveInto(name, 0, out, 16);
 * if (r <= -GAI_BASE) console.log(gaiErrorName(r)); // "EAI_NONAME"
 * ```
 */
export function gaiErrorName(r: number): string {
  const k = -r - GAI_BASE;
  return EAI_NAMES[k] ?? `EAI_${k}`;
}

let C: {
  getaddrinfo(node: Uint8Array, service: null, hints: Uint8Array, res: Uint32Array): number;
  freeaddrinfo(p: number): void;
} | null = null;

function lib(): NonNullable<typeof C> {
  if (C !== null) return C;
  const s = dlopen(LIBC_PATH, {
    getaddrinfo: { args: ["ptr", "ptr", "ptr", "ptr"], returns: "i32" },
    freeaddrinfo: { args: ["ptr"], returns: "void" },
  }).symbols;
  C = s as unknown as NonNullable<typeof C>;
  return C;
}

const hints = new Uint8Array(new ArrayBuffer(AI_SIZE));
const hints32 = new Int32Array(hints.buffer);
const resOut = new Uint32Array(new ArrayBuffer(8));

/**
 * getaddrinfo(`name`, family) (family: 0, AF_INET or AF_INET6; one entry per address,
 * SOCK_STREAM): writes up to `max` addresses into `out` ({@link ADDR_SLOT} bytes each) and
 * returns how many, or −(GAI_BASE + |EAI|), or −errno for EAI_SYSTEM. `name` is
 * NUL-terminated UTF-8.
 *
 * @example
 * ```ts
 * const out = new Uint8Array(16 * ADDR_SLOT);
 * const n = resolveInto(new TextEncoder().encode("localhost\0"), 0, out, 16);
 * ```
 */
export function resolveInto(name: Uint8Array, family: number, out: Uint8Array, max: number): number {
  const c = lib();
  hints.fill(0);
  hints32[AI_FAMILY >> 2] = family;
  hints32[AI_SOCKTYPE >> 2] = SYS.SOCK_STREAM;
  resOut[0] = 0;
  resOut[1] = 0;
  const r = c.getaddrinfo(name, null, hints, resOut);
  if (r !== 0) {
    const k = r < 0 ? -r : r;
    if (k === EAI_SYSTEM) {
      const e = errno();
      return e > 0 ? -e : -(GAI_BASE + k);
    }
    return -(GAI_BASE + k);
  }
  // SAFETY: the addrinfo list is getaddrinfo's own (C heap): it is read here, by address,
  // only until the freeaddrinfo below; nothing keeps a pointer into it after that.
  const head = resOut[1]! * 0x1_0000_0000 + resOut[0]!;
  let n = 0;
  // SAFETY: `p` and each ai_next are nodes of that list, alive until freeaddrinfo.
  for (let p = head; p !== 0 && n < max; p = read.ptr(p as unknown as Pointer, AI_NEXT) as unknown as number) {
    const fam = read.i32(p as unknown as Pointer, AI_FAMILY);
    if (fam !== SYS.AF_INET && fam !== SYS.AF_INET6) continue;
    const len = read.u32(p as unknown as Pointer, AI_ADDRLEN);
    // SAFETY: ai_addr points into the same list (copied out below, before freeaddrinfo).
    const sa = read.ptr(p as unknown as Pointer, AI_ADDR) as unknown as number;
    if (sa === 0 || len > ADDR_SLOT - 1) continue;
    const at = n * ADDR_SLOT;
    for (let i = 0; i < len; i++) out[at + i] = read.u8(sa as unknown as Pointer, i);
    out[at + ADDR_SLOT - 1] = len;
    n++;
  }
  if (head !== 0) c.freeaddrinfo(head);
  return n;
}

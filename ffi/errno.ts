/**
 * errno numbers and names, per platform.
 *
 * ffi/ functions return −errno on failure; lib/ turns that into a SysError whose `.code`
 * comes from {@link errnoName}. The numbers differ between Linux and the BSDs (EAGAIN is
 * 11 on Linux, 35 on macOS), so code never compares against a literal: it uses the
 * constants exported here, chosen for the platform at load time.
 *
 * This module must never call into libc: it is data.
 * Must never import: lib/**, ffi/libc.ts, bun:ffi
 */

/** Linux errno numbers → names (from asm-generic/errno-base.h and errno.h). */
export const LINUX_ERRNO: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  8: "ENOEXEC",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  15: "ENOTBLK",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  31: "EMLINK",
  32: "EPIPE",
  33: "EDOM",
  34: "ERANGE",
  35: "EDEADLK",
  36: "ENAMETOOLONG",
  37: "ENOLCK",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  40: "ELOOP",
  42: "ENOMSG",
  43: "EIDRM",
  44: "ECHRNG",
  45: "EL2NSYNC",
  46: "EL3HLT",
  47: "EL3RST",
  48: "ELNRNG",
  49: "EUNATCH",
  50: "ENOCSI",
  51: "EL2HLT",
  52: "EBADE",
  53: "EBADR",
  54: "EXFULL",
  55: "ENOANO",
  56: "EBADRQC",
  57: "EBADSLT",
  59: "EBFONT",
  60: "ENOSTR",
  61: "ENODATA",
  62: "ETIME",
  63: "ENOSR",
  64: "ENONET",
  65: "ENOPKG",
  66: "EREMOTE",
  67: "ENOLINK",
  68: "EADV",
  69: "ESRMNT",
  70: "ECOMM",
  71: "EPROTO",
  72: "EMULTIHOP",
  73: "EDOTDOT",
  74: "EBADMSG",
  75: "EOVERFLOW",
  76: "ENOTUNIQ",
  77: "EBADFD",
  78: "EREMCHG",
  79: "ELIBACC",
  80: "ELIBBAD",
  81: "ELIBSCN",
  82: "ELIBMAX",
  83: "ELIBEXEC",
  84: "EILSEQ",
  85: "ERESTART",
  86: "ESTRPIPE",
  87: "EUSERS",
  88: "ENOTSOCK",
  89: "EDESTADDRREQ",
  90: "EMSGSIZE",
  91: "EPROTOTYPE",
  92: "ENOPROTOOPT",
  93: "EPROTONOSUPPORT",
  94: "ESOCKTNOSUPPORT",
  95: "EOPNOTSUPP",
  96: "EPFNOSUPPORT",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  102: "ENETRESET",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  105: "ENOBUFS",
  106: "EISCONN",
  107: "ENOTCONN",
  108: "ESHUTDOWN",
  109: "ETOOMANYREFS",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  112: "EHOSTDOWN",
  113: "EHOSTUNREACH",
  114: "EALREADY",
  115: "EINPROGRESS",
  116: "ESTALE",
  117: "EUCLEAN",
  118: "ENOTNAM",
  119: "ENAVAIL",
  120: "EISNAM",
  121: "EREMOTEIO",
  122: "EDQUOT",
  123: "ENOMEDIUM",
  124: "EMEDIUMTYPE",
  125: "ECANCELED",
  126: "ENOKEY",
  127: "EKEYEXPIRED",
  128: "EKEYREVOKED",
  129: "EKEYREJECTED",
  130: "EOWNERDEAD",
  131: "ENOTRECOVERABLE",
  132: "ERFKILL",
  133: "EHWPOISON",
};

/** 1–81 as Darwin and FreeBSD share them (4.4BSD sys/errno.h); 45 is named per platform. */
const BSD_COMMON: Readonly<Record<number, string>> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC",
  9: "EBADF", 10: "ECHILD", 11: "EDEADLK", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 15: "ENOTBLK",
  16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL",
  23: "ENFILE", 24: "EMFILE", 25: "ENOTTY", 26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE",
  30: "EROFS", 31: "EMLINK", 32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EAGAIN", 36: "EINPROGRESS",
  37: "EALREADY", 38: "ENOTSOCK", 39: "EDESTADDRREQ", 40: "EMSGSIZE", 41: "EPROTOTYPE",
  42: "ENOPROTOOPT", 43: "EPROTONOSUPPORT", 44: "ESOCKTNOSUPPORT", 46: "EPFNOSUPPORT",
  47: "EAFNOSUPPORT", 48: "EADDRINUSE", 49: "EADDRNOTAVAIL", 50: "ENETDOWN", 51: "ENETUNREACH",
  52: "ENETRESET", 53: "ECONNABORTED", 54: "ECONNRESET", 55: "ENOBUFS", 56: "EISCONN", 57: "ENOTCONN",
  58: "ESHUTDOWN", 59: "ETOOMANYREFS", 60: "ETIMEDOUT", 61: "ECONNREFUSED", 62: "ELOOP",
  63: "ENAMETOOLONG", 64: "EHOSTDOWN", 65: "EHOSTUNREACH", 66: "ENOTEMPTY", 67: "EPROCLIM",
  68: "EUSERS", 69: "EDQUOT", 70: "ESTALE", 71: "EREMOTE", 72: "EBADRPC", 73: "ERPCMISMATCH",
  74: "EPROGUNAVAIL", 75: "EPROGMISMATCH", 76: "EPROCUNAVAIL", 77: "ENOLCK", 78: "ENOSYS",
  79: "EFTYPE", 80: "EAUTH", 81: "ENEEDAUTH",
};

/**
 * Darwin (macOS) errno numbers → names (xnu bsd/sys/errno.h). 45 is ENOTSUP; EOPNOTSUPP is
 * the distinct 102 that 64-bit (UNIX03) programs see. 82–106 differ from FreeBSD.
 */
export const DARWIN_ERRNO: Readonly<Record<number, string>> = {
  ...BSD_COMMON,
  45: "ENOTSUP", 82: "EPWROFF", 83: "EDEVERR", 84: "EOVERFLOW", 85: "EBADEXEC", 86: "EBADARCH",
  87: "ESHLIBVERS", 88: "EBADMACHO", 89: "ECANCELED", 90: "EIDRM", 91: "ENOMSG", 92: "EILSEQ",
  93: "ENOATTR", 94: "EBADMSG", 95: "EMULTIHOP", 96: "ENODATA", 97: "ENOLINK", 98: "ENOSR",
  99: "ENOSTR", 100: "EPROTO", 101: "ETIME", 102: "EOPNOTSUPP", 103: "ENOPOLICY",
  104: "ENOTRECOVERABLE", 105: "EOWNERDEAD", 106: "EQFULL",
};

/**
 * FreeBSD errno numbers → names (sys/sys/errno.h). 45 is EOPNOTSUPP (ENOTSUP is the same
 * number); from 82 on the numbering is FreeBSD's own (ECANCELED is 85, not Darwin's 89).
 */
export const FREEBSD_ERRNO: Readonly<Record<number, string>> = {
  ...BSD_COMMON,
  45: "EOPNOTSUPP", 82: "EIDRM", 83: "ENOMSG", 84: "EOVERFLOW", 85: "ECANCELED", 86: "EILSEQ",
  87: "ENOATTR", 88: "EDOOFUS", 89: "EBADMSG", 90: "EMULTIHOP", 91: "ENOLINK", 92: "EPROTO",
  93: "ENOTCAPABLE", 94: "ECAPMODE", 95: "ENOTRECOVERABLE", 96: "EOWNERDEAD", 97: "EINTEGRITY",
};

const TABLE = process.platform === "linux" ? LINUX_ERRNO : process.platform === "freebsd" ? FREEBSD_ERRNO : DARWIN_ERRNO;

/** The symbolic name of errno `n` on this platform ("ECONNREFUSED"), or "E<n>" when unknown. */
export function errnoName(n: number): string {
  return TABLE[n] ?? `E${n}`;
}

function num(name: string): number {
  for (const k in TABLE) if (TABLE[k as unknown as number] === name) return Number(k);
  throw new Error(`errno ${name} is not known on ${process.platform}`);
}

/** errno values that code branches on, resolved for this platform at load time. */
export const EPERM = num("EPERM");
export const ENOENT = num("ENOENT");
export const EEXIST = num("EEXIST");
export const EINTR = num("EINTR");
export const EBADF = num("EBADF");
export const EAGAIN = num("EAGAIN");
export const ENOMEM = num("ENOMEM");
export const EINVAL = num("EINVAL");
export const ENFILE = num("ENFILE");
export const EMFILE = num("EMFILE");
export const EPIPE = num("EPIPE");
export const ENOSYS = num("ENOSYS");
export const EINPROGRESS = num("EINPROGRESS");
export const EALREADY = num("EALREADY");
export const ECONNABORTED = num("ECONNABORTED");
export const ECONNRESET = num("ECONNRESET");
export const ENOBUFS = num("ENOBUFS");
export const ENOTCONN = num("ENOTCONN");
export const ETIMEDOUT = num("ETIMEDOUT");
export const ECONNREFUSED = num("ECONNREFUSED");
export const ECANCELED = num("ECANCELED");
export const ENOTSOCK = num("ENOTSOCK");
export const EISCONN = num("EISCONN");
export const EBUSY = num("EBUSY");
/** Linux: a timed io_uring wait or timeout op ran out (errno 62); no BSD counterpart is needed. */
export const ETIME = process.platform === "linux" ? 62 : -1;
/** Socket errors that net/ branches on or raises itself (datagram truncation, stale socket files). */
export const EMSGSIZE = num("EMSGSIZE");
export const EADDRINUSE = num("EADDRINUSE");
export const ENAMETOOLONG = num("ENAMETOOLONG");

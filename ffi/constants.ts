/**
 * Platform constants for sockets, fcntl and the readiness backends.
 *
 * One object per platform with the same shape; {@link SYS} is the one for the platform
 * reel is running on, chosen once at load time. The other objects stay exported so the
 * encoding tests can check the BSD layouts on Linux.
 *
 * This module is data: it must never call into libc.
 * Must never import: lib/**, ffi/libc.ts, bun:ffi
 */

/** The constants reel needs, by name. A value of -1 means "not on this platform". */
export interface PlatformConstants {
  readonly platform: "linux" | "darwin" | "freebsd";
  /** sockaddr starts with a length byte (BSD) instead of a 16-bit family (Linux). */
  readonly SOCKADDR_HAS_LEN: boolean;
  readonly SUN_PATH_MAX: number;
  readonly AF_UNIX: number;
  readonly AF_INET: number;
  readonly AF_INET6: number;
  readonly SOCK_STREAM: number;
  readonly SOCK_DGRAM: number;
  readonly SOCK_NONBLOCK: number;
  readonly SOCK_CLOEXEC: number;
  readonly SOL_SOCKET: number;
  readonly SO_REUSEADDR: number;
  readonly SO_REUSEPORT: number;
  readonly SO_ERROR: number;
  readonly SO_LINGER: number;
  readonly SO_KEEPALIVE: number;
  readonly SO_SNDBUF: number;
  readonly SO_RCVBUF: number;
  /** Darwin's per-socket SIGPIPE suppression (it has no MSG_NOSIGNAL). */
  readonly SO_NOSIGPIPE: number;
  readonly IPPROTO_TCP: number;
  readonly TCP_NODELAY: number;
  readonly IPPROTO_IPV6: number;
  readonly IPV6_V6ONLY: number;
  readonly MSG_NOSIGNAL: number;
  /** Non-blocking for one call (recv/send). */
  readonly MSG_DONTWAIT: number;
  readonly MSG_PEEK: number;
  readonly SHUT_RD: number;
  readonly SHUT_WR: number;
  readonly SHUT_RDWR: number;
  readonly F_GETFD: number;
  readonly F_SETFD: number;
  readonly F_GETFL: number;
  readonly F_SETFL: number;
  readonly FD_CLOEXEC: number;
  readonly O_NONBLOCK: number;
  readonly O_CLOEXEC: number;
  readonly RLIMIT_NOFILE: number;
}

export const LINUX: PlatformConstants = {
  platform: "linux",
  SOCKADDR_HAS_LEN: false,
  SUN_PATH_MAX: 108,
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_REUSEPORT: 15,
  SO_ERROR: 4,
  SO_LINGER: 13,
  SO_KEEPALIVE: 9,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_NOSIGPIPE: -1,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 1,
  IPPROTO_IPV6: 41,
  IPV6_V6ONLY: 26,
  MSG_NOSIGNAL: 0x4000,
  MSG_DONTWAIT: 0x40,
  MSG_PEEK: 2,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  RLIMIT_NOFILE: 7,
};

/** macOS (sys/socket.h, netinet/in.h, fcntl.h). No SOCK_NONBLOCK, accept4 or MSG_NOSIGNAL. */
export const DARWIN: PlatformConstants = {
  platform: "darwin",
  SOCKADDR_HAS_LEN: true,
  SUN_PATH_MAX: 104,
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 30,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: -1,
  SOCK_CLOEXEC: -1,
  SOL_SOCKET: 0xffff,
  SO_REUSEADDR: 0x4,
  SO_REUSEPORT: 0x200,
  SO_ERROR: 0x1007,
  SO_LINGER: 0x80,
  SO_KEEPALIVE: 0x8,
  SO_SNDBUF: 0x1001,
  SO_RCVBUF: 0x1002,
  SO_NOSIGPIPE: 0x1022,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 1,
  IPPROTO_IPV6: 41,
  IPV6_V6ONLY: 27,
  MSG_NOSIGNAL: -1,
  MSG_DONTWAIT: 0x80,
  MSG_PEEK: 2,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0x4,
  O_CLOEXEC: 0x1000000,
  RLIMIT_NOFILE: 8,
};

/** FreeBSD 12+ (sys/socket.h): BSD layouts, but with SOCK_NONBLOCK, accept4 and MSG_NOSIGNAL. */
export const FREEBSD: PlatformConstants = {
  ...DARWIN,
  platform: "freebsd",
  AF_INET6: 28,
  SOCK_NONBLOCK: 0x20000000,
  SOCK_CLOEXEC: 0x10000000,
  SO_NOSIGPIPE: 0x800,
  IPV6_V6ONLY: 27,
  MSG_NOSIGNAL: 0x20000,
  MSG_DONTWAIT: 0x80,
  O_CLOEXEC: 0x100000,
};

/** The constants of the platform reel runs on. */
export const SYS: PlatformConstants =
  process.platform === "linux" ? LINUX : process.platform === "freebsd" ? FREEBSD : DARWIN;

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

/**
 * Constants for datagram, Unix-socket and multicast calls (UDP, SCM_RIGHTS, peer
 * credentials, msghdr layouts), one object per platform as for {@link PlatformConstants}.
 * Kept apart from it so the socket additions do not touch the objects above. -1 means
 * "not on this platform".
 */
export interface NetConstants {
  readonly SOCK_SEQPACKET: number;
  readonly SO_BROADCAST: number;
  /** Linux: struct ucred at SOL_SOCKET; -1 on the BSDs (they use LOCAL_PEERCRED). */
  readonly SO_PEERCRED: number;
  /** The BSDs' option level for LOCAL_PEERCRED / LOCAL_PEERPID (SOL_LOCAL). */
  readonly SOL_LOCAL: number;
  readonly LOCAL_PEERCRED: number;
  /** Darwin only: the peer's pid (FreeBSD has it in struct xucred). */
  readonly LOCAL_PEERPID: number;
  readonly SCM_RIGHTS: number;
  readonly MSG_TRUNC: number;
  readonly MSG_CTRUNC: number;
  /** Received fds close-on-exec (Linux, FreeBSD); 0 where it does not exist. */
  readonly MSG_CMSG_CLOEXEC: number;
  readonly IPPROTO_IP: number;
  readonly IP_TTL: number;
  readonly IP_MULTICAST_IF: number;
  readonly IP_MULTICAST_TTL: number;
  readonly IP_MULTICAST_LOOP: number;
  readonly IP_ADD_MEMBERSHIP: number;
  readonly IP_DROP_MEMBERSHIP: number;
  /** IP_MULTICAST_TTL / IP_MULTICAST_LOOP take a u_char (the BSDs), not an int (Linux accepts both). */
  readonly IP_MULTICAST_BYTE: boolean;
  readonly IPV6_UNICAST_HOPS: number;
  readonly IPV6_MULTICAST_IF: number;
  readonly IPV6_MULTICAST_HOPS: number;
  readonly IPV6_MULTICAST_LOOP: number;
  readonly IPV6_JOIN_GROUP: number;
  readonly IPV6_LEAVE_GROUP: number;
  /** struct msghdr: size and field offsets (pointers are 8 bytes on every supported CPU). */
  readonly MSGHDR_SIZE: number;
  readonly MSG_NAMELEN_OFF: number;
  readonly MSG_IOV_OFF: number;
  readonly MSG_IOVLEN_OFF: number;
  readonly MSG_CONTROL_OFF: number;
  readonly MSG_CONTROLLEN_OFF: number;
  readonly MSG_FLAGS_OFF: number;
  /** struct mmsghdr: its size, and msg_len's offset (-1: no sendmmsg/recvmmsg). */
  readonly MMSGHDR_SIZE: number;
  readonly MMSG_LEN_OFF: number;
  /** struct cmsghdr: header size (CMSG_DATA offset) and alignment; cmsg_len is a size_t (8) or a socklen_t (4). */
  readonly CMSG_HDR: number;
  readonly CMSG_ALIGN: number;
  readonly CMSG_LEN_SIZE: number;
}

export const LINUX_NET: NetConstants = {
  SOCK_SEQPACKET: 5,
  SO_BROADCAST: 6,
  SO_PEERCRED: 17,
  SOL_LOCAL: -1,
  LOCAL_PEERCRED: -1,
  LOCAL_PEERPID: -1,
  SCM_RIGHTS: 1,
  MSG_TRUNC: 0x20,
  MSG_CTRUNC: 0x8,
  MSG_CMSG_CLOEXEC: 0x40000000,
  IPPROTO_IP: 0,
  IP_TTL: 2,
  IP_MULTICAST_IF: 32,
  IP_MULTICAST_TTL: 33,
  IP_MULTICAST_LOOP: 34,
  IP_ADD_MEMBERSHIP: 35,
  IP_DROP_MEMBERSHIP: 36,
  IP_MULTICAST_BYTE: false,
  IPV6_UNICAST_HOPS: 16,
  IPV6_MULTICAST_IF: 17,
  IPV6_MULTICAST_HOPS: 18,
  IPV6_MULTICAST_LOOP: 19,
  IPV6_JOIN_GROUP: 20,
  IPV6_LEAVE_GROUP: 21,
  MSGHDR_SIZE: 56,
  MSG_NAMELEN_OFF: 8,
  MSG_IOV_OFF: 16,
  MSG_IOVLEN_OFF: 24,
  MSG_CONTROL_OFF: 32,
  MSG_CONTROLLEN_OFF: 40,
  MSG_FLAGS_OFF: 48,
  MMSGHDR_SIZE: 64,
  MMSG_LEN_OFF: 56,
  CMSG_HDR: 16,
  CMSG_ALIGN: 8,
  CMSG_LEN_SIZE: 8,
};

/** macOS: msg_iovlen is an int and msg_controllen a socklen_t; no *mmsg calls; 4-byte cmsg alignment. */
export const DARWIN_NET: NetConstants = {
  SOCK_SEQPACKET: 5,
  SO_BROADCAST: 0x20,
  SO_PEERCRED: -1,
  SOL_LOCAL: 0,
  LOCAL_PEERCRED: 1,
  LOCAL_PEERPID: 2,
  SCM_RIGHTS: 1,
  MSG_TRUNC: 0x10,
  MSG_CTRUNC: 0x20,
  MSG_CMSG_CLOEXEC: 0,
  IPPROTO_IP: 0,
  IP_TTL: 4,
  IP_MULTICAST_IF: 9,
  IP_MULTICAST_TTL: 10,
  IP_MULTICAST_LOOP: 11,
  IP_ADD_MEMBERSHIP: 12,
  IP_DROP_MEMBERSHIP: 13,
  IP_MULTICAST_BYTE: true,
  IPV6_UNICAST_HOPS: 4,
  IPV6_MULTICAST_IF: 9,
  IPV6_MULTICAST_HOPS: 10,
  IPV6_MULTICAST_LOOP: 11,
  IPV6_JOIN_GROUP: 12,
  IPV6_LEAVE_GROUP: 13,
  MSGHDR_SIZE: 48,
  MSG_NAMELEN_OFF: 8,
  MSG_IOV_OFF: 16,
  MSG_IOVLEN_OFF: 24,
  MSG_CONTROL_OFF: 32,
  MSG_CONTROLLEN_OFF: 40,
  MSG_FLAGS_OFF: 44,
  MMSGHDR_SIZE: -1,
  MMSG_LEN_OFF: -1,
  CMSG_HDR: 12,
  CMSG_ALIGN: 4,
  CMSG_LEN_SIZE: 4,
};

/** FreeBSD 12+: Darwin's layouts, with sendmmsg/recvmmsg (ssize_t msg_len) and 8-byte cmsg alignment. */
export const FREEBSD_NET: NetConstants = {
  ...DARWIN_NET,
  LOCAL_PEERPID: -1,
  MSG_CMSG_CLOEXEC: 0x40000,
  MMSGHDR_SIZE: 56,
  MMSG_LEN_OFF: 48,
  CMSG_HDR: 16,
  CMSG_ALIGN: 8,
};

/** The datagram / Unix-socket constants of the platform reel runs on. */
export const NET: NetConstants =
  process.platform === "linux" ? LINUX_NET : process.platform === "freebsd" ? FREEBSD_NET : DARWIN_NET;

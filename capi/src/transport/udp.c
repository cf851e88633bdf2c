/* UDP sockets and addresses: see udp.h. */
#include "transport/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "obs/log.h"

int rpci_parse_addr(const char *addr, int passive, struct sockaddr_storage *out, socklen_t *len,
                    char *host_out, size_t host_len) {
  if (!addr) {
    rpci_set_error("address is NULL");
    return -1;
  }
  char host[256];
  const char *port;
  if (addr[0] == '[') {
    const char *end = strchr(addr, ']');
    if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host) {
      rpci_set_error("bad address '%s' (expected [v6]:port)", addr);
      return -1;
    }
    memcpy(host, addr + 1, (size_t)(end - addr - 1));
    host[end - addr - 1] = 0;
    port = end + 2;
  } else {
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host || strchr(addr, ':') != colon) {
      rpci_set_error("bad address '%s' (expected host:port or [v6]:port)", addr);
      return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    port = colon + 1;
  }
  char *pend;
  long p = strtol(port, &pend, 10);
  if (!*port || *pend || p < 0 || p > 65535) {
    rpci_set_error("bad port in address '%s'", addr);
    return -1;
  }
  if (host_out) snprintf(host_out, host_len, "%s", host);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  int rv = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (rv != 0 || !res) {
    rpci_set_error("cannot resolve '%s': %s", addr, gai_strerror(rv));
    return -1;
  }
  memcpy(out, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

void rpci_addr_str(const struct sockaddr *sa, char *buf, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
    snprintf(buf, len, "[%s]:%d", ip, rpci_addr_port(sa));
  } else {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
    snprintf(buf, len, "%s:%d", ip, rpci_addr_port(sa));
  }
}

int rpci_addr_port(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  return -1;
}

static int new_socket(int family) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    rpci_set_error("socket: %s", strerror(errno));
    return -1;
  }
  int sz = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  return fd;
}

int rpci_udp_connect(const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *local,
                     socklen_t *local_len) {
  int fd = new_socket(addr->sa_family);
  if (fd < 0) return -1;
  if (connect(fd, addr, len) != 0) {
    rpci_set_error("connect: %s", strerror(errno));
    close(fd);
    return -1;
  }
  *local_len = sizeof *local;
  getsockname(fd, (struct sockaddr *)local, local_len);
  return fd;
}

int rpci_udp_bind(const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *bound,
                  socklen_t *bound_len) {
  int fd = new_socket(addr->sa_family);
  if (fd < 0) return -1;
  if (addr->sa_family == AF_INET6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  if (bind(fd, addr, len) != 0) {
    char a[80];
    rpci_addr_str(addr, a, sizeof a);
    rpci_set_error("bind %s: %s", a, strerror(errno));
    close(fd);
    return -1;
  }
  *bound_len = sizeof *bound;
  getsockname(fd, (struct sockaddr *)bound, bound_len);
  return fd;
}

int rpci_udp_send_batch(int fd, const struct sockaddr *to, socklen_t tolen, uint8_t (*bufs)[1452],
                        const size_t *lens, size_t n) {
  struct mmsghdr msgs[16];
  struct iovec iov[16];
  size_t done = 0;
  while (done < n) {
    size_t m = n - done > 16 ? 16 : n - done;
    for (size_t i = 0; i < m; i++) {
      iov[i].iov_base = bufs[done + i];
      iov[i].iov_len = lens[done + i];
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = (void *)to;
      msgs[i].msg_hdr.msg_namelen = to ? tolen : 0;
    }
    int rv = sendmmsg(fd, msgs, (unsigned)m, 0);
    if (rv < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNREFUSED) return -1;
      rpci_log(RPCI_LOG_DEBUG, "sendmmsg: %s", strerror(errno));
      return 0; /* dropped: QUIC loss recovery resends */
    }
    done += (size_t)rv;
  }
  return 0;
}

#define RECV_BATCH 32
#define RECV_MAX_PER_CALL 256

size_t rpci_udp_recv_each(int fd, rpci_udp_pkt_fn fn, void *arg, int *refused) {
  static _Thread_local uint8_t bufs[RECV_BATCH][2048];
  struct mmsghdr msgs[RECV_BATCH];
  struct iovec iov[RECV_BATCH];
  struct sockaddr_storage from[RECV_BATCH];
  size_t total = 0;
  while (total < RECV_MAX_PER_CALL) {
    for (int i = 0; i < RECV_BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof bufs[i];
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0 && errno == ECONNREFUSED && refused) *refused = 1;
    if (n <= 0) break;
    for (int i = 0; i < n; i++)
      fn(arg, (struct sockaddr *)&from[i], msgs[i].msg_hdr.msg_namelen, bufs[i], msgs[i].msg_len);
    total += (size_t)n;
    if (n < RECV_BATCH) break;
  }
  return total;
}

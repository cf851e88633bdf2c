/*
 * The gossip socket: UDP datagrams in and out of the SWIM core, sealed by
 * the keyring, and the core's timer.
 *
 * Design notes
 * - The socket and its uv_poll belong to one library I/O loop; the loop
 *   thread reads every pending datagram under mu, feeds the core, then
 *   flushes once per batch. Any thread holding mu may send (sendto on a
 *   non-blocking socket; a full buffer drops the datagram, which SWIM
 *   tolerates).
 * - Addresses given to and by the core are numeric "ip:port" / "[ip]:port"
 *   strings; they are parsed with inet_pton, never resolved (names are
 *   resolved once, on the application's thread, in node.c).
 * - A datagram that fails authentication is dropped and counted; its sender
 *   gets a short plaintext notice (0xFF "RJ", the error code, as much of
 *   its name as fits), at most 10 per second,
 *   so a node started with the wrong key can say why it cannot join. The
 *   notice is smaller than what provoked it (no amplification) and only
 *   ever produces a log line and a join error at the receiver.
 * - The timer is a rpci_timer on the same loop, re-armed under mu when the
 *   core's next deadline changes; armed_at remembers what it is set to.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/node.h"
#include "obs/log.h"
#include "transport/udp.h"

#define REJECT_MAGIC 0xFF
#define REJECTS_PER_SEC 10

static int64_t armed_at_none = INT64_MIN;

/* "1.2.3.4:5" or "[::1]:5" into ss. Returns 0 or -1. */
static int parse_numeric(const char *addr, struct sockaddr_storage *ss, socklen_t *len) {
  const char *colon = strrchr(addr, ':');
  if (!colon) return -1;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port <= 0 || port > 65535) return -1;
  char host[64];
  size_t n = (size_t)(colon - addr);
  memset(ss, 0, sizeof *ss);
  if (addr[0] == '[') {
    if (n < 2 || addr[n - 1] != ']' || n - 2 >= sizeof host) return -1;
    memcpy(host, addr + 1, n - 2);
    host[n - 2] = 0;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) return -1;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    *len = sizeof *s6;
    return 0;
  }
  if (n >= sizeof host) return -1;
  memcpy(host, addr, n);
  host[n] = 0;
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) return -1;
  s4->sin_family = AF_INET;
  s4->sin_port = htons((uint16_t)port);
  *len = sizeof *s4;
  return 0;
}

/* An IPv4 destination on an IPv6 socket becomes ::ffff:a.b.c.d. */
static void map_family(const rpcnet_cluster *cl, struct sockaddr_storage *ss, socklen_t *len) {
  if (cl->family != AF_INET6 || ss->ss_family != AF_INET) return;
  struct sockaddr_in s4 = *(struct sockaddr_in *)ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  memset(s6, 0, sizeof *s6);
  s6->sin6_family = AF_INET6;
  s6->sin6_port = s4.sin_port;
  s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
  memcpy(&s6->sin6_addr.s6_addr[12], &s4.sin_addr, 4);
  *len = sizeof *s6;
}

static void send_raw(rpcnet_cluster *cl, const struct sockaddr *to, socklen_t tolen,
                     const uint8_t *p, size_t n) {
  ssize_t rv;
  do rv = sendto(cl->fd, p, n, 0, to, tolen);
  while (rv < 0 && errno == EINTR);
  if (rv < 0 && rpci_log_enabled(RPCI_LOG_DEBUG))
    rpci_log(RPCI_LOG_DEBUG, "cluster: sendto: %s", strerror(errno));
}

void rpci_gossip_send(rpcnet_cluster *cl, const char *addr, const uint8_t *data, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl;
  if (cl->fd < 0 || parse_numeric(addr, &ss, &sl) != 0) return;
  if (cl->family == AF_INET && ss.ss_family == AF_INET6) return; /* unreachable from here */
  map_family(cl, &ss, &sl);
  cl->sealbuf.len = 0;
  if (rpci_keyring_seal(cl->kr, RPCI_SEAL_GOSSIP, data, len, &cl->sealbuf) != RPCI_SEAL_OK) return;
  send_raw(cl, (struct sockaddr *)&ss, sl, cl->sealbuf.data, cl->sealbuf.len);
}

/* ---- receive ------------------------------------------------------------ */

static void format_from(const struct sockaddr *from, char *out, size_t len) {
  /* ::ffff:a.b.c.d back to a.b.c.d so the core sees one spelling. */
  if (from->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)from;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = s6->sin6_port};
      memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
      rpci_addr_str((struct sockaddr *)&s4, out, len);
      return;
    }
  }
  rpci_addr_str(from, out, len);
}

static void send_reject(rpcnet_cluster *cl, const struct sockaddr *from, socklen_t fromlen, int err,
                        size_t in_len) {
  int64_t now = rpci_node_now_ms();
  if (now - cl->reject_window_ms >= 1000) {
    cl->reject_window_ms = now;
    cl->rejects_in_window = 0;
  }
  if (cl->rejects_in_window >= REJECTS_PER_SEC || in_len < 4) return;
  /* 0xFF 'R' 'J' <-err> then as much of the reason as fits in what came. */
  uint8_t msg[64] = {REJECT_MAGIC, 'R', 'J', (uint8_t)-err};
  const char *why = rpci_seal_err_name(err);
  size_t len = 4 + strlen(why);
  if (len > sizeof msg) len = sizeof msg;
  if (len > in_len) len = in_len; /* never answer with more than we got */
  memcpy(msg + 4, why, len - 4);
  cl->rejects_in_window++;
  cl->rejects_sent++;
  send_raw(cl, from, fromlen, msg, len);
}

static void on_reject(rpcnet_cluster *cl, const char *from, const uint8_t *data, size_t len) {
  const char *reason = len >= 4 ? rpci_seal_err_name(-(int)data[3]) : "refused";
  if (!cl->join_denied[0])
    rpci_log(RPCI_LOG_WARN, "cluster: %s rejected our gossip (%s): check cluster_keys", from,
             reason);
  snprintf(cl->join_denied, sizeof cl->join_denied,
           "%s rejected this node's gossip (%s): check cluster_keys", from, reason);
  size_t i = 0; /* remember the seed for a join in progress */
  while (cl->rejected_by && i < cl->nrejected && strcmp(cl->rejected_by[i], from)) i++;
  if (cl->rejected_by && i == cl->nrejected && i < RPCI_JOIN_SEEDS_MAX)
    snprintf(cl->rejected_by[cl->nrejected++], RPCI_NODE_ADDR, "%s", from);
  pthread_cond_broadcast(&cl->join_cv);
}

static void on_datagram(void *arg, const struct sockaddr *from, socklen_t fromlen,
                        const uint8_t *data, size_t len) {
  rpcnet_cluster *cl = arg;
  char from_s[RPCI_NODE_ADDR];
  format_from(from, from_s, sizeof from_s);
  if (len >= 4 && data[0] == REJECT_MAGIC && data[1] == 'R' && data[2] == 'J') {
    on_reject(cl, from_s, data, len);
    return;
  }
  const uint8_t *plain;
  size_t plain_len;
  int err = rpci_keyring_open(cl->kr, RPCI_SEAL_GOSSIP, data, len, &plain, &plain_len);
  if (err != RPCI_SEAL_OK) {
    cl->auth_failures++;
    if (rpci_log_enabled(RPCI_LOG_INFO) && (cl->auth_failures & (cl->auth_failures - 1)) == 0)
      rpci_log(RPCI_LOG_INFO, "cluster: dropped a datagram from %s: %s (%llu so far)", from_s,
               rpci_seal_err_name(err), (unsigned long long)cl->auth_failures);
    if (err != RPCI_SEAL_MALFORMED) send_reject(cl, from, fromlen, err, len);
    return;
  }
  rpci_swim_recv(cl->core, rpci_node_now_ms(), from_s, plain, plain_len);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  rpcnet_cluster *cl = h->data;
  pthread_mutex_lock(&cl->mu);
  if (!cl->closing) {
    rpci_udp_recv_each(cl->fd, on_datagram, cl, NULL);
    rpci_node_flush(cl);
  }
  pthread_mutex_unlock(&cl->mu);
}

/* ---- timer ------------------------------------------------------------------ */

static void on_timer(rpci_timer *t) {
  rpcnet_cluster *cl = (rpcnet_cluster *)((char *)t - offsetof(rpcnet_cluster, timer));
  pthread_mutex_lock(&cl->mu);
  cl->armed_at = armed_at_none;
  if (!cl->closing) {
    rpci_swim_tick(cl->core, rpci_node_now_ms());
    rpci_node_flush(cl);
    pthread_cond_broadcast(&cl->join_cv); /* leave waits on gossip progress */
  }
  pthread_mutex_unlock(&cl->mu);
}

void rpci_gossip_arm(rpcnet_cluster *cl) {
  int64_t next = rpci_swim_next_deadline(cl->core);
  if (next == cl->armed_at) return;
  rpci_timer_stop(&cl->timer);
  cl->armed_at = next;
  rpci_timer_start(cl->loop, &cl->timer, next, on_timer);
}

/* ---- lifecycle -------------------------------------------------------------- */

static void start_task(void *arg) {
  rpcnet_cluster *cl = arg;
  if (uv_poll_init(rpci_loop_uv(cl->loop), &cl->poll, cl->fd) == 0) {
    cl->poll.data = cl;
    cl->polling = 1;
    uv_poll_start(&cl->poll, UV_READABLE, on_readable);
  }
}

int rpci_gossip_start(rpcnet_cluster *cl, const char *bind_addr) {
  struct sockaddr_storage ss, bound;
  socklen_t sl, bl;
  if (rpci_parse_addr(bind_addr, 1, &ss, &sl, NULL, 0) != 0) {
    rpci_set_error("config key 'gossip_bind': bad address '%s'", bind_addr);
    return -1;
  }
  cl->loop = rpci_loop_pick(cl->opts.io_threads);
  if (!cl->loop) {
    rpci_set_error("cannot start I/O threads");
    return -1;
  }
  cl->fd = rpci_udp_bind((struct sockaddr *)&ss, sl, &bound, &bl);
  if (cl->fd < 0) {
    rpci_set_error("gossip socket: %s", rpci_get_error());
    return -1;
  }
  cl->family = bound.ss_family;
  cl->port = rpci_addr_port((struct sockaddr *)&bound);
  cl->armed_at = armed_at_none;
  rpci_loop_call(cl->loop, start_task, cl);
  return cl->polling ? 0 : (rpci_set_error("gossip socket: cannot poll"), -1);
}

static void on_closed(uv_handle_t *h) { (void)h; }

static void stop_task(void *arg) {
  rpcnet_cluster *cl = arg;
  rpci_timer_stop(&cl->timer);
  if (cl->polling) {
    cl->polling = 0;
    uv_poll_stop(&cl->poll);
    uv_close((uv_handle_t *)&cl->poll, on_closed);
  }
}

static void noop_task(void *arg) { (void)arg; }

void rpci_gossip_stop(rpcnet_cluster *cl) {
  if (!cl->loop) return;
  pthread_mutex_lock(&cl->mu);
  cl->closing = 1;
  pthread_mutex_unlock(&cl->mu);
  rpci_loop_call(cl->loop, stop_task, cl);
  rpci_loop_call(cl->loop, noop_task, NULL); /* let the close callback run */
  if (cl->fd >= 0) close(cl->fd);
  cl->fd = -1;
}

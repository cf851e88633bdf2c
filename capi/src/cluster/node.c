/*
 * rpcnet_cluster lifecycle and the membership calls of the public API:
 * new, attach_server, set_tag, join, leave, next_event, fd, free.
 *
 * Design notes: see node.h (one mutex around the core; every entry ends
 * with rpci_node_flush). Blocking waits (join, leave, next_event) never
 * hold mu while they sleep: they wait on a condition variable or on the
 * event generation.
 */
#include "cluster/node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obs/log.h"
#include "rpc/util.h"
#include "transport/udp.h"

int64_t rpci_node_now_ms(void) { return rpci_mono_ms(); }

int64_t rpci_node_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- flush: the core's outputs ------------------------------------------ */

void rpci_node_flush(rpcnet_cluster *cl) {
  rpci_swim_tx tx;
  while (rpci_swim_poll_tx(cl->core, &tx)) rpci_gossip_send(cl, tx.addr, tx.data, tx.len);
  rpci_swim_event ev;
  while (rpci_swim_poll_event(cl->core, &ev)) rpci_node_on_event(cl, &ev);
  rpci_swim_sync_job job;
  while (rpci_swim_poll_sync(cl->core, &job)) rpci_sync_enqueue(cl, &job);
  if (!cl->closing) rpci_gossip_arm(cl);
}

/* ---- configuration ---------------------------------------------------- */

/* The host's first non-loopback IPv4 address, else 127.0.0.1. */
static void default_host(char *out, size_t len) {
  snprintf(out, len, "127.0.0.1");
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) != 0) return;
  for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;
    if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127) continue;
    inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)len);
    break;
  }
  freeifaddrs(ifs);
}

static int is_wildcard(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
  if (sa->sa_family == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
  return 0;
}

/* Resolves "host:port" once (names allowed) into numeric form. */
static int numeric_addr(const char *addr, int default_port, char *out, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl;
  if (rpci_parse_addr(addr, 0, &ss, &sl, NULL, 0) != 0) return -1;
  if (rpci_addr_port((struct sockaddr *)&ss) == 0 && default_port > 0) {
    if (ss.ss_family == AF_INET)
      ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)default_port);
    else
      ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)default_port);
  }
  rpci_addr_str((struct sockaddr *)&ss, out, len);
  return 0;
}

/* The advertised gossip address: configured, else the bound one (with a
 * real host for a wildcard bind). */
static int pick_advertise(rpcnet_cluster *cl) {
  if (cl->opts.gossip_advertise)
    return numeric_addr(cl->opts.gossip_advertise, cl->port, cl->gossip_adv, sizeof cl->gossip_adv);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(cl->fd, (struct sockaddr *)&ss, &sl) != 0) return -1;
  if (is_wildcard((struct sockaddr *)&ss)) {
    char host[64];
    if (ss.ss_family == AF_INET6)
      snprintf(host, sizeof host, "::1");
    else
      default_host(host, sizeof host);
    snprintf(cl->gossip_adv, sizeof cl->gossip_adv, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
             host, cl->port);
    return 0;
  }
  rpci_addr_str((struct sockaddr *)&ss, cl->gossip_adv, sizeof cl->gossip_adv);
  return 0;
}

/* The host part of a "host:port" or "[v6]:port" string. */
static void host_of(const char *addr, char *host, size_t len) {
  const char *colon = strrchr(addr, ':');
  size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
  if (n >= len) n = len - 1;
  memcpy(host, addr, n);
  host[n] = 0;
}

static void fill_swim_cfg(const rpcnet_cluster *cl, rpci_swim_cfg *sc) {
  memset(sc, 0, sizeof *sc);
  const rpci_options *o = &cl->opts;
  sc->name = cl->name;
  sc->gossip_addr = cl->gossip_adv;
  sc->rpc_addr = cl->rpc_adv;
  /* Wall-clock seconds: a restarted node starts above its old self. */
  sc->incarnation = (uint64_t)time(NULL);
  sc->seed = cl->rng;
  sc->probe_interval_ms = (int)o->probe_interval_ms;
  sc->probe_timeout_ms = (int)o->probe_timeout_ms;
  sc->gossip_interval_ms = (int)o->gossip_interval_ms;
  sc->sync_interval_ms = (int)o->sync_interval_ms;
  sc->reap_ms = (int)o->reap_ms;
  sc->suspicion_mult = o->suspicion_mult;
  sc->lifeguard = o->lifeguard ? 1 : -1;
  sc->max_packet = RPCI_GOSSIP_MTU - RPCI_SEAL_OVERHEAD;
}

static uint64_t seed_rng(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
  return x ? x : 0x9e3779b97f4a7c15ull;
}

static void node_destroy(rpcnet_cluster *cl) {
  rpci_pool_close_all(cl);
  rpci_swim_free(cl->core);
  rpci_keyring_free(cl->kr);
  rpci_route_free(cl->router);
  for (size_t i = 0; i < cl->evq_len; i++) free(cl->evq[(cl->evq_head + i) % cl->evq_cap].p);
  free(cl->evq);
  free(cl->pool);
  rpci_buf_free(&cl->sealbuf);
  rpcnet_config_free(cl->client_cfg);
  rpci_options_free(&cl->opts);
  rpci_event_destroy(&cl->ev);
  pthread_cond_destroy(&cl->sync_cv);
  pthread_cond_destroy(&cl->join_cv);
  pthread_cond_destroy(&cl->pool_cv);
  pthread_mutex_destroy(&cl->pool_mu);
  pthread_mutex_destroy(&cl->mu);
  free(cl);
}

rpcnet_cluster *rpcnet_cluster_new(const rpcnet_config *cfg) {
  rpci_clear_error();
  rpcnet_cluster *cl = calloc(1, sizeof *cl);
  if (!cl) {
    rpci_set_error("out of memory");
    return NULL;
  }
  pthread_mutex_init(&cl->mu, NULL);
  pthread_mutex_init(&cl->pool_mu, NULL);
  rpci_cond_init(&cl->sync_cv);
  rpci_cond_init(&cl->join_cv);
  rpci_cond_init(&cl->pool_cv);
  rpci_event_init(&cl->ev);
  cl->fd = -1;
  cl->rng = seed_rng();
  if (rpci_options_snapshot(&cl->opts, cfg) != 0) goto fail_early;
  const rpci_options *o = &cl->opts;

  int strategy = RPCI_ROUTE_P2C;
  if (o->cluster_strategy && (strategy = rpci_strategy_parse(o->cluster_strategy)) < 0) {
    rpci_set_error(
        "config key 'cluster_strategy': unknown strategy '%s' (p2c, round_robin, "
        "random, least_connections)",
        o->cluster_strategy);
    goto fail_early;
  }
  char err[200] = "";
  cl->kr = rpci_keyring_new(o->cluster_keys, err, sizeof err);
  if (!cl->kr) {
    rpci_set_error("config key 'cluster_keys': %s", err[0] ? err : "bad key");
    goto fail_early;
  }
  if (rpci_keyring_count(cl->kr) == 0)
    rpci_log(RPCI_LOG_WARN, "cluster: no cluster_keys: gossip travels unauthenticated");
  rpci_route_cfg rc = {
      .strategy = strategy, .breaker_failures = o->breaker_failures, .seed = cl->rng ^ 0x5bd1e995u};
  cl->router = rpci_route_new(&rc);
  cl->client_cfg = rpci_config_from_options(o);
  cl->ev_fd = rpci_event_fd(&cl->ev);
  if (!cl->router || !cl->client_cfg || cl->ev_fd < 0) {
    rpci_set_error("out of memory");
    goto fail_early;
  }
  if (rpci_gossip_start(cl, o->gossip_bind ? o->gossip_bind : "0.0.0.0:7946") != 0) goto fail_early;
  if (pick_advertise(cl) != 0) {
    rpci_set_error("config key 'gossip_advertise': cannot resolve '%s'",
                   o->gossip_advertise ? o->gossip_advertise : "");
    goto fail;
  }
  if (o->rpc_advertise && numeric_addr(o->rpc_advertise, 0, cl->rpc_adv, sizeof cl->rpc_adv) != 0) {
    rpci_set_error("config key 'rpc_advertise': cannot resolve '%s'", o->rpc_advertise);
    goto fail;
  }
  if (o->node_name) {
    if (!*o->node_name || strlen(o->node_name) > RPCI_SWIM_MAX_NAME) {
      rpci_set_error("config key 'node_name': 1..%d bytes", RPCI_SWIM_MAX_NAME);
      goto fail;
    }
    snprintf(cl->name, sizeof cl->name, "%s", o->node_name);
  } else {
    char host[48] = "node";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    snprintf(cl->name, sizeof cl->name, "%s-%d", host, cl->port);
  }
  rpci_swim_cfg sc;
  fill_swim_cfg(cl, &sc);
  cl->core = rpci_swim_new(&sc, rpci_node_now_ms());
  if (!cl->core) {
    rpci_set_error("cluster: bad membership settings (timeouts must be below intervals)");
    goto fail;
  }
  if (rpci_sync_start(cl) != 0) goto fail;
  pthread_mutex_lock(&cl->mu);
  rpci_node_flush(cl);
  pthread_mutex_unlock(&cl->mu);
  rpci_log(RPCI_LOG_INFO, "cluster: node %s gossiping on %s", cl->name, cl->gossip_adv);
  return cl;
fail:
  rpci_gossip_stop(cl);
fail_early:
  node_destroy(cl);
  return NULL;
}

int rpcnet_cluster_attach_server(rpcnet_cluster *cl, rpcnet_server *srv) {
  rpci_clear_error();
  if (!cl || !srv || rpcnet_server_port(srv) <= 0) {
    rpci_set_error("rpcnet_cluster_attach_server: NULL, or the server is not listening");
    return RPCNET_INVALID_ARGUMENT;
  }
  pthread_mutex_lock(&cl->mu);
  if (cl->srv || cl->left) {
    pthread_mutex_unlock(&cl->mu);
    rpci_set_error("rpcnet_cluster_attach_server: %s",
                   cl->left ? "the node has left" : "a server is already attached");
    return RPCNET_FAILED_PRECONDITION;
  }
  cl->srv = srv;
  int rc = RPCNET_OK;
  if (!cl->opts.rpc_advertise) {
    char host[64];
    host_of(cl->gossip_adv, host, sizeof host);
    snprintf(cl->rpc_adv, sizeof cl->rpc_adv, "%s:%d", host, rpcnet_server_port(srv));
    if (rpci_swim_set_rpc_addr(cl->core, rpci_node_now_ms(), cl->rpc_adv) != 0)
      rc = RPCNET_INTERNAL;
    rpci_node_flush(cl);
  }
  pthread_mutex_unlock(&cl->mu);
  if (rpci_sync_attach(cl, srv) != 0) rc = RPCNET_RESOURCE_EXHAUSTED;
  return rc;
}

/* ---- tags ----------------------------------------------------------------- */

int rpcnet_cluster_set_tag(rpcnet_cluster *cl, const char *key, const char *value) {
  rpci_clear_error();
  if (!cl || !key || !*key || strpbrk(key, ",=!")) {
    rpci_set_error("rpcnet_cluster_set_tag: key must be non-empty without ',', '=' or '!'");
    return RPCNET_INVALID_ARGUMENT;
  }
  pthread_mutex_lock(&cl->mu);
  rpci_swim_member self;
  rpci_swim_find(cl->core, cl->name, &self);
  rpci_tag tags[RPCI_SWIM_MAX_TAGS + 1];
  size_t n = 0;
  int replaced = 0;
  for (size_t i = 0; i < self.ntags && n < RPCI_SWIM_MAX_TAGS + 1; i++) {
    if (!strcmp(self.tags[i].key, key)) {
      replaced = 1;
      if (!value) continue;
      tags[n++] = (rpci_tag){key, value};
    } else {
      tags[n++] = self.tags[i];
    }
  }
  if (!replaced && value) {
    if (n >= RPCI_SWIM_MAX_TAGS) goto too_many;
    tags[n++] = (rpci_tag){key, value};
  }
  /* self.tags points into the core; rpci_swim_set_tags copies before it
   * frees the old ones. */
  if (rpci_swim_set_tags(cl->core, rpci_node_now_ms(), tags, n) != 0) goto too_many;
  rpci_node_flush(cl);
  pthread_mutex_unlock(&cl->mu);
  return RPCNET_OK;
too_many:
  pthread_mutex_unlock(&cl->mu);
  rpci_set_error(
      "rpcnet_cluster_set_tag: over the tag limits (%d tags, keys %d and values %d "
      "bytes, %d bytes in all)",
      RPCI_SWIM_MAX_TAGS, RPCI_SWIM_MAX_TAG_KEY, RPCI_SWIM_MAX_TAG_VALUE, RPCI_SWIM_MAX_TAG_BYTES);
  return RPCNET_RESOURCE_EXHAUSTED;
}

/* ---- keys ------------------------------------------------------------------ */

int rpcnet_cluster_set_keys(rpcnet_cluster *cl, const char *keys) {
  rpci_clear_error();
  if (!cl) return RPCNET_INVALID_ARGUMENT;
  char err[200] = "";
  rpci_keyring *kr = rpci_keyring_new(keys, err, sizeof err);
  if (!kr) {
    rpci_set_error("rpcnet_cluster_set_keys: %s", err[0] ? err : "bad key");
    return RPCNET_INVALID_ARGUMENT;
  }
  pthread_mutex_lock(&cl->mu);
  rpci_keyring *old = cl->kr;
  cl->kr = kr;
  pthread_mutex_unlock(&cl->mu);
  rpci_keyring_free(old);
  if (rpci_keyring_count(kr) == 0)
    rpci_log(RPCI_LOG_WARN, "cluster: no cluster keys: gossip travels unauthenticated");
  return RPCNET_OK;
}

/* ---- join ---------------------------------------------------------------- */

/* Parses "a:1,b:2" into numeric addresses (resolving names here, on the
 * caller's thread). Returns the count, or -1 with rpci_set_error. */
static int parse_seeds(const char *seeds, char (*out)[RPCI_NODE_ADDR], int max) {
  int n = 0;
  const char *p = seeds;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    while (len && (*p == ' ')) p++, len--;
    while (len && p[len - 1] == ' ') len--;
    if (len) {
      char one[RPCI_NODE_ADDR];
      if (len >= sizeof one || n >= max) {
        rpci_set_error("rpcnet_cluster_join: seed list too long");
        return -1;
      }
      memcpy(one, p, len);
      one[len] = 0;
      if (numeric_addr(one, 7946, out[n], RPCI_NODE_ADDR) != 0) {
        rpci_set_error("rpcnet_cluster_join: bad seed '%s': %s", one, rpci_get_error());
        return -1;
      }
      n++;
    }
    if (!end) break;
    p = end + 1;
  }
  if (n == 0) rpci_set_error("rpcnet_cluster_join: no seed given");
  return n ? n : -1;
}

/* Members other than this node that are alive or suspect (mu held). */
static size_t reachable_others(rpcnet_cluster *cl) {
  size_t n = 0, count = rpci_swim_count(cl->core);
  for (size_t i = 0; i < count; i++) {
    rpci_swim_member m;
    if (rpci_swim_member_at(cl->core, i, &m) == 0 && !m.is_self &&
        (m.state == RPCI_MS_ALIVE || m.state == RPCI_MS_SUSPECT))
      n++;
  }
  return n;
}

static size_t alive_others(rpcnet_cluster *cl) {
  size_t n = 0, count = rpci_swim_count(cl->core);
  for (size_t i = 0; i < count; i++) {
    rpci_swim_member m;
    if (rpci_swim_member_at(cl->core, i, &m) == 0 && !m.is_self && m.state == RPCI_MS_ALIVE) n++;
  }
  return n;
}

/* Every seed sent a key-mismatch notice: no point waiting (mu held). */
static int all_refused(const rpcnet_cluster *cl, const char *const *seeds, size_t n) {
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < cl->nrejected && strcmp(cl->rejected_by[j], seeds[i])) j++;
    if (j == cl->nrejected) return 0;
  }
  return 1;
}

int rpcnet_cluster_join(rpcnet_cluster *cl, const char *seeds) {
  rpci_clear_error();
  if (!cl || !seeds) {
    rpci_set_error("rpcnet_cluster_join: NULL argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  char(*addrs)[RPCI_NODE_ADDR] = malloc(2 * RPCI_JOIN_SEEDS_MAX * sizeof *addrs);
  if (!addrs) return RPCNET_RESOURCE_EXHAUSTED;
  int n = parse_seeds(seeds, addrs, RPCI_JOIN_SEEDS_MAX);
  if (n < 0) {
    free(addrs);
    return RPCNET_INVALID_ARGUMENT;
  }
  const char *ptrs[RPCI_JOIN_SEEDS_MAX];
  for (int i = 0; i < n; i++) ptrs[i] = addrs[i];
  int64_t deadline = rpci_node_now_ms() + cl->opts.join_timeout_ms;

  pthread_mutex_lock(&cl->mu);
  if (cl->left) {
    pthread_mutex_unlock(&cl->mu);
    free(addrs);
    rpci_set_error("rpcnet_cluster_join: the node has left");
    return RPCNET_FAILED_PRECONDITION;
  }
  cl->join_gen++;
  cl->join_ok = 0;
  cl->join_denied[0] = 0;
  cl->rejected_by = addrs + RPCI_JOIN_SEEDS_MAX;
  cl->nrejected = 0;
  int64_t next_retry = rpci_node_now_ms();
  int rc = RPCNET_UNAVAILABLE;
  for (;;) {
    if (cl->join_ok) {
      rc = RPCNET_OK;
      break;
    }
    int64_t now = rpci_node_now_ms();
    if (now >= deadline || all_refused(cl, ptrs, (size_t)n)) break;
    if (now >= next_retry) { /* (re)send the join pings; datagrams get lost */
      rpci_swim_join(cl->core, now, ptrs, (size_t)n);
      rpci_node_flush(cl);
      next_retry = now + 500;
    }
    struct timespec wake;
    rpci_ms_to_timespec(&wake, next_retry < deadline ? next_retry : deadline);
    pthread_cond_timedwait(&cl->join_cv, &cl->mu, &wake);
  }
  if (rc != RPCNET_OK) {
    if (cl->join_denied[0]) {
      rc = RPCNET_PERMISSION_DENIED;
      rpci_set_error("rpcnet_cluster_join: %s", cl->join_denied);
    } else if (alive_others(cl) > 0) {
      rc = RPCNET_OK; /* reached by gossip although no push-pull completed */
    } else {
      rpci_set_error("rpcnet_cluster_join: no seed answered within %lld ms (%s)",
                     (long long)cl->opts.join_timeout_ms, seeds);
    }
  }
  cl->rejected_by = NULL;
  cl->nrejected = 0;
  pthread_mutex_unlock(&cl->mu);
  free(addrs);
  if (rc == RPCNET_OK)
    rpci_log(RPCI_LOG_INFO, "cluster: %s joined through %s", cl->name, seeds);
  else
    rpci_log(RPCI_LOG_WARN, "cluster: %s", rpci_get_error());
  return rc;
}

/* ---- leave ----------------------------------------------------------------- */

int rpcnet_cluster_leave(rpcnet_cluster *cl, int timeout_ms) {
  rpci_clear_error();
  if (!cl) return RPCNET_INVALID_ARGUMENT;
  int64_t deadline = rpci_node_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  pthread_mutex_lock(&cl->mu);
  if (!cl->left) {
    cl->left = 1;
    rpci_swim_leave(cl->core, rpci_node_now_ms());
    rpci_node_flush(cl);
  }
  int rc = RPCNET_OK;
  /* The leave rides on gossip rounds driven by the timer: poll for it,
   * unless nobody is left to tell (everyone else left or died too). */
  while (rpci_swim_leave_pending(cl->core) && reachable_others(cl) > 0) {
    int64_t now = rpci_node_now_ms();
    if (now >= deadline) {
      rc = RPCNET_DEADLINE_EXCEEDED;
      rpci_set_error("rpcnet_cluster_leave: not confirmed within %d ms", timeout_ms);
      break;
    }
    struct timespec wake;
    rpci_ms_to_timespec(&wake, now + 10 < deadline ? now + 10 : deadline);
    pthread_cond_timedwait(&cl->join_cv, &cl->mu, &wake);
  }
  pthread_mutex_unlock(&cl->mu);
  return rc;
}

/* ---- events ------------------------------------------------------------------ */

int rpcnet_cluster_next_event(rpcnet_cluster *cl, int timeout_ms, void **event, size_t *len) {
  rpci_clear_error();
  if (!cl || !event || !len) {
    rpci_set_error("rpcnet_cluster_next_event: NULL argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  *event = NULL;
  *len = 0;
  int64_t until = timeout_ms < 0 ? -1 : rpci_node_now_ms() + timeout_ms;
  for (;;) {
    uint64_t gen = rpci_event_gen(&cl->ev);
    pthread_mutex_lock(&cl->mu);
    if (cl->evq_len) {
      rpci_blob b = cl->evq[cl->evq_head];
      cl->evq_head = (cl->evq_head + 1) % cl->evq_cap;
      cl->evq_len--;
      rpci_event_notify(&cl->ev, cl->evq_len > 0, 0);
      pthread_mutex_unlock(&cl->mu);
      *event = b.p;
      *len = b.len;
      return RPCNET_OK;
    }
    pthread_mutex_unlock(&cl->mu);
    if (timeout_ms == 0 || rpci_event_wait(&cl->ev, gen, until) != 0) {
      rpci_set_error("rpcnet_cluster_next_event: no event within %d ms", timeout_ms);
      return RPCNET_DEADLINE_EXCEEDED;
    }
  }
}

int rpcnet_cluster_fd(const rpcnet_cluster *cl) { return cl ? cl->ev_fd : -1; }

const char *rpcnet_cluster_name(const rpcnet_cluster *cl) { return cl ? cl->name : ""; }

int rpcnet_cluster_gossip_port(const rpcnet_cluster *cl) { return cl ? cl->port : -1; }

void rpcnet_cluster_free(rpcnet_cluster *cl) {
  if (!cl) return;
  pthread_mutex_lock(&cl->mu);
  cl->closing = 1;
  pthread_cond_broadcast(&cl->join_cv);
  pthread_mutex_unlock(&cl->mu);
  /* A push-pull arriving from now on is refused (the handler checks
   * closing under mu); then the sync thread, then the socket and timer. */
  rpci_sync_detach(cl);
  rpci_sync_stop(cl);
  rpci_gossip_stop(cl);
  node_destroy(cl);
}

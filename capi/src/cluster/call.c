/*
 * Routed calls: rpcnet_cluster_call(_ex) and rpcnet_cluster_start, over a
 * pool of clients (one per member RPC address).
 *
 * Design notes
 * - mu is held only to pick a member and to report an outcome (router);
 *   pool_mu only to look up or insert a pool entry. The RPC itself, and a
 *   first connect, run without any lock; threads that want an address
 *   another thread is connecting to wait for that connect (pool_cv).
 * - Outcomes feed the router: an answer of any status the member produced
 *   is OK for routing; UNAVAILABLE and DEADLINE_EXCEEDED are failures; a
 *   cancelled hedge loser is abandoned (no judgement).
 * - Retries: only with RPCNET_CALL_IDEMPOTENT, only after UNAVAILABLE, on a
 *   member not tried yet, within the call's one deadline.
 * - Hedging: with RPCNET_CALL_HEDGE (and IDEMPOTENT), a second attempt on
 *   another member starts when the first has not answered by the router's
 *   latency percentile; both are waited on with poll() on their readiness
 *   fds; the first answer wins and the other is cancelled.
 * - Pool entries are refcounted: a member gone for good (reaped) is
 *   forgotten, and its client closed by whoever puts it back last.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/node.h"
#include "obs/log.h"
#include "rpc/util.h"

/* ---- pool ------------------------------------------------------------------ */

static void ent_release_locked(rpcnet_cluster *cl, rpci_pool_ent *e, rpcnet_client **to_close) {
  (void)cl;
  if (--e->refs == 0) {
    *to_close = e->cli;
    free(e);
  }
}

rpci_pool_ent *rpci_pool_get(rpcnet_cluster *cl, const char *addr, int64_t deadline_ms,
                             int *status) {
  pthread_mutex_lock(&cl->pool_mu);
  for (;;) {
    rpci_pool_ent *e = NULL;
    for (size_t i = 0; i < cl->npool; i++)
      if (!strcmp(cl->pool[i]->addr, addr)) e = cl->pool[i];
    if (e && e->connected) {
      e->refs++;
      pthread_mutex_unlock(&cl->pool_mu);
      return e;
    }
    if (e) { /* someone is connecting: wait for it */
      struct timespec dl;
      rpci_ms_to_timespec(&dl, deadline_ms);
      if (pthread_cond_timedwait(&cl->pool_cv, &cl->pool_mu, &dl) != 0 &&
          rpci_node_now_ms() >= deadline_ms) {
        pthread_mutex_unlock(&cl->pool_mu);
        rpci_set_error("deadline exceeded while connecting to %s", addr);
        *status = RPCNET_DEADLINE_EXCEEDED;
        return NULL;
      }
      continue;
    }
    if (cl->npool == cl->pool_cap) {
      size_t cap = cl->pool_cap ? cl->pool_cap * 2 : 8;
      rpci_pool_ent **p = realloc(cl->pool, cap * sizeof *p);
      if (!p) break;
      cl->pool = p;
      cl->pool_cap = cap;
    }
    e = calloc(1, sizeof *e);
    if (!e) break;
    snprintf(e->addr, sizeof e->addr, "%s", addr);
    e->refs = 2; /* the pool's and ours */
    cl->pool[cl->npool++] = e;
    pthread_mutex_unlock(&cl->pool_mu);
    rpcnet_client *cli = rpcnet_client_connect(cl->client_cfg, addr);
    char err[RPCI_ERRMSG_MAX];
    snprintf(err, sizeof err, "%s", rpci_get_error());
    pthread_mutex_lock(&cl->pool_mu);
    rpcnet_client *to_close = NULL;
    if (cli) {
      e->cli = cli;
      e->connected = 1;
    } else { /* out of the pool: the next caller tries again */
      for (size_t i = 0; i < cl->npool; i++)
        if (cl->pool[i] == e) cl->pool[i] = cl->pool[--cl->npool];
      e->refs -= 2;
      free(e);
      e = NULL;
    }
    pthread_cond_broadcast(&cl->pool_cv);
    pthread_mutex_unlock(&cl->pool_mu);
    (void)to_close;
    if (!e) {
      rpci_set_error("%s", err);
      *status = RPCNET_UNAVAILABLE;
    }
    return e;
  }
  pthread_mutex_unlock(&cl->pool_mu);
  rpci_set_error("out of memory");
  *status = RPCNET_RESOURCE_EXHAUSTED;
  return NULL;
}

void rpci_pool_put(rpcnet_cluster *cl, rpci_pool_ent *e) {
  rpcnet_client *to_close = NULL;
  pthread_mutex_lock(&cl->pool_mu);
  ent_release_locked(cl, e, &to_close);
  pthread_mutex_unlock(&cl->pool_mu);
  rpcnet_client_close(to_close);
}

void rpci_pool_forget(rpcnet_cluster *cl, const char *addr) {
  pthread_mutex_lock(&cl->pool_mu);
  /* Closing blocks and this may run on an I/O thread: the sync thread
   * closes what is released here. With the queue full (64 members gone at
   * once) the entry simply stays pooled until a later forget. */
  for (size_t i = 0; i < cl->npool && cl->nclosing < RPCI_CLOSEQ_MAX; i++) {
    rpci_pool_ent *e = cl->pool[i];
    if (strcmp(e->addr, addr) || !e->connected) continue;
    cl->pool[i] = cl->pool[--cl->npool];
    rpcnet_client *to_close = NULL;
    ent_release_locked(cl, e, &to_close);
    if (to_close) cl->closing_q[cl->nclosing++] = to_close;
    break;
  }
  pthread_mutex_unlock(&cl->pool_mu);
}

int rpci_pool_closes_pending(rpcnet_cluster *cl) {
  pthread_mutex_lock(&cl->pool_mu);
  int n = cl->nclosing > 0;
  pthread_mutex_unlock(&cl->pool_mu);
  return n;
}

void rpci_pool_close_deferred(rpcnet_cluster *cl) {
  for (;;) {
    pthread_mutex_lock(&cl->pool_mu);
    rpcnet_client *c = cl->nclosing ? cl->closing_q[--cl->nclosing] : NULL;
    pthread_mutex_unlock(&cl->pool_mu);
    if (!c) return;
    rpcnet_client_close(c);
  }
}

void rpci_pool_close_all(rpcnet_cluster *cl) {
  rpci_pool_close_deferred(cl);
  for (size_t i = 0; i < cl->npool; i++) {
    rpcnet_client_close(cl->pool[i]->cli);
    free(cl->pool[i]);
  }
  cl->npool = 0;
}

/* ---- one attempt --------------------------------------------------------- */

typedef struct attempt {
  rpci_pool_ent *e;
  rpcnet_call *k;
  char name[RPCI_ROUTE_NAME];
  char addr[RPCI_ROUTE_ADDR];
  int64_t started_us;
  int status;
  void *resp;
  size_t resp_len;
  char err[256];
} attempt;

static int outcome_of(int status) {
  if (status == RPCNET_UNAVAILABLE || status == RPCNET_DEADLINE_EXCEEDED) return RPCI_ROUTE_FAILED;
  if (status == RPCNET_CANCELLED) return RPCI_ROUTE_ABANDONED;
  return RPCI_ROUTE_OK;
}

static void report(rpcnet_cluster *cl, attempt *a, int outcome) {
  pthread_mutex_lock(&cl->mu);
  rpci_route_done(cl->router, a->name, a->started_us, rpci_node_now_us(), outcome);
  pthread_mutex_unlock(&cl->mu);
}

/* Picks a member (skipping `tried`) and starts the call on it; the request
 * is sent at once. Returns RPCNET_OK with a->k running, or a status with
 * a->err (a->name set when a member was picked but could not be reached). */
static int attempt_start(rpcnet_cluster *cl, const rpci_filter *f, const char *const *tried,
                         size_t ntried, const char *method, const void *req, size_t len,
                         int64_t deadline_ms, attempt *a) {
  memset(a, 0, sizeof *a);
  a->status = RPCNET_UNKNOWN;
  pthread_mutex_lock(&cl->mu);
  int64_t now_us = rpci_node_now_us();
  int rc = rpci_route_pick(cl->router, f, tried, ntried, now_us, a->name, a->addr);
  pthread_mutex_unlock(&cl->mu);
  if (rc != 0) {
    snprintf(a->err, sizeof a->err, "no %smember matches the filter",
             ntried ? "other reachable " : "");
    return a->status = RPCNET_UNAVAILABLE;
  }
  a->started_us = now_us;
  int st = RPCNET_OK;
  a->e = rpci_pool_get(cl, a->addr, deadline_ms, &st);
  if (!a->e) {
    snprintf(a->err, sizeof a->err, "member %s (%s): %s", a->name, a->addr, rpci_get_error());
    report(cl, a, outcome_of(st));
    return a->status = st;
  }
  int64_t left = deadline_ms - rpci_node_now_ms();
  a->k = rpcnet_client_start(a->e->cli, method, left > 0 ? (int)left : 1);
  if (!a->k) {
    snprintf(a->err, sizeof a->err, "%s", rpci_get_error());
    report(cl, a, RPCI_ROUTE_ABANDONED);
    rpci_pool_put(cl, a->e);
    a->e = NULL;
    return a->status = RPCNET_RESOURCE_EXHAUSTED;
  }
  st = rpcnet_call_send_last(a->k, req, len);
  if (st != RPCNET_OK) a->status = st; /* ended already: recv reports it */
  return RPCNET_OK;
}

/* Collects the attempt's outcome without waiting (timeout 0) or until the
 * call's deadline (timeout -1). Returns 1 when the call has ended. */
static int attempt_collect(attempt *a, int timeout) {
  void *data;
  size_t len;
  for (;;) {
    int r = rpcnet_call_recv(a->k, timeout, &data, &len);
    if (r == RPCNET_WOULD_BLOCK) return 0;
    if (r == RPCNET_OK) {
      rpcnet_free(a->resp);
      a->resp = data;
      a->resp_len = len;
      continue;
    }
    const char *msg = "";
    a->status = rpcnet_call_status(a->k, &msg);
    snprintf(a->err, sizeof a->err, "%s", msg);
    if (a->status != RPCNET_OK) {
      rpcnet_free(a->resp);
      a->resp = NULL;
    }
    return 1;
  }
}

static void attempt_end(rpcnet_cluster *cl, attempt *a, int outcome) {
  if (a->k) {
    report(cl, a, outcome);
    rpcnet_call_free(a->k);
    a->k = NULL;
  }
  if (a->e) rpci_pool_put(cl, a->e);
  a->e = NULL;
}

/* Waits for the first of two attempts (b may have no call yet) until
 * hedge_at_ms (then returns -1 so the caller can start b) or the end.
 * Returns the index (0 or 1) of the attempt that ended. */
static int wait_first(attempt *a, attempt *b, int64_t hedge_at_ms) {
  for (;;) {
    if (attempt_collect(a, 0)) return 0;
    if (b->k && attempt_collect(b, 0)) return 1;
    struct pollfd p[2];
    int n = 0;
    p[n++] = (struct pollfd){.fd = rpcnet_call_fd(a->k), .events = POLLIN};
    if (b->k) p[n++] = (struct pollfd){.fd = rpcnet_call_fd(b->k), .events = POLLIN};
    int timeout = -1;
    if (hedge_at_ms > 0) {
      int64_t left = hedge_at_ms - rpci_node_now_ms();
      if (left <= 0) return -1;
      timeout = (int)left;
    }
    if (p[0].fd < 0 || (n == 2 && p[1].fd < 0)) { /* no fds: fall back to blocking */
      attempt_collect(a, -1);
      return 0;
    }
    poll(p, (nfds_t)n, timeout);
  }
}

/* ---- public calls ---------------------------------------------------------- */

static int call_routed(rpcnet_cluster *cl, const rpci_filter *f, const char *method,
                       const void *req, size_t req_len, void **resp, size_t *resp_len,
                       int timeout_ms, int flags, char *member, size_t member_len) {
  int idempotent = flags & RPCNET_CALL_IDEMPOTENT;
  int hedge = idempotent && (flags & RPCNET_CALL_HEDGE);
  int64_t deadline =
      rpci_node_now_ms() + (timeout_ms > 0 ? timeout_ms : cl->opts.default_timeout_ms);
  int max_attempts = 1 + (idempotent ? cl->opts.cluster_retries : 0);
  char tried_names[18][RPCI_ROUTE_NAME];
  const char *tried[18];
  size_t ntried = 0;
  attempt a, b;
  int status = RPCNET_UNAVAILABLE;
  char err[256] = "no member matches the filter";
  for (int n = 0; n < max_attempts && ntried < 16; n++) {
    int st = attempt_start(cl, f, tried, ntried, method, req, req_len, deadline, &a);
    if (a.name[0]) {
      snprintf(tried_names[ntried], RPCI_ROUTE_NAME, "%s", a.name);
      tried[ntried] = tried_names[ntried];
      ntried++;
    }
    if (st != RPCNET_OK) {
      status = st;
      snprintf(err, sizeof err, "%s", a.err);
      if (!a.name[0]) break; /* nobody left to try */
      if (st == RPCNET_UNAVAILABLE && idempotent) continue;
      break;
    }
    int winner = 0;
    memset(&b, 0, sizeof b);
    int64_t hedge_at = 0;
    if (hedge) {
      pthread_mutex_lock(&cl->mu);
      int64_t p_us = rpci_route_percentile_us(cl->router, cl->opts.hedge_percentile / 100.0);
      pthread_mutex_unlock(&cl->mu);
      if (p_us > 0) hedge_at = rpci_node_now_ms() + (p_us + 999) / 1000;
    }
    if (hedge_at) {
      winner = wait_first(&a, &b, hedge_at);
      if (winner < 0) { /* slow: start the hedge on another member */
        if (attempt_start(cl, f, tried, ntried, method, req, req_len, deadline, &b) == RPCNET_OK &&
            b.name[0]) {
          snprintf(tried_names[ntried], RPCI_ROUTE_NAME, "%s", b.name);
          tried[ntried] = tried_names[ntried];
          ntried++;
        }
        winner = wait_first(&a, &b, 0);
      }
    } else {
      attempt_collect(&a, -1);
    }
    attempt *w = winner ? &b : &a, *l = winner ? &a : &b;
    if (l->k) {
      rpcnet_call_cancel(l->k);
      attempt_end(cl, l, RPCI_ROUTE_ABANDONED);
    }
    rpcnet_free(l->resp);
    attempt_end(cl, w, outcome_of(w->status));
    status = w->status;
    snprintf(err, sizeof err, "%s", w->err);
    if (status == RPCNET_OK) {
      *resp = w->resp ? w->resp : malloc(1);
      *resp_len = w->resp ? w->resp_len : 0;
      if (member) snprintf(member, member_len, "%s", w->name);
      return RPCNET_OK;
    }
    rpcnet_free(w->resp);
    if (!(status == RPCNET_UNAVAILABLE && idempotent)) {
      if (member) snprintf(member, member_len, "%s", w->name);
      break;
    }
    if (rpci_node_now_ms() >= deadline) break;
  }
  rpci_set_error("%s", err);
  return status;
}

int rpcnet_cluster_call_ex(rpcnet_cluster *cl, const char *filter, const char *method,
                           const void *req, size_t req_len, void **resp, size_t *resp_len,
                           int timeout_ms, int flags, char *member, size_t member_len) {
  rpci_clear_error();
  if (resp) *resp = NULL;
  if (resp_len) *resp_len = 0;
  if (member && member_len) member[0] = 0;
  if (!cl || !method || !*method || !resp || !resp_len || (req_len && !req)) {
    rpci_set_error("rpcnet_cluster_call: NULL or empty argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  char err[160];
  rpci_filter *f = rpci_filter_parse(filter, err, sizeof err);
  if (!f) {
    rpci_set_error("rpcnet_cluster_call: bad filter: %s", err);
    return RPCNET_INVALID_ARGUMENT;
  }
  int rc = call_routed(cl, f, method, req, req_len, resp, resp_len, timeout_ms, flags, member,
                       member_len);
  rpci_filter_free(f);
  return rc;
}

int rpcnet_cluster_call(rpcnet_cluster *cl, const char *filter, const char *method, const void *req,
                        size_t req_len, void **resp, size_t *resp_len, int timeout_ms) {
  return rpcnet_cluster_call_ex(cl, filter, method, req, req_len, resp, resp_len, timeout_ms, 0,
                                NULL, 0);
}

rpcnet_call *rpcnet_cluster_start(rpcnet_cluster *cl, const char *filter, const char *method,
                                  int timeout_ms) {
  rpci_clear_error();
  if (!cl || !method || !*method) {
    rpci_set_error("rpcnet_cluster_start: NULL or empty argument");
    return NULL;
  }
  char err[160];
  rpci_filter *f = rpci_filter_parse(filter, err, sizeof err);
  if (!f) {
    rpci_set_error("rpcnet_cluster_start: bad filter: %s", err);
    return NULL;
  }
  int64_t deadline =
      rpci_node_now_ms() + (timeout_ms > 0 ? timeout_ms : cl->opts.default_timeout_ms);
  attempt a;
  memset(&a, 0, sizeof a);
  pthread_mutex_lock(&cl->mu);
  int rc = rpci_route_pick(cl->router, f, NULL, 0, rpci_node_now_us(), a.name, a.addr);
  pthread_mutex_unlock(&cl->mu);
  rpci_filter_free(f);
  if (rc != 0) {
    rpci_set_error("rpcnet_cluster_start: no member matches the filter");
    return NULL;
  }
  a.started_us = rpci_node_now_us();
  int st;
  a.e = rpci_pool_get(cl, a.addr, deadline, &st);
  if (!a.e) {
    snprintf(err, sizeof err, "%s", rpci_get_error());
    report(cl, &a, outcome_of(st));
    rpci_set_error("rpcnet_cluster_start: member %s (%s): %s", a.name, a.addr, err);
    return NULL;
  }
  int64_t left = deadline - rpci_node_now_ms();
  rpcnet_call *k = rpcnet_client_start(a.e->cli, method, left > 0 ? (int)left : 1);
  /* The stream is not followed: its slot in flight ends here. The call
   * holds its own reference on the client, so it may outlive the pool. */
  report(cl, &a, RPCI_ROUTE_ABANDONED);
  rpci_pool_put(cl, a.e);
  return k;
}

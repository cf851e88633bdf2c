/*
 * Push-pull (anti-entropy) over rpcnet calls: the node's sync thread runs
 * the initiator side; the attached server answers inline.
 *
 * Design notes
 * - Bodies are the core's push-pull messages sealed by the keyring with the
 *   SYNC context, inside an ordinary unary call of "rpcnet.cluster/sync"
 *   (TLS protects the hop; the seal proves cluster membership).
 * - The sync thread is the only thread that blocks on push-pull calls; the
 *   core is touched only under mu, never across a call.
 * - The server-side handler runs on the server's I/O thread and must not
 *   block: it takes the gate lock, then mu, does pure work and replies.
 *   Gates live for the process's life (one per server ever attached, a few
 *   bytes), so a call arriving after the node is freed finds a closed gate
 *   and is refused with UNAVAILABLE instead of touching freed memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/node.h"
#include "obs/log.h"
#include "rpc/util.h"

typedef struct rpci_sync_gate {
  struct rpci_sync_gate *next;
  rpcnet_server *srv;
  rpcnet_cluster *cl; /* NULL when closed; guarded by mu */
  pthread_mutex_t mu;
} rpci_sync_gate;

static pthread_mutex_t gates_mu = PTHREAD_MUTEX_INITIALIZER;
static rpci_sync_gate *gates;

/* ---- server side -------------------------------------------------------- */

static void serve_locked(rpcnet_cluster *cl, rpcnet_request *req) {
  size_t len;
  const uint8_t *body = rpcnet_request_data(req, &len);
  const uint8_t *plain;
  size_t plain_len;
  int err = rpci_keyring_open(cl->kr, RPCI_SEAL_SYNC, body, len, &plain, &plain_len);
  if (err != RPCI_SEAL_OK) {
    cl->auth_failures++;
    rpci_log(RPCI_LOG_WARN, "cluster: refused a push-pull from %s: %s", rpcnet_request_peer(req),
             rpci_seal_err_name(err));
    char msg[96];
    snprintf(msg, sizeof msg, "cluster key mismatch: %s", rpci_seal_err_name(err));
    rpcnet_request_fail(req, RPCNET_PERMISSION_DENIED, msg);
    return;
  }
  rpci_buf resp = RPCI_BUF_INIT, sealed = RPCI_BUF_INIT;
  if (rpci_swim_sync_serve(cl->core, rpci_node_now_ms(), plain, plain_len, &resp) != 0) {
    rpci_node_flush(cl);
    rpcnet_request_fail(req, RPCNET_INVALID_ARGUMENT, "malformed push-pull message");
    rpci_buf_free(&resp);
    return;
  }
  rpci_node_flush(cl);
  if (rpci_keyring_seal(cl->kr, RPCI_SEAL_SYNC, resp.data, resp.len, &sealed) != RPCI_SEAL_OK)
    rpcnet_request_fail(req, RPCNET_RESOURCE_EXHAUSTED, "out of memory");
  else
    rpcnet_request_reply(req, sealed.data, sealed.len);
  rpci_buf_free(&resp);
  rpci_buf_free(&sealed);
}

static void sync_handler(rpcnet_request *req, void *user) {
  rpci_sync_gate *g = user;
  pthread_mutex_lock(&g->mu);
  rpcnet_cluster *cl = g->cl;
  if (!cl) {
    pthread_mutex_unlock(&g->mu);
    rpcnet_request_fail(req, RPCNET_UNAVAILABLE, "no cluster node on this server");
    return;
  }
  pthread_mutex_lock(&cl->mu);
  if (cl->closing)
    rpcnet_request_fail(req, RPCNET_UNAVAILABLE, "cluster node is closing");
  else
    serve_locked(cl, req);
  pthread_mutex_unlock(&cl->mu);
  pthread_mutex_unlock(&g->mu);
}

int rpci_sync_attach(rpcnet_cluster *cl, rpcnet_server *srv) {
  pthread_mutex_lock(&gates_mu);
  rpci_sync_gate *g = gates;
  while (g && g->srv != srv) g = g->next;
  if (!g) {
    g = calloc(1, sizeof *g);
    if (!g) {
      pthread_mutex_unlock(&gates_mu);
      return -1;
    }
    pthread_mutex_init(&g->mu, NULL);
    g->srv = srv;
    g->next = gates;
    gates = g;
  }
  pthread_mutex_unlock(&gates_mu);
  pthread_mutex_lock(&g->mu);
  g->cl = cl;
  pthread_mutex_unlock(&g->mu);
  cl->gate = g;
  rpcnet_server_handle(srv, RPCI_SYNC_METHOD, sync_handler, g);
  return 0;
}

void rpci_sync_detach(rpcnet_cluster *cl) {
  rpci_sync_gate *g = cl->gate;
  if (!g) return;
  pthread_mutex_lock(&g->mu); /* waits for a handler running on it */
  if (g->cl == cl) g->cl = NULL;
  pthread_mutex_unlock(&g->mu);
  cl->gate = NULL;
}

/* ---- initiator ------------------------------------------------------------ */

/* A unary push-pull call that rpci_sync_stop can cancel (cl->sync_call). */
static int cancellable_call(rpcnet_cluster *cl, rpcnet_client *cli, const void *body, size_t len,
                            int timeout_ms, void **resp, size_t *resp_len) {
  rpcnet_call *k = rpcnet_client_start(cli, RPCI_SYNC_METHOD, timeout_ms);
  if (!k) return RPCNET_RESOURCE_EXHAUSTED;
  pthread_mutex_lock(&cl->mu);
  cl->sync_call = cl->closing ? NULL : k;
  int closing = cl->closing;
  pthread_mutex_unlock(&cl->mu);
  int st = closing ? RPCNET_CANCELLED : rpcnet_call_send_last(k, body, len);
  void *data;
  size_t n;
  while (st == RPCNET_OK) {
    int r = rpcnet_call_recv(k, -1, &data, &n);
    if (r != RPCNET_OK) break;
    rpcnet_free(*resp);
    *resp = data;
    *resp_len = n;
  }
  const char *msg = "";
  if (st == RPCNET_OK) st = rpcnet_call_status(k, &msg);
  if (st != RPCNET_OK) {
    rpci_set_error("%s", msg);
    rpcnet_free(*resp);
    *resp = NULL;
  }
  pthread_mutex_lock(&cl->mu);
  cl->sync_call = NULL;
  pthread_mutex_unlock(&cl->mu);
  rpcnet_call_free(k);
  return st;
}

int rpci_sync_run(rpcnet_cluster *cl, const char *rpc_addr, int64_t deadline_ms, char *why,
                  size_t whylen) {
  why[0] = 0;
  int status = RPCNET_OK;
  rpci_pool_ent *e = rpci_pool_get(cl, rpc_addr, deadline_ms, &status);
  if (!e) {
    snprintf(why, whylen, "%s", rpci_get_error());
    return status;
  }
  rpci_buf req = RPCI_BUF_INIT, sealed = RPCI_BUF_INIT;
  pthread_mutex_lock(&cl->mu);
  int more = rpci_swim_sync_start(cl->core, rpci_node_now_ms(), &req) == 0 ? 1 : -1;
  pthread_mutex_unlock(&cl->mu);
  int rounds = 0;
  while (more == 1 && rounds++ < 4) {
    pthread_mutex_lock(&cl->mu);
    sealed.len = 0;
    int err = rpci_keyring_seal(cl->kr, RPCI_SEAL_SYNC, req.data, req.len, &sealed);
    pthread_mutex_unlock(&cl->mu);
    if (err != RPCI_SEAL_OK) {
      status = RPCNET_RESOURCE_EXHAUSTED;
      break;
    }
    int64_t left = deadline_ms - rpci_node_now_ms();
    if (left <= 0) {
      status = RPCNET_DEADLINE_EXCEEDED;
      break;
    }
    void *resp = NULL;
    size_t resp_len = 0;
    status = cancellable_call(cl, e->cli, sealed.data, sealed.len, (int)left, &resp, &resp_len);
    if (status != RPCNET_OK) {
      snprintf(why, whylen, "push-pull with %s: %s: %s", rpc_addr, rpcnet_status_name(status),
               rpci_get_error());
      break;
    }
    pthread_mutex_lock(&cl->mu);
    const uint8_t *plain;
    size_t plain_len;
    err = rpci_keyring_open(cl->kr, RPCI_SEAL_SYNC, resp, resp_len, &plain, &plain_len);
    req.len = 0;
    if (err != RPCI_SEAL_OK) {
      cl->auth_failures++;
      status = RPCNET_PERMISSION_DENIED;
      snprintf(why, whylen, "push-pull answer from %s: %s", rpc_addr, rpci_seal_err_name(err));
      more = -1;
    } else {
      more = rpci_swim_sync_step(cl->core, rpci_node_now_ms(), plain, plain_len, &req);
      if (more < 0) {
        status = RPCNET_INTERNAL;
        snprintf(why, whylen, "malformed push-pull answer from %s", rpc_addr);
      }
      rpci_node_flush(cl);
    }
    pthread_mutex_unlock(&cl->mu);
    rpcnet_free(resp);
  }
  rpci_buf_free(&req);
  rpci_buf_free(&sealed);
  rpci_pool_put(cl, e);
  return status;
}

/* ---- the sync thread ----------------------------------------------------- */

void rpci_sync_enqueue(rpcnet_cluster *cl, const rpci_swim_sync_job *job) {
  if (!job->rpc_addr || !*job->rpc_addr) return;
  if (cl->syncq_len == RPCI_SYNCQ_MAX) {
    cl->sync_failures++;
    return;
  }
  rpci_sync_job *j = &cl->syncq[(cl->syncq_head + cl->syncq_len) % RPCI_SYNCQ_MAX];
  snprintf(j->name, sizeof j->name, "%s", job->name ? job->name : "");
  snprintf(j->rpc_addr, sizeof j->rpc_addr, "%s", job->rpc_addr);
  j->is_join = job->is_join;
  cl->syncq_len++;
  pthread_cond_signal(&cl->sync_cv);
}

static void *sync_main(void *arg) {
  rpcnet_cluster *cl = arg;
  pthread_mutex_lock(&cl->mu);
  for (;;) {
    while (!cl->closing && cl->syncq_len == 0 && !rpci_pool_closes_pending(cl))
      pthread_cond_wait(&cl->sync_cv, &cl->mu);
    if (cl->closing) break;
    if (rpci_pool_closes_pending(cl)) { /* forgotten pooled clients: close them here */
      pthread_mutex_unlock(&cl->mu);
      rpci_pool_close_deferred(cl);
      pthread_mutex_lock(&cl->mu);
      continue;
    }
    rpci_sync_job job = cl->syncq[cl->syncq_head];
    cl->syncq_head = (cl->syncq_head + 1) % RPCI_SYNCQ_MAX;
    cl->syncq_len--;
    uint64_t gen = cl->join_gen;
    pthread_mutex_unlock(&cl->mu);
    char why[256];
    int64_t budget = job.is_join ? cl->opts.join_timeout_ms : 10000;
    int rc = rpci_sync_run(cl, job.rpc_addr, rpci_node_now_ms() + budget, why, sizeof why);
    pthread_mutex_lock(&cl->mu);
    if (rc != RPCNET_OK) {
      cl->sync_failures++;
      rpci_log(job.is_join ? RPCI_LOG_WARN : RPCI_LOG_DEBUG, "cluster: %s", why);
    }
    if (job.is_join && gen == cl->join_gen) {
      if (rc == RPCNET_OK)
        cl->join_ok = 1;
      else if (rc == RPCNET_PERMISSION_DENIED)
        snprintf(cl->join_denied, sizeof cl->join_denied, "%s", why);
      pthread_cond_broadcast(&cl->join_cv);
    }
  }
  pthread_mutex_unlock(&cl->mu);
  return NULL;
}

int rpci_sync_start(rpcnet_cluster *cl) {
  if (pthread_create(&cl->sync_thr, NULL, sync_main, cl) != 0) {
    rpci_set_error("cannot start the cluster sync thread");
    return -1;
  }
  cl->sync_started = 1;
  return 0;
}

void rpci_sync_stop(rpcnet_cluster *cl) {
  if (!cl->sync_started) return;
  pthread_mutex_lock(&cl->mu);
  cl->closing = 1;
  if (cl->sync_call) rpcnet_call_cancel(cl->sync_call);
  pthread_cond_broadcast(&cl->sync_cv);
  pthread_mutex_unlock(&cl->mu);
  pthread_join(cl->sync_thr, NULL);
  cl->sync_started = 0;
}

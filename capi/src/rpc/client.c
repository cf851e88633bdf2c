/*
 * The client: one QUIC connection shared by every calling thread,
 * reconnection with backoff, and blocking unary calls.
 *
 * Design notes
 * - Hand-offs per unary call: one. The calling thread encodes the request,
 *   opens the stream and writes the packets itself under the connection's
 *   lock; the loop thread reads the answer and wakes the caller.
 * - A call is refcounted: the caller's reference and the transport's (until
 *   stream_close). The call's result fields are written under the
 *   connection's lock and read by the caller once `done` is seen under
 *   call->mu.
 * - Lock order: connection lock, then cli->mu, then call->mu. The caller
 *   never holds cli->mu while taking a connection lock.
 * - The client object is refcounted too (application + each call in
 *   flight) so rpcnet_client_close may run while other threads are still
 *   inside rpcnet_client_call; their calls end with RPCNET_CANCELLED.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log.h"
#include "rpc/options.h"
#include "rpc/util.h"
#include "rpcnet/rpcnet.h"
#include "transport/qconn.h"
#include "transport/udp.h"
#include "wire/frame.h"
#include "wire/utf8.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

typedef struct call {
  rpci_stream st; /* first: the transport's view */
  atomic_int refs;
  rpcnet_client *cli;
  rpci_frame_reader *reader;
  /* results, under the connection lock until done */
  int status;
  char *message;
  uint8_t *resp;
  size_t resp_len;
  int nmsg;
  /* completion */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
} call;

struct rpcnet_client {
  atomic_int refs;
  rpci_options opts;
  rpci_wire_limits limits;
  rpci_tls_ctx *tls;
  rpci_loop *loop;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char addr_str[300];
  char server_name[256];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rpci_qconn *qc;  /* current connection (a reference), or NULL */
  int connecting;  /* a thread is connecting */
  int established; /* qc's handshake is confirmed */
  int closing;
  int backoff_ms;
  int64_t next_attempt_ms;
  char conn_err[RPCI_ERRMSG_MAX];
};

static const rpci_qconn_events client_events;

/* ---- lifetimes ------------------------------------------------------------- */

static void cli_ref(rpcnet_client *c) { atomic_fetch_add(&c->refs, 1); }

static void cli_unref(rpcnet_client *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  rpci_tls_ctx_unref(c->tls);
  rpci_options_free(&c->opts);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}

static void call_unref(call *k) {
  if (atomic_fetch_sub(&k->refs, 1) != 1) return;
  rpci_frame_reader_free(k->reader);
  free(k->message);
  free(k->resp);
  pthread_mutex_destroy(&k->mu);
  pthread_cond_destroy(&k->cv);
  free(k);
}

/* Ends the call with status (once). Connection lock held. */
static void complete(call *k, int status, const char *message) {
  pthread_mutex_lock(&k->mu);
  if (!k->done) {
    k->status = status;
    if (message && !k->message) k->message = strdup(message);
    if (status != RPCNET_OK) {
      free(k->resp);
      k->resp = NULL;
    }
    k->done = 1;
    pthread_cond_signal(&k->cv);
  }
  pthread_mutex_unlock(&k->mu);
}

static int status_for_reset(uint64_t code, const char **why) {
  switch (code) {
    case RPCI_H_REFUSED: *why = "server refused the call (shutting down)"; return RPCNET_UNAVAILABLE;
    case RPCI_H_CANCELLED: *why = "server cancelled the call"; return RPCNET_CANCELLED;
    case RPCI_H_LIMIT_EXCEEDED: *why = "server: a size limit was exceeded"; return RPCNET_RESOURCE_EXHAUSTED;
    case RPCI_H_PROTOCOL_ERROR: *why = "server: protocol error"; return RPCNET_INTERNAL;
    case RPCI_H_INTERNAL_ERROR: *why = "server: internal error"; return RPCNET_INTERNAL;
    default: *why = "stream reset by server"; return RPCNET_UNKNOWN;
  }
}

/* ---- transport events (connection lock held) ------------------------------ */

static void bad_response(call *k, int werr) {
  char msg[RPCI_ERRMSG_MAX];
  snprintf(msg, sizeof msg, "response rejected: %s", rpci_frame_reader_error(k->reader));
  rpci_stream_reset(&k->st, rpci_wire_err_app_code(werr));
  complete(k, werr == RPCI_WIRE_TOO_LARGE ? RPCNET_RESOURCE_EXHAUSTED : RPCNET_INTERNAL, msg);
}

static void on_stream_data(rpci_stream *s, const uint8_t *data, size_t len, int fin) {
  call *k = (call *)s;
  rpci_stream_consume(s, len);
  if (k->done) return;
  while (len > 0) {
    rpci_frame f;
    memset(&f, 0, sizeof f);
    size_t used = 0;
    int err = rpci_frame_reader_feed(k->reader, data, len, &used, &f);
    if (err != RPCI_WIRE_OK) {
      rpci_frame_clear(&f);
      bad_response(k, err);
      return;
    }
    data += used;
    len -= used;
    if (f.type == RPCI_FRAME_MESSAGE && ++k->nmsg == 1) {
      k->resp = f.data;
      k->resp_len = f.len;
      f.data = NULL;
    } else if (f.type == RPCI_FRAME_STATUS) {
      int st = f.status;
      if (st == RPCNET_OK && k->nmsg != 1) {
        rpci_frame_clear(&f);
        complete(k, RPCNET_INTERNAL, "unary response did not carry exactly one message");
        return;
      }
      complete(k, st < 0 || st > 16 ? RPCNET_UNKNOWN : st, f.message);
    }
    rpci_frame_clear(&f);
    if (used == 0) break;
  }
  if (fin && !k->done) {
    int err = rpci_frame_reader_finish(k->reader);
    if (err != RPCI_WIRE_OK) bad_response(k, err);
  }
}

static void on_stream_reset(rpci_stream *s, uint64_t app_error) {
  call *k = (call *)s;
  const char *why;
  int st = status_for_reset(app_error, &why);
  complete(k, st, why);
}

static void on_stream_close(rpci_stream *s, uint64_t app_error) {
  call *k = (call *)s;
  if (!k->done) {
    if (app_error == RPCI_CONN_LOST) {
      rpcnet_client *c = k->cli;
      char msg[RPCI_ERRMSG_MAX + 32];
      snprintf(msg, sizeof msg, "connection lost: %s", rpci_qconn_error(s->qc));
      complete(k, c->closing ? RPCNET_CANCELLED : RPCNET_UNAVAILABLE,
               c->closing ? "client closed" : msg);
    } else {
      const char *why;
      int st = status_for_reset(app_error, &why);
      complete(k, app_error == 0 ? RPCNET_INTERNAL : st,
               app_error == 0 ? "stream ended without a status" : why);
    }
  }
  call_unref(k); /* the transport's reference */
}

static void on_established(rpci_qconn *qc, void *user) {
  rpcnet_client *c = user;
  pthread_mutex_lock(&c->mu);
  if (c->qc == qc) {
    c->established = 1;
    c->backoff_ms = 0;
    pthread_cond_broadcast(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
}

static void on_closed(rpci_qconn *qc, void *user) {
  rpcnet_client *c = user;
  pthread_mutex_lock(&c->mu);
  if (c->qc == qc) {
    snprintf(c->conn_err, sizeof c->conn_err, "%s", rpci_qconn_error(qc));
    c->qc = NULL;
    c->established = 0;
    rpci_qconn_unref(qc); /* the teardown holds its own reference */
    pthread_cond_broadcast(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
}

static const rpci_qconn_events client_events = {
    .stream_data = on_stream_data,
    .stream_reset = on_stream_reset,
    .stream_close = on_stream_close,
    .established = on_established,
    .closed = on_closed,
};

/* ---- connecting ------------------------------------------------------------ */

/* Returns the established connection with a reference, connecting when
 * needed (at most until deadline_ms). On failure returns NULL with
 * rpci_set_error and *status set. */
static rpci_qconn *get_conn(rpcnet_client *c, int64_t deadline_ms, int *status) {
  pthread_mutex_lock(&c->mu);
  for (;;) {
    if (c->closing) {
      pthread_mutex_unlock(&c->mu);
      rpci_set_error("client is closed");
      *status = RPCNET_CANCELLED;
      return NULL;
    }
    if (c->qc && c->established) {
      rpci_qconn *qc = c->qc;
      rpci_qconn_ref(qc);
      pthread_mutex_unlock(&c->mu);
      return qc;
    }
    if (!c->connecting) break;
    struct timespec ts;
    rpci_ms_to_timespec(&ts, deadline_ms);
    if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) {
      pthread_mutex_unlock(&c->mu);
      rpci_set_error("deadline exceeded while connecting to %s", c->addr_str);
      *status = RPCNET_DEADLINE_EXCEEDED;
      return NULL;
    }
  }
  int64_t now = rpci_mono_ms();
  if (now < c->next_attempt_ms) {
    rpci_set_error("not connected to %s (retrying in %lld ms): %s", c->addr_str,
                   (long long)(c->next_attempt_ms - now), c->conn_err);
    pthread_mutex_unlock(&c->mu);
    *status = RPCNET_UNAVAILABLE;
    return NULL;
  }
  c->connecting = 1;
  pthread_mutex_unlock(&c->mu);

  rpci_qconn_params p = {
      .max_concurrent_streams = c->opts.max_concurrent_streams,
      .idle_timeout_ms = c->opts.idle_timeout_ms,
      .keep_alive_ms = c->opts.keep_alive_ms < 0 ? 10000 : c->opts.keep_alive_ms,
      .handshake_timeout_ms = c->opts.handshake_timeout_ms,
  };
  pthread_mutex_lock(&c->mu);
  c->established = 0;
  pthread_mutex_unlock(&c->mu);
  rpci_qconn *qc = rpci_qconn_connect(c->loop, (struct sockaddr *)&c->addr, c->addrlen, c->tls,
                                      c->server_name, &p, &client_events, c);
  if (qc) {
    /* Events only count once c->qc names qc; the state read after that
     * covers any that fired before. */
    pthread_mutex_lock(&c->mu);
    c->qc = qc; /* the client's reference */
    c->conn_err[0] = 0;
    pthread_mutex_unlock(&c->mu);
    rpci_qconn_lock(qc);
    rpci_qconn_state st = rpci_qconn_state_get(qc);
    rpci_qconn_unlock(qc);
    pthread_mutex_lock(&c->mu);
    if (st == RPCI_QC_ESTABLISHED && c->qc == qc) c->established = 1;
    if (st == RPCI_QC_CLOSED && c->qc == qc) { /* failed before we looked */
      snprintf(c->conn_err, sizeof c->conn_err, "%s", rpci_qconn_error(qc));
      c->qc = NULL;
      rpci_qconn_unref(qc);
      qc = NULL;
    }
    /* ngtcp2 enforces the handshake timeout; this wait only needs a bound. */
    int64_t limit = rpci_mono_ms() + c->opts.handshake_timeout_ms + 1000;
    struct timespec ts;
    rpci_ms_to_timespec(&ts, limit);
    while (qc && c->qc == qc && !c->established && !c->closing)
      if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) break;
  } else {
    pthread_mutex_lock(&c->mu);
    snprintf(c->conn_err, sizeof c->conn_err, "%s", rpci_get_error());
  }
  int ok = qc && c->qc == qc && c->established;
  if (!qc && !c->conn_err[0]) snprintf(c->conn_err, sizeof c->conn_err, "connection failed");
  rpci_qconn *stale = NULL;
  if (!ok && qc && c->qc == qc) { /* timed out without ngtcp2 noticing */
    stale = qc;
    snprintf(c->conn_err, sizeof c->conn_err, "QUIC handshake timed out");
  }
  if (ok) {
    rpci_qconn_ref(qc);
    c->backoff_ms = 0;
    c->next_attempt_ms = 0;
  } else {
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
    c->next_attempt_ms = rpci_mono_ms() + c->backoff_ms;
    rpci_set_error("cannot connect to %s: %s", c->addr_str, c->conn_err);
  }
  c->connecting = 0;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if (stale) rpci_qconn_close(stale, RPCI_H_NO_ERROR, "handshake timed out");
  if (!ok) *status = RPCNET_UNAVAILABLE;
  return ok ? qc : NULL;
}

/* ---- public API -------------------------------------------------------------- */

rpcnet_client *rpcnet_client_connect(const rpcnet_config *cfg, const char *addr) {
  rpci_clear_error();
  if (!addr) {
    rpci_set_error("rpcnet_client_connect: NULL address");
    return NULL;
  }
  rpcnet_client *c = calloc(1, sizeof *c);
  if (!c) {
    rpci_set_error("out of memory");
    return NULL;
  }
  if (rpci_options_snapshot(&c->opts, cfg) != 0) {
    free(c);
    return NULL;
  }
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->mu, NULL);
  rpci_cond_init(&c->cv);
  rpci_wire_limits_default(&c->limits);
  c->limits.max_message_size = c->opts.max_message_size;
  snprintf(c->addr_str, sizeof c->addr_str, "%s", addr);
  char host[256];
  if (rpci_parse_addr(addr, 0, &c->addr, &c->addrlen, host, sizeof host) != 0) goto fail;
  snprintf(c->server_name, sizeof c->server_name, "%s",
           c->opts.server_name ? c->opts.server_name : host);
  c->tls = rpci_tls_ctx_new(0, &c->opts);
  if (!c->tls) goto fail;
  c->loop = rpci_loop_pick(c->opts.io_threads);
  if (!c->loop) goto fail;
  int status;
  rpci_qconn *qc = get_conn(c, rpci_mono_ms() + c->opts.handshake_timeout_ms + 1000, &status);
  if (!qc) goto fail;
  rpci_qconn_unref(qc);
  return c;
fail:;
  char why[RPCI_ERRMSG_MAX];
  snprintf(why, sizeof why, "%s", rpci_get_error());
  cli_unref(c);
  rpci_set_error("%s", why);
  return NULL;
}

static int start_call(rpcnet_client *c, call *k, const char *method, const void *req,
                      size_t req_len, int64_t timeout_ms, int64_t deadline_ms) {
  int status;
  rpci_qconn *qc = get_conn(c, deadline_ms, &status);
  if (!qc) return status;
  rpci_buf hdr = RPCI_BUF_INIT;
  if (rpci_frame_encode_header(&hdr, method, timeout_ms, NULL) != 0) {
    rpci_qconn_unref(qc);
    rpci_set_error("out of memory");
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  uint8_t head[9];
  struct iovec iov[3] = {{hdr.data, hdr.len},
                         {head, rpci_frame_message_head(head, req_len)},
                         {(void *)req, req_len}};
  rpci_qconn_lock(qc);
  int rc = RPCNET_OK;
  if (rpci_stream_open(qc, &k->st) != 0) {
    rpci_set_error("connection to %s lost: %s", c->addr_str, rpci_qconn_error(qc));
    rc = RPCNET_UNAVAILABLE;
  } else {
    atomic_fetch_add(&k->refs, 1); /* the transport's, until stream_close */
    if (rpci_stream_writev(&k->st, iov, req_len ? 3 : 2, 1) != 0) {
      rpci_stream_reset(&k->st, RPCI_H_CANCELLED);
      rpci_set_error("out of memory");
      rc = RPCNET_RESOURCE_EXHAUSTED;
    }
  }
  rpci_qconn_unlock(qc); /* writes the request's packets */
  rpci_buf_free(&hdr);
  /* The stream holds the connection from here; our reference can go. */
  if (rc == RPCNET_OK) rpci_qconn_ref(qc), k->st.qc = qc;
  rpci_qconn_unref(qc);
  return rc;
}

int rpcnet_client_call(rpcnet_client *c, const char *method, const void *req, size_t req_len,
                       void **resp, size_t *resp_len, int timeout_ms) {
  rpci_clear_error();
  if (resp) *resp = NULL;
  if (resp_len) *resp_len = 0;
  if (!c || !method || !*method || !resp || !resp_len || (!req && req_len)) {
    rpci_set_error("rpcnet_client_call: NULL or empty argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  if (!rpci_utf8_valid((const uint8_t *)method, strlen(method))) {
    rpci_set_error("method name is not valid UTF-8");
    return RPCNET_INVALID_ARGUMENT;
  }
  if (req_len > c->opts.max_message_size) {
    rpci_set_error("request of %zu bytes exceeds max_message_size %llu", req_len,
                   (unsigned long long)c->opts.max_message_size);
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  int64_t timeout = timeout_ms > 0 ? timeout_ms : c->opts.default_timeout_ms;
  int64_t deadline = rpci_mono_ms() + timeout;
  call *k = calloc(1, sizeof *k);
  if (k) k->reader = rpci_frame_reader_new(RPCI_DIR_RESPONSE, &c->limits);
  if (!k || !k->reader) {
    if (k) free(k);
    rpci_set_error("out of memory");
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  rpci_stream_init(&k->st);
  atomic_init(&k->refs, 1);
  pthread_mutex_init(&k->mu, NULL);
  rpci_cond_init(&k->cv);
  k->cli = c;
  cli_ref(c);
  int rc = start_call(c, k, method, req, req_len, timeout, deadline);
  rpci_qconn *qc = k->st.qc; /* referenced when started */
  if (rc == RPCNET_OK) {
    struct timespec ts;
    rpci_ms_to_timespec(&ts, deadline);
    pthread_mutex_lock(&k->mu);
    while (!k->done)
      if (pthread_cond_timedwait(&k->cv, &k->mu, &ts) == ETIMEDOUT) break;
    int done = k->done;
    pthread_mutex_unlock(&k->mu);
    if (!done) {
      rpci_qconn_lock(qc);
      char msg[128];
      snprintf(msg, sizeof msg, "deadline of %lld ms exceeded", (long long)timeout);
      complete(k, RPCNET_DEADLINE_EXCEEDED, msg);
      rpci_stream_reset(&k->st, RPCI_H_CANCELLED);
      rpci_qconn_unlock(qc);
    }
    rc = k->status;
    if (rc == RPCNET_OK) {
      *resp = k->resp ? k->resp : malloc(1);
      *resp_len = k->resp_len;
      k->resp = NULL;
      if (!*resp) rc = RPCNET_RESOURCE_EXHAUSTED;
    } else {
      rpci_set_error("%s", k->message ? k->message : rpcnet_status_name(rc));
    }
  }
  if (qc) rpci_qconn_unref(qc);
  call_unref(k);
  cli_unref(c);
  return rc;
}

void rpcnet_client_close(rpcnet_client *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->closing = 1;
  rpci_qconn *qc = c->qc;
  if (qc) rpci_qconn_ref(qc);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if (qc) {
    rpci_qconn_close(qc, RPCI_H_NO_ERROR, "client closed");
    rpci_qconn_unref(qc);
  }
  cli_unref(c);
}

/*
 * The client: one QUIC connection shared by every calling thread,
 * reconnection with backoff, and calls (unary and streaming) as handles.
 *
 * Design notes
 * - One object, struct rpcnet_call, serves unary and streaming calls:
 *   rpcnet_client_call is start + (header, message, FIN in one write) +
 *   wait + take the one message.
 * - Hand-offs per unary call: one. The calling thread encodes the request,
 *   opens the stream and writes the packets itself under the connection's
 *   lock; the loop thread reads the answer and wakes the caller.
 * - A call's stream state and inbox are guarded by its connection's lock;
 *   its final status (done, status, message, trailers) and k->qc are
 *   written under both the connection lock (when there is a connection)
 *   and k->ev.mu, and read under either. Changes are announced with
 *   rpci_event_notify (generation + readiness fd), see rpc/event.h.
 * - A call is refcounted: the owner's handle, the transport (until
 *   stream_close) and its deadline timer (until it fires or is stopped).
 *   The deadline fires on the loop thread even when nobody waits, so an
 *   event-loop user polling rpcnet_call_fd sees DEADLINE_EXCEEDED on time.
 * - Lock order: connection lock, then cli->mu, then call->ev.mu. The
 *   caller never holds cli->mu while taking a connection lock.
 * - The client object is refcounted too (application + each call) so
 *   rpcnet_client_close may run while other threads are still in calls.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log.h"
#include "rpc/event.h"
#include "rpc/msgq.h"
#include "rpc/options.h"
#include "rpc/util.h"
#include "rpcnet/rpcnet.h"
#include "transport/qconn.h"
#include "transport/udp.h"
#include "wire/frame.h"
#include "wire/utf8.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

struct rpcnet_call {
  rpci_stream st; /* first: the transport's view */
  atomic_int refs;
  rpcnet_client *cli;
  rpci_qconn *qc; /* set once the stream is opened (a reference) */
  rpci_frame_reader *reader;
  char *method;
  int64_t timeout_ms, deadline_ms;
  int unary; /* rpcnet_client_call: exactly one message expected */
  /* before the header is sent: owner thread only */
  rpci_md md;
  int header_sent;
  /* under the connection lock */
  int send_closed;
  rpci_msgq inbox;
  int nmsg;
  /* final status: connection lock (if any) and ev.mu */
  rpci_msg *unary_resp; /* unary: the answer, moved out of the inbox */
  int done;
  int status;
  char *message;
  rpci_md trailers;
  rpci_event ev;
  rpci_timer timer;
};

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
static void on_deadline_now(struct rpcnet_call *k);
static void backoff_locked(rpcnet_client *c);

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

static void call_ref(rpcnet_call *k) { atomic_fetch_add(&k->refs, 1); }

static void call_unref(rpcnet_call *k) {
  if (atomic_fetch_sub(&k->refs, 1) != 1) return;
  rpci_frame_reader_free(k->reader);
  rpci_msgq_clear(&k->inbox);
  if (k->unary_resp) {
    free(k->unary_resp->data);
    free(k->unary_resp);
  }
  rpci_md_free(&k->md);
  rpci_md_free(&k->trailers);
  free(k->method);
  free(k->message);
  rpci_event_destroy(&k->ev);
  if (k->qc) rpci_qconn_unref(k->qc);
  cli_unref(k->cli);
  free(k);
}

/* Whether recv / send would not block. Connection lock (if any) held. */
static int readable(const rpcnet_call *k) { return k->inbox.head || k->done; }
static int writable(const rpcnet_call *k) {
  return k->done || k->send_closed || !k->header_sent ||
         rpci_stream_unacked(&k->st) < RPCI_SEND_BUFFER;
}
static void call_notify(rpcnet_call *k) { rpci_event_notify(&k->ev, readable(k), writable(k)); }

/* Ends the call with status (once). Connection lock held when k->qc. */
static void complete(rpcnet_call *k, int status, const char *message, rpci_md *trailers) {
  pthread_mutex_lock(&k->ev.mu);
  int first = !k->done;
  if (first) {
    /* A unary caller takes its answer under ev.mu alone, so waking it does
     * not send it straight into the connection lock we still hold. */
    if (k->unary && status == RPCNET_OK) k->unary_resp = rpci_msgq_pop(&k->inbox, &k->st);
    k->done = 1;
    k->status = status;
    k->message = strdup(message ? message : "");
    if (trailers) {
      k->trailers = *trailers;
      memset(trailers, 0, sizeof *trailers);
    }
  }
  pthread_mutex_unlock(&k->ev.mu);
  if (first) rpci_event_notify(&k->ev, 1, 1);
}

static int is_done(rpcnet_call *k, int *status) {
  pthread_mutex_lock(&k->ev.mu);
  int d = k->done;
  if (d && status) *status = k->status;
  pthread_mutex_unlock(&k->ev.mu);
  return d;
}

static int status_for_reset(uint64_t code, const char **why) {
  switch (code) {
    case RPCI_H_REFUSED:
      *why = "server refused the call (shutting down)";
      return RPCNET_UNAVAILABLE;
    case RPCI_H_CANCELLED:
      *why = "server cancelled the call";
      return RPCNET_CANCELLED;
    case RPCI_H_LIMIT_EXCEEDED:
      *why = "server: a size limit was exceeded";
      return RPCNET_RESOURCE_EXHAUSTED;
    case RPCI_H_PROTOCOL_ERROR:
      *why = "server: protocol error";
      return RPCNET_INTERNAL;
    case RPCI_H_INTERNAL_ERROR:
      *why = "server: internal error";
      return RPCNET_INTERNAL;
    default:
      *why = "stream reset by server";
      return RPCNET_UNKNOWN;
  }
}

/* ---- transport events (connection lock held) ------------------------------ */

static void bad_response(rpcnet_call *k, int werr) {
  char msg[RPCI_ERRMSG_MAX];
  snprintf(msg, sizeof msg, "response rejected: %s", rpci_frame_reader_error(k->reader));
  rpci_stream_reset(&k->st, rpci_wire_err_app_code(werr));
  complete(k, werr == RPCI_WIRE_TOO_LARGE ? RPCNET_RESOURCE_EXHAUSTED : RPCNET_INTERNAL, msg, NULL);
}

static void on_stream_data(rpci_stream *s, const uint8_t *data, size_t len, int fin) {
  rpcnet_call *k = (rpcnet_call *)s;
  rpci_msgq_credit(&k->inbox, s, len);
  if (k->done) return;
  int pushed = 0;
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
    if (f.type == RPCI_FRAME_MESSAGE) {
      k->nmsg++;
      if (k->unary && k->nmsg > 1) {
        rpci_frame_clear(&f);
        rpci_stream_reset(&k->st, RPCI_H_PROTOCOL_ERROR);
        complete(k, RPCNET_INTERNAL, "unary response carried more than one message", NULL);
        return;
      }
      if (rpci_msgq_push(&k->inbox, f.data, f.len) != 0) {
        f.data = NULL;
        rpci_stream_reset(&k->st, RPCI_H_INTERNAL_ERROR);
        complete(k, RPCNET_RESOURCE_EXHAUSTED, "out of memory", NULL);
        return;
      }
      f.data = NULL;
      pushed = 1;
    } else if (f.type == RPCI_FRAME_STATUS) {
      int st = f.status < 0 || f.status > 16 ? RPCNET_UNKNOWN : f.status;
      if (st == RPCNET_OK && k->unary && k->nmsg != 1)
        complete(k, RPCNET_INTERNAL, "unary response did not carry exactly one message", NULL);
      else
        complete(k, st, f.message, &f.trailers);
      rpci_frame_clear(&f);
      return;
    }
    rpci_frame_clear(&f);
    if (used == 0) break;
  }
  if (fin && !k->done) {
    int err = rpci_frame_reader_finish(k->reader);
    if (err != RPCI_WIRE_OK) {
      bad_response(k, err);
      return;
    }
  }
  if (pushed) call_notify(k);
}

static void on_stream_reset(rpci_stream *s, uint64_t app_error) {
  rpcnet_call *k = (rpcnet_call *)s;
  const char *why;
  int st = status_for_reset(app_error, &why);
  /* The server cancels at the deadline it was sent, which is never earlier
   * than ours: its reset can beat our own timer by a hair. */
  if (st == RPCNET_CANCELLED && rpci_mono_ms() + 2 >= k->deadline_ms) {
    st = RPCNET_DEADLINE_EXCEEDED;
    why = "deadline exceeded (the server cancelled the call at the deadline)";
  }
  complete(k, st, why, NULL);
}

static void on_stream_close(rpci_stream *s, uint64_t app_error) {
  rpcnet_call *k = (rpcnet_call *)s;
  if (!k->done) {
    if (app_error == RPCI_CONN_LOST) {
      rpcnet_client *c = k->cli;
      char msg[RPCI_ERRMSG_MAX + 32];
      snprintf(msg, sizeof msg, "connection lost: %s", rpci_qconn_error(s->qc));
      complete(k, c->closing ? RPCNET_CANCELLED : RPCNET_UNAVAILABLE,
               c->closing ? "client closed" : msg, NULL);
    } else {
      const char *why;
      int st = status_for_reset(app_error, &why);
      complete(k, app_error == 0 ? RPCNET_INTERNAL : st,
               app_error == 0 ? "stream ended without a status" : why, NULL);
    }
  }
  call_unref(k); /* the transport's reference */
}

static void on_stream_acked(rpci_stream *s) { call_notify((rpcnet_call *)s); }

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
    if (!c->established) backoff_locked(c);
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
    .stream_acked = on_stream_acked,
    .established = on_established,
    .closed = on_closed,
};

/* ---- connecting ------------------------------------------------------------ */

/* A connection attempt failed: back off before the next. cli->mu held. */
static void backoff_locked(rpcnet_client *c) {
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
  c->next_attempt_ms = rpci_mono_ms() + c->backoff_ms;
}

/* Returns the established connection with a reference, starting a
 * handshake when there is none and waiting for one under way, never past
 * deadline_ms. On failure returns NULL with rpci_set_error and *status:
 * DEADLINE_EXCEEDED, UNAVAILABLE (failed, or backing off) or CANCELLED. */
static rpci_qconn *get_conn(rpcnet_client *c, int64_t deadline_ms, int *status) {
  struct timespec dl;
  rpci_ms_to_timespec(&dl, deadline_ms);
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
    if (c->qc || c->connecting) { /* a handshake is under way: wait for it */
      if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) {
        pthread_mutex_unlock(&c->mu);
        rpci_set_error("deadline exceeded while connecting to %s", c->addr_str);
        *status = RPCNET_DEADLINE_EXCEEDED;
        return NULL;
      }
      continue;
    }
    int64_t now = rpci_mono_ms();
    if (now < c->next_attempt_ms) {
      rpci_set_error("cannot connect to %s: %s (next attempt in %lld ms)", c->addr_str, c->conn_err,
                     (long long)(c->next_attempt_ms - now));
      pthread_mutex_unlock(&c->mu);
      *status = RPCNET_UNAVAILABLE;
      return NULL;
    }
    /* Start a handshake; events (on_established, on_closed) finish it,
     * and this loop waits for them like any other caller. */
    c->connecting = 1;
    pthread_mutex_unlock(&c->mu);
    rpci_qconn_params p = {
        .max_concurrent_streams = c->opts.max_concurrent_streams,
        .idle_timeout_ms = c->opts.idle_timeout_ms,
        .keep_alive_ms = c->opts.keep_alive_ms < 0 ? 10000 : c->opts.keep_alive_ms,
        .handshake_timeout_ms = c->opts.handshake_timeout_ms,
    };
    rpci_qconn *qc = rpci_qconn_connect(c->loop, (struct sockaddr *)&c->addr, c->addrlen, c->tls,
                                        c->server_name, &p, &client_events, c);
    pthread_mutex_lock(&c->mu);
    c->connecting = 0;
    if (!qc) {
      snprintf(c->conn_err, sizeof c->conn_err, "%s", rpci_get_error());
      backoff_locked(c);
      pthread_cond_broadcast(&c->cv);
      continue;
    }
    c->qc = qc; /* the client's reference */
    c->established = 0;
    c->conn_err[0] = 0;
    pthread_mutex_unlock(&c->mu);
    /* Events only count once c->qc names qc; the state read after that
     * covers any that fired before. */
    rpci_qconn_lock(qc);
    rpci_qconn_state st = rpci_qconn_state_get(qc);
    rpci_qconn_unlock(qc);
    pthread_mutex_lock(&c->mu);
    if (c->qc == qc && st == RPCI_QC_ESTABLISHED) {
      c->established = 1;
      c->backoff_ms = 0;
    } else if (c->qc == qc && st == RPCI_QC_CLOSED) { /* failed before we looked */
      snprintf(c->conn_err, sizeof c->conn_err, "%s", rpci_qconn_error(qc));
      c->qc = NULL;
      rpci_qconn_unref(qc);
      backoff_locked(c);
    }
    pthread_cond_broadcast(&c->cv);
  }
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
  rpcnet_client_close(c); /* also ends a handshake still under way */
  rpci_set_error("%s", why);
  return NULL;
}

/* ---- calls ------------------------------------------------------------------ */

/* The deadline passed (loop thread, no locks held). */
static void on_deadline(rpci_timer *t) {
  rpcnet_call *k = (rpcnet_call *)((char *)t - offsetof(rpcnet_call, timer));
  pthread_mutex_lock(&k->ev.mu);
  rpci_qconn *qc = k->qc;
  if (qc) rpci_qconn_ref(qc);
  pthread_mutex_unlock(&k->ev.mu);
  char msg[96];
  snprintf(msg, sizeof msg, "deadline of %lld ms exceeded", (long long)k->timeout_ms);
  if (qc) {
    rpci_qconn_lock(qc);
    if (!k->done) {
      complete(k, RPCNET_DEADLINE_EXCEEDED, msg, NULL);
      rpci_stream_reset(&k->st, RPCI_H_CANCELLED);
    }
    rpci_qconn_unlock(qc);
    rpci_qconn_unref(qc);
  } else {
    complete(k, RPCNET_DEADLINE_EXCEEDED, msg, NULL);
  }
  call_unref(k); /* the timer's reference */
}

static rpcnet_call *call_new(rpcnet_client *c, const char *method, int timeout_ms) {
  rpci_clear_error();
  if (!c || !method || !*method) {
    rpci_set_error("rpcnet_client_start: NULL client or empty method");
    return NULL;
  }
  if (!rpci_utf8_valid((const uint8_t *)method, strlen(method))) {
    rpci_set_error("method name is not valid UTF-8");
    return NULL;
  }
  rpcnet_call *k = calloc(1, sizeof *k);
  if (!k) {
    rpci_set_error("out of memory");
    return NULL;
  }
  k->reader = rpci_frame_reader_new(RPCI_DIR_RESPONSE, &c->limits);
  k->method = strdup(method);
  if (!k->reader || !k->method) {
    rpci_frame_reader_free(k->reader);
    free(k->method);
    free(k);
    rpci_set_error("out of memory");
    return NULL;
  }
  rpci_stream_init(&k->st);
  atomic_init(&k->refs, 1);
  rpci_event_init(&k->ev);
  k->cli = c;
  cli_ref(c);
  k->timeout_ms = timeout_ms > 0 ? timeout_ms : c->opts.default_timeout_ms;
  k->deadline_ms = rpci_mono_ms() + k->timeout_ms;
  call_ref(k); /* the timer's */
  rpci_timer_start(c->loop, &k->timer, k->deadline_ms, on_deadline);
  return k;
}

/* Opens the stream and writes the header, plus optionally one message and
 * FIN, in one chunk. On failure the call completes with the reason.
 * Returns RPCNET_OK or the call's final status. Owner thread. */
static int open_call(rpcnet_call *k, const void *msg, size_t len, int with_msg, int fin) {
  int st;
  if (is_done(k, &st)) return st == RPCNET_OK ? RPCNET_FAILED_PRECONDITION : st;
  rpci_qconn *qc = get_conn(k->cli, k->deadline_ms, &st);
  if (!qc) {
    complete(k, st, rpci_get_error(), NULL);
    return st;
  }
  rpci_buf hdr = RPCI_BUF_INIT;
  int64_t left = k->deadline_ms - rpci_mono_ms();
  if (rpci_frame_encode_header(&hdr, k->method, left > 0 ? left : 1, &k->md) != 0) {
    rpci_qconn_unref(qc);
    complete(k, RPCNET_RESOURCE_EXHAUSTED, "out of memory", NULL);
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  uint8_t head[9];
  struct iovec iov[3] = {{hdr.data, hdr.len},
                         {head, with_msg ? rpci_frame_message_head(head, len) : 0},
                         {(void *)msg, with_msg ? len : 0}};
  rpci_qconn_lock(qc);
  pthread_mutex_lock(&k->ev.mu);
  k->qc = qc; /* our reference moves to the call */
  pthread_mutex_unlock(&k->ev.mu);
  int rc = RPCNET_OK;
  if (k->done) { /* cancelled or expired meanwhile */
    rc = k->status;
  } else if (rpci_stream_open(qc, &k->st) != 0) {
    char why[RPCI_ERRMSG_MAX + 64];
    snprintf(why, sizeof why, "connection to %s lost: %s", k->cli->addr_str, rpci_qconn_error(qc));
    complete(k, RPCNET_UNAVAILABLE, why, NULL);
    rc = RPCNET_UNAVAILABLE;
  } else {
    call_ref(k); /* the transport's, until stream_close */
    k->header_sent = 1;
    if (rpci_stream_writev(&k->st, iov, 3, fin) != 0) {
      rpci_stream_reset(&k->st, RPCI_H_CANCELLED);
      complete(k, RPCNET_RESOURCE_EXHAUSTED, "out of memory", NULL);
      rc = RPCNET_RESOURCE_EXHAUSTED;
    } else if (fin) {
      k->send_closed = 1;
    }
  }
  if (rc == RPCNET_OK) call_notify(k);
  rpci_qconn_unlock(qc); /* writes the packets */
  rpci_buf_free(&hdr);
  return rc;
}

/* After a failure, the status for the caller: the final one, or
 * FAILED_PRECONDITION when the call ended OK. */
static int ended_status(rpcnet_call *k) {
  int st = RPCNET_UNKNOWN;
  is_done(k, &st);
  if (st == RPCNET_OK) {
    rpci_set_error("the call has already ended");
    return RPCNET_FAILED_PRECONDITION;
  }
  pthread_mutex_lock(&k->ev.mu);
  rpci_set_error("%s", k->message ? k->message : rpcnet_status_name(st));
  pthread_mutex_unlock(&k->ev.mu);
  return st;
}

rpcnet_call *rpcnet_client_start(rpcnet_client *c, const char *method, int timeout_ms) {
  if (c && c->closing) {
    rpci_set_error("client is closed");
    return NULL;
  }
  return call_new(c, method, timeout_ms);
}

int rpcnet_call_set_metadata(rpcnet_call *k, const char *key, const void *value, size_t len) {
  rpci_clear_error();
  if (!k) return RPCNET_INVALID_ARGUMENT;
  if (k->header_sent) {
    rpci_set_error("metadata must be set before the first send");
    return RPCNET_FAILED_PRECONDITION;
  }
  rpci_wire_limits l;
  rpci_wire_limits_default(&l);
  return rpci_md_add_checked(&k->md, key, value, len, l.max_metadata_entries);
}

/* send, send_timeout and send_last: one message, and FIN with it when fin
 * (so a last message and the end of the client's side share a packet). */
static int send_message(rpcnet_call *k, const void *data, size_t len, int timeout_ms, int fin) {
  rpci_clear_error();
  if (!k) return RPCNET_INVALID_ARGUMENT;
  int bad = rpci_check_message("rpcnet_call_send", data, len, k->cli->opts.max_message_size);
  if (bad) return bad;
  if (!k->header_sent) {
    int rc = open_call(k, data ? data : "", len, 1, fin);
    return rc == RPCNET_OK ? RPCNET_OK : ended_status(k);
  }
  int64_t until = k->deadline_ms;
  if (timeout_ms >= 0 && rpci_mono_ms() + timeout_ms < until) until = rpci_mono_ms() + timeout_ms;
  for (;;) {
    uint64_t g = rpci_event_gen(&k->ev);
    rpci_qconn_lock(k->qc);
    if (k->done) {
      rpci_qconn_unlock(k->qc);
      return ended_status(k);
    }
    if (k->send_closed) {
      rpci_qconn_unlock(k->qc);
      rpci_set_error("send after close_send");
      return RPCNET_FAILED_PRECONDITION;
    }
    if (rpci_stream_unacked(&k->st) < RPCI_SEND_BUFFER) {
      uint8_t head[9];
      struct iovec iov[2] = {{head, rpci_frame_message_head(head, len)}, {(void *)data, len}};
      int nomem = rpci_stream_writev(&k->st, iov, 2, fin);
      if (!nomem && fin) k->send_closed = 1;
      call_notify(k); /* the send fd may drop */
      rpci_qconn_unlock(k->qc);
      if (nomem) {
        rpci_set_error("out of memory");
        return RPCNET_RESOURCE_EXHAUSTED;
      }
      return RPCNET_OK;
    }
    rpci_qconn_unlock(k->qc);
    if (timeout_ms == 0 || rpci_event_wait(&k->ev, g, until) != 0) {
      if (rpci_mono_ms() >= k->deadline_ms) continue; /* the timer ends the call */
      rpci_set_error("no room to send within %d ms", timeout_ms);
      return RPCNET_WOULD_BLOCK;
    }
  }
}

int rpcnet_call_send_timeout(rpcnet_call *k, const void *data, size_t len, int timeout_ms) {
  return send_message(k, data, len, timeout_ms, 0);
}

int rpcnet_call_send(rpcnet_call *k, const void *data, size_t len) {
  return send_message(k, data, len, -1, 0);
}

int rpcnet_call_send_last(rpcnet_call *k, const void *data, size_t len) {
  return send_message(k, data, len, -1, 1);
}

/* close_send after the call ended: its final status, OK included (a
 * server may finish a server-streaming call before the client closes its
 * side; closing then is harmless, not an error). */
static int close_ended(rpcnet_call *k) {
  int st = RPCNET_UNKNOWN;
  is_done(k, &st);
  return st == RPCNET_OK ? RPCNET_OK : ended_status(k);
}

int rpcnet_call_close_send(rpcnet_call *k) {
  rpci_clear_error();
  if (!k) return RPCNET_INVALID_ARGUMENT;
  if (!k->header_sent) return open_call(k, NULL, 0, 0, 1) == RPCNET_OK ? RPCNET_OK : close_ended(k);
  rpci_qconn_lock(k->qc);
  int done = k->done;
  if (!k->send_closed && !done) {
    k->send_closed = 1;
    rpci_stream_write(&k->st, NULL, 0, 1);
    call_notify(k);
  }
  rpci_qconn_unlock(k->qc);
  return done ? close_ended(k) : RPCNET_OK;
}

int rpcnet_call_recv(rpcnet_call *k, int timeout_ms, void **data, size_t *len) {
  rpci_clear_error();
  if (data) *data = NULL;
  if (len) *len = 0;
  if (!k || !data || !len) {
    rpci_set_error("rpcnet_call_recv: NULL argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  if (!k->header_sent) open_call(k, NULL, 0, 0, 0); /* the server must hear of us */
  int64_t until = k->deadline_ms;
  if (timeout_ms >= 0 && rpci_mono_ms() + timeout_ms < until) until = rpci_mono_ms() + timeout_ms;
  for (;;) {
    uint64_t g = rpci_event_gen(&k->ev);
    rpci_msg *m = NULL;
    int done;
    if (k->qc) {
      /* Pop and look at `done` in one critical section: the loop thread
       * queues the last message and completes the call in one, so
       * checking `done` after unlocking could skip that message. */
      rpci_qconn_lock(k->qc);
      m = rpci_msgq_pop(&k->inbox, &k->st);
      done = k->done;
      if (m) call_notify(k);
      rpci_qconn_unlock(k->qc);
    } else {
      done = is_done(k, NULL);
    }
    if (m) {
      *data = m->data ? m->data : malloc(1);
      *len = m->len;
      free(m);
      if (!*data) {
        rpci_set_error("out of memory");
        return RPCNET_RESOURCE_EXHAUSTED;
      }
      return RPCNET_OK;
    }
    if (done) return RPCNET_END_OF_STREAM;
    if (timeout_ms == 0 || rpci_event_wait(&k->ev, g, until) != 0) {
      if (rpci_mono_ms() >= k->deadline_ms) { /* do not depend on the timer's latency */
        on_deadline_now(k);
        continue;
      }
      rpci_set_error("no message within %d ms", timeout_ms);
      return RPCNET_WOULD_BLOCK;
    }
  }
}

int rpcnet_call_status(rpcnet_call *k, const char **message) {
  if (message) *message = "";
  if (!k) return RPCNET_INVALID_ARGUMENT;
  pthread_mutex_lock(&k->ev.mu);
  int done = k->done, st = k->status;
  if (done && message) *message = k->message ? k->message : "";
  pthread_mutex_unlock(&k->ev.mu);
  if (!done) {
    if (message) *message = "call in progress";
    return RPCNET_UNKNOWN;
  }
  return st;
}

const void *rpcnet_call_trailer(rpcnet_call *k, const char *key, size_t *len) {
  if (len) *len = 0;
  if (!k || !is_done(k, NULL)) return NULL;
  return rpci_md_lookup(&k->trailers, key, len);
}

int rpcnet_call_fd(rpcnet_call *k) { return k ? rpci_event_fd(&k->ev) : -1; }

int rpcnet_call_send_fd(rpcnet_call *k) { return k ? rpci_event_send_fd(&k->ev) : -1; }

size_t rpcnet_call_trailer_count(rpcnet_call *k) {
  return k && is_done(k, NULL) ? k->trailers.n : 0;
}

const char *rpcnet_call_trailer_at(rpcnet_call *k, size_t i, const void **value, size_t *len) {
  return rpci_md_at(k && is_done(k, NULL) ? &k->trailers : NULL, i, value, len);
}

/* Ends the call with status now (any thread). */
static void end_now(rpcnet_call *k, int status, const char *message) {
  pthread_mutex_lock(&k->ev.mu);
  rpci_qconn *qc = k->qc;
  if (qc) rpci_qconn_ref(qc);
  pthread_mutex_unlock(&k->ev.mu);
  if (qc) {
    rpci_qconn_lock(qc);
    if (!k->done) {
      complete(k, status, message, NULL);
      rpci_stream_reset(&k->st, RPCI_H_CANCELLED);
    }
    rpci_qconn_unlock(qc);
    rpci_qconn_unref(qc);
  } else {
    complete(k, status, message, NULL);
  }
}

static void on_deadline_now(rpcnet_call *k) {
  char msg[96];
  snprintf(msg, sizeof msg, "deadline of %lld ms exceeded", (long long)k->timeout_ms);
  end_now(k, RPCNET_DEADLINE_EXCEEDED, msg);
}

void rpcnet_call_cancel(rpcnet_call *k) {
  if (k) end_now(k, RPCNET_CANCELLED, "cancelled by the client");
}

void rpcnet_call_free(rpcnet_call *k) {
  if (!k) return;
  if (!is_done(k, NULL)) end_now(k, RPCNET_CANCELLED, "call freed");
  if (rpci_timer_stop(&k->timer)) call_unref(k); /* the timer's reference */
  call_unref(k);
}

int rpcnet_client_call(rpcnet_client *c, const char *method, const void *req, size_t req_len,
                       void **resp, size_t *resp_len, int timeout_ms) {
  rpci_clear_error();
  if (resp) *resp = NULL;
  if (resp_len) *resp_len = 0;
  if (!c || !method || !*method || !resp || !resp_len) {
    rpci_set_error("rpcnet_client_call: NULL or empty argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  int bad = rpci_check_message("rpcnet_client_call", req, req_len, c->opts.max_message_size);
  if (bad) return bad;
  if (c->closing) {
    rpci_set_error("client is closed");
    return RPCNET_CANCELLED;
  }
  if (!rpci_utf8_valid((const uint8_t *)method, strlen(method))) {
    rpci_set_error("method name is not valid UTF-8");
    return RPCNET_INVALID_ARGUMENT;
  }
  rpcnet_call *k = call_new(c, method, timeout_ms);
  if (!k) return RPCNET_RESOURCE_EXHAUSTED;
  k->unary = 1;
  int rc = open_call(k, req ? req : "", req_len, 1, 1);
  if (rc == RPCNET_OK) {
    for (;;) { /* wait for the final status */
      uint64_t g = rpci_event_gen(&k->ev);
      if (is_done(k, NULL)) break;
      if (rpci_event_wait(&k->ev, g, k->deadline_ms) != 0 && rpci_mono_ms() >= k->deadline_ms)
        on_deadline_now(k);
    }
    rc = rpcnet_call_status(k, NULL);
  }
  if (rc == RPCNET_OK) {
    pthread_mutex_lock(&k->ev.mu);
    rpci_msg *m = k->unary_resp;
    k->unary_resp = NULL;
    pthread_mutex_unlock(&k->ev.mu);
    if (m) {
      *resp = m->data ? m->data : malloc(1);
      *resp_len = m->len;
      free(m);
    }
    if (!*resp) {
      rpci_set_error("out of memory");
      rc = RPCNET_RESOURCE_EXHAUSTED;
    }
  } else {
    pthread_mutex_lock(&k->ev.mu);
    rpci_set_error("%s", k->message && *k->message ? k->message : rpcnet_status_name(rc));
    pthread_mutex_unlock(&k->ev.mu);
  }
  rpcnet_call_free(k);
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

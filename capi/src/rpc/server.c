/*
 * The server: method table, request dispatch (inline handlers and the pull
 * queue), answers, drain and shutdown.
 *
 * Design notes
 * - A request (struct rpcnet_request) is one call's server side. Its
 *   frames are decoded on the endpoint's loop thread under the
 *   connection's lock. Once the client's stream is complete the request is
 *   dispatched, outside every lock, from after_batch: inline handlers run
 *   right there (so an inline answer leaves in the same batch as the ACK,
 *   with no thread hand-off), pulled methods go to the pull queue.
 * - Lifetime: a request is refcounted: one reference for the transport
 *   (until stream_close), one for the application (from dispatch until the
 *   answer). Each live request also holds the server core and its
 *   connection, so answering after shutdown or free is safe and returns
 *   RPCNET_UNAVAILABLE.
 * - Lock order: connection lock, then srv->mu. srv->mu guards the method
 *   table, the pull queue, the ready list and the in-flight count.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "obs/log.h"
#include "rpc/event.h"
#include "rpc/msgq.h"
#include "rpc/options.h"
#include "rpc/util.h"
#include "rpcnet/rpcnet.h"
#include "transport/endpoint.h"
#include "transport/udp.h"
#include "wire/frame.h"

typedef struct method {
  struct method *next;
  char *name;
  rpcnet_handler_fn fn;
  void *user;
  int streaming; /* dispatched at the header, not at FIN */
} method;

enum req_state { RQ_RECEIVING, RQ_READY, RQ_DISPATCHED, RQ_ANSWERED, RQ_DEAD };

struct rpcnet_request {
  rpci_stream st; /* first: the transport's view */
  atomic_int refs;
  rpcnet_server *srv;
  rpci_qconn *qc;
  rpci_frame_reader *reader;
  /* under the connection lock */
  enum req_state state;
  int streaming;  /* the method was registered with handle_stream */
  int cancelled;  /* peer reset or stopped the stream, or deadline */
  int expired;    /* the deadline passed */
  int closed;     /* transport is done with the stream */
  int client_fin; /* the client finished sending */
  int nmsg;
  rpci_msgq inbox;  /* streaming: messages not yet taken */
  int unary_taken;  /* unary: rpcnet_request_recv gave the message */
  size_t conn_owed; /* connection credit held until dispatch (unary) */
  /* set once from the header, then read-only */
  char *method;
  int64_t timeout_ms;
  int64_t deadline_ms; /* monotonic; 0: none */
  rpci_md metadata;
  uint8_t *data; /* unary: the one message */
  size_t len;
  /* owner only */
  char *peer;
  rpci_md trailers;
  int counted; /* counted in srv->inflight */
  rpci_event ev;
  rpci_timer timer;
  struct rpcnet_request *next; /* ready list or pull queue */
};

struct rpcnet_server {
  atomic_int refs; /* the application's, plus one per live request */
  rpci_options opts;
  rpci_wire_limits limits;
  rpci_tls_ctx *tls;
  rpci_loop *loop;
  rpci_endpoint *ep;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* pull queue and drain */
  method *methods;
  rpcnet_request *ready_head, *ready_tail;
  rpcnet_request *pull_head, *pull_tail;
  int pull_fd;
  int pull_signalled;
  int draining, shut;
  int inflight;
};

static const rpci_qconn_events server_events;
static method *find_method_locked(rpcnet_server *srv, const char *name);
static void make_ready(rpcnet_request *r);

/* ---- server core lifetime ------------------------------------------------- */

static void srv_ref(rpcnet_server *srv) { atomic_fetch_add(&srv->refs, 1); }

static void srv_unref(rpcnet_server *srv) {
  if (atomic_fetch_sub(&srv->refs, 1) != 1) return;
  while (srv->methods) {
    method *m = srv->methods;
    srv->methods = m->next;
    free(m->name);
    free(m);
  }
  rpci_endpoint_free(srv->ep);
  rpci_tls_ctx_unref(srv->tls);
  rpci_options_free(&srv->opts);
  if (srv->pull_fd >= 0) close(srv->pull_fd);
  pthread_mutex_destroy(&srv->mu);
  pthread_cond_destroy(&srv->cv);
  free(srv);
}

/* ---- requests ------------------------------------------------------------- */

static void req_unref(rpcnet_request *r) {
  if (atomic_fetch_sub(&r->refs, 1) != 1) return;
  rpci_frame_reader_free(r->reader);
  rpci_msgq_clear(&r->inbox);
  rpci_md_free(&r->trailers);
  rpci_event_destroy(&r->ev);
  free(r->method);
  rpci_md_free(&r->metadata);
  free(r->data);
  free(r->peer);
  rpci_qconn_unref(r->qc);
  srv_unref(r->srv);
  free(r);
}

/* Leaves the in-flight count (once). srv->mu held. */
static void uncount_locked(rpcnet_request *r) {
  if (!r->counted) return;
  r->counted = 0;
  if (--r->srv->inflight == 0) pthread_cond_broadcast(&r->srv->cv);
}

static void uncount(rpcnet_request *r) {
  pthread_mutex_lock(&r->srv->mu);
  uncount_locked(r);
  pthread_mutex_unlock(&r->srv->mu);
}

/* Sends [message] + status + FIN. Connection lock held. Returns the
 * rpcnet status of the attempt. */
static int send_answer_locked(rpcnet_request *r, const void *data, size_t len, int with_msg,
                              int status, const char *message) {
  /* Most specific reason first: a client that gave up at its deadline
   * also reset the stream, which closes it. */
  if (r->expired || (r->deadline_ms && rpci_mono_ms() > r->deadline_ms)) {
    rpci_stream_reset(&r->st, RPCI_H_CANCELLED);
    rpci_set_error("the call's deadline passed before the answer");
    return RPCNET_DEADLINE_EXCEEDED;
  }
  if (r->cancelled) {
    rpci_set_error("the client cancelled the call");
    return RPCNET_CANCELLED;
  }
  if (r->closed || rpci_qconn_state_get(r->qc) == RPCI_QC_CLOSED) {
    rpci_set_error("the call's connection is gone");
    return RPCNET_UNAVAILABLE;
  }
  int rc = RPCNET_OK;
  if (with_msg && len > r->srv->opts.max_message_size) {
    rpci_set_error("reply of %zu bytes exceeds max_message_size %llu", len,
                   (unsigned long long)r->srv->opts.max_message_size);
    with_msg = 0;
    status = RPCNET_RESOURCE_EXHAUSTED;
    message = "server reply exceeds max_message_size";
    rc = RPCNET_RESOURCE_EXHAUSTED;
  }
  rpci_buf st = RPCI_BUF_INIT;
  uint8_t head[9];
  struct iovec iov[3];
  int n = 0;
  if (with_msg) {
    iov[n++] = (struct iovec){head, rpci_frame_message_head(head, len)};
    iov[n++] = (struct iovec){(void *)data, len};
  }
  if (rpci_frame_encode_status(&st, status, rpci_status_text(message), &r->trailers) != 0) {
    rpci_buf_free(&st);
    rpci_stream_reset(&r->st, RPCI_H_INTERNAL_ERROR);
    rpci_set_error("out of memory");
    return RPCNET_RESOURCE_EXHAUSTED;
  }
  iov[n++] = (struct iovec){st.data, st.len};
  if (rpci_stream_writev(&r->st, iov, n, 1) != 0) {
    rpci_stream_reset(&r->st, RPCI_H_INTERNAL_ERROR);
    rpci_set_error("out of memory");
    rc = RPCNET_RESOURCE_EXHAUSTED;
  }
  rpci_buf_free(&st);
  return rc;
}

/* Ends the request with an answer and drops the application's reference. */
static int answer(rpcnet_request *r, const void *data, size_t len, int with_msg, int status,
                  const char *message) {
  if (!r) {
    rpci_set_error("NULL request");
    return RPCNET_INVALID_ARGUMENT;
  }
  rpci_qconn_lock(r->qc);
  int rc;
  if (r->state != RQ_DISPATCHED) {
    rpci_set_error("request already answered");
    rc = RPCNET_FAILED_PRECONDITION;
    rpci_qconn_unlock(r->qc);
    return rc; /* not ours to release twice */
  }
  r->state = RQ_ANSWERED;
  rc = send_answer_locked(r, data, len, with_msg, status, message);
  rpci_qconn_unlock(r->qc);
  if (rpci_timer_stop(&r->timer)) req_unref(r); /* the timer's reference */
  uncount(r);
  req_unref(r);
  return rc;
}

/* Answers a request the application never saw (unimplemented, bad input).
 * Connection lock held; the request is in RQ_READY. */
static void answer_internal_locked(rpcnet_request *r, int status, const char *message) {
  r->state = RQ_ANSWERED;
  send_answer_locked(r, NULL, 0, 0, status, message);
}

/* ---- the transport's events (connection lock held) ------------------------- */

static void on_stream_open(rpci_qconn *qc, int64_t stream_id, void *user) {
  rpcnet_server *srv = user;
  pthread_mutex_lock(&srv->mu);
  int refuse = srv->draining || srv->shut;
  if (!refuse) srv->inflight++;
  pthread_mutex_unlock(&srv->mu);
  rpcnet_request *r = refuse ? NULL : calloc(1, sizeof *r);
  if (r) r->reader = rpci_frame_reader_new(RPCI_DIR_REQUEST, &srv->limits);
  if (!r || !r->reader) {
    if (r) {
      free(r);
      pthread_mutex_lock(&srv->mu);
      srv->inflight--;
      pthread_mutex_unlock(&srv->mu);
    }
    rpci_qconn_reset_id(qc, stream_id, refuse ? RPCI_H_REFUSED : RPCI_H_INTERNAL_ERROR);
    return;
  }
  rpci_stream_init(&r->st);
  atomic_init(&r->refs, 1); /* the transport's */
  r->counted = 1;
  r->srv = srv;
  srv_ref(srv);
  r->qc = qc;
  rpci_qconn_ref(qc);
  r->timeout_ms = -1;
  rpci_event_init(&r->ev);
  rpci_stream_attach(qc, &r->st, stream_id);
}

/* The request is complete: queue it for dispatch after the batch. */
static void make_ready(rpcnet_request *r) {
  rpcnet_server *srv = r->srv;
  r->state = RQ_READY;
  atomic_fetch_add(&r->refs, 1); /* the dispatcher's, becomes the app's */
  pthread_mutex_lock(&srv->mu);
  r->next = NULL;
  if (srv->ready_tail)
    srv->ready_tail->next = r;
  else
    srv->ready_head = r;
  srv->ready_tail = r;
  pthread_mutex_unlock(&srv->mu);
}

/* Returns the connection credit a unary request held while it was being
 * received. Connection lock held. */
static void release_conn_credit(rpcnet_request *r) {
  rpci_qconn_consume(r->qc, r->conn_owed);
  r->conn_owed = 0;
}

static void reject_input(rpcnet_request *r, int werr) {
  rpci_log(RPCI_LOG_INFO, "call from %s: bad input: %s", rpci_qconn_peer_addr(r->qc),
           rpci_frame_reader_error(r->reader));
  /* A request the application already holds stays its to finish: it sees
   * the call cancelled. One nobody holds yet just dies. */
  if (r->state == RQ_RECEIVING) r->state = RQ_DEAD;
  r->cancelled = 1;
  release_conn_credit(r);
  rpci_stream_reset(&r->st, rpci_wire_err_app_code(werr));
  rpci_event_notify(&r->ev, 1, 1);
}

static int request_ready(const rpcnet_request *r) {
  return r->inbox.head || r->client_fin || r->cancelled || r->closed;
}
static int request_writable(const rpcnet_request *r) {
  return r->state == RQ_ANSWERED || r->cancelled || r->closed ||
         rpci_stream_unacked(&r->st) < RPCI_SEND_BUFFER;
}
/* Announces a change (connection lock held, or the request ended). */
static void req_notify(rpcnet_request *r) {
  rpci_event_notify(&r->ev, request_ready(r), request_writable(r));
}

static void on_deadline(rpci_timer *t);

/* The header arrived: record it, arm the deadline, and dispatch streaming
 * methods now. */
static void on_header(rpcnet_request *r, rpci_frame *f) {
  rpcnet_server *srv = r->srv;
  r->method = f->method;
  f->method = NULL;
  r->timeout_ms = f->timeout_ms;
  r->metadata = f->metadata;
  memset(&f->metadata, 0, sizeof f->metadata);
  /* Clamp: a peer may send up to 2^64-1 ms; a year is "no deadline". */
  if (f->timeout_ms >= 0 && f->timeout_ms < 365LL * 24 * 3600 * 1000) {
    r->deadline_ms = rpci_mono_ms() + f->timeout_ms;
    atomic_fetch_add(&r->refs, 1); /* the timer's */
    rpci_timer_start(srv->loop, &r->timer, r->deadline_ms, on_deadline);
  }
  pthread_mutex_lock(&srv->mu);
  method *m = find_method_locked(srv, r->method);
  r->streaming = m && m->streaming;
  pthread_mutex_unlock(&srv->mu);
  /* Streaming methods start now; so does the UNIMPLEMENTED answer, which
   * must not wait for a client that waits for it. */
  if (r->streaming || !m) make_ready(r);
}

/* Flow-control credit for n bytes that arrived on r. Streaming calls use
 * the inbox's policy; a unary request returns its stream credit at once
 * (its size is bounded by max_message_size) but holds the connection's
 * until it is dispatched, so one connection can make the server buffer at
 * most its connection window (2 x max_message_size + 1 MiB) of requests
 * that no handler has seen yet. Discarded bytes give both back. */
static void credit(rpcnet_request *r, size_t n) {
  if (r->state == RQ_DEAD || r->state == RQ_ANSWERED) {
    rpci_stream_consume(&r->st, n);
    release_conn_credit(r);
  } else if (r->streaming) {
    rpci_msgq_credit(&r->inbox, &r->st, n);
    release_conn_credit(r);
  } else if (r->state == RQ_DISPATCHED) {
    rpci_stream_consume(&r->st, n);
  } else {
    rpci_stream_consume_stream(&r->st, n);
    r->conn_owed += n;
  }
}

static void feed(rpcnet_request *r, const uint8_t *data, size_t len, int fin);

static void on_stream_data(rpci_stream *s, const uint8_t *data, size_t len, int fin) {
  rpcnet_request *r = (rpcnet_request *)s;
  feed(r, data, len, fin);
  credit(r, len); /* after feed: the header decides unary or streaming */
}

static void feed(rpcnet_request *r, const uint8_t *data, size_t len, int fin) {
  if (r->state == RQ_DEAD || r->state == RQ_ANSWERED) return;
  int changed = 0;
  while (len > 0) {
    rpci_frame f;
    memset(&f, 0, sizeof f);
    size_t used = 0;
    int err = rpci_frame_reader_feed(r->reader, data, len, &used, &f);
    if (err != RPCI_WIRE_OK) {
      rpci_frame_clear(&f);
      reject_input(r, err);
      return;
    }
    data += used;
    len -= used;
    if (f.type == RPCI_FRAME_HEADER) {
      on_header(r, &f);
    } else if (f.type == RPCI_FRAME_MESSAGE) {
      ++r->nmsg;
      if (r->streaming) {
        if (rpci_msgq_push(&r->inbox, f.data, f.len) != 0) {
          f.data = NULL;
          reject_input(r, RPCI_WIRE_NOMEM);
          return;
        }
        changed = 1;
      } else if (r->nmsg == 1) {
        r->data = f.data;
        r->len = f.len;
      } else {
        free(f.data);
      }
      f.data = NULL;
    }
    rpci_frame_clear(&f);
    if (used == 0) break;
  }
  if (fin) {
    int err = rpci_frame_reader_finish(r->reader);
    if (err != RPCI_WIRE_OK) {
      reject_input(r, err);
      return;
    }
    r->client_fin = 1;
    changed = 1;
    if (!r->streaming && r->state == RQ_RECEIVING) make_ready(r);
  }
  if (changed) req_notify(r);
}

static void on_stream_reset(rpci_stream *s, uint64_t app_error) {
  rpcnet_request *r = (rpcnet_request *)s;
  r->cancelled = 1;
  release_conn_credit(r);
  if (r->state == RQ_RECEIVING) r->state = RQ_DEAD;
  rpci_event_notify(&r->ev, 1, 1);
}

static void on_stream_acked(rpci_stream *s) {
  rpcnet_request *r = (rpcnet_request *)s;
  req_notify(r);
}

static void on_stream_close(rpci_stream *s, uint64_t app_error) {
  rpcnet_request *r = (rpcnet_request *)s;
  r->closed = 1;
  release_conn_credit(r);
  /* A client that cancels after finishing its half can only send
   * STOP_SENDING, whose code shows up here. */
  if (app_error != RPCI_H_NO_ERROR && app_error != RPCI_CONN_LOST && r->state != RQ_ANSWERED)
    r->cancelled = 1;
  rpci_event_notify(&r->ev, 1, 1);
  if (r->state == RQ_RECEIVING || r->state == RQ_DEAD) {
    r->state = RQ_DEAD;
    if (rpci_timer_stop(&r->timer)) req_unref(r); /* the timer's; not the last */
    uncount(r);
  }
  req_unref(r); /* the transport's reference */
}

static method *find_method_locked(rpcnet_server *srv, const char *name) {
  for (method *m = srv->methods; m; m = m->next)
    if (!strcmp(m->name, name)) return m;
  return NULL;
}

static void pull_signal_locked(rpcnet_server *srv, int readable) {
  if (readable && !srv->pull_signalled) {
    uint64_t one = 1;
    if (write(srv->pull_fd, &one, sizeof one) == sizeof one) srv->pull_signalled = 1;
  } else if (!readable && srv->pull_signalled && !srv->shut) {
    uint64_t v;
    if (read(srv->pull_fd, &v, sizeof v) == sizeof v) srv->pull_signalled = 0;
  }
}

/* Ends a ready request the application never saw: answers it with status
 * (unless the call is already dead), unlocks the connection and drops the
 * dispatcher's reference. Connection lock held on entry. */
static void end_undispatched(rpcnet_request *r, int status, const char *message) {
  if (status != RPCNET_OK)
    answer_internal_locked(r, status, message);
  else
    r->state = RQ_DEAD;
  rpci_qconn_unlock(r->qc);
  if (rpci_timer_stop(&r->timer)) req_unref(r); /* the timer's; not the last */
  uncount(r);
  req_unref(r);
}

static void dispatch(rpcnet_request *r) {
  rpcnet_server *srv = r->srv;
  char msg[300];
  rpci_qconn_lock(r->qc);
  release_conn_credit(r); /* no longer waiting: its bytes are the handler's */
  if (r->state != RQ_READY || r->cancelled || r->closed) {
    end_undispatched(r, RPCNET_OK, NULL); /* nobody to answer */
    return;
  }
  pthread_mutex_lock(&srv->mu);
  method *m = find_method_locked(srv, r->method);
  if (m && !r->streaming && r->nmsg != 1) {
    pthread_mutex_unlock(&srv->mu);
    snprintf(msg, sizeof msg, "unary call carried %d messages, expected 1", r->nmsg);
    end_undispatched(r, RPCNET_INVALID_ARGUMENT, msg);
    return;
  }
  rpcnet_handler_fn fn = m ? m->fn : NULL;
  void *user = m ? m->user : NULL;
  if (m) r->state = RQ_DISPATCHED;
  if (m && !fn) {
    r->next = NULL;
    if (srv->pull_tail)
      srv->pull_tail->next = r;
    else
      srv->pull_head = r;
    srv->pull_tail = r;
    pull_signal_locked(srv, 1);
    pthread_cond_signal(&srv->cv);
  }
  pthread_mutex_unlock(&srv->mu);
  if (!m) {
    snprintf(msg, sizeof msg, "method '%.256s' is not implemented", r->method);
    end_undispatched(r, RPCNET_UNIMPLEMENTED, msg);
    return;
  }
  rpci_qconn_unlock(r->qc);
  if (fn) fn(r, user); /* owns r now */
}

static void on_after_batch(rpci_qconn *qc, void *user) {
  rpcnet_server *srv = user;
  for (;;) {
    pthread_mutex_lock(&srv->mu);
    rpcnet_request *r = srv->ready_head;
    if (r) {
      srv->ready_head = r->next;
      if (!srv->ready_head) srv->ready_tail = NULL;
    }
    pthread_mutex_unlock(&srv->mu);
    if (!r) return;
    dispatch(r);
  }
}

/* The call's deadline passed (loop thread, no locks held). */
static void on_deadline(rpci_timer *t) {
  rpcnet_request *r = (rpcnet_request *)((char *)t - offsetof(rpcnet_request, timer));
  rpci_qconn_lock(r->qc);
  if (r->state != RQ_ANSWERED && r->state != RQ_DEAD && !r->closed) {
    r->expired = 1;
    r->cancelled = 1;
    rpci_stream_reset(&r->st, RPCI_H_CANCELLED);
  }
  rpci_qconn_unlock(r->qc);
  rpci_event_notify(&r->ev, 1, 1);
  req_unref(r); /* the timer's reference */
}

static const rpci_qconn_events server_events = {
    .stream_open = on_stream_open,
    .stream_data = on_stream_data,
    .stream_reset = on_stream_reset,
    .stream_close = on_stream_close,
    .stream_acked = on_stream_acked,
    .after_batch = on_after_batch,
};

/* ---- public API ------------------------------------------------------------ */

rpcnet_server *rpcnet_server_new(const rpcnet_config *cfg) {
  rpci_clear_error();
  rpcnet_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    rpci_set_error("out of memory");
    return NULL;
  }
  if (rpci_options_snapshot(&srv->opts, cfg) != 0) {
    free(srv);
    return NULL;
  }
  atomic_init(&srv->refs, 1);
  pthread_mutex_init(&srv->mu, NULL);
  rpci_cond_init(&srv->cv);
  srv->pull_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  rpci_wire_limits_default(&srv->limits);
  srv->limits.max_message_size = srv->opts.max_message_size;
  srv->tls = rpci_tls_ctx_new(1, &srv->opts);
  srv->loop = srv->tls ? rpci_loop_pick(srv->opts.io_threads) : NULL;
  if (!srv->tls || !srv->loop || srv->pull_fd < 0) {
    char why[RPCI_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", rpci_get_error());
    srv_unref(srv);
    rpci_set_error("%s", why);
    return NULL;
  }
  return srv;
}

int rpcnet_server_listen(rpcnet_server *srv, const char *addr) {
  rpci_clear_error();
  if (!srv || !addr) {
    rpci_set_error("rpcnet_server_listen: NULL argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  if (srv->shut || srv->draining) {
    rpci_set_error("server is shut down");
    return RPCNET_FAILED_PRECONDITION;
  }
  if (srv->ep) {
    rpci_set_error("server is already listening");
    return RPCNET_INVALID_ARGUMENT;
  }
  struct sockaddr_storage ss;
  socklen_t len;
  if (rpci_parse_addr(addr, 1, &ss, &len, NULL, 0) != 0) return RPCNET_INVALID_ARGUMENT;
  rpci_qconn_params p = {
      .max_concurrent_streams = srv->opts.max_concurrent_streams,
      .idle_timeout_ms = srv->opts.idle_timeout_ms,
      .keep_alive_ms = srv->opts.keep_alive_ms < 0 ? 0 : srv->opts.keep_alive_ms,
      .handshake_timeout_ms = srv->opts.handshake_timeout_ms,
      .conn_window = 2 * srv->opts.max_message_size + (1u << 20),
  };
  srv->ep =
      rpci_endpoint_new(srv->loop, (struct sockaddr *)&ss, len, srv->tls, &p, &server_events, srv);
  return srv->ep ? RPCNET_OK : RPCNET_UNAVAILABLE;
}

int rpcnet_server_port(const rpcnet_server *srv) {
  return srv && srv->ep ? rpci_endpoint_port(srv->ep) : -1;
}

static int register_method(rpcnet_server *srv, const char *name, rpcnet_handler_fn fn, void *user,
                           int streaming) {
  rpci_clear_error();
  if (!srv || !name || !*name) {
    rpci_set_error("rpcnet_server_handle: NULL server or empty method name");
    return RPCNET_INVALID_ARGUMENT;
  }
  pthread_mutex_lock(&srv->mu);
  method *m = find_method_locked(srv, name);
  if (!m) {
    m = calloc(1, sizeof *m);
    if (m) m->name = strdup(name);
    if (!m || !m->name) {
      free(m);
      pthread_mutex_unlock(&srv->mu);
      rpci_set_error("out of memory");
      return RPCNET_RESOURCE_EXHAUSTED;
    }
    m->next = srv->methods;
    srv->methods = m;
  }
  m->fn = fn;
  m->user = user;
  m->streaming = streaming;
  pthread_mutex_unlock(&srv->mu);
  return RPCNET_OK;
}

int rpcnet_server_handle(rpcnet_server *srv, const char *name, rpcnet_handler_fn fn, void *user) {
  return register_method(srv, name, fn, user, 0);
}

int rpcnet_server_handle_stream(rpcnet_server *srv, const char *name, rpcnet_handler_fn fn,
                                void *user) {
  return register_method(srv, name, fn, user, 1);
}

int rpcnet_server_next(rpcnet_server *srv, int timeout_ms, rpcnet_request **out) {
  rpci_clear_error();
  if (!srv || !out) {
    rpci_set_error("rpcnet_server_next: NULL argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  *out = NULL;
  struct timespec until;
  rpci_abs_deadline(&until, timeout_ms);
  pthread_mutex_lock(&srv->mu);
  for (;;) {
    rpcnet_request *r = srv->pull_head;
    if (r) {
      srv->pull_head = r->next;
      if (!srv->pull_head) {
        srv->pull_tail = NULL;
        pull_signal_locked(srv, 0);
      }
      r->next = NULL;
      pthread_mutex_unlock(&srv->mu);
      *out = r;
      return RPCNET_OK;
    }
    if (srv->shut) {
      pthread_mutex_unlock(&srv->mu);
      rpci_set_error("server is shut down");
      return RPCNET_UNAVAILABLE;
    }
    if (timeout_ms == 0) break;
    if (timeout_ms < 0) {
      pthread_cond_wait(&srv->cv, &srv->mu);
    } else if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until) == ETIMEDOUT) {
      break;
    }
  }
  pthread_mutex_unlock(&srv->mu);
  rpci_set_error("no call within the timeout");
  return RPCNET_DEADLINE_EXCEEDED;
}

int rpcnet_server_fd(const rpcnet_server *srv) { return srv ? srv->pull_fd : -1; }

int rpcnet_server_shutdown(rpcnet_server *srv, int drain_timeout_ms) {
  if (!srv) return RPCNET_INVALID_ARGUMENT;
  pthread_mutex_lock(&srv->mu);
  if (srv->shut || srv->draining) {
    pthread_mutex_unlock(&srv->mu);
    return RPCNET_OK;
  }
  srv->draining = 1;
  pthread_mutex_unlock(&srv->mu);
  if (srv->ep) rpci_endpoint_set_accepting(srv->ep, 0);
  /* Drain: wait for calls in flight, up to the timeout. */
  struct timespec until;
  rpci_abs_deadline(&until, drain_timeout_ms < 0 ? 0 : drain_timeout_ms);
  pthread_mutex_lock(&srv->mu);
  while (srv->inflight > 0 && drain_timeout_ms > 0)
    if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until) == ETIMEDOUT) break;
  /* What remains queued is failed; what the application holds fails when
   * answered (its connection is closed below). */
  rpcnet_request *q = srv->pull_head;
  srv->pull_head = srv->pull_tail = NULL;
  srv->shut = 1;
  pull_signal_locked(srv, 1);
  pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
  while (q) {
    rpcnet_request *next = q->next;
    answer(q, NULL, 0, 0, RPCNET_UNAVAILABLE, "server shutting down");
    q = next;
  }
  if (srv->ep) rpci_endpoint_close(srv->ep, RPCI_H_NO_ERROR);
  return RPCNET_OK;
}

void rpcnet_server_free(rpcnet_server *srv) {
  if (!srv) return;
  rpcnet_server_shutdown(srv, 0);
  srv_unref(srv);
}

const char *rpcnet_request_method(const rpcnet_request *r) { return r ? r->method : NULL; }

const void *rpcnet_request_data(const rpcnet_request *r, size_t *len) {
  static const uint8_t empty[1];
  if (len) *len = r ? r->len : 0;
  if (!r) return NULL;
  return r->data ? r->data : empty;
}

const char *rpcnet_request_peer(const rpcnet_request *r) {
  if (!r) return NULL;
  if (!r->peer) {
    /* Written once, by the request's owner (the only thread using it). */
    const char *subj = rpci_qconn_peer_subject(r->qc);
    char buf[400];
    snprintf(buf, sizeof buf, "%s%s%s", rpci_qconn_peer_addr(r->qc), subj[0] ? " subject=" : "",
             subj);
    ((rpcnet_request *)r)->peer = strdup(buf);
  }
  return r->peer ? r->peer : "";
}

int rpcnet_request_reply(rpcnet_request *r, const void *data, size_t len) {
  rpci_clear_error();
  if (r && !data && len) {
    rpci_set_error("rpcnet_request_reply: NULL data with non-zero length");
    return answer(r, NULL, 0, 0, RPCNET_INTERNAL, "server passed invalid reply");
  }
  return answer(r, data ? data : "", len, 1, RPCNET_OK, NULL);
}

int rpcnet_request_fail(rpcnet_request *r, int status, const char *message) {
  rpci_clear_error();
  if (status < 1 || status > 16) status = RPCNET_UNKNOWN;
  return answer(r, NULL, 0, 0, status, message);
}

/* ---- streaming, metadata, deadlines (server side) -------------------------- */

/* Why the request cannot go on, as a status, or RPCNET_OK. Lock held. */
static int request_gone_locked(const rpcnet_request *r) {
  if (r->state == RQ_ANSWERED) {
    rpci_set_error("request already finished");
    return RPCNET_FAILED_PRECONDITION;
  }
  if (r->expired || (r->deadline_ms && rpci_mono_ms() > r->deadline_ms)) {
    rpci_set_error("the call's deadline passed");
    return RPCNET_DEADLINE_EXCEEDED;
  }
  if (r->cancelled) {
    rpci_set_error("the client cancelled the call");
    return RPCNET_CANCELLED;
  }
  if (r->closed) {
    rpci_set_error("the call's connection is gone");
    return RPCNET_UNAVAILABLE;
  }
  return RPCNET_OK;
}

/* The instant a wait of timeout_ms ends: never past the deadline, and now
 * on a library thread (which must not wait). */
static int64_t wait_until(const rpcnet_request *r, int *timeout_ms) {
  if (rpci_loop_on_io_thread()) *timeout_ms = 0;
  int64_t until = r->deadline_ms ? r->deadline_ms : -1;
  if (*timeout_ms >= 0) {
    int64_t t = rpci_mono_ms() + *timeout_ms;
    if (until < 0 || t < until) until = t;
  }
  return until;
}

int rpcnet_request_recv(rpcnet_request *r, int timeout_ms, void **data, size_t *len) {
  rpci_clear_error();
  if (data) *data = NULL;
  if (len) *len = 0;
  if (!r || !data || !len) {
    rpci_set_error("rpcnet_request_recv: NULL argument");
    return RPCNET_INVALID_ARGUMENT;
  }
  int64_t until = wait_until(r, &timeout_ms);
  for (;;) {
    uint64_t g = rpci_event_gen(&r->ev);
    rpci_qconn_lock(r->qc);
    int rc = request_gone_locked(r);
    rpci_msg *m = NULL;
    uint8_t *copy = NULL;
    size_t n = 0;
    int eos = 0;
    if (rc == RPCNET_OK) {
      if (!r->streaming) {
        if (!r->unary_taken) {
          r->unary_taken = 1;
          n = r->len;
          copy = malloc(n ? n : 1);
          if (copy && n) memcpy(copy, r->data, n);
          if (!copy) rc = RPCNET_RESOURCE_EXHAUSTED;
        } else {
          eos = 1;
        }
      } else if ((m = rpci_msgq_pop(&r->inbox, &r->st))) {
        copy = m->data ? m->data : malloc(1);
        n = m->len;
        free(m);
        if (!copy) rc = RPCNET_RESOURCE_EXHAUSTED;
        req_notify(r);
      } else if (r->client_fin) {
        eos = 1;
      }
    }
    rpci_qconn_unlock(r->qc);
    if (rc != RPCNET_OK) return rc;
    if (copy) {
      *data = copy;
      *len = n;
      return RPCNET_OK;
    }
    if (eos) return RPCNET_END_OF_STREAM;
    if (timeout_ms == 0 || rpci_event_wait(&r->ev, g, until) != 0) {
      if (r->deadline_ms && rpci_mono_ms() >= r->deadline_ms) continue; /* report it */
      rpci_set_error("no message within %d ms", timeout_ms);
      return RPCNET_WOULD_BLOCK;
    }
  }
}

int rpcnet_request_send(rpcnet_request *r, const void *data, size_t len) {
  rpci_clear_error();
  if (!r) return RPCNET_INVALID_ARGUMENT;
  int bad = rpci_check_message("rpcnet_request_send", data, len, r->srv->opts.max_message_size);
  if (bad) return bad;
  int timeout_ms = -1;
  int64_t until = wait_until(r, &timeout_ms);
  for (;;) {
    uint64_t g = rpci_event_gen(&r->ev);
    rpci_qconn_lock(r->qc);
    int rc = request_gone_locked(r);
    int room = rc == RPCNET_OK && rpci_stream_unacked(&r->st) < RPCI_SEND_BUFFER;
    if (room) {
      uint8_t head[9];
      struct iovec iov[2] = {{head, rpci_frame_message_head(head, len)}, {(void *)data, len}};
      if (rpci_stream_writev(&r->st, iov, 2, 0) != 0) {
        rpci_set_error("out of memory");
        rc = RPCNET_RESOURCE_EXHAUSTED;
      }
      req_notify(r); /* the send fd may drop */
    }
    rpci_qconn_unlock(r->qc);
    if (rc != RPCNET_OK || room) return rc;
    if (timeout_ms == 0 || rpci_event_wait(&r->ev, g, until) != 0) {
      if (r->deadline_ms && rpci_mono_ms() >= r->deadline_ms) continue;
      rpci_set_error("no room to send (the client reads too slowly)");
      return RPCNET_WOULD_BLOCK;
    }
  }
}

int rpcnet_request_set_trailer(rpcnet_request *r, const char *key, const void *value, size_t len) {
  rpci_clear_error();
  if (!r) return RPCNET_INVALID_ARGUMENT;
  return rpci_md_add_checked(&r->trailers, key, value, len, r->srv->limits.max_metadata_entries);
}

int rpcnet_request_finish(rpcnet_request *r, int status, const char *message) {
  rpci_clear_error();
  if (status < 0 || status > 16) status = RPCNET_UNKNOWN;
  return answer(r, NULL, 0, 0, status, message);
}

const void *rpcnet_request_metadata(const rpcnet_request *r, const char *key, size_t *len) {
  if (len) *len = 0;
  return r ? rpci_md_lookup(&r->metadata, key, len) : NULL;
}

int rpcnet_request_cancelled(const rpcnet_request *r) {
  if (!r) return 1;
  rpcnet_request *w = (rpcnet_request *)r;
  rpci_qconn_lock(w->qc);
  int c = w->cancelled || w->expired || w->closed ||
          (w->deadline_ms && rpci_mono_ms() > w->deadline_ms);
  rpci_qconn_unlock(w->qc);
  return c;
}

int64_t rpcnet_request_deadline_ms(const rpcnet_request *r) {
  if (!r || !r->deadline_ms) return -1;
  int64_t left = r->deadline_ms - rpci_mono_ms();
  return left > 0 ? left : 0;
}

int rpcnet_request_fd(rpcnet_request *r) { return r ? rpci_event_fd(&r->ev) : -1; }

int rpcnet_request_send_fd(rpcnet_request *r) { return r ? rpci_event_send_fd(&r->ev) : -1; }

size_t rpcnet_request_metadata_count(const rpcnet_request *r) { return r ? r->metadata.n : 0; }

const char *rpcnet_request_metadata_at(const rpcnet_request *r, size_t i, const void **value,
                                       size_t *len) {
  return rpci_md_at(r ? &r->metadata : NULL, i, value, len);
}

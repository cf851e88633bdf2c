/* One QUIC connection over ngtcp2: see qconn.h for the design notes. */
#include "transport/qconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "obs/log.h"
#include "transport/endpoint.h"
#include "transport/udp.h"

#define SCID_LEN 18
#define MAX_PKT 1452
#define SEND_BATCH 16

struct rpci_qconn {
  atomic_int refs;
  pthread_mutex_t mu;
  int is_server;
  rpci_qconn_state state;
  rpci_loop *loop;
  rpci_endpoint *ep; /* server side */
  ngtcp2_conn *conn;
  gnutls_session_t tls;
  rpci_tls_ctx *tls_ctx;
  ngtcp2_crypto_conn_ref conn_ref;
  int fd, own_fd;
  struct sockaddr_storage local, remote;
  socklen_t local_len, remote_len;
  int timer_fd;
  uv_poll_t sock_poll, timer_poll;
  int sock_polling, timer_polling;
  uint64_t armed; /* expiry the timerfd is set to (UINT64_MAX: disarmed) */
  const rpci_qconn_events *ev;
  void *user;
  rpci_stream *sendq_head, *sendq_tail;
  rpci_stream *streams;               /* every attached stream */
  rpci_stream *wait_head, *wait_tail; /* client: waiting for stream credit */
  int dirty;                          /* something to write at unlock */
  int in_batch;                       /* loop thread is between feed and batch_end */
  int doomed;                         /* failed; teardown pending */
  int teardown_done;
  ngtcp2_connection_close_error ccerr;
  char err[RPCI_ERRMSG_MAX];
  char peer[64];
  char subject[256];
};

uint64_t rpci_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- refcount, lock -------------------------------------------------- */

static void qconn_destroy(rpci_qconn *qc) {
  if (qc->conn) ngtcp2_conn_del(qc->conn);
  if (qc->tls) gnutls_deinit(qc->tls);
  rpci_tls_ctx_unref(qc->tls_ctx);
  if (qc->timer_fd >= 0) close(qc->timer_fd);
  if (qc->own_fd && qc->fd >= 0) close(qc->fd);
  pthread_mutex_destroy(&qc->mu);
  free(qc);
}

void rpci_qconn_ref(rpci_qconn *qc) { atomic_fetch_add(&qc->refs, 1); }

void rpci_qconn_unref(rpci_qconn *qc) {
  if (qc && atomic_fetch_sub(&qc->refs, 1) == 1) qconn_destroy(qc);
}

void rpci_qconn_lock(rpci_qconn *qc) { pthread_mutex_lock(&qc->mu); }

rpci_qconn_state rpci_qconn_state_get(const rpci_qconn *qc) { return qc->state; }
const char *rpci_qconn_error(const rpci_qconn *qc) { return qc->err; }
const char *rpci_qconn_peer_addr(const rpci_qconn *qc) { return qc->peer; }
const char *rpci_qconn_peer_subject(const rpci_qconn *qc) { return qc->subject; }
void *rpci_qconn_user(const rpci_qconn *qc) { return qc->user; }

/* ---- sending ------------------------------------------------------------ */

static void sendq_push(rpci_qconn *qc, rpci_stream *s) {
  if (s->in_sendq || s->id < 0) return;
  s->in_sendq = 1;
  s->sendq_next = NULL;
  if (qc->sendq_tail)
    qc->sendq_tail->sendq_next = s;
  else
    qc->sendq_head = s;
  qc->sendq_tail = s;
}

static rpci_stream *sendq_pop(rpci_qconn *qc) {
  rpci_stream *s = qc->sendq_head;
  if (!s) return NULL;
  qc->sendq_head = s->sendq_next;
  if (!qc->sendq_head) qc->sendq_tail = NULL;
  s->in_sendq = 0;
  s->sendq_next = NULL;
  return s;
}

static void sendq_remove(rpci_qconn *qc, rpci_stream *s) {
  if (!s->in_sendq) return;
  rpci_stream **pp = &qc->sendq_head, *prev = NULL;
  while (*pp && *pp != s) {
    prev = *pp;
    pp = &(*pp)->sendq_next;
  }
  if (*pp) *pp = s->sendq_next;
  if (qc->sendq_tail == s) qc->sendq_tail = prev;
  s->in_sendq = 0;
  s->sendq_next = NULL;
}

static int stream_has_unsent(const rpci_stream *s) {
  return s->sent < s->queued || (s->fin_queued && !s->fin_sent);
}

/* Fills iov from the unsent part of s; *all is set when iov reaches the
 * end of the queued data. */
static size_t stream_iov(const rpci_stream *s, ngtcp2_vec *iov, size_t max, int *all) {
  size_t n = 0, off = s->cur_off;
  rpci_chunk *c = s->cur;
  for (; c && n < max; c = c->next, off = 0) {
    iov[n].base = c->data + off;
    iov[n].len = c->len - off;
    n++;
  }
  *all = c == NULL;
  return n;
}

static void stream_advance(rpci_stream *s, size_t n) {
  s->sent += n;
  s->cur_off += n;
  while (s->cur && s->cur_off >= s->cur->len) {
    s->cur_off -= s->cur->len;
    s->cur = s->cur->next;
  }
}

/* Moves the timerfd earlier when ngtcp2's next expiry is earlier than what
 * it is set to, and never later: arming a timer is a costly syscall here
 * (about an eighth of the CPU at 16 calls in flight when done on every
 * flush), while a timer that fires early only finds nothing due, and
 * on_timer then sets it right. */
#define TIMER_SLACK_NS 1000000 /* 1 ms: small beside any PTO or ACK delay */

static void arm_timer(rpci_qconn *qc) {
  uint64_t expiry = ngtcp2_conn_get_expiry(qc->conn);
  if (qc->armed != UINT64_MAX && expiry + TIMER_SLACK_NS >= qc->armed) return;
  if (expiry >= qc->armed) return;
  qc->armed = expiry;
  struct itimerspec its = {{0, 0}, {0, 0}};
  if (expiry != UINT64_MAX) {
    if (expiry == 0) expiry = 1; /* 0 would disarm */
    its.it_value.tv_sec = (time_t)(expiry / 1000000000u);
    its.it_value.tv_nsec = (long)(expiry % 1000000000u);
  }
  timerfd_settime(qc->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void fail_locked(rpci_qconn *qc, int liberr);

/* Nothing listens at a client's peer address any more (the kernel turned
 * an ICMP port unreachable into ECONNREFUSED on the connected socket): fail
 * now, not at the handshake or idle timeout. For an established connection
 * this is what TCP's RST gives: a crashed server process is noticed at
 * once and calls fail with UNAVAILABLE (so idempotent calls can go
 * elsewhere). Linux only accepts such errors for the socket's own 4-tuple,
 * so an off-path spoofer would have to guess the ephemeral port. Lock held. */
static void refused_locked(rpci_qconn *qc) {
  if (qc->state == RPCI_QC_CLOSED || qc->doomed) return;
  if (qc->state == RPCI_QC_HANDSHAKE)
    snprintf(qc->err, sizeof qc->err, "connection refused by %s (nothing listening?)", qc->peer);
  else
    snprintf(qc->err, sizeof qc->err,
             "%s is unreachable (port unreachable: the server process is gone?)", qc->peer);
  fail_locked(qc, NGTCP2_ERR_DROP_CONN);
}

static void send_pkts(rpci_qconn *qc, uint8_t (*bufs)[MAX_PKT], const size_t *lens, size_t n) {
  if (rpci_udp_send_batch(qc->fd, qc->own_fd ? NULL : (const struct sockaddr *)&qc->remote,
                          qc->remote_len, bufs, lens, n) != 0)
    refused_locked(qc);
}

/* Writes every sendable packet now. Lock held. */
static void flush_locked(rpci_qconn *qc) {
  if (qc->state == RPCI_QC_CLOSED || qc->doomed) return;
  static _Thread_local uint8_t bufs[SEND_BATCH][MAX_PKT];
  size_t lens[SEND_BATCH];
  size_t npkt = 0;
  size_t maxlen = ngtcp2_conn_get_max_tx_udp_payload_size(qc->conn);
  if (maxlen > MAX_PKT) maxlen = MAX_PKT;
  uint64_t ts = rpci_now_ns();
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  rpci_stream *s = NULL;
  for (;;) {
    while (!s && (s = sendq_pop(qc)) && !stream_has_unsent(s)) s = NULL;
    ngtcp2_vec iov[16];
    size_t niov = 0;
    int all = 0;
    int64_t sid = -1;
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    uint64_t remaining = 0;
    if (s) {
      sid = s->id;
      niov = stream_iov(s, iov, 16, &all);
      remaining = 0;
      for (size_t i = 0; i < niov; i++) remaining += iov[i].len;
      if (s->fin_queued && all) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    }
    ngtcp2_ssize ndata = -1;
    ngtcp2_ssize n = ngtcp2_conn_writev_stream(qc->conn, &ps.path, &pi, bufs[npkt], maxlen, &ndata,
                                               flags, sid, iov, niov, ts);
    if (n < 0) {
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
        s->blocked = 1;
        s = NULL;
        continue;
      }
      if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
        s = NULL;
        continue;
      }
      if (n != NGTCP2_ERR_WRITE_MORE) {
        fail_locked(qc, (int)n);
        return;
      }
    }
    if (s && ndata >= 0) {
      stream_advance(s, (size_t)ndata);
      if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && (uint64_t)ndata == remaining) s->fin_sent = 1;
      if (!stream_has_unsent(s)) s = NULL;
    }
    if (n == NGTCP2_ERR_WRITE_MORE) continue;
    if (n == 0) {
      if (s) sendq_push(qc, s); /* congestion or pacing limited: later */
      break;
    }
    lens[npkt++] = (size_t)n;
    if (npkt == SEND_BATCH) {
      send_pkts(qc, bufs, lens, npkt);
      npkt = 0;
    }
  }
  if (npkt) send_pkts(qc, bufs, lens, npkt);
  /* ngtcp2 0.12 arms its pacer from the 333 ms default RTT until it has a
   * sample, stalling the first request ~22 ms: only pace once measured. */
  ngtcp2_conn_stat cstat;
  ngtcp2_conn_get_conn_stat(qc->conn, &cstat);
  if (cstat.first_rtt_sample_ts != UINT64_MAX) ngtcp2_conn_update_pkt_tx_time(qc->conn, ts);
  qc->dirty = 0;
  arm_timer(qc);
}

void rpci_qconn_unlock(rpci_qconn *qc) {
  if (qc->dirty && !qc->in_batch) flush_locked(qc);
  pthread_mutex_unlock(&qc->mu);
}

/* ---- failure and teardown ------------------------------------------------ */

static void teardown_task(void *arg);
static void stream_free_chunks(rpci_stream *s);

static void describe_close(rpci_qconn *qc, int liberr) {
  if (qc->err[0]) return;
  if (liberr == NGTCP2_ERR_CRYPTO) {
    rpci_tls_describe_failure(qc->tls, ngtcp2_conn_get_tls_alert(qc->conn), qc->err,
                              sizeof qc->err);
    return;
  }
  if (liberr == NGTCP2_ERR_DRAINING || liberr == NGTCP2_ERR_CLOSING) {
    ngtcp2_connection_close_error e;
    ngtcp2_conn_get_connection_close_error(qc->conn, &e);
    if (e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT &&
        (e.error_code & ~0xffu) == NGTCP2_CRYPTO_ERROR) {
      int alert = (int)(e.error_code & 0xff);
      const char *name = gnutls_alert_get_strname((gnutls_alert_description_t)alert);
      snprintf(qc->err, sizeof qc->err, "peer rejected the TLS handshake: alert %d (%s)", alert,
               name ? name : "unknown");
    } else {
      snprintf(qc->err, sizeof qc->err, "connection closed by peer (%s error 0x%llx%s%.*s)",
               e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION ? "application"
                                                                             : "transport",
               (unsigned long long)e.error_code, e.reasonlen ? ": " : "", (int)e.reasonlen,
               e.reason ? (const char *)e.reason : "");
    }
    return;
  }
  if (liberr == NGTCP2_ERR_IDLE_CLOSE) {
    snprintf(qc->err, sizeof qc->err, "connection idle timeout");
    return;
  }
  if (liberr == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    snprintf(qc->err, sizeof qc->err, "QUIC handshake timed out (is the server reachable?)");
    return;
  }
  snprintf(qc->err, sizeof qc->err, "QUIC error: %s", ngtcp2_strerror(liberr));
}

/* Sends CONNECTION_CLOSE with qc->ccerr (unless closing or draining). */
static void write_close_locked(rpci_qconn *qc) {
  if (ngtcp2_conn_is_in_closing_period(qc->conn) || ngtcp2_conn_is_in_draining_period(qc->conn))
    return;
  uint8_t buf[MAX_PKT];
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(qc->conn, &ps.path, &pi, buf, sizeof buf,
                                                      &qc->ccerr, rpci_now_ns());
  if (n > 0) {
    size_t len = (size_t)n;
    send_pkts(qc, &buf, &len, 1);
  }
}

/* The connection failed with liberr: tell the peer when appropriate and
 * schedule the teardown. Lock held. */
static void fail_locked(rpci_qconn *qc, int liberr) {
  if (qc->doomed || qc->state == RPCI_QC_CLOSED) return;
  describe_close(qc, liberr);
  rpci_log(RPCI_LOG_INFO, "connection %s: %s", qc->peer, qc->err);
  switch (liberr) {
    case NGTCP2_ERR_DRAINING:
    case NGTCP2_ERR_CLOSING:
    case NGTCP2_ERR_IDLE_CLOSE:
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
      break;
    case NGTCP2_ERR_CRYPTO:
      ngtcp2_connection_close_error_set_transport_error_tls_alert(
          &qc->ccerr, ngtcp2_conn_get_tls_alert(qc->conn), NULL, 0);
      write_close_locked(qc);
      break;
    default:
      ngtcp2_connection_close_error_set_transport_error_liberr(&qc->ccerr, liberr, NULL, 0);
      write_close_locked(qc);
  }
  qc->doomed = 1;
  rpci_qconn_ref(qc);
  if (rpci_loop_post(qc->loop, teardown_task, qc) != 0) rpci_qconn_unref(qc);
}

static void on_handle_closed(uv_handle_t *h) { rpci_qconn_unref(h->data); }

/* Loop thread. Moves the connection to CLOSED, closes every stream, stops
 * polling. Idempotent. */
static void teardown(rpci_qconn *qc) {
  pthread_mutex_lock(&qc->mu);
  if (qc->teardown_done) {
    pthread_mutex_unlock(&qc->mu);
    return;
  }
  qc->teardown_done = 1;
  qc->doomed = 1;
  qc->state = RPCI_QC_CLOSED;
  if (!qc->err[0]) snprintf(qc->err, sizeof qc->err, "connection closed");
  qc->sendq_head = qc->sendq_tail = NULL;
  qc->wait_head = qc->wait_tail = NULL;
  while (qc->streams) {
    rpci_stream *s = qc->streams;
    qc->streams = s->next;
    s->attached = 0;
    s->in_sendq = 0;
    s->prev = s->next = NULL;
    if (s->id >= 0) ngtcp2_conn_set_stream_user_data(qc->conn, s->id, NULL);
    stream_free_chunks(s);
    qc->ev->stream_close(s, RPCI_CONN_LOST);
  }
  if (qc->ev->closed) qc->ev->closed(qc, qc->user);
  pthread_mutex_unlock(&qc->mu);
  if (qc->sock_polling) {
    qc->sock_polling = 0;
    uv_close((uv_handle_t *)&qc->sock_poll, on_handle_closed);
  }
  if (qc->timer_polling) {
    qc->timer_polling = 0;
    uv_close((uv_handle_t *)&qc->timer_poll, on_handle_closed);
  }
  if (qc->ep) rpci_endpoint_forget(qc->ep, qc);
}

static void teardown_task(void *arg) {
  rpci_qconn *qc = arg;
  teardown(qc);
  rpci_qconn_unref(qc);
}

typedef struct close_req {
  rpci_qconn *qc;
} close_req;

static void close_task(void *arg) { teardown(((close_req *)arg)->qc); }

void rpci_qconn_close(rpci_qconn *qc, uint64_t app_error, const char *reason) {
  rpci_qconn_ref(qc);
  pthread_mutex_lock(&qc->mu);
  if (!qc->doomed && qc->state != RPCI_QC_CLOSED) {
    ngtcp2_connection_close_error_set_application_error(&qc->ccerr, app_error, NULL, 0);
    write_close_locked(qc);
    if (!qc->err[0]) snprintf(qc->err, sizeof qc->err, "%s", reason ? reason : "closed locally");
    qc->doomed = 1;
  }
  pthread_mutex_unlock(&qc->mu);
  close_req r = {qc};
  rpci_loop_call(qc->loop, close_task, &r);
  rpci_qconn_unref(qc);
}

/* ---- streams ------------------------------------------------------------- */

void rpci_stream_init(rpci_stream *s) {
  memset(s, 0, sizeof *s);
  s->id = -1;
}

static void stream_link(rpci_qconn *qc, rpci_stream *s) {
  s->qc = qc;
  s->attached = 1;
  s->prev = NULL;
  s->next = qc->streams;
  if (qc->streams) qc->streams->prev = s;
  qc->streams = s;
}

static void stream_unlink(rpci_qconn *qc, rpci_stream *s) {
  if (!s->attached) return;
  if (s->prev)
    s->prev->next = s->next;
  else
    qc->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  s->attached = 0;
  sendq_remove(qc, s);
}

static void stream_free_chunks(rpci_stream *s) {
  rpci_chunk *c = s->head;
  while (c) {
    rpci_chunk *n = c->next;
    free(c);
    c = n;
  }
  s->head = s->tail = s->cur = NULL;
}

static int open_now(rpci_qconn *qc, rpci_stream *s) {
  int64_t id;
  int rv = ngtcp2_conn_open_bidi_stream(qc->conn, &id, s);
  if (rv != 0) return rv;
  s->id = id;
  if (stream_has_unsent(s)) {
    sendq_push(qc, s);
    qc->dirty = 1;
  }
  return 0;
}

int rpci_stream_open(rpci_qconn *qc, rpci_stream *s) {
  if (qc->state != RPCI_QC_ESTABLISHED || qc->doomed) return -1;
  stream_link(qc, s);
  if (!qc->wait_head && open_now(qc, s) == 0) return 0;
  /* NGTCP2_ERR_STREAM_ID_BLOCKED: wait for MAX_STREAMS. */
  s->sendq_next = NULL;
  if (qc->wait_tail)
    qc->wait_tail->sendq_next = s;
  else
    qc->wait_head = s;
  qc->wait_tail = s;
  return 0;
}

void rpci_stream_attach(rpci_qconn *qc, rpci_stream *s, int64_t stream_id) {
  s->id = stream_id;
  stream_link(qc, s);
  ngtcp2_conn_set_stream_user_data(qc->conn, stream_id, s);
}

int rpci_stream_writev(rpci_stream *s, const struct iovec *iov, int iovcnt, int fin) {
  if (s->fin_queued || !s->attached) return -1;
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  if (total) {
    rpci_chunk *c = malloc(sizeof *c + total);
    if (!c) return -1;
    c->next = NULL;
    c->len = total;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
      if (iov[i].iov_len) memcpy(c->data + off, iov[i].iov_base, iov[i].iov_len);
      off += iov[i].iov_len;
    }
    if (s->tail)
      s->tail->next = c;
    else
      s->head = c;
    s->tail = c;
    if (!s->cur) {
      s->cur = c;
      s->cur_off = 0;
    }
    s->queued += total;
  }
  if (fin) s->fin_queued = 1;
  if (s->id >= 0 && s->qc) {
    sendq_push(s->qc, s);
    s->qc->dirty = 1;
  }
  return 0;
}

int rpci_stream_write(rpci_stream *s, const void *data, size_t len, int fin) {
  struct iovec iov = {(void *)data, len};
  return rpci_stream_writev(s, &iov, 1, fin);
}

void rpci_stream_reset(rpci_stream *s, uint64_t app_error) {
  rpci_qconn *qc = s->qc;
  if (!qc || !s->attached) return;
  if (s->id < 0) { /* still waiting to open: just forget it */
    rpci_stream **pp = &qc->wait_head, *prev = NULL;
    while (*pp && *pp != s) {
      prev = *pp;
      pp = &(*pp)->sendq_next;
    }
    if (*pp) *pp = s->sendq_next;
    if (qc->wait_tail == s) qc->wait_tail = prev;
    stream_unlink(qc, s);
    stream_free_chunks(s);
    qc->ev->stream_close(s, app_error);
    return;
  }
  sendq_remove(qc, s);
  ngtcp2_conn_shutdown_stream(qc->conn, s->id, app_error);
  qc->dirty = 1;
}

uint64_t rpci_stream_unacked(const rpci_stream *s) { return s->queued - s->head_off; }

void rpci_stream_consume_stream(rpci_stream *s, size_t n) {
  rpci_qconn *qc = s->qc;
  if (!qc || !s->attached || s->id < 0 || n == 0) return;
  ngtcp2_conn_extend_max_stream_offset(qc->conn, s->id, n);
  qc->dirty = 1;
}

void rpci_qconn_consume(rpci_qconn *qc, size_t n) {
  if (!qc || n == 0 || qc->state == RPCI_QC_CLOSED) return;
  ngtcp2_conn_extend_max_offset(qc->conn, n);
  qc->dirty = 1;
}

void rpci_stream_consume(rpci_stream *s, size_t n) {
  if (!s->qc || !s->attached || s->id < 0 || n == 0) return;
  rpci_stream_consume_stream(s, n);
  rpci_qconn_consume(s->qc, n);
}

void rpci_qconn_reset_id(rpci_qconn *qc, int64_t stream_id, uint64_t app_error) {
  ngtcp2_conn_shutdown_stream(qc->conn, stream_id, app_error);
  qc->dirty = 1;
}

/* ---- ngtcp2 callbacks (lock held: they run inside ngtcp2 calls) ---------- */

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                               uint64_t offset, const uint8_t *data, size_t datalen, void *user,
                               void *stream_user) {
  rpci_qconn *qc = user;
  rpci_stream *s = stream_user;
  if (!s) { /* no owner (already answered or refused): discard, keep credit flowing */
    ngtcp2_conn_extend_max_stream_offset(conn, stream_id, datalen);
    ngtcp2_conn_extend_max_offset(conn, datalen);
    return 0;
  }
  qc->ev->stream_data(s, data, datalen, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
  return 0;
}

static int cb_acked_stream_data_offset(ngtcp2_conn *conn, int64_t stream_id, uint64_t offset,
                                       uint64_t datalen, void *user, void *stream_user) {
  rpci_stream *s = stream_user;
  if (!s) return 0;
  uint64_t acked = offset + datalen;
  int freed = 0;
  while (s->head && s->head != s->cur && s->head_off + s->head->len <= acked) {
    rpci_chunk *c = s->head;
    s->head_off += c->len;
    s->head = c->next;
    if (!s->head) s->tail = NULL;
    free(c);
    freed = 1;
  }
  rpci_qconn *qc = user;
  if (freed && qc->ev->stream_acked) qc->ev->stream_acked(s);
  return 0;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t stream_id, void *user) {
  rpci_qconn *qc = user;
  if (!qc->is_server || !ngtcp2_is_bidi_stream(stream_id)) return 0;
  qc->ev->stream_open(qc, stream_id, qc->user);
  return 0;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                           uint64_t app_error_code, void *user, void *stream_user) {
  rpci_qconn *qc = user;
  rpci_stream *s = stream_user;
  /* ngtcp2 does not return stream credit by itself: one closed, one more. */
  if (qc->is_server && ngtcp2_is_bidi_stream(stream_id)) {
    ngtcp2_conn_extend_max_streams_bidi(conn, 1);
    qc->dirty = 1;
  }
  if (!s) return 0;
  stream_unlink(qc, s);
  stream_free_chunks(s);
  uint64_t code = (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) ? app_error_code : 0;
  qc->ev->stream_close(s, code);
  return 0;
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t stream_id, uint64_t final_size,
                           uint64_t app_error_code, void *user, void *stream_user) {
  rpci_qconn *qc = user;
  if (stream_user) qc->ev->stream_reset(stream_user, app_error_code);
  return 0;
}

static int cb_extend_max_local_streams_bidi(ngtcp2_conn *conn, uint64_t max_streams, void *user) {
  rpci_qconn *qc = user;
  /* The wait list shares the send queue's link: unlink before open_now,
   * which may put the stream on the send queue. */
  while (qc->wait_head) {
    rpci_stream *s = qc->wait_head, *next = s->sendq_next;
    s->sendq_next = NULL;
    if (open_now(qc, s) != 0) {
      s->sendq_next = next;
      break;
    }
    qc->wait_head = next;
    if (!next) qc->wait_tail = NULL;
  }
  return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t stream_id, uint64_t max_data,
                                     void *user, void *stream_user) {
  rpci_qconn *qc = user;
  rpci_stream *s = stream_user;
  if (s && s->blocked) {
    s->blocked = 0;
    sendq_push(qc, s);
    qc->dirty = 1;
  }
  return 0;
}

static void cb_rand(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *ctx) {
  (void)ctx;
  gnutls_rnd(GNUTLS_RND_RANDOM, dest, destlen);
}

static int cb_get_new_connection_id(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
                                    size_t cidlen, void *user) {
  rpci_qconn *qc = user;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  cid->datalen = cidlen;
  if (qc->is_server) {
    if (rpci_reset_token(token, cid) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    rpci_endpoint_add_cid(qc->ep, cid, qc);
  } else if (gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int cb_remove_connection_id(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user) {
  rpci_qconn *qc = user;
  if (qc->is_server) rpci_endpoint_remove_cid(qc->ep, cid);
  return 0;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user) {
  rpci_qconn *qc = user;
  rpci_tls_peer_subject(qc->tls, qc->subject, sizeof qc->subject);
  if (qc->is_server) qc->state = RPCI_QC_ESTABLISHED;
  return 0;
}

static int cb_handshake_confirmed(ngtcp2_conn *conn, void *user) {
  rpci_qconn *qc = user;
  if (!qc->is_server) {
    qc->state = RPCI_QC_ESTABLISHED;
    if (qc->ev->established) qc->ev->established(qc, qc->user);
  }
  return 0;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((rpci_qconn *)ref->user_data)->conn;
}

static void fill_callbacks(ngtcp2_callbacks *cb, int is_server) {
  memset(cb, 0, sizeof *cb);
  if (is_server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
    cb->extend_max_local_streams_bidi = cb_extend_max_local_streams_bidi;
    cb->handshake_confirmed = cb_handshake_confirmed;
  }
  cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->recv_stream_data = cb_recv_stream_data;
  cb->acked_stream_data_offset = cb_acked_stream_data_offset;
  cb->stream_open = cb_stream_open;
  cb->stream_close = cb_stream_close;
  cb->stream_reset = cb_stream_reset;
  cb->extend_max_stream_data = cb_extend_max_stream_data;
  cb->rand = cb_rand;
  cb->get_new_connection_id = cb_get_new_connection_id;
  cb->remove_connection_id = cb_remove_connection_id;
  cb->handshake_completed = cb_handshake_completed;
}

static void fill_settings(ngtcp2_settings *st, ngtcp2_transport_params *tp,
                          const rpci_qconn_params *p, int is_server) {
  ngtcp2_settings_default(st);
  st->initial_ts = rpci_now_ns();
  st->handshake_timeout = (uint64_t)p->handshake_timeout_ms * NGTCP2_MILLISECONDS;
  /* A set conn_window is a memory bound: no auto-tuning past it. */
  uint64_t conn_window = p->conn_window ? p->conn_window : 16u << 20;
  st->max_window = p->conn_window ? conn_window : 64u << 20;
  st->max_stream_window = 16u << 20;
  ngtcp2_transport_params_default(tp);
  tp->initial_max_stream_data_bidi_local = 1u << 20;
  tp->initial_max_stream_data_bidi_remote = 1u << 20;
  tp->initial_max_data = conn_window;
  tp->initial_max_streams_bidi = is_server ? p->max_concurrent_streams : 0;
  tp->initial_max_streams_uni = 0;
  tp->max_idle_timeout = (uint64_t)p->idle_timeout_ms * NGTCP2_MILLISECONDS;
  tp->active_connection_id_limit = 4;
}

/* ---- I/O on the loop thread ---------------------------------------------- */

void rpci_qconn_feed(rpci_qconn *qc, const struct sockaddr *remote, socklen_t remote_len,
                     const uint8_t *pkt, size_t len) {
  pthread_mutex_lock(&qc->mu);
  if (!qc->doomed && qc->state != RPCI_QC_CLOSED) {
    ngtcp2_path path = {{(struct sockaddr *)&qc->local, qc->local_len},
                        {(struct sockaddr *)remote, remote_len},
                        NULL};
    ngtcp2_pkt_info pi = {0};
    int rv = ngtcp2_conn_read_pkt(qc->conn, &path, &pi, pkt, len, rpci_now_ns());
    if (rv != 0) fail_locked(qc, rv);
    qc->dirty = 1;
  }
  qc->in_batch = 1;
  pthread_mutex_unlock(&qc->mu);
}

void rpci_qconn_batch_end(rpci_qconn *qc) {
  if (qc->ev->after_batch) qc->ev->after_batch(qc, qc->user);
  pthread_mutex_lock(&qc->mu);
  qc->in_batch = 0;
  if (qc->dirty) flush_locked(qc);
  pthread_mutex_unlock(&qc->mu);
}

static void on_timer(uv_poll_t *h, int status, int events) {
  rpci_qconn *qc = h->data;
  uint64_t ticks;
  if (read(qc->timer_fd, &ticks, sizeof ticks) < 0 && errno == EAGAIN) return;
  pthread_mutex_lock(&qc->mu);
  qc->armed = UINT64_MAX; /* the timerfd fired: it is disarmed now */
  if (!qc->doomed && qc->state != RPCI_QC_CLOSED) {
    int rv = ngtcp2_conn_handle_expiry(qc->conn, rpci_now_ns());
    if (rv != 0)
      fail_locked(qc, rv);
    else
      flush_locked(qc);
  }
  pthread_mutex_unlock(&qc->mu);
}

static void feed_pkt(void *arg, const struct sockaddr *from, socklen_t fromlen, const uint8_t *data,
                     size_t len) {
  rpci_qconn_feed(arg, from, fromlen, data, len);
}

/* Client: its own connected socket. */
static void on_client_readable(uv_poll_t *h, int status, int events) {
  rpci_qconn *qc = h->data;
  rpci_qconn_ref(qc);
  int refused = 0;
  rpci_udp_recv_each(qc->fd, feed_pkt, qc, &refused);
  if (refused) {
    pthread_mutex_lock(&qc->mu);
    refused_locked(qc);
    pthread_mutex_unlock(&qc->mu);
  }
  rpci_qconn_batch_end(qc);
  rpci_qconn_unref(qc);
}

static void start_polls_task(void *arg) {
  rpci_qconn *qc = arg;
  uv_loop_t *uv = rpci_loop_uv(qc->loop);
  if (uv_poll_init(uv, &qc->timer_poll, qc->timer_fd) == 0) {
    qc->timer_poll.data = qc;
    rpci_qconn_ref(qc);
    qc->timer_polling = 1;
    uv_poll_start(&qc->timer_poll, UV_READABLE, on_timer);
  }
  if (qc->own_fd && uv_poll_init(uv, &qc->sock_poll, qc->fd) == 0) {
    qc->sock_poll.data = qc;
    rpci_qconn_ref(qc);
    qc->sock_polling = 1;
    uv_poll_start(&qc->sock_poll, UV_READABLE, on_client_readable);
  }
}

/* ---- creation ------------------------------------------------------------ */

static rpci_qconn *qconn_alloc(rpci_loop *loop, int is_server, rpci_tls_ctx *tls,
                               const rpci_qconn_events *ev, void *user) {
  rpci_qconn *qc = calloc(1, sizeof *qc);
  if (!qc) {
    rpci_set_error("out of memory");
    return NULL;
  }
  atomic_init(&qc->refs, 1);
  pthread_mutex_init(&qc->mu, NULL);
  qc->is_server = is_server;
  qc->loop = loop;
  qc->fd = -1;
  qc->armed = UINT64_MAX;
  qc->ev = ev;
  qc->user = user;
  qc->state = RPCI_QC_HANDSHAKE;
  ngtcp2_connection_close_error_default(&qc->ccerr);
  rpci_tls_ctx_ref(tls);
  qc->tls_ctx = tls;
  qc->conn_ref.get_conn = get_conn;
  qc->conn_ref.user_data = qc;
  qc->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (qc->timer_fd < 0) {
    rpci_set_error("timerfd_create: %s", strerror(errno));
    qconn_destroy(qc);
    return NULL;
  }
  return qc;
}

rpci_qconn *rpci_qconn_connect(rpci_loop *loop, const struct sockaddr *addr, socklen_t addrlen,
                               rpci_tls_ctx *tls, const char *server_name,
                               const rpci_qconn_params *params, const rpci_qconn_events *ev,
                               void *user) {
  rpci_qconn *qc = qconn_alloc(loop, 0, tls, ev, user);
  if (!qc) return NULL;
  qc->own_fd = 1;
  qc->fd = rpci_udp_connect(addr, addrlen, &qc->local, &qc->local_len);
  if (qc->fd < 0) goto fail;
  memcpy(&qc->remote, addr, addrlen);
  qc->remote_len = addrlen;
  rpci_addr_str((struct sockaddr *)&qc->remote, qc->peer, sizeof qc->peer);
  if (rpci_tls_session_new(tls, &qc->tls, server_name, &qc->conn_ref) != 0) goto fail;

  ngtcp2_cid dcid, scid;
  dcid.datalen = SCID_LEN;
  scid.datalen = SCID_LEN;
  gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
  gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
  ngtcp2_callbacks cb;
  fill_callbacks(&cb, 0);
  ngtcp2_settings st;
  ngtcp2_transport_params tp;
  fill_settings(&st, &tp, params, 0);
  ngtcp2_path path = {{(struct sockaddr *)&qc->local, qc->local_len},
                      {(struct sockaddr *)&qc->remote, qc->remote_len},
                      NULL};
  int rv = ngtcp2_conn_client_new(&qc->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &st,
                                  &tp, NULL, qc);
  if (rv != 0) {
    rpci_set_error("ngtcp2_conn_client_new: %s", ngtcp2_strerror(rv));
    goto fail;
  }
  ngtcp2_conn_set_tls_native_handle(qc->conn, qc->tls);
  if (params->keep_alive_ms > 0)
    ngtcp2_conn_set_keep_alive_timeout(qc->conn,
                                       (uint64_t)params->keep_alive_ms * NGTCP2_MILLISECONDS);
  rpci_loop_call(loop, start_polls_task, qc);
  pthread_mutex_lock(&qc->mu);
  flush_locked(qc);
  pthread_mutex_unlock(&qc->mu);
  return qc;
fail:
  qconn_destroy(qc);
  return NULL;
}

rpci_qconn *rpci_qconn_accept(rpci_endpoint *ep, rpci_loop *loop, int fd, const ngtcp2_pkt_hd *hd,
                              const struct sockaddr *local, socklen_t local_len,
                              const struct sockaddr *remote, socklen_t remote_len,
                              rpci_tls_ctx *tls, const rpci_qconn_params *params,
                              const rpci_qconn_events *ev, void *user) {
  rpci_qconn *qc = qconn_alloc(loop, 1, tls, ev, user);
  if (!qc) return NULL;
  qc->ep = ep;
  qc->fd = fd;
  memcpy(&qc->local, local, local_len);
  qc->local_len = local_len;
  memcpy(&qc->remote, remote, remote_len);
  qc->remote_len = remote_len;
  rpci_addr_str(remote, qc->peer, sizeof qc->peer);
  if (rpci_tls_session_new(tls, &qc->tls, NULL, &qc->conn_ref) != 0) goto fail;
  ngtcp2_cid scid;
  scid.datalen = SCID_LEN;
  gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
  ngtcp2_callbacks cb;
  fill_callbacks(&cb, 1);
  ngtcp2_settings st;
  ngtcp2_transport_params tp;
  fill_settings(&st, &tp, params, 1);
  tp.original_dcid = hd->dcid;
  tp.stateless_reset_token_present = 1;
  if (rpci_reset_token(tp.stateless_reset_token, &scid) != 0) goto fail;
  ngtcp2_path path = {{(struct sockaddr *)&qc->local, qc->local_len},
                      {(struct sockaddr *)&qc->remote, qc->remote_len},
                      NULL};
  int rv = ngtcp2_conn_server_new(&qc->conn, &hd->scid, &scid, &path, hd->version, &cb, &st, &tp,
                                  NULL, qc);
  if (rv != 0) {
    rpci_set_error("ngtcp2_conn_server_new: %s", ngtcp2_strerror(rv));
    goto fail;
  }
  ngtcp2_conn_set_tls_native_handle(qc->conn, qc->tls);
  if (params->keep_alive_ms > 0)
    ngtcp2_conn_set_keep_alive_timeout(qc->conn,
                                       (uint64_t)params->keep_alive_ms * NGTCP2_MILLISECONDS);
  start_polls_task(qc); /* we are on the loop thread */
  return qc;
fail:
  qconn_destroy(qc);
  return NULL;
}

size_t rpci_qconn_scids(rpci_qconn *qc, ngtcp2_cid *out, size_t max) {
  size_t n = ngtcp2_conn_get_num_scid(qc->conn);
  if (n > max) return 0;
  ngtcp2_conn_get_scid(qc->conn, out);
  return n;
}

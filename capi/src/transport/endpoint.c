/* A listening UDP endpoint: see endpoint.h for the design notes. */
#include "transport/endpoint.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "obs/log.h"
#include "transport/udp.h"

#define SCID_LEN 18
#define NBUCKETS 1024

typedef struct cid_entry {
  struct cid_entry *next;
  ngtcp2_cid cid;
  rpci_qconn *qc;
} cid_entry;

typedef struct conn_entry {
  struct conn_entry *next;
  rpci_qconn *qc;
} conn_entry;

struct rpci_endpoint {
  rpci_loop *loop;
  int fd;
  struct sockaddr_storage local;
  socklen_t local_len;
  uv_poll_t poll;
  int polling;
  int accepting;
  rpci_tls_ctx *tls;
  rpci_qconn_params params;
  const rpci_qconn_events *ev;
  void *user;
  pthread_mutex_t mu; /* guards buckets and conns */
  cid_entry *buckets[NBUCKETS];
  conn_entry *conns; /* every live connection; holds one reference each */
  /* loop thread only: connections fed in the current batch */
  rpci_qconn *touched[64];
  size_t ntouched;
};

/* ---- stateless reset secret (per process) --------------------------------- */

static uint8_t reset_secret[32];
static pthread_once_t secret_once = PTHREAD_ONCE_INIT;
static void make_secret(void) { gnutls_rnd(GNUTLS_RND_KEY, reset_secret, sizeof reset_secret); }

int rpci_reset_token(uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], const ngtcp2_cid *cid) {
  pthread_once(&secret_once, make_secret);
  return ngtcp2_crypto_generate_stateless_reset_token(token, reset_secret, sizeof reset_secret,
                                                      cid) == 0
             ? 0
             : -1;
}

/* ---- CID table ----------------------------------------------------------- */

static size_t cid_hash(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return (size_t)(h % NBUCKETS);
}

void rpci_endpoint_add_cid(rpci_endpoint *ep, const ngtcp2_cid *cid, rpci_qconn *qc) {
  cid_entry *e = malloc(sizeof *e);
  if (!e) return; /* the peer then cannot use this CID; others still work */
  e->cid = *cid;
  e->qc = qc;
  size_t b = cid_hash(cid->data, cid->datalen);
  pthread_mutex_lock(&ep->mu);
  e->next = ep->buckets[b];
  ep->buckets[b] = e;
  pthread_mutex_unlock(&ep->mu);
}

static void remove_where(rpci_endpoint *ep, size_t b, const ngtcp2_cid *cid, rpci_qconn *qc) {
  cid_entry **pp = &ep->buckets[b];
  while (*pp) {
    cid_entry *e = *pp;
    if ((cid && ngtcp2_cid_eq(&e->cid, cid)) || (qc && e->qc == qc)) {
      *pp = e->next;
      free(e);
      if (cid) return;
    } else {
      pp = &e->next;
    }
  }
}

void rpci_endpoint_remove_cid(rpci_endpoint *ep, const ngtcp2_cid *cid) {
  pthread_mutex_lock(&ep->mu);
  remove_where(ep, cid_hash(cid->data, cid->datalen), cid, NULL);
  pthread_mutex_unlock(&ep->mu);
}

/* Returns the connection for dcid with a reference, or NULL. */
static rpci_qconn *lookup(rpci_endpoint *ep, const uint8_t *dcid, size_t len) {
  rpci_qconn *qc = NULL;
  pthread_mutex_lock(&ep->mu);
  for (cid_entry *e = ep->buckets[cid_hash(dcid, len)]; e; e = e->next) {
    if (e->cid.datalen == len && memcmp(e->cid.data, dcid, len) == 0) {
      qc = e->qc;
      rpci_qconn_ref(qc);
      break;
    }
  }
  pthread_mutex_unlock(&ep->mu);
  return qc;
}

void rpci_endpoint_forget(rpci_endpoint *ep, rpci_qconn *qc) {
  int found = 0;
  pthread_mutex_lock(&ep->mu);
  for (size_t b = 0; b < NBUCKETS; b++) remove_where(ep, b, NULL, qc);
  for (conn_entry **pp = &ep->conns; *pp; pp = &(*pp)->next) {
    if ((*pp)->qc == qc) {
      conn_entry *e = *pp;
      *pp = e->next;
      free(e);
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&ep->mu);
  if (found) rpci_qconn_unref(qc);
}

/* ---- receiving ------------------------------------------------------------ */

static void touch(rpci_endpoint *ep, rpci_qconn *qc) {
  for (size_t i = 0; i < ep->ntouched; i++) {
    if (ep->touched[i] == qc) {
      rpci_qconn_unref(qc); /* already holds a reference */
      return;
    }
  }
  if (ep->ntouched == sizeof ep->touched / sizeof ep->touched[0]) {
    rpci_qconn_batch_end(qc);
    rpci_qconn_unref(qc);
    return;
  }
  ep->touched[ep->ntouched++] = qc;
}

static void send_stateless_reset(rpci_endpoint *ep, const struct sockaddr *from, socklen_t fromlen,
                                 const uint8_t *dcid, size_t dcidlen, size_t pktlen) {
  /* Never answer a packet with a reset at least as large (no loops). */
  if (pktlen <= NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN + 1) return;
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, dcid, dcidlen);
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  if (rpci_reset_token(token, &cid) != 0) return;
  uint8_t rnd[NGTCP2_MIN_STATELESS_RESET_RANDLEN];
  gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
  uint8_t buf[1452];
  size_t randlen = pktlen - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
  if (randlen > sizeof rnd) randlen = sizeof rnd;
  ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, sizeof buf, token, rnd, randlen);
  if (n > 0) {
    size_t len = (size_t)n;
    rpci_udp_send_batch(ep->fd, from, fromlen, &buf, &len, 1);
  }
}

static void on_packet(void *arg, const struct sockaddr *from, socklen_t fromlen,
                      const uint8_t *data, size_t len) {
  rpci_endpoint *ep = arg;
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, SCID_LEN);
  if (rv != 0) return; /* version negotiation not offered: v1 only */
  rpci_qconn *qc = lookup(ep, vc.dcid, vc.dcidlen);
  if (qc) {
    rpci_qconn_feed(qc, from, fromlen, data, len);
    touch(ep, qc);
    return;
  }
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, data, len) != 0) {
    if (!(data[0] & 0x80)) send_stateless_reset(ep, from, fromlen, vc.dcid, vc.dcidlen, len);
    return;
  }
  if (!ep->accepting) return;
  qc = rpci_qconn_accept(ep, ep->loop, ep->fd, &hd, (struct sockaddr *)&ep->local, ep->local_len,
                         from, fromlen, ep->tls, &ep->params, ep->ev, ep->user);
  if (!qc) {
    rpci_log(RPCI_LOG_WARN, "cannot accept a connection: %s", rpci_get_error());
    return;
  }
  conn_entry *ce = malloc(sizeof *ce);
  if (!ce) {
    rpci_qconn_unref(qc);
    return;
  }
  ce->qc = qc; /* the table's reference is the one accept returned */
  pthread_mutex_lock(&ep->mu);
  ce->next = ep->conns;
  ep->conns = ce;
  pthread_mutex_unlock(&ep->mu);
  rpci_endpoint_add_cid(ep, &hd.dcid, qc);
  ngtcp2_cid scids[8];
  rpci_qconn_lock(qc);
  size_t n = rpci_qconn_scids(qc, scids, 8);
  rpci_qconn_unlock(qc);
  for (size_t i = 0; i < n; i++) rpci_endpoint_add_cid(ep, &scids[i], qc);
  rpci_qconn_ref(qc);
  rpci_qconn_feed(qc, from, fromlen, data, len);
  touch(ep, qc);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  rpci_endpoint *ep = h->data;
  rpci_udp_recv_each(ep->fd, on_packet, ep, NULL);
  for (size_t i = 0; i < ep->ntouched; i++) {
    rpci_qconn_batch_end(ep->touched[i]);
    rpci_qconn_unref(ep->touched[i]);
  }
  ep->ntouched = 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void start_task(void *arg) {
  rpci_endpoint *ep = arg;
  if (uv_poll_init(rpci_loop_uv(ep->loop), &ep->poll, ep->fd) == 0) {
    ep->poll.data = ep;
    ep->polling = 1;
    uv_poll_start(&ep->poll, UV_READABLE, on_readable);
  }
}

rpci_endpoint *rpci_endpoint_new(rpci_loop *loop, const struct sockaddr *addr, socklen_t len,
                                 rpci_tls_ctx *tls, const rpci_qconn_params *params,
                                 const rpci_qconn_events *ev, void *user) {
  rpci_endpoint *ep = calloc(1, sizeof *ep);
  if (!ep) {
    rpci_set_error("out of memory");
    return NULL;
  }
  ep->fd = rpci_udp_bind(addr, len, &ep->local, &ep->local_len);
  if (ep->fd < 0) {
    free(ep);
    return NULL;
  }
  pthread_mutex_init(&ep->mu, NULL);
  ep->loop = loop;
  ep->accepting = 1;
  rpci_tls_ctx_ref(tls);
  ep->tls = tls;
  ep->params = *params;
  ep->ev = ev;
  ep->user = user;
  rpci_loop_call(loop, start_task, ep);
  return ep;
}

int rpci_endpoint_port(const rpci_endpoint *ep) {
  return rpci_addr_port((const struct sockaddr *)&ep->local);
}

static void set_accepting_task(void *arg) {
  rpci_endpoint *ep = ((void **)arg)[0];
  ep->accepting = (int)(intptr_t)((void **)arg)[1];
}

void rpci_endpoint_set_accepting(rpci_endpoint *ep, int on) {
  void *args[2] = {ep, (void *)(intptr_t)on};
  rpci_loop_call(ep->loop, set_accepting_task, args);
}

static void on_poll_closed(uv_handle_t *h) { (void)h; }

static void stop_task(void *arg) {
  rpci_endpoint *ep = arg;
  ep->accepting = 0;
  if (ep->polling) {
    ep->polling = 0;
    uv_poll_stop(&ep->poll);
    uv_close((uv_handle_t *)&ep->poll, on_poll_closed);
  }
}

static void noop_task(void *arg) { (void)arg; }

void rpci_endpoint_close(rpci_endpoint *ep, uint64_t app_error) {
  rpci_loop_call(ep->loop, stop_task, ep);
  for (;;) {
    pthread_mutex_lock(&ep->mu);
    rpci_qconn *qc = ep->conns ? ep->conns->qc : NULL;
    if (qc) rpci_qconn_ref(qc);
    pthread_mutex_unlock(&ep->mu);
    if (!qc) break;
    rpci_qconn_close(qc, app_error, "server shut down"); /* forgets qc */
    rpci_qconn_unref(qc);
  }
  /* Let the poll handle's close callback run before the memory goes. */
  rpci_loop_call(ep->loop, noop_task, NULL);
  if (ep->fd >= 0) close(ep->fd);
  ep->fd = -1;
}

void rpci_endpoint_free(rpci_endpoint *ep) {
  if (!ep) return;
  if (ep->fd >= 0) rpci_endpoint_close(ep, 0);
  for (size_t b = 0; b < NBUCKETS; b++) {
    while (ep->buckets[b]) {
      cid_entry *e = ep->buckets[b];
      ep->buckets[b] = e->next;
      free(e);
    }
  }
  rpci_tls_ctx_unref(ep->tls);
  pthread_mutex_destroy(&ep->mu);
  free(ep);
}

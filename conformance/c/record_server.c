/*
 * conformance_record_server: the byte-level proof of conformance/README.md
 * ("frames" case). A white-box server built on the transport itself, so it
 * sees the raw bytes of every request stream, which no public API shows.
 *
 * For each call it receives it checks, against conformance/vectors/frames.json:
 *   - the request header is byte-identical to the canonical header with the
 *     method and metadata of vector "request_header_timeout_metadata" and
 *     the timeout the client sent (every client sends its remaining time, so
 *     that one field cannot be fixed);
 *   - the message frame that follows is byte-identical to the message frame
 *     of vector "unary_request" ("hello"), and nothing else follows.
 * It answers one empty message and OK ("frames match"), or DATA_LOSS with
 * the first difference.
 *
 *   conformance_record_server CERT_FILE KEY_FILE   (frames.json is found next
 *   to $RPCNET_VECTORS)
 *
 * Design notes: everything runs on the library's I/O thread under the
 * connection lock (transport events); the main thread only waits for
 * SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "obs/log.h"
#include "rpc/options.h"
#include "transport/endpoint.h"
#include "transport/udp.h"
#include "wire/frame.h"

typedef struct rec {
  rpci_stream st; /* first */
  rpci_buf got;
} rec;

static char *want_method;
static rpci_md want_md;
static rpci_buf want_message; /* the whole message frame */

/* The frames of a vector's hex: header (and its byte length), message. */
static int split_vector(const cf_vectors *vectors, const char *name, rpci_frame *header,
                        size_t *header_len, rpci_buf *message) {
  const rpci_value *vec = cf_vectors_find(vectors, name, strlen(name));
  size_t n = 0;
  uint8_t *bytes = vec ? cf_vector_input(vec, &n) : NULL;
  if (!bytes) return -1;
  rpci_frame_reader *r = rpci_frame_reader_new(RPCI_DIR_REQUEST, NULL);
  size_t off = 0, used = 0;
  int rc = -1;
  rpci_frame f;
  memset(&f, 0, sizeof f);
  if (rpci_frame_reader_feed(r, bytes, n, &used, &f) == 0 && f.type == RPCI_FRAME_HEADER) {
    off = used;
    if (header)
      *header = f;
    else
      rpci_frame_clear(&f);
    if (header_len) *header_len = used;
    rc = 0;
    if (message) {
      memset(&f, 0, sizeof f);
      rc = rpci_frame_reader_feed(r, bytes + off, n - off, &used, &f) == 0 &&
                   f.type == RPCI_FRAME_MESSAGE && off + used == n
               ? rpci_buf_append(message, bytes + off, used)
               : -1;
      rpci_frame_clear(&f);
    }
  }
  rpci_frame_reader_free(r);
  free(bytes);
  return rc;
}

static int load_expectations(void) {
  const char *values = getenv("RPCNET_VECTORS");
  if (!values) return -1;
  char path[4096];
  snprintf(path, sizeof path, "%s", values);
  char *slash = strrchr(path, '/');
  snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0),
           "frames.json");
  cf_vectors frames;
  if (cf_vectors_load(&frames, path) != 0) return -1;
  const cf_vectors *list = &frames;
  rpci_frame h;
  memset(&h, 0, sizeof h);
  int rc = split_vector(list, "request_header_timeout_metadata", &h, NULL, NULL);
  if (rc == 0) {
    want_method = h.method;
    want_md = h.metadata;
    h.method = NULL;
    memset(&h.metadata, 0, sizeof h.metadata);
    rc = split_vector(list, "unary_request", NULL, NULL, &want_message);
  }
  rpci_frame_clear(&h);
  cf_vectors_free(&frames);
  return rc;
}

/* Compares one recorded request stream; returns NULL or why it differs. */
static const char *check(const rpci_buf *b, char *why, size_t whylen) {
  rpci_frame_reader *r = rpci_frame_reader_new(RPCI_DIR_REQUEST, NULL);
  rpci_frame h;
  memset(&h, 0, sizeof h);
  size_t used = 0;
  const char *res = NULL;
  if (rpci_frame_reader_feed(r, b->data, b->len, &used, &h) != 0 || h.type != RPCI_FRAME_HEADER) {
    snprintf(why, whylen, "no request header: %s", rpci_frame_reader_error(r));
    res = why;
  } else {
    rpci_buf want = RPCI_BUF_INIT;
    rpci_frame_encode_header(&want, want_method, h.timeout_ms, &want_md);
    size_t rest = b->len - used;
    if (h.timeout_ms < 0 || used != want.len || memcmp(b->data, want.data, used) != 0) {
      char *g = cf_hex(b->data, used, 120), *w = cf_hex(want.data, want.len, 120);
      snprintf(why, whylen,
               "header bytes %s, want %s (frames.json request_header_timeout_metadata)", g, w);
      free(g);
      free(w);
      res = why;
    } else if (rest != want_message.len || memcmp(b->data + used, want_message.data, rest) != 0) {
      char *g = cf_hex(b->data + used, rest, 120),
           *w = cf_hex(want_message.data, want_message.len, 120);
      snprintf(why, whylen, "message frame %s, want %s (frames.json unary_request)", g, w);
      free(g);
      free(w);
      res = why;
    }
    rpci_buf_free(&want);
  }
  rpci_frame_clear(&h);
  rpci_frame_reader_free(r);
  return res;
}

static void on_open(rpci_qconn *qc, int64_t id, void *user) {
  rec *r = calloc(1, sizeof *r);
  if (!r) {
    rpci_qconn_reset_id(qc, id, RPCI_H_INTERNAL_ERROR);
    return;
  }
  rpci_stream_init(&r->st);
  rpci_stream_attach(qc, &r->st, id);
}

static void on_data(rpci_stream *s, const uint8_t *d, size_t n, int fin) {
  rec *r = (rec *)s;
  rpci_stream_consume(s, n);
  if (r->got.len + n > (1u << 20)) { /* a recording, not a sink */
    rpci_stream_reset(s, RPCI_H_LIMIT_EXCEEDED);
    return;
  }
  rpci_buf_append(&r->got, d, n);
  if (!fin) return;
  char why[1024];
  const char *bad = check(&r->got, why, sizeof why);
  /* A well-formed unary answer: one (empty) message when OK, then status. */
  rpci_buf st = RPCI_BUF_INIT;
  if (!bad) rpci_buf_push(&st, 0x40);
  rpci_frame_encode_status(&st, bad ? 15 /* DATA_LOSS */ : 0, bad ? bad : "frames match", NULL);
  rpci_stream_write(s, st.data, st.len, 1);
  rpci_buf_free(&st);
  fprintf(stderr, "record: %s\n", bad ? bad : "frames match");
}

static void on_reset(rpci_stream *s, uint64_t code) { (void)s, (void)code; }

static void on_close(rpci_stream *s, uint64_t code) {
  rec *r = (rec *)s;
  rpci_buf_free(&r->got);
  free(r);
}

static const rpci_qconn_events events = {.stream_open = on_open,
                                         .stream_data = on_data,
                                         .stream_reset = on_reset,
                                         .stream_close = on_close};

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: conformance_record_server CERT_FILE KEY_FILE\n");
    return 2;
  }
  if (load_expectations() != 0) {
    fprintf(stderr, "record: cannot load frames.json next to $RPCNET_VECTORS\n");
    return 1;
  }
  rpci_options o;
  rpci_options_default(&o);
  o.cert_file = argv[1];
  o.key_file = argv[2];
  rpci_tls_ctx *tls = rpci_tls_ctx_new(1, &o);
  struct sockaddr_storage ss;
  socklen_t len;
  if (!tls || rpci_parse_addr("127.0.0.1:0", 1, &ss, &len, NULL, 0) != 0) {
    fprintf(stderr, "record: %s\n", rpci_get_error());
    return 1;
  }
  rpci_qconn_params p = {.max_concurrent_streams = 100,
                         .idle_timeout_ms = 30000,
                         .keep_alive_ms = 0,
                         .handshake_timeout_ms = 5000};
  rpci_endpoint *ep =
      rpci_endpoint_new(rpci_loop_pick(0), (struct sockaddr *)&ss, len, tls, &p, &events, NULL);
  if (!ep) {
    fprintf(stderr, "record: %s\n", rpci_get_error());
    return 1;
  }
  printf("PORT %d\n", rpci_endpoint_port(ep));
  fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sig;
  sigwait(&set, &sig);
  rpci_endpoint_close(ep, RPCI_H_NO_ERROR);
  rpci_endpoint_free(ep);
  rpci_tls_ctx_unref(tls);
  rpci_md_free(&want_md);
  free(want_method);
  rpci_buf_free(&want_message);
  return 0;
}

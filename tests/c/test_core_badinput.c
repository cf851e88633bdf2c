/*
 * Bad input from a raw QUIC peer. The peer is the library's own transport
 * (rpci_qconn) driven by hand, so it can put arbitrary bytes on a stream:
 * garbage, a message over max_message_size, a first item that is not a map,
 * a stream that ends mid-frame. Each bad stream must be reset with the
 * documented application error code (docs/wire-format.md) while the same
 * connection, and the server, keep serving well-formed calls.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "rpc/options.h"
#include "testutil.h"
#include "transport/qconn.h"
#include "transport/udp.h"
#include "wire/frame.h"

typedef struct raw_stream {
  rpci_stream st; /* first */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rpci_buf got;
  int fin, reset, closed;
  uint64_t reset_code, close_code;
} raw_stream;

static void ev_data(rpci_stream *s, const uint8_t *d, size_t n, int fin) {
  raw_stream *r = (raw_stream *)s;
  rpci_stream_consume(s, n);
  pthread_mutex_lock(&r->mu);
  rpci_buf_append(&r->got, d, n);
  if (fin) r->fin = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void ev_reset(rpci_stream *s, uint64_t code) {
  raw_stream *r = (raw_stream *)s;
  pthread_mutex_lock(&r->mu);
  if (!r->reset) r->reset_code = code;
  r->reset = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void ev_close(rpci_stream *s, uint64_t code) {
  raw_stream *r = (raw_stream *)s;
  pthread_mutex_lock(&r->mu);
  r->closed = 1;
  r->close_code = code;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static const rpci_qconn_events events = {
    .stream_data = ev_data, .stream_reset = ev_reset, .stream_close = ev_close};

static rpci_qconn *raw_connect(rpcnet_server *srv, rpci_tls_ctx **tls_out) {
  rpci_options o;
  rpci_options_default(&o);
  o.ca_file = (char *)tu_pki("ca.pem");
  rpci_tls_ctx *tls = rpci_tls_ctx_new(0, &o);
  if (!tls) return NULL;
  struct sockaddr_storage ss;
  socklen_t len;
  if (rpci_parse_addr(tu_server_addr(srv, 0), 0, &ss, &len, NULL, 0) != 0) return NULL;
  rpci_qconn_params p = {.max_concurrent_streams = 100,
                         .idle_timeout_ms = 30000,
                         .keep_alive_ms = 0,
                         .handshake_timeout_ms = 5000};
  rpci_qconn *qc = rpci_qconn_connect(rpci_loop_pick(0), (struct sockaddr *)&ss, len, tls,
                                      "localhost", &p, &events, NULL);
  *tls_out = tls;
  if (!qc) return NULL;
  for (int i = 0; i < 500; i++) {
    rpci_qconn_lock(qc);
    rpci_qconn_state st = rpci_qconn_state_get(qc);
    rpci_qconn_unlock(qc);
    if (st == RPCI_QC_ESTABLISHED) return qc;
    if (st == RPCI_QC_CLOSED) break;
    tu_sleep_ms(10);
  }
  rpci_qconn_unref(qc);
  return NULL;
}

/* Sends bytes (with FIN when fin) on a new stream and waits until the
 * server answers (FIN), resets it, or 5 s pass. */
static void raw_send(rpci_qconn *qc, raw_stream *r, const uint8_t *bytes, size_t n, int fin) {
  memset(r, 0, sizeof *r);
  rpci_stream_init(&r->st);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  rpci_qconn_lock(qc);
  if (rpci_stream_open(qc, &r->st) == 0) rpci_stream_write(&r->st, bytes, n, fin);
  rpci_qconn_unlock(qc);
  int64_t until = tu_now_ms() + 5000;
  pthread_mutex_lock(&r->mu);
  while (!r->fin && !r->reset && !r->closed && tu_now_ms() < until) {
    pthread_mutex_unlock(&r->mu);
    tu_sleep_ms(2);
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
}

static void raw_done(rpci_qconn *qc, raw_stream *r) {
  /* Make sure the transport has let go of the stream before it goes. */
  rpci_qconn_lock(qc);
  rpci_stream_reset(&r->st, RPCI_H_CANCELLED);
  rpci_qconn_unlock(qc);
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&r->mu);
    int closed = r->closed;
    pthread_mutex_unlock(&r->mu);
    if (closed) break;
    tu_sleep_ms(2);
  }
  rpci_buf_free(&r->got);
}

static void echo(rpcnet_request *req, void *user) {
  (void)user;
  size_t n;
  const void *d = rpcnet_request_data(req, &n);
  rpcnet_request_reply(req, d, n);
}

/* A well-formed unary request for "echo" carrying payload. */
static void good_request(rpci_buf *b, const char *payload) {
  rpci_frame_encode_header(b, "echo", 5000, NULL);
  uint8_t head[9];
  size_t n = strlen(payload);
  rpci_buf_append(b, head, rpci_frame_message_head(head, n));
  rpci_buf_append(b, payload, n);
}

static void check_good_call(rpci_qconn *qc, const char *payload) {
  rpci_buf b = RPCI_BUF_INIT;
  good_request(&b, payload);
  raw_stream r;
  raw_send(qc, &r, b.data, b.len, 1);
  rpci_buf_free(&b);
  CHECK(r.fin);
  CHECK(!r.reset);
  /* Decode the answer: message then status OK. */
  rpci_frame_reader *rd = rpci_frame_reader_new(RPCI_DIR_RESPONSE, NULL);
  REQUIRE(rd);
  size_t off = 0;
  int got_msg = 0, got_status = -1;
  while (off < r.got.len) {
    rpci_frame f;
    memset(&f, 0, sizeof f);
    size_t used = 0;
    if (rpci_frame_reader_feed(rd, r.got.data + off, r.got.len - off, &used, &f) != 0) break;
    off += used;
    if (f.type == RPCI_FRAME_MESSAGE)
      got_msg = f.len == strlen(payload) && !memcmp(f.data, payload, f.len);
    if (f.type == RPCI_FRAME_STATUS) got_status = f.status;
    rpci_frame_clear(&f);
    if (!used) break;
  }
  CHECK(got_msg);
  CHECK_EQ_INT(got_status, 0);
  CHECK_EQ_INT(rpci_frame_reader_finish(rd), RPCI_WIRE_OK);
  rpci_frame_reader_free(rd);
  raw_done(qc, &r);
}

static void check_reset(rpci_qconn *qc, const char *what, const uint8_t *bytes, size_t n, int fin,
                        uint64_t want) {
  raw_stream r;
  raw_send(qc, &r, bytes, n, fin);
  fprintf(stderr, "%s: reset=%d code=0x%llx\n", what, r.reset, (unsigned long long)r.reset_code);
  CHECK(r.reset);
  CHECK_EQ_INT(r.reset_code, want);
  raw_done(qc, &r);
  /* The connection still serves. */
  check_good_call(qc, what);
}

static void test_bad_streams(void) {
  rpcnet_server *srv =
      tu_server_start(tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem",
                                "max_message_size", "1024", NULL),
                      "127.0.0.1:0");
  REQUIRE(srv);
  rpcnet_server_handle(srv, "echo", echo, NULL);
  rpci_tls_ctx *tls = NULL;
  rpci_qconn *qc = raw_connect(srv, &tls);
  REQUIRE(qc);
  check_good_call(qc, "warm-up");

  /* Garbage: 0xff is a "break" where no indefinite item is open. */
  static const uint8_t garbage[] = {0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef};
  check_reset(qc, "garbage", garbage, sizeof garbage, 1, RPCI_H_PROTOCOL_ERROR);

  /* First item not a map: a byte string where the header belongs. */
  static const uint8_t not_map[] = {0x43, 'a', 'b', 'c'};
  check_reset(qc, "first item not a map", not_map, sizeof not_map, 1, RPCI_H_PROTOCOL_ERROR);

  /* A message over max_message_size (1024): the head alone is enough. */
  rpci_buf b = RPCI_BUF_INIT;
  rpci_frame_encode_header(&b, "echo", -1, NULL);
  uint8_t head[9];
  rpci_buf_append(&b, head, rpci_frame_message_head(head, 4096));
  uint8_t filler[4096] = {0};
  rpci_buf_append(&b, filler, sizeof filler);
  check_reset(qc, "oversized message", b.data, b.len, 1, RPCI_H_LIMIT_EXCEEDED);
  rpci_buf_free(&b);

  /* A head claiming 8 GiB: refused at once, nothing allocated for it. */
  rpci_frame_encode_header(&b, "echo", -1, NULL);
  static const uint8_t huge[] = {0x5b, 0, 0, 0, 2, 0, 0, 0, 0};
  rpci_buf_append(&b, huge, sizeof huge);
  check_reset(qc, "8 GiB claim", b.data, b.len, 0, RPCI_H_LIMIT_EXCEEDED);
  rpci_buf_free(&b);

  /* The stream ends in the middle of a message. */
  rpci_frame_encode_header(&b, "echo", -1, NULL);
  rpci_buf_append(&b, head, rpci_frame_message_head(head, 100));
  rpci_buf_append(&b, "short", 5);
  check_reset(qc, "truncated message", b.data, b.len, 1, RPCI_H_PROTOCOL_ERROR);
  rpci_buf_free(&b);

  /* The server as a whole still serves a normal client. */
  rpcnet_client *cli = tu_client_for(srv);
  REQUIRE(cli);
  void *resp = NULL;
  size_t n = 0;
  CHECK_EQ_INT(rpcnet_client_call(cli, "echo", "ok", 2, &resp, &n, 5000), RPCNET_OK);
  CHECK(n == 2 && resp && !memcmp(resp, "ok", 2));
  rpcnet_free(resp);
  rpcnet_client_close(cli);

  rpci_qconn_close(qc, RPCI_H_NO_ERROR, "test done");
  rpci_qconn_unref(qc);
  rpci_tls_ctx_unref(tls);
  rpcnet_server_free(srv);
}

/* Garbage after a streaming call was handed to the application: the
 * application still owns the request, sees it cancelled, and finishing it
 * releases it (ASan's leak check proves the release). */
static void test_bad_input_after_dispatch(void) {
  rpcnet_server *s = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), "127.0.0.1:0");
  REQUIRE(s);
  rpcnet_server_handle_stream(s, "chat", NULL, NULL);
  rpci_tls_ctx *tls = NULL;
  rpci_qconn *qc = raw_connect(s, &tls);
  REQUIRE(qc);
  raw_stream r;
  memset(&r, 0, sizeof r);
  rpci_stream_init(&r.st);
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  rpci_buf b = RPCI_BUF_INIT;
  rpci_frame_encode_header(&b, "chat", 5000, NULL);
  rpci_qconn_lock(qc);
  REQUIRE(rpci_stream_open(qc, &r.st) == 0);
  rpci_stream_write(&r.st, b.data, b.len, 0);
  rpci_qconn_unlock(qc);
  rpci_buf_free(&b);
  rpcnet_request *req = NULL;
  CHECK_EQ_INT(rpcnet_server_next(s, 5000, &req), RPCNET_OK);
  REQUIRE(req);
  static const uint8_t garbage[] = {0xff, 0xff, 0xff};
  rpci_qconn_lock(qc);
  rpci_stream_write(&r.st, garbage, sizeof garbage, 1);
  rpci_qconn_unlock(qc);
  void *d = NULL;
  size_t n = 0;
  int rc = rpcnet_request_recv(req, 5000, &d, &n);
  fprintf(stderr, "recv after garbage: %s\n", rpcnet_status_name(rc));
  CHECK_EQ_INT(rc, RPCNET_CANCELLED);
  CHECK(rpcnet_request_cancelled(req));
  CHECK(rpcnet_request_finish(req, RPCNET_OK, NULL) != RPCNET_OK); /* released either way */
  raw_done(qc, &r);
  rpci_qconn_close(qc, RPCI_H_NO_ERROR, "test done");
  rpci_qconn_unref(qc);
  rpci_tls_ctx_unref(tls);
  rpcnet_server_free(s);
}

/* A peer that opens many unary calls and never finishes them can make the
 * server buffer at most its connection window (2 x max_message_size +
 * 1 MiB) of bytes no handler has seen, not max_message_size per stream. */
static void test_unfinished_requests_bounded(void) {
  rpcnet_server *s =
      tu_server_start(tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem",
                                "max_message_size", "1048576", NULL),
                      "127.0.0.1:0");
  REQUIRE(s);
  rpcnet_server_handle(s, "echo", echo, NULL);
  rpci_tls_ctx *tls = NULL;
  rpci_qconn *qc = raw_connect(s, &tls);
  REQUIRE(qc);
  enum { N = 48, BODY = 1000 * 1000 };
  static raw_stream rs[N];
  static uint8_t body[BODY];
  for (int i = 0; i < N; i++) {
    memset(&rs[i], 0, sizeof rs[i]);
    rpci_stream_init(&rs[i].st);
    pthread_mutex_init(&rs[i].mu, NULL);
    pthread_cond_init(&rs[i].cv, NULL);
    rpci_buf b = RPCI_BUF_INIT;
    rpci_frame_encode_header(&b, "echo", 30000, NULL);
    uint8_t head[9];
    rpci_buf_append(&b, head, rpci_frame_message_head(head, BODY + 1)); /* one byte never comes */
    rpci_qconn_lock(qc);
    if (rpci_stream_open(qc, &rs[i].st) == 0) {
      rpci_stream_write(&rs[i].st, b.data, b.len, 0);
      rpci_stream_write(&rs[i].st, body, BODY, 0);
    }
    rpci_qconn_unlock(qc);
    rpci_buf_free(&b);
  }
  tu_sleep_ms(1500); /* let flow control settle */
  uint64_t delivered = 0;
  rpci_qconn_lock(qc);
  for (int i = 0; i < N; i++) delivered += rs[i].st.sent;
  rpci_qconn_unlock(qc);
  uint64_t window = 2 * 1048576 + (1 << 20);
  fprintf(stderr, "offered %d MB, the server let in %.1f MB (window %.1f MB)\n", N * BODY / 1000000,
          delivered / 1e6, window / 1e6);
  CHECK(delivered <= window + 64 * 1024);
  /* The server still serves others. */
  rpcnet_client *cli = tu_client_for(s);
  REQUIRE(cli);
  void *resp = NULL;
  size_t n = 0;
  CHECK_EQ_INT(rpcnet_client_call(cli, "echo", "ok", 2, &resp, &n, 5000), RPCNET_OK);
  rpcnet_free(resp);
  rpcnet_client_close(cli);
  rpci_qconn_close(qc, RPCI_H_NO_ERROR, "test done");
  for (int i = 0; i < N; i++) rpci_buf_free(&rs[i].got);
  rpci_qconn_unref(qc);
  rpci_tls_ctx_unref(tls);
  rpcnet_server_free(s);
}

int main(void) {
  RUN(test_bad_streams);
  RUN(test_unfinished_requests_bounded);
  RUN(test_bad_input_after_dispatch);
  return TEST_END();
}

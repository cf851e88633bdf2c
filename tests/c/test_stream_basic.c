/*
 * Streaming basics through the call handles: a bidirectional echo served by
 * a pulled streaming method, metadata in and trailers out, the readiness
 * fd, would-block results, client cancellation seen by the handler, and a
 * deadline that fires with nobody waiting.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static rpcnet_server *srv;
static pthread_t workers[4];

/* "echo": echoes each message, then trailers "x-count" and the request's
 * "x-token" back. "hold": waits until cancelled, then records it. */
static volatile int hold_saw_cancel;
static volatile int64_t hold_deadline_left = -2;

static void serve_echo(rpcnet_request *req) {
  int n = 0;
  void *d;
  size_t len;
  int rc;
  /* The request's fd turns readable when the first message is in. */
  struct pollfd p = {rpcnet_request_fd(req), POLLIN, 0};
  if (p.fd < 0 || poll(&p, 1, 5000) != 1) {
    rpcnet_request_finish(req, RPCNET_INTERNAL, "request fd never became readable");
    return;
  }
  while ((rc = rpcnet_request_recv(req, -1, &d, &len)) == RPCNET_OK) {
    rpcnet_request_send(req, d, len);
    rpcnet_free(d);
    n++;
  }
  char count[16];
  snprintf(count, sizeof count, "%d", n);
  rpcnet_request_set_trailer(req, "x-count", count, strlen(count));
  size_t tl = 0;
  const void *tok = rpcnet_request_metadata(req, "x-token-bin", &tl);
  if (tok) rpcnet_request_set_trailer(req, "x-token-bin", tok, tl);
  /* Listing gives the same entries as lookup, and NULL past the end. */
  size_t nmd = rpcnet_request_metadata_count(req), listed = 0;
  for (size_t i = 0; i < nmd; i++) {
    const void *v;
    size_t vl;
    const char *k = rpcnet_request_metadata_at(req, i, &v, &vl);
    size_t l2;
    const void *v2 = k ? rpcnet_request_metadata(req, k, &l2) : NULL;
    listed += v2 == v && l2 == vl;
  }
  if (rpcnet_request_metadata_at(req, nmd, NULL, NULL) == NULL && listed == nmd) {
    char nb[16];
    snprintf(nb, sizeof nb, "%zu", nmd);
    rpcnet_request_set_trailer(req, "x-md-count", nb, strlen(nb));
  }
  rpcnet_request_finish(req, rc == RPCNET_END_OF_STREAM ? RPCNET_OK : rc, "done");
}

static void serve_hold(rpcnet_request *req) {
  hold_deadline_left = rpcnet_request_deadline_ms(req);
  for (int i = 0; i < 500 && !rpcnet_request_cancelled(req); i++) tu_sleep_ms(10);
  hold_saw_cancel = rpcnet_request_cancelled(req);
  rpcnet_request_finish(req, RPCNET_OK, NULL); /* too late: the call is gone */
}

static void *worker(void *arg) {
  (void)arg;
  rpcnet_request *req;
  while (rpcnet_server_next(srv, -1, &req) == RPCNET_OK) {
    if (!strcmp(rpcnet_request_method(req), "echo"))
      serve_echo(req);
    else if (!strcmp(rpcnet_request_method(req), "finish_now"))
      rpcnet_request_finish(req, 0, NULL);
    else
      serve_hold(req);
  }
  return NULL;
}

static void test_bidi_echo_metadata_trailers(void) {
  rpcnet_client *cli = tu_client_for(srv);
  REQUIRE(cli);
  rpcnet_call *call = rpcnet_client_start(cli, "echo", 5000);
  REQUIRE(call);
  static const uint8_t token[] = {0, 1, 2, 0xff};
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "x-token-bin", token, sizeof token), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "bad", "\xff", 1), RPCNET_INVALID_ARGUMENT);
  int fd = rpcnet_call_fd(call);
  CHECK(fd >= 0);
  void *d;
  size_t len;
  CHECK_EQ_INT(rpcnet_call_recv(call, 0, &d, &len), RPCNET_WOULD_BLOCK);
  for (int i = 0; i < 100; i++) {
    char msg[32];
    int n = snprintf(msg, sizeof msg, "message %d", i);
    CHECK_EQ_INT(rpcnet_call_send(call, msg, (size_t)n), RPCNET_OK);
    if (i == 0) {
      CHECK_EQ_INT(rpcnet_call_set_metadata(call, "late", "x", 1), RPCNET_FAILED_PRECONDITION);
      struct pollfd p = {fd, POLLIN, 0};
      CHECK_EQ_INT(poll(&p, 1, 5000), 1); /* the echo makes the fd readable */
    }
    int rc = rpcnet_call_recv(call, -1, &d, &len);
    CHECK_EQ_INT(rc, RPCNET_OK);
    CHECK(rc == RPCNET_OK && len == (size_t)n && !memcmp(d, msg, len));
    rpcnet_free(d);
  }
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_recv(call, -1, &d, &len), RPCNET_END_OF_STREAM);
  const char *msg = NULL;
  CHECK_EQ_INT(rpcnet_call_status(call, &msg), RPCNET_OK);
  CHECK(msg && !strcmp(msg, "done"));
  size_t cl = 0;
  const char *count = rpcnet_call_trailer(call, "x-count", &cl);
  CHECK(count && cl == 3 && !memcmp(count, "100", 3));
  size_t tl = 0;
  const void *tok = rpcnet_call_trailer(call, "x-token-bin", &tl);
  CHECK(tok && tl == sizeof token && !memcmp(tok, token, tl));
  size_t mcl = 0;
  const char *mc = rpcnet_call_trailer(call, "x-md-count", &mcl);
  CHECK(mc && mcl == 1 && mc[0] == '1'); /* the server listed our one entry */
  CHECK_EQ_INT(rpcnet_call_trailer_count(call), 3);
  int seen = 0;
  for (size_t i = 0; i < rpcnet_call_trailer_count(call); i++) {
    const char *k = rpcnet_call_trailer_at(call, i, NULL, NULL);
    seen += k && (!strcmp(k, "x-count") || !strcmp(k, "x-token-bin") || !strcmp(k, "x-md-count"));
  }
  CHECK_EQ_INT(seen, 3);
  CHECK(rpcnet_call_trailer_at(call, 3, NULL, NULL) == NULL);
  struct pollfd p = {fd, POLLIN, 0};
  CHECK_EQ_INT(poll(&p, 1, 0), 1); /* ended: stays readable */
  rpcnet_call_free(call);
  rpcnet_client_close(cli);
}

static void test_cancel_reaches_handler(void) {
  rpcnet_client *cli = tu_client_for(srv);
  REQUIRE(cli);
  hold_saw_cancel = 0;
  rpcnet_call *call = rpcnet_client_start(cli, "hold", 10000);
  REQUIRE(call);
  CHECK_EQ_INT(rpcnet_call_send(call, "x", 1), RPCNET_OK);
  tu_sleep_ms(100);
  rpcnet_call_cancel(call);
  void *d;
  size_t len;
  CHECK_EQ_INT(rpcnet_call_recv(call, -1, &d, &len), RPCNET_END_OF_STREAM);
  CHECK_EQ_INT(rpcnet_call_status(call, NULL), RPCNET_CANCELLED);
  CHECK_EQ_INT(rpcnet_call_send(call, "y", 1), RPCNET_CANCELLED);
  for (int i = 0; i < 300 && !hold_saw_cancel; i++) tu_sleep_ms(10);
  CHECK(hold_saw_cancel);
  CHECK(hold_deadline_left > 0 && hold_deadline_left <= 10000);
  rpcnet_call_free(call);
  rpcnet_client_close(cli);
}

/* The send fd: writable at first, not writable once more than the send
 * window is unacknowledged (the "hold" handler never reads, so flow control
 * stops us), writable again when the call ends. */
static void test_send_fd(void) {
  rpcnet_client *cli = tu_client_for(srv);
  REQUIRE(cli);
  rpcnet_call *call = rpcnet_client_start(cli, "hold", 10000);
  REQUIRE(call);
  struct pollfd p = {rpcnet_call_send_fd(call), POLLOUT | POLLIN, 0};
  REQUIRE(p.fd >= 0);
  p.events = POLLIN;
  CHECK_EQ_INT(poll(&p, 1, 0), 1);
  static uint8_t chunk[64 * 1024];
  int sent = 0, stalled = 0;
  /* Send while the fd says there is room; acknowledgements keep making room
   * until the server's buffers and flow-control window are full. */
  for (int spins = 0; sent < 1000 && !stalled && spins < 100000; spins++) {
    int rc = rpcnet_call_send_timeout(call, chunk, sizeof chunk, 0);
    if (rc == RPCNET_OK) {
      sent++;
      continue;
    }
    CHECK_EQ_INT(rc, RPCNET_WOULD_BLOCK);
    if (rc != RPCNET_WOULD_BLOCK) break;
    stalled = poll(&p, 1, 300) == 0; /* no room within 300 ms: flow control holds us */
  }
  fprintf(stderr, "sent %d x 64 KiB before the send fd stayed quiet\n", sent);
  CHECK(stalled);
  rpcnet_call_cancel(call);
  CHECK_EQ_INT(poll(&p, 1, 1000), 1);
  rpcnet_call_free(call);
  rpcnet_client_close(cli);
}

static void test_deadline_without_waiting(void) {
  rpcnet_client *cli = tu_client_for(srv);
  REQUIRE(cli);
  hold_saw_cancel = 0;
  rpcnet_call *call = rpcnet_client_start(cli, "hold", 200);
  REQUIRE(call);
  CHECK_EQ_INT(rpcnet_call_send(call, "x", 1), RPCNET_OK);
  /* Nobody waits in recv: the fd must still turn readable at the deadline. */
  struct pollfd p = {rpcnet_call_fd(call), POLLIN, 0};
  int64_t t0 = tu_now_ms();
  CHECK_EQ_INT(poll(&p, 1, 5000), 1);
  int64_t took = tu_now_ms() - t0;
  fprintf(stderr, "deadline seen through the fd after %lld ms\n", (long long)took);
  CHECK(took < 1000);
  CHECK_EQ_INT(rpcnet_call_status(call, NULL), RPCNET_DEADLINE_EXCEEDED);
  for (int i = 0; i < 300 && !hold_saw_cancel; i++) tu_sleep_ms(10);
  CHECK(hold_saw_cancel); /* the server cancelled the handler at the deadline */
  rpcnet_call_free(call);
  rpcnet_client_close(cli);
}

/* The server goes away and something silent takes its port: calls that
 * must reconnect still end at their deadline, not at the handshake
 * timeout (5 s by default). */
static void test_deadline_while_reconnecting(void) {
  rpcnet_server *s = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), "127.0.0.1:0");
  REQUIRE(s);
  rpcnet_server_handle_stream(s, "echo", NULL, NULL);
  int port = rpcnet_server_port(s);
  rpcnet_client *cli = tu_client_for(s);
  REQUIRE(cli);
  rpcnet_server_free(s); /* closes the connection: the client must reconnect */
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  tu_sleep_ms(100);
  void *resp = NULL;
  size_t n = 0;
  int64_t t0 = tu_now_ms();
  int rc = rpcnet_client_call(cli, "echo", "x", 1, &resp, &n, 200);
  int64_t took = tu_now_ms() - t0;
  fprintf(stderr, "unary to a silent port: %s after %lld ms: %s\n", rpcnet_status_name(rc),
          (long long)took, rpcnet_last_error());
  CHECK_EQ_INT(rc, RPCNET_DEADLINE_EXCEEDED);
  CHECK(took < 200 + 300);
  rpcnet_call *call = rpcnet_client_start(cli, "echo", 200);
  REQUIRE(call);
  t0 = tu_now_ms();
  rc = rpcnet_call_recv(call, -1, &resp, &n);
  took = tu_now_ms() - t0;
  CHECK_EQ_INT(rc, RPCNET_END_OF_STREAM);
  CHECK_EQ_INT(rpcnet_call_status(call, NULL), RPCNET_DEADLINE_EXCEEDED);
  CHECK(took < 200 + 300);
  rpcnet_call_free(call);
  rpcnet_client_close(cli);
  close(fd);
}

/* Unary through call handles from many threads at once: every call must
 * deliver its one message before END_OF_STREAM (a race once let the final
 * status overtake the last message). */
static void *handle_worker(void *arg) {
  rpcnet_client *cli = arg;
  long bad = 0;
  for (int i = 0; i < 50; i++) {
    rpcnet_call *call = rpcnet_client_start(cli, "echo", 10000);
    if (!call) return (void *)1;
    char msg[32];
    int n = snprintf(msg, sizeof msg, "call %d", i);
    int got = 0;
    void *d;
    size_t len;
    /* Half the calls send and close in one go. */
    int sent = i % 2 ? rpcnet_call_send_last(call, msg, (size_t)n) == RPCNET_OK
                     : rpcnet_call_send(call, msg, (size_t)n) == RPCNET_OK &&
                           rpcnet_call_close_send(call) == RPCNET_OK;
    if (i % 2 && sent) sent = rpcnet_call_send(call, "x", 1) == RPCNET_FAILED_PRECONDITION;
    if (sent) {
      while (rpcnet_call_recv(call, -1, &d, &len) == RPCNET_OK) {
        got += len == (size_t)n && !memcmp(d, msg, len);
        rpcnet_free(d);
      }
    }
    bad += got != 1 || rpcnet_call_status(call, NULL) != RPCNET_OK;
    rpcnet_call_free(call);
  }
  return (void *)bad;
}

static void test_handle_unary_many_threads(void) {
  rpcnet_client *cli = tu_client_for(srv);
  REQUIRE(cli);
  pthread_t th[32];
  long bad = 0;
  for (int i = 0; i < 32; i++) pthread_create(&th[i], NULL, handle_worker, cli);
  for (int i = 0; i < 32; i++) {
    void *r;
    pthread_join(th[i], &r);
    bad += (long)r;
  }
  fprintf(stderr, "calls without their message or not OK: %ld of 1600\n", bad);
  CHECK_EQ_INT(bad, 0);
  rpcnet_client_close(cli);
}

/* A server may end a call OK before the client closes its side (server
 * streaming that ignores the request): closing then is harmless. */
static void test_close_send_after_server_finished(void) {
  rpcnet_client *cli = tu_client_for(srv);
  REQUIRE(cli);
  rpcnet_call *call = rpcnet_client_start(cli, "finish_now", 5000);
  REQUIRE(call);
  CHECK_EQ_INT(rpcnet_call_send(call, "x", 1), RPCNET_OK);
  void *d;
  size_t len;
  CHECK_EQ_INT(rpcnet_call_recv(call, -1, &d, &len), RPCNET_END_OF_STREAM);
  CHECK_EQ_INT(rpcnet_call_status(call, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_send(call, "y", 1), RPCNET_FAILED_PRECONDITION); /* sending is not */
  rpcnet_call_free(call);
  rpcnet_client_close(cli);
}

int main(void) {
  srv = tu_server_start(tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL),
                        "127.0.0.1:0");
  if (!srv) return 1;
  rpcnet_server_handle_stream(srv, "echo", NULL, NULL);
  rpcnet_server_handle_stream(srv, "hold", NULL, NULL);
  rpcnet_server_handle_stream(srv, "finish_now", NULL, NULL);
  for (int i = 0; i < 4; i++) pthread_create(&workers[i], NULL, worker, NULL);
  RUN(test_bidi_echo_metadata_trailers);
  RUN(test_cancel_reaches_handler);
  RUN(test_send_fd);
  RUN(test_deadline_without_waiting);
  RUN(test_deadline_while_reconnecting);
  RUN(test_handle_unary_many_threads);
  RUN(test_close_send_after_server_finished);
  rpcnet_server_shutdown(srv, 1000);
  for (int i = 0; i < 4; i++) pthread_join(workers[i], NULL);
  rpcnet_server_free(srv);
  return TEST_END();
}

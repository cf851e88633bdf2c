/*
 * Black-box tests of the public API over real QUIC on loopback: unary echo
 * (inline handler, pulled method served by rpcnet_server_next, pulled method
 * served from poll() on rpcnet_server_fd), IPv6, unknown methods, handler
 * failures, late replies from another thread, peer strings, config errors and
 * status names.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "testutil.h"

#define MIB (1024 * 1024)

static const size_t sizes[] = {0, 1, 1024, MIB};

/* ---- server side ---------------------------------------------------------- */

/* Answers one request according to its method. Used by the inline handlers
 * and by the threads that serve pulled methods. */
static void serve(rpcnet_request *req) {
  const char *method = rpcnet_request_method(req);
  size_t len = 12345;
  const void *data = rpcnet_request_data(req, &len);
  if (!method || !data) {
    rpcnet_request_fail(req, RPCNET_INTERNAL, "request method or data is NULL");
    return;
  }
  if (strcmp(method, "fail") == 0) {
    rpcnet_request_fail(req, RPCNET_NOT_FOUND, "no such key");
  } else if (strcmp(method, "peer") == 0) {
    const char *peer = rpcnet_request_peer(req);
    rpcnet_request_reply(req, peer ? peer : "(null)", peer ? strlen(peer) : 6);
  } else {
    rpcnet_request_reply(req, data, len);
  }
}

static void inline_handler(rpcnet_request *req, void *user) {
  (void)user;
  serve(req);
}

/* Set when a serving loop must give up (the server failed to report its
 * shutdown); see join_server_loop. */
static _Atomic int loops_stop;

/* Joins a serving thread that must end by itself soon after shutdown; if it
 * does not within 10 s, records a failure and stops it. */
static void join_server_loop(pthread_t th) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 10;
  if (pthread_timedjoin_np(th, NULL, &ts) != 0) {
    fprintf(stderr, "serving loop did not see the shutdown within 10 s\n");
    CHECK(0);
    loops_stop = 1;
    pthread_join(th, NULL);
  }
  loops_stop = 0;
}

/* Serves pulled calls with a blocking rpcnet_server_next until shutdown. */
static void *next_loop(void *arg) {
  rpcnet_server *srv = arg;
  while (!loops_stop) {
    rpcnet_request *req = NULL;
    int rc = rpcnet_server_next(srv, 200, &req);
    if (rc == RPCNET_DEADLINE_EXCEEDED) continue;
    if (rc != RPCNET_OK) break; /* UNAVAILABLE after shutdown */
    serve(req);
  }
  return NULL;
}

/* Serves pulled calls from an event loop: poll() on the server's fd, then a
 * non-blocking rpcnet_server_next. */
static _Atomic int poll_loop_served;
static void *poll_loop(void *arg) {
  rpcnet_server *srv = arg;
  int fd = rpcnet_server_fd(srv);
  while (!loops_stop) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, 200);
    if (n < 0) break;
    if (n == 0) continue;
    rpcnet_request *req = NULL;
    int rc = rpcnet_server_next(srv, 0, &req);
    if (rc == RPCNET_DEADLINE_EXCEEDED) continue; /* spurious: another taker */
    if (rc != RPCNET_OK) break;
    poll_loop_served++;
    serve(req);
  }
  return NULL;
}

/* Late replies: the handler hands the request to a thread that answers it. */
static pthread_mutex_t late_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t late_cv = PTHREAD_COND_INITIALIZER;
static rpcnet_request *late_queue[64];
static int late_n, late_stop;
static _Atomic int late_reply_rc = -1;

static void late_handler(rpcnet_request *req, void *user) {
  (void)user;
  pthread_mutex_lock(&late_mu);
  if (late_n < 64) {
    late_queue[late_n++] = req;
    req = NULL;
  }
  pthread_cond_signal(&late_cv);
  pthread_mutex_unlock(&late_mu);
  if (req) rpcnet_request_fail(req, RPCNET_RESOURCE_EXHAUSTED, "late queue full");
}

static void *late_replier(void *arg) {
  (void)arg;
  pthread_mutex_lock(&late_mu);
  for (;;) {
    while (late_n == 0 && !late_stop) pthread_cond_wait(&late_cv, &late_mu);
    if (late_n == 0) break;
    rpcnet_request *req = late_queue[--late_n];
    pthread_mutex_unlock(&late_mu);
    tu_sleep_ms(50); /* the handler has long returned */
    size_t len;
    const uint8_t *d = rpcnet_request_data(req, &len);
    char out[256];
    int n = snprintf(out, sizeof out, "late:%.*s", (int)(len < 200 ? len : 200), (const char *)d);
    late_reply_rc = rpcnet_request_reply(req, out, (size_t)n);
    pthread_mutex_lock(&late_mu);
  }
  pthread_mutex_unlock(&late_mu);
  return NULL;
}

/* ---- client side ---------------------------------------------------------- */

/* Calls method with a patterned payload of each size and checks the echo is
 * byte-exact. */
static void check_echo_sizes(rpcnet_client *cli, const char *method) {
  uint8_t *buf = malloc(MIB);
  REQUIRE(buf);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    tu_fill(buf, n, (uint32_t)(n + 7));
    if (n == 1) buf[0] = 0; /* the 1-byte payload is a single NUL */
    void *resp = NULL;
    size_t resp_len = 999;
    int rc = rpcnet_client_call(cli, method, n ? buf : NULL, n, &resp, &resp_len, 20000);
    if (rc != RPCNET_OK)
      fprintf(stderr, "%s %zu B: %s: %s\n", method, n, rpcnet_status_name(rc), rpcnet_last_error());
    CHECK_EQ_INT(rc, RPCNET_OK);
    if (rc == RPCNET_OK) {
      CHECK(resp != NULL);
      CHECK_EQ_INT(resp_len, n);
      if (resp && resp_len == n) CHECK(memcmp(resp, buf, n) == 0);
    }
    rpcnet_free(resp);
  }
  /* A non-NULL pointer with length 0 is an empty message too. */
  void *resp = NULL;
  size_t resp_len = 999;
  int rc = rpcnet_client_call(cli, method, buf, 0, &resp, &resp_len, 20000);
  CHECK_EQ_INT(rc, RPCNET_OK);
  CHECK(resp != NULL);
  CHECK_EQ_INT(resp_len, 0);
  rpcnet_free(resp);
  free(buf);
}

/* ---- cases ----------------------------------------------------------------- */

static void test_version_and_status_names(void) {
  CHECK(strcmp(rpcnet_version(), "0.1.0") == 0);
  static const char *names[] = {"OK",
                                "CANCELLED",
                                "UNKNOWN",
                                "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED",
                                "NOT_FOUND",
                                "ALREADY_EXISTS",
                                "PERMISSION_DENIED",
                                "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION",
                                "ABORTED",
                                "OUT_OF_RANGE",
                                "UNIMPLEMENTED",
                                "INTERNAL",
                                "UNAVAILABLE",
                                "DATA_LOSS",
                                "UNAUTHENTICATED"};
  for (int i = 0; i <= 16; i++) {
    const char *n = rpcnet_status_name(i);
    CHECK(n != NULL);
    if (n && strcmp(n, names[i]) != 0) {
      fprintf(stderr, "status %d: got %s, want %s\n", i, n, names[i]);
      CHECK(0);
    }
  }
  CHECK(strcmp(rpcnet_status_name(17), "UNKNOWN_STATUS") == 0);
  CHECK(strcmp(rpcnet_status_name(-3), "UNKNOWN_STATUS") == 0);
  CHECK(strcmp(rpcnet_status_name(RPCNET_END_OF_STREAM), "END_OF_STREAM") == 0);
  CHECK(strcmp(rpcnet_status_name(RPCNET_WOULD_BLOCK), "WOULD_BLOCK") == 0);
  CHECK(strcmp(rpcnet_status_name(1000000), "UNKNOWN_STATUS") == 0);
  CHECK(rpcnet_last_error() != NULL);
  rpcnet_free(NULL);
  rpcnet_config_free(NULL);
  rpcnet_server_free(NULL);
  rpcnet_client_close(NULL);
}

static void test_config_errors(void) {
  rpcnet_config *cfg = rpcnet_config_new();
  REQUIRE(cfg);
  CHECK_EQ_INT(rpcnet_config_set(cfg, "no_such_key", "1"), RPCNET_INVALID_ARGUMENT);
  fprintf(stderr, "unknown key: %s\n", rpcnet_last_error());
  CHECK(tu_contains(rpcnet_last_error(), "no_such_key"));

  static const char *bad[][2] = {
      {"idle_timeout_ms", "abc"},        {"handshake_timeout_ms", "12x"},
      {"default_timeout_ms", ""},        {"max_message_size", "-1"},
      {"verify_peer", "maybe"},          {"require_client_cert", "yes please"},
      {"max_concurrent_streams", "1.5"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = rpcnet_config_set(cfg, bad[i][0], bad[i][1]);
    if (rc != RPCNET_INVALID_ARGUMENT)
      fprintf(stderr, "%s=\"%s\" gave %s\n", bad[i][0], bad[i][1], rpcnet_status_name(rc));
    CHECK_EQ_INT(rc, RPCNET_INVALID_ARGUMENT);
    if (!tu_contains(rpcnet_last_error(), bad[i][0])) {
      fprintf(stderr, "%s: last_error \"%s\" does not name the key\n", bad[i][0],
              rpcnet_last_error());
      CHECK(0);
    }
  }
  /* Good values are accepted. */
  CHECK_EQ_INT(rpcnet_config_set(cfg, "verify_peer", "false"), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_config_set(cfg, "verify_peer", "1"), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_config_set(cfg, "idle_timeout_ms", "1000"), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_config_set(cfg, "max_message_size", "1048576"), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_config_set(cfg, "server_name", "localhost"), RPCNET_OK);
  rpcnet_config_free(cfg);
}

static void test_listen_and_port(void) {
  rpcnet_config *cfg = tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL);
  REQUIRE(cfg);
  rpcnet_server *srv = rpcnet_server_new(cfg);
  rpcnet_config_free(cfg);
  REQUIRE(srv);
  CHECK_EQ_INT(rpcnet_server_port(srv), -1);
  CHECK_EQ_INT(rpcnet_server_listen(srv, "not an address"), RPCNET_INVALID_ARGUMENT);
  fprintf(stderr, "bad address: %s\n", rpcnet_last_error());
  CHECK_EQ_INT(rpcnet_server_port(srv), -1);
  CHECK_EQ_INT(rpcnet_server_listen(srv, "127.0.0.1:0"), RPCNET_OK);
  int port = rpcnet_server_port(srv);
  CHECK(port > 0 && port < 65536);
  CHECK_EQ_INT(rpcnet_server_listen(srv, "127.0.0.1:0"), RPCNET_INVALID_ARGUMENT);
  CHECK_EQ_INT(rpcnet_server_port(srv), port);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "", inline_handler, NULL), RPCNET_INVALID_ARGUMENT);
  CHECK_EQ_INT(rpcnet_server_handle(srv, NULL, inline_handler, NULL), RPCNET_INVALID_ARGUMENT);

  /* Binding a port already in use fails with UNAVAILABLE. */
  cfg = tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL);
  REQUIRE(cfg);
  rpcnet_server *srv2 = rpcnet_server_new(cfg);
  rpcnet_config_free(cfg);
  CHECK(srv2 != NULL);
  if (srv2) {
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    CHECK_EQ_INT(rpcnet_server_listen(srv2, addr), RPCNET_UNAVAILABLE);
    fprintf(stderr, "port in use: %s\n", rpcnet_last_error());
    CHECK(rpcnet_last_error()[0] != 0);
    rpcnet_server_free(srv2);
  }
  rpcnet_server_free(srv);
}

static void test_echo_inline_and_next(void) {
  rpcnet_server *srv = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), "127.0.0.1:0");
  REQUIRE(srv);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "echo", inline_handler, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "pulled", NULL, NULL), RPCNET_OK);
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, next_loop, srv) == 0);

  rpcnet_client *cli = tu_client_for(srv);
  CHECK(cli != NULL);
  if (cli) {
    fprintf(stderr, "inline handler\n");
    check_echo_sizes(cli, "echo");
    fprintf(stderr, "pulled method, rpcnet_server_next loop\n");
    check_echo_sizes(cli, "pulled");
    rpcnet_client_close(cli);
  }
  CHECK_EQ_INT(rpcnet_server_shutdown(srv, 1000), RPCNET_OK);
  join_server_loop(th);
  rpcnet_server_free(srv);
}

static void test_echo_poll_fd(void) {
  rpcnet_server *srv = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), "127.0.0.1:0");
  REQUIRE(srv);
  CHECK(rpcnet_server_fd(srv) >= 0);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "pulled", NULL, NULL), RPCNET_OK);
  /* Nothing queued yet: the fd is not readable. */
  struct pollfd pfd = {.fd = rpcnet_server_fd(srv), .events = POLLIN};
  CHECK_EQ_INT(poll(&pfd, 1, 0), 0);
  poll_loop_served = 0;
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, poll_loop, srv) == 0);
  rpcnet_client *cli = tu_client_for(srv);
  CHECK(cli != NULL);
  if (cli) {
    check_echo_sizes(cli, "pulled");
    CHECK_EQ_INT(poll_loop_served, sizeof sizes / sizeof sizes[0] + 1);
    rpcnet_client_close(cli);
  }
  /* Shutdown makes the fd readable, and next then says UNAVAILABLE, which
   * ends the poll loop. */
  CHECK_EQ_INT(rpcnet_server_shutdown(srv, 1000), RPCNET_OK);
  join_server_loop(th);
  rpcnet_server_free(srv);
}

static void test_ipv6(void) {
  rpcnet_server *srv = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), "[::1]:0");
  REQUIRE(srv);
  CHECK(rpcnet_server_port(srv) > 0);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "echo", inline_handler, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "peer", inline_handler, NULL), RPCNET_OK);
  rpcnet_config *cfg = tu_config("ca_file", "@ca.pem", NULL);
  REQUIRE(cfg);
  const char *addr = tu_server_addr(srv, 1);
  rpcnet_client *cli = rpcnet_client_connect(cfg, addr); /* server_name "::1" */
  rpcnet_config_free(cfg);
  if (!cli) fprintf(stderr, "connect %s: %s\n", addr, rpcnet_last_error());
  CHECK(cli != NULL);
  if (cli) {
    check_echo_sizes(cli, "echo");
    void *resp = NULL;
    size_t len = 0;
    CHECK_EQ_INT(rpcnet_client_call(cli, "peer", NULL, 0, &resp, &len, 10000), RPCNET_OK);
    if (resp) {
      fprintf(stderr, "ipv6 peer: %.*s\n", (int)len, (char *)resp);
      CHECK(len > 4 && memmem(resp, len, "::1", 3) != NULL);
    }
    rpcnet_free(resp);
    rpcnet_client_close(cli);
  }
  rpcnet_server_free(srv);
}

static void test_errors_peer_and_late_reply(void) {
  rpcnet_server *srv = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), "127.0.0.1:0");
  REQUIRE(srv);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "fail", inline_handler, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "peer", inline_handler, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "late", late_handler, NULL), RPCNET_OK);
  /* Registering again replaces: "replaced" first fails, then echoes. */
  CHECK_EQ_INT(rpcnet_server_handle(srv, "replaced", late_handler, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_server_handle(srv, "replaced", inline_handler, NULL), RPCNET_OK);
  late_stop = 0;
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, late_replier, NULL) == 0);

  rpcnet_client *cli = tu_client_for(srv);
  CHECK(cli != NULL);
  if (cli) {
    void *resp = (void *)1;
    size_t len = 0;
    /* Unknown method. */
    int rc = rpcnet_client_call(cli, "no.such.method", "x", 1, &resp, &len, 10000);
    CHECK_EQ_INT(rc, RPCNET_UNIMPLEMENTED);
    CHECK(resp == NULL);
    fprintf(stderr, "unknown method: %s\n", rpcnet_last_error());
    CHECK(tu_contains(rpcnet_last_error(), "no.such.method"));

    /* Handler failure status and message. */
    resp = (void *)1;
    rc = rpcnet_client_call(cli, "fail", "k", 1, &resp, &len, 10000);
    CHECK_EQ_INT(rc, RPCNET_NOT_FOUND);
    CHECK(resp == NULL);
    fprintf(stderr, "fail: %s\n", rpcnet_last_error());
    CHECK(tu_contains(rpcnet_last_error(), "no such key"));

    /* A later success clears nothing the caller relies on, and works. */
    resp = NULL;
    rc = rpcnet_client_call(cli, "replaced", "abc", 3, &resp, &len, 10000);
    CHECK_EQ_INT(rc, RPCNET_OK);
    CHECK(resp && len == 3 && memcmp(resp, "abc", 3) == 0);
    rpcnet_free(resp);

    /* Peer string. */
    resp = NULL;
    rc = rpcnet_client_call(cli, "peer", NULL, 0, &resp, &len, 10000);
    CHECK_EQ_INT(rc, RPCNET_OK);
    if (resp) {
      char *peer = strndup(resp, len);
      fprintf(stderr, "peer: %s\n", peer);
      CHECK(strncmp(peer, "127.0.0.1:", 10) == 0);
      CHECK(atoi(peer + 10) > 0);
      CHECK(strstr(peer, "subject=") == NULL); /* no client certificate */
      free(peer);
    }
    rpcnet_free(resp);

    /* Reply later from another thread. */
    resp = NULL;
    late_reply_rc = -1;
    rc = rpcnet_client_call(cli, "late", "hello", 5, &resp, &len, 10000);
    CHECK_EQ_INT(rc, RPCNET_OK);
    CHECK(resp && len == 10 && memcmp(resp, "late:hello", 10) == 0);
    rpcnet_free(resp);
    /* The replier stores the result just after the reply went out. */
    for (int i = 0; i < 500 && late_reply_rc == -1; i++) tu_sleep_ms(10);
    CHECK_EQ_INT(late_reply_rc, RPCNET_OK);

    /* Invalid arguments to call. */
    resp = (void *)1;
    rc = rpcnet_client_call(cli, NULL, "x", 1, &resp, &len, 1000);
    CHECK_EQ_INT(rc, RPCNET_INVALID_ARGUMENT);
    rc = rpcnet_client_call(cli, "late", NULL, 5, &resp, &len, 1000);
    CHECK_EQ_INT(rc, RPCNET_INVALID_ARGUMENT);
    rpcnet_client_close(cli);
  }
  pthread_mutex_lock(&late_mu);
  late_stop = 1;
  pthread_cond_signal(&late_cv);
  pthread_mutex_unlock(&late_mu);
  pthread_join(th, NULL);
  rpcnet_server_free(srv);
}

int main(void) {
  tu_pki_dir_locked();
  RUN(test_version_and_status_names);
  RUN(test_config_errors);
  RUN(test_listen_and_port);
  RUN(test_echo_inline_and_next);
  RUN(test_echo_poll_fd);
  RUN(test_ipv6);
  RUN(test_errors_peer_and_late_reply);
  return TEST_END();
}

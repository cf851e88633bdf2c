/*
 * Shutdown and teardown: draining calls in flight, UNAVAILABLE afterwards
 * (for the client and for rpcnet_server_next), a new server on the same port
 * reached again by the same client, requests held across rpcnet_server_free,
 * and rpcnet_client_close while other threads are inside calls.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"

#define NCALLS 4

static void echo_handler(rpcnet_request *req, void *user) {
  (void)user;
  size_t len;
  const void *d = rpcnet_request_data(req, &len);
  rpcnet_request_reply(req, d, len);
}

static rpcnet_server *start(const char *addr) {
  rpcnet_server *srv = tu_server_start(
      tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL), addr);
  if (srv) {
    rpcnet_server_handle(srv, "echo", echo_handler, NULL);
    rpcnet_server_handle(srv, "pulled", NULL, NULL);
  }
  return srv;
}

/* A caller thread: one call to "pulled" with a unique message. */
struct caller {
  pthread_t th;
  rpcnet_client *cli;
  char msg[32];
  int timeout_ms;
  int rc;
  int answer_ok; /* rc == OK and the answer echoes msg */
  char error[256];
};

static void *caller_main(void *arg) {
  struct caller *c = arg;
  void *resp = NULL;
  size_t len = 0;
  c->rc = rpcnet_client_call(c->cli, "pulled", c->msg, strlen(c->msg), &resp, &len, c->timeout_ms);
  snprintf(c->error, sizeof c->error, "%s", rpcnet_last_error());
  c->answer_ok =
      c->rc == RPCNET_OK && resp && len == strlen(c->msg) && memcmp(resp, c->msg, len) == 0;
  if (c->rc != RPCNET_OK && resp) c->answer_ok = -1; /* resp must be NULL on failure */
  rpcnet_free(resp);
  return NULL;
}

static int start_callers(struct caller *c, int n, rpcnet_client *cli, const char *tag) {
  for (int i = 0; i < n; i++) {
    c[i].cli = cli;
    c[i].timeout_ms = 20000;
    c[i].rc = -1;
    snprintf(c[i].msg, sizeof c[i].msg, "%s-%d", tag, i);
    if (pthread_create(&c[i].th, NULL, caller_main, &c[i]) != 0) return i;
  }
  return n;
}

/* Takes n queued calls (proving they are in flight at the server). */
static int take_requests(rpcnet_server *srv, rpcnet_request **reqs, int n) {
  int got = 0;
  int64_t end = tu_now_ms() + 10000;
  while (got < n && tu_now_ms() < end) {
    int rc = rpcnet_server_next(srv, 500, &reqs[got]);
    if (rc == RPCNET_OK) {
      got++;
    } else if (rc != RPCNET_DEADLINE_EXCEEDED) {
      fprintf(stderr, "rpcnet_server_next: %s: %s\n", rpcnet_status_name(rc), rpcnet_last_error());
      break;
    }
  }
  return got;
}

/* ---- drain ------------------------------------------------------------------ */

struct answerer {
  rpcnet_request **reqs;
  int n;
  _Atomic int go; /* set just before shutdown is called */
  int rcs[NCALLS];
};

static void *answerer_main(void *arg) {
  struct answerer *a = arg;
  while (!a->go) tu_sleep_ms(1);
  tu_sleep_ms(100); /* shutdown is draining by now */
  for (int i = 0; i < a->n; i++) {
    size_t len;
    const void *d = rpcnet_request_data(a->reqs[i], &len);
    a->rcs[i] = rpcnet_request_reply(a->reqs[i], d, len);
  }
  return NULL;
}

static void test_drain_then_restart(void) {
  rpcnet_server *srv = start("127.0.0.1:0");
  REQUIRE(srv);
  int port = rpcnet_server_port(srv);
  rpcnet_config *cfg = tu_config("ca_file", "@ca.pem", "handshake_timeout_ms", "1000", NULL);
  REQUIRE(cfg);
  rpcnet_client *cli = rpcnet_client_connect(cfg, tu_server_addr(srv, 0));
  rpcnet_config_free(cfg);
  if (!cli) {
    fprintf(stderr, "connect: %s\n", rpcnet_last_error());
    rpcnet_server_free(srv);
  }
  REQUIRE(cli);

  struct caller c[NCALLS];
  int started = start_callers(c, NCALLS, cli, "drain");
  CHECK_EQ_INT(started, NCALLS);
  rpcnet_request *reqs[NCALLS];
  int got = take_requests(srv, reqs, started);
  CHECK_EQ_INT(got, started);

  struct answerer a = {.reqs = reqs, .n = got};
  pthread_t ath;
  int have_answerer = pthread_create(&ath, NULL, answerer_main, &a) == 0;
  CHECK(have_answerer);
  a.go = 1;
  int64_t t0 = tu_now_ms();
  CHECK_EQ_INT(rpcnet_server_shutdown(srv, 2000), RPCNET_OK);
  fprintf(stderr, "shutdown(drain 2000) took %lld ms with %d calls answered after ~100 ms\n",
          (long long)(tu_now_ms() - t0), got);
  if (have_answerer) pthread_join(ath, NULL);
  for (int i = 0; i < got; i++) CHECK_EQ_INT(a.rcs[i], RPCNET_OK);
  for (int i = 0; i < started; i++) {
    pthread_join(c[i].th, NULL);
    if (c[i].rc != RPCNET_OK)
      fprintf(stderr, "drained call %d: %s: %s\n", i, rpcnet_status_name(c[i].rc), c[i].error);
    CHECK_EQ_INT(c[i].rc, RPCNET_OK);
    CHECK_EQ_INT(c[i].answer_ok, 1);
  }

  /* Shutdown again is harmless; listen after shutdown is refused. */
  CHECK_EQ_INT(rpcnet_server_shutdown(srv, 0), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_server_listen(srv, "127.0.0.1:0"), RPCNET_FAILED_PRECONDITION);

  /* next: UNAVAILABLE at once, whatever the timeout (a 3 s wait for a
   * "for ever" call would mean it blocked), and the fd is readable. */
  rpcnet_request *r = NULL;
  CHECK_EQ_INT(rpcnet_server_next(srv, 0, &r), RPCNET_UNAVAILABLE);
  CHECK_EQ_INT(rpcnet_server_next(srv, 3000, &r), RPCNET_UNAVAILABLE);
  struct pollfd pfd = {.fd = rpcnet_server_fd(srv), .events = POLLIN};
  CHECK_EQ_INT(poll(&pfd, 1, 1000), 1);

  /* Later calls on the same client fail with UNAVAILABLE. */
  void *resp = (void *)1;
  size_t len = 0;
  int rc = rpcnet_client_call(cli, "echo", "x", 1, &resp, &len, 10000);
  fprintf(stderr, "call after shutdown: %s: %s\n", rpcnet_status_name(rc), rpcnet_last_error());
  CHECK_EQ_INT(rc, RPCNET_UNAVAILABLE);
  CHECK(resp == NULL);
  rpcnet_server_free(srv);

  /* A new server on the same port is reached again by the same client, after
   * a few UNAVAILABLE answers at most (reconnect backoff). */
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  srv = start(addr);
  CHECK(srv != NULL);
  if (srv) {
    int64_t end = tu_now_ms() + 5000;
    int attempts = 0, last = -1;
    while (tu_now_ms() < end) {
      attempts++;
      resp = NULL;
      last = rpcnet_client_call(cli, "echo", "again", 5, &resp, &len, 2000);
      if (last == RPCNET_OK) break;
      CHECK(resp == NULL);
      if (last != RPCNET_UNAVAILABLE && last != RPCNET_DEADLINE_EXCEEDED)
        fprintf(stderr, "unexpected status while reconnecting: %s: %s\n", rpcnet_status_name(last),
                rpcnet_last_error());
      tu_sleep_ms(50);
    }
    fprintf(stderr, "new server on port %d: %s after %d attempt(s)\n", port,
            rpcnet_status_name(last), attempts);
    CHECK_EQ_INT(last, RPCNET_OK);
    if (last == RPCNET_OK) CHECK(resp && len == 5 && memcmp(resp, "again", 5) == 0);
    rpcnet_free(resp);
    /* And it keeps working. */
    if (last == RPCNET_OK) {
      resp = NULL;
      CHECK_EQ_INT(rpcnet_client_call(cli, "echo", "more", 4, &resp, &len, 5000), RPCNET_OK);
      rpcnet_free(resp);
    }
  }
  rpcnet_client_close(cli);
  rpcnet_server_free(srv);
}

/* ---- requests held across rpcnet_server_free ------------------------------ */

static void test_free_with_held_requests(void) {
  rpcnet_server *srv = start("127.0.0.1:0");
  REQUIRE(srv);
  rpcnet_client *cli = tu_client_for(srv);
  if (!cli) rpcnet_server_free(srv);
  REQUIRE(cli);
  struct caller c[2];
  int started = start_callers(c, 2, cli, "held");
  rpcnet_request *reqs[2];
  int got = take_requests(srv, reqs, started);
  CHECK_EQ_INT(got, 2);

  rpcnet_server_free(srv); /* no drain: the calls fail with UNAVAILABLE */
  for (int i = 0; i < started; i++) {
    pthread_join(c[i].th, NULL);
    fprintf(stderr, "call held by a freed server: %s: %s\n", rpcnet_status_name(c[i].rc),
            c[i].error);
    CHECK_EQ_INT(c[i].rc, RPCNET_UNAVAILABLE);
    CHECK(c[i].answer_ok == 0);
  }
  /* The held requests stay valid until answered; answering says
   * UNAVAILABLE. */
  for (int i = 0; i < got; i++) {
    CHECK(strcmp(rpcnet_request_method(reqs[i]), "pulled") == 0);
    size_t len = 0;
    const char *d = rpcnet_request_data(reqs[i], &len);
    CHECK(len == 6 && memcmp(d, "held-", 5) == 0);
    CHECK(strncmp(rpcnet_request_peer(reqs[i]), "127.0.0.1:", 10) == 0);
    int rc = i == 0 ? rpcnet_request_reply(reqs[i], d, len)
                    : rpcnet_request_fail(reqs[i], RPCNET_INTERNAL, "too late");
    CHECK_EQ_INT(rc, RPCNET_UNAVAILABLE);
  }
  rpcnet_client_close(cli);
}

/* ---- client close with calls in flight ------------------------------------ */

#define NCLOSE 8

static void test_client_close_in_flight(void) {
  rpcnet_server *srv = start("127.0.0.1:0");
  REQUIRE(srv);
  rpcnet_client *cli = tu_client_for(srv);
  if (!cli) rpcnet_server_free(srv);
  REQUIRE(cli);
  struct caller c[NCLOSE];
  int started = start_callers(c, NCLOSE, cli, "close");
  CHECK_EQ_INT(started, NCLOSE);
  /* Every call has reached the server, so every caller is inside
   * rpcnet_client_call when the client is closed. */
  rpcnet_request *reqs[NCLOSE];
  int got = take_requests(srv, reqs, started);
  CHECK_EQ_INT(got, started);

  rpcnet_client_close(cli);
  for (int i = 0; i < started; i++) {
    pthread_join(c[i].th, NULL);
    if (c[i].rc != RPCNET_CANCELLED)
      fprintf(stderr, "call %d after close: %s: %s\n", i, rpcnet_status_name(c[i].rc), c[i].error);
    CHECK(c[i].rc == RPCNET_CANCELLED || c[i].rc == RPCNET_UNAVAILABLE);
    CHECK(c[i].answer_ok == 0);
  }
  /* Answering the orphaned requests must not crash (the status depends on
   * whether the server has seen the CONNECTION_CLOSE yet). */
  for (int i = 0; i < got; i++) {
    size_t len;
    const void *d = rpcnet_request_data(reqs[i], &len);
    int rc = rpcnet_request_reply(reqs[i], d, len);
    if (i == 0) fprintf(stderr, "reply to a closed client: %s\n", rpcnet_status_name(rc));
  }
  /* The server still serves new clients. */
  rpcnet_client *cli2 = tu_client_for(srv);
  CHECK(cli2 != NULL);
  if (cli2) {
    void *resp = NULL;
    size_t len;
    CHECK_EQ_INT(rpcnet_client_call(cli2, "echo", "ok", 2, &resp, &len, 5000), RPCNET_OK);
    rpcnet_free(resp);
    rpcnet_client_close(cli2);
  }
  rpcnet_server_free(srv);
}

int main(void) {
  tu_pki_dir_locked();
  RUN(test_drain_then_restart);
  RUN(test_free_with_held_requests);
  RUN(test_client_close_in_flight);
  return TEST_END();
}

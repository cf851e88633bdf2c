/*
 * Streaming calls under load, black box:
 *   - 10,000 calls open at once on one connection (each sends one small
 *     message and closes its side before any answer is read), all echoed and
 *     completed OK; the same beyond a small max_concurrent_streams (calls
 *     wait for stream credit);
 *   - a slow reader: a server-streaming call whose server sends 64 KiB
 *     messages as fast as backpressure lets it while the client does not read
 *     for 2 s. The server must stall (bounded by flow-control windows and
 *     the library's buffers), memory must stay bounded, and other calls on
 *     the same connection must still complete; then everything arrives.
 * The process RSS (from /proc/self/statm) is printed around both.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "testutil.h"

#define M_ECHO "/load.Echo/Stream"
#define M_FIREHOSE "/load.Firehose/Stream"
#define M_UNARY "echo"

#define NCALLS 10000
#define STARTERS 4
#define WORKERS 4

#define FH_MSG (64 * 1024)
#define FH_TOTAL 4096    /* 256 MiB */
#define FH_STALL_MAX 200 /* 12.8 MiB: far above the windows, far below the total */
#define MIB (1024L * 1024L)

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Resident set size of this process in KiB. */
static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- server: echo each call's one message ----------------------------------- */

/* A call the inline handler could not finish without waiting. */
struct pending {
  struct pending *next;
  rpcnet_request *req;
  void *msg; /* the received message, once there */
  size_t len;
  int stage; /* 0: wait for the message, 1: send it back, 2: wait for the end */
};

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct pending *q_head, *q_tail;
static int q_stop;
static _Atomic long served_inline, served_worker, srv_errors;

/* Advances p as far as it can, waiting up to timeout_ms per step. Returns 1
 * when the call is answered (p->req released), 0 when it would block. */
static int echo_step(struct pending *p, int timeout_ms) {
  for (;;) {
    int rc;
    if (p->stage == 0) {
      rc = rpcnet_request_recv(p->req, timeout_ms, &p->msg, &p->len);
      if (rc == RPCNET_WOULD_BLOCK) return 0;
      if (rc != RPCNET_OK) {
        if (srv_errors++ < 5) fprintf(stderr, "server recv: %s\n", rpcnet_status_name(rc));
        rpcnet_request_finish(p->req, RPCNET_INVALID_ARGUMENT, "no message");
        return 1;
      }
      p->stage = 1;
    } else if (p->stage == 1) {
      rc = rpcnet_request_send(p->req, p->msg, p->len);
      if (rc == RPCNET_WOULD_BLOCK) return 0;
      rpcnet_free(p->msg);
      p->msg = NULL;
      if (rc != RPCNET_OK) {
        if (srv_errors++ < 5) fprintf(stderr, "server send: %s\n", rpcnet_status_name(rc));
        rpcnet_request_finish(p->req, RPCNET_INTERNAL, "send failed");
        return 1;
      }
      p->stage = 2;
    } else {
      void *extra = NULL;
      size_t len = 0;
      rc = rpcnet_request_recv(p->req, timeout_ms, &extra, &len);
      if (rc == RPCNET_WOULD_BLOCK) return 0;
      if (rc == RPCNET_OK) {
        rpcnet_free(extra);
        srv_errors++;
        rpcnet_request_finish(p->req, RPCNET_INVALID_ARGUMENT, "more than one message");
        return 1;
      }
      if (rc != RPCNET_END_OF_STREAM && srv_errors++ < 5)
        fprintf(stderr, "server recv (end): %s\n", rpcnet_status_name(rc));
      rc = rpcnet_request_finish(p->req, RPCNET_OK, NULL);
      if (rc != RPCNET_OK && srv_errors++ < 5)
        fprintf(stderr, "server finish: %s\n", rpcnet_status_name(rc));
      return 1;
    }
  }
}

/* Inline: answers at once when everything is there, else hands over. */
static void echo_inline(rpcnet_request *req, void *user) {
  (void)user;
  struct pending tmp = {.req = req};
  if (echo_step(&tmp, 0)) {
    served_inline++;
    return;
  }
  struct pending *p = malloc(sizeof *p);
  if (!p) {
    rpcnet_free(tmp.msg);
    rpcnet_request_finish(req, RPCNET_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  *p = tmp;
  pthread_mutex_lock(&q_mu);
  if (q_tail)
    q_tail->next = p;
  else
    q_head = p;
  q_tail = p;
  pthread_cond_signal(&q_cv);
  pthread_mutex_unlock(&q_mu);
}

static void *echo_worker(void *arg) {
  (void)arg;
  pthread_mutex_lock(&q_mu);
  for (;;) {
    while (!q_head && !q_stop) pthread_cond_wait(&q_cv, &q_mu);
    if (!q_head) break;
    struct pending *p = q_head;
    q_head = p->next;
    if (!q_head) q_tail = NULL;
    pthread_mutex_unlock(&q_mu);
    echo_step(p, -1);
    served_worker++;
    free(p);
    pthread_mutex_lock(&q_mu);
  }
  pthread_mutex_unlock(&q_mu);
  return NULL;
}

static void unary_echo(rpcnet_request *req, void *user) {
  (void)user;
  size_t len;
  const void *d = rpcnet_request_data(req, &len);
  rpcnet_request_reply(req, d, len);
}

/* ---- server: the firehose -------------------------------------------------------- */

static _Atomic long fh_sent;
static _Atomic int fh_done = 0, fh_send_rc = -100, fh_finish_rc = -100;

/* Takes firehose calls (pulled) and sends the number of 64 KiB messages
 * the request asks for, as fast as rpcnet_request_send lets it. */
static void *firehose_main(void *arg) {
  rpcnet_server *srv = arg;
  uint8_t *block = malloc(FH_MSG);
  if (!block) return NULL;
  tu_fill(block, FH_MSG, 77);
  for (;;) {
    rpcnet_request *req = NULL;
    int rc = rpcnet_server_next(srv, 100, &req);
    if (rc == RPCNET_DEADLINE_EXCEEDED) continue;
    if (rc != RPCNET_OK) break;
    void *d = NULL;
    size_t len = 0;
    rc = rpcnet_request_recv(req, -1, &d, &len);
    long n = rc == RPCNET_OK && len == 4 ? (long)get_u32(d) : -1;
    rpcnet_free(d);
    if (n < 0) {
      rpcnet_request_finish(req, RPCNET_INVALID_ARGUMENT, "want a 4-byte count");
      continue;
    }
    rc = RPCNET_OK;
    for (long i = 0; i < n && rc == RPCNET_OK; i++) {
      block[0] = (uint8_t)(i >> 24);
      block[1] = (uint8_t)(i >> 16);
      block[2] = (uint8_t)(i >> 8);
      block[3] = (uint8_t)i;
      rc = rpcnet_request_send(req, block, FH_MSG);
      if (rc == RPCNET_OK) fh_sent++;
    }
    fh_send_rc = rc;
    fh_finish_rc = rpcnet_request_finish(req, rc == RPCNET_OK ? RPCNET_OK : RPCNET_ABORTED,
                                         rc == RPCNET_OK ? NULL : "send failed");
    fh_done = 1;
  }
  free(block);
  return NULL;
}

/* ---- servers ------------------------------------------------------------------- */

static rpcnet_server *start_server(const char *max_streams) {
  rpcnet_server *srv =
      tu_server_start(tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem",
                                "max_concurrent_streams", max_streams, NULL),
                      "127.0.0.1:0");
  if (!srv) return NULL;
  if (rpcnet_server_handle_stream(srv, M_ECHO, echo_inline, NULL) != RPCNET_OK ||
      rpcnet_server_handle_stream(srv, M_FIREHOSE, NULL, NULL) != RPCNET_OK ||
      rpcnet_server_handle(srv, M_UNARY, unary_echo, NULL) != RPCNET_OK) {
    fprintf(stderr, "register: %s\n", rpcnet_last_error());
    rpcnet_server_free(srv);
    return NULL;
  }
  return srv;
}

static pthread_t workers[WORKERS];

static void workers_start(void) {
  q_stop = 0;
  for (int i = 0; i < WORKERS; i++) pthread_create(&workers[i], NULL, echo_worker, NULL);
}

static void workers_stop(void) {
  pthread_mutex_lock(&q_mu);
  q_stop = 1;
  pthread_cond_broadcast(&q_cv);
  pthread_mutex_unlock(&q_mu);
  for (int i = 0; i < WORKERS; i++) pthread_join(workers[i], NULL);
}

/* ---- many calls at once ---------------------------------------------------------- */

struct starter {
  pthread_t th;
  rpcnet_client *cli;
  pthread_barrier_t *barrier;
  int id, n, timeout_ms;
  rpcnet_call **calls;
  int start_failed, send_failed, ok, bad_status, bad_echo;
};

static int call_msg(char *buf, size_t cap, int id, int i) {
  return snprintf(buf, cap, "starter %d call %d: %0*d", id, i, 1 + (i % 24), i);
}

static void *starter_main(void *arg) {
  struct starter *s = arg;
  char buf[96];
  /* Phase 1: open every call, send its message and close the sending side,
   * reading nothing. */
  for (int i = 0; i < s->n; i++) {
    rpcnet_call *c = rpcnet_client_start(s->cli, M_ECHO, s->timeout_ms);
    s->calls[i] = c;
    if (!c) {
      if (s->start_failed++ < 3) fprintf(stderr, "start: %s\n", rpcnet_last_error());
      continue;
    }
    int len = call_msg(buf, sizeof buf, s->id, i);
    int rc = rpcnet_call_send(c, buf, (size_t)len);
    if (rc == RPCNET_OK) rc = rpcnet_call_close_send(c);
    if (rc != RPCNET_OK && s->send_failed++ < 3)
      fprintf(stderr, "send/close_send: %s: %s\n", rpcnet_status_name(rc), rpcnet_last_error());
  }
  if (s->barrier) pthread_barrier_wait(s->barrier); /* all calls are open now */
  if (s->barrier) pthread_barrier_wait(s->barrier); /* main measured RSS */
  /* Phase 2: read every answer and the end. */
  for (int i = 0; i < s->n; i++) {
    rpcnet_call *c = s->calls[i];
    if (!c) continue;
    void *d = NULL;
    size_t len = 0;
    int rc = rpcnet_call_recv(c, -1, &d, &len);
    int want = call_msg(buf, sizeof buf, s->id, i);
    if (rc == RPCNET_OK) {
      if (len != (size_t)want || memcmp(d, buf, len) != 0) s->bad_echo++;
      rpcnet_free(d);
      rc = rpcnet_call_recv(c, -1, &d, &len);
      if (rc == RPCNET_OK) {
        rpcnet_free(d);
        s->bad_echo++;
      }
    }
    const char *m = "";
    int st = rpcnet_call_status(c, &m);
    if (rc == RPCNET_END_OF_STREAM && st == RPCNET_OK) {
      s->ok++;
    } else if (s->bad_status++ < 3) {
      fprintf(stderr, "call %d/%d: recv %s, status %s \"%s\"\n", s->id, i, rpcnet_status_name(rc),
              rpcnet_status_name(st), m);
    }
    rpcnet_call_free(c);
  }
  return NULL;
}

/* ncalls calls from `starters` threads on one client of a server allowing
 * max_streams streams, each with a deadline of timeout_ms. */
static void many_calls(const char *max_streams, int ncalls, int starters, int timeout_ms) {
  served_inline = served_worker = srv_errors = 0;
  rpcnet_server *srv = start_server(max_streams);
  REQUIRE(srv);
  workers_start();
  rpcnet_client *cli = tu_client_for(srv);
  CHECK(cli != NULL);
  if (cli) {
    /* Warm up the connection, then measure. */
    void *resp = NULL;
    size_t len = 0;
    CHECK_EQ_INT(rpcnet_client_call(cli, M_UNARY, "w", 1, &resp, &len, 10000), RPCNET_OK);
    rpcnet_free(resp);
    long rss0 = rss_kib();
    int64_t t0 = tu_now_ms();
    struct starter st[8];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)starters + 1);
    int per = ncalls / starters;
    for (int i = 0; i < starters; i++) {
      st[i] = (struct starter){
          .cli = cli, .barrier = &barrier, .id = i, .n = per, .timeout_ms = timeout_ms};
      st[i].calls = calloc((size_t)per, sizeof *st[i].calls);
      REQUIRE(st[i].calls);
      REQUIRE(pthread_create(&st[i].th, NULL, starter_main, &st[i]) == 0);
    }
    pthread_barrier_wait(&barrier);
    long rss_open = rss_kib();
    int64_t t_open = tu_now_ms();
    pthread_barrier_wait(&barrier);
    int ok = 0, failed = 0;
    for (int i = 0; i < starters; i++) {
      pthread_join(st[i].th, NULL);
      free(st[i].calls);
      ok += st[i].ok;
      failed += st[i].start_failed + st[i].send_failed + st[i].bad_status + st[i].bad_echo;
    }
    pthread_barrier_destroy(&barrier);
    long rss1 = rss_kib();
    int64_t t1 = tu_now_ms();
    printf(
        "%d calls (max_concurrent_streams %s): RSS %ld KiB before, %ld KiB with all %d open "
        "(+%ld KiB, %.1f KiB per call), %ld KiB after; opened in %lld ms, all done in %lld ms; "
        "server answered %ld inline, %ld from workers\n",
        per * starters, max_streams, rss0, rss_open, per * starters, rss_open - rss0,
        (double)(rss_open - rss0) / (per * starters), rss1, (long long)(t_open - t0),
        (long long)(t1 - t0), (long)served_inline, (long)served_worker);
    CHECK_EQ_INT(ok, per * starters);
    CHECK_EQ_INT(failed, 0);
    CHECK_EQ_INT(served_inline + served_worker, per * starters);
    CHECK_EQ_INT(srv_errors, 0);
    /* The connection still works. */
    resp = NULL;
    CHECK_EQ_INT(rpcnet_client_call(cli, M_UNARY, "after", 5, &resp, &len, 10000), RPCNET_OK);
    rpcnet_free(resp);
    rpcnet_client_close(cli);
  }
  rpcnet_server_shutdown(srv, 1000);
  workers_stop();
  rpcnet_server_free(srv);
}

static void ten_thousand_calls_one_connection(void) {
  many_calls("10000", NCALLS, STARTERS, 120000);
}

/* Over the server's stream limit: the client must queue the calls until
 * streams free up, and every one still completes. */
static void calls_beyond_stream_limit(void) { many_calls("64", 2000, 2, 30000); }

/* ---- slow reader ------------------------------------------------------------------- */

static void slow_reader(void) {
  fh_sent = 0;
  fh_done = 0;
  fh_send_rc = fh_finish_rc = -100;
  rpcnet_server *srv = start_server("1024");
  REQUIRE(srv);
  pthread_t fh;
  REQUIRE(pthread_create(&fh, NULL, firehose_main, srv) == 0);
  rpcnet_client *cli = tu_client_for(srv);
  CHECK(cli != NULL);
  uint8_t *block = malloc(FH_MSG), *ubuf = malloc(FH_MSG);
  CHECK(block && ubuf);
  if (cli && block && ubuf) {
    tu_fill(block, FH_MSG, 77);
    tu_fill(ubuf, FH_MSG, 5);
    void *resp = NULL;
    size_t len = 0;
    CHECK_EQ_INT(rpcnet_client_call(cli, M_UNARY, "w", 1, &resp, &len, 10000), RPCNET_OK);
    rpcnet_free(resp);
    long rss0 = rss_kib();
    int64_t t0 = tu_now_ms();
    rpcnet_call *call = rpcnet_client_start(cli, M_FIREHOSE, 120000);
    REQUIRE(call);
    uint8_t req[4] = {(uint8_t)(FH_TOTAL >> 24), (uint8_t)(FH_TOTAL >> 16),
                      (uint8_t)(FH_TOTAL >> 8), (uint8_t)FH_TOTAL};
    CHECK_EQ_INT(rpcnet_call_send(call, req, 4), RPCNET_OK);
    CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);

    /* Not reading for 2 s; meanwhile unary calls on the same connection. */
    int unary_ok = 0, unary_n = 0;
    while (tu_now_ms() - t0 < 2000) {
      size_t n = unary_n % 2 ? FH_MSG : 1024;
      resp = NULL;
      int rc = rpcnet_client_call(cli, M_UNARY, ubuf, n, &resp, &len, 5000);
      if (rc == RPCNET_OK && len == n && memcmp(resp, ubuf, n) == 0)
        unary_ok++;
      else if (unary_n - unary_ok < 3)
        fprintf(stderr, "unary call %d during the stall: %s: %s\n", unary_n, rpcnet_status_name(rc),
                rpcnet_last_error());
      rpcnet_free(resp);
      unary_n++;
      tu_sleep_ms(20);
    }
    long c1 = fh_sent;
    long rss1 = rss_kib();
    tu_sleep_ms(500);
    long c2 = fh_sent;
    long rss2 = rss_kib();
    printf(
        "slow reader: server sent %ld x 64 KiB in the first 2 s, %ld after 2.5 s (of %d); "
        "RSS %ld KiB before, %ld KiB at 2 s (+%ld KiB), %ld KiB at 2.5 s; "
        "%d/%d unary calls OK meanwhile\n",
        c1, c2, FH_TOTAL, rss0, rss1, rss1 - rss0, rss2, unary_ok, unary_n);
    CHECK(c2 < FH_STALL_MAX); /* the server blocked */
    CHECK_EQ_INT(c2, c1);     /* and stays blocked */
    CHECK(unary_n > 0);
    CHECK_EQ_INT(unary_ok, unary_n);
#ifndef __SANITIZE_ADDRESS__
    CHECK(rss2 - rss0 < 64 * 1024); /* with 256 MiB pending */
#else
    /* ASan keeps freed memory (its quarantine, up to 256 MiB) resident: RSS
     * is no measure of live memory there, so it is only printed. */
#endif

    /* Now read everything. */
    long got = 0, bad = 0;
    int rc;
    void *d = NULL;
    while ((rc = rpcnet_call_recv(call, -1, &d, &len)) == RPCNET_OK) {
      const uint8_t *p = d;
      long seq = len >= 4 ? (long)get_u32(p) : -1;
      if (len != FH_MSG || seq != got || memcmp(p + 4, block + 4, FH_MSG - 4) != 0) {
        if (bad++ < 3) fprintf(stderr, "message %ld: %zu bytes, seq %ld\n", got, len, seq);
      }
      got++;
      rpcnet_free(d);
    }
    long rss3 = rss_kib();
    int64_t t3 = tu_now_ms();
    const char *m = "";
    int st = rpcnet_call_status(call, &m);
    printf(
        "slow reader: read %ld messages (%ld MiB) in %lld ms after the stall; status %s; "
        "RSS %ld KiB at the end\n",
        got, got * FH_MSG / MIB, (long long)(t3 - t0 - 2500), rpcnet_status_name(st), rss3);
    CHECK_EQ_INT(rc, RPCNET_END_OF_STREAM);
    CHECK_EQ_INT(st, RPCNET_OK);
    if (st != RPCNET_OK) fprintf(stderr, "status message: %s\n", m);
    CHECK_EQ_INT(got, FH_TOTAL);
    CHECK_EQ_INT(bad, 0);
    rpcnet_call_free(call);
    for (int i = 0; i < 500 && !fh_done; i++) tu_sleep_ms(10);
    CHECK_EQ_INT(fh_sent, FH_TOTAL);
    CHECK_EQ_INT(fh_send_rc, RPCNET_OK);
    CHECK_EQ_INT(fh_finish_rc, RPCNET_OK);
    rpcnet_client_close(cli);
  } else if (cli) {
    rpcnet_client_close(cli);
  }
  free(block);
  free(ubuf);
  rpcnet_server_shutdown(srv, 1000);
  pthread_join(fh, NULL);
  rpcnet_server_free(srv);
}

int main(void) {
  tu_pki_dir_locked();
  setvbuf(stdout, NULL, _IOLBF, 0);
  RUN(ten_thousand_calls_one_connection);
  RUN(calls_beyond_stream_limit);
  RUN(slow_reader);
  return TEST_END();
}

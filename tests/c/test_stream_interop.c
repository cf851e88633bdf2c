/*
 * Streaming calls, black box: the gRPC interoperability cases
 * (grpc/grpc doc/interop-test-descriptions.md) adapted to rpcnet's call
 * handles, plus the event-loop descriptor, non-blocking receive, request
 * deadlines, metadata rules and client-side backpressure.
 *
 * The server is a small "test service": every method is registered with
 * rpcnet_server_handle_stream as a pulled method (fn == NULL) and served by
 * worker threads that take calls with rpcnet_server_next, so the handlers may
 * block. Its messages (all sizes big-endian u32):
 *
 *   ask (UnaryCall, FullDuplexCall): [resp_size][status u8][mlen u16][mlen
 *     bytes of status message][pattern]. Status 0: answer with one message of
 *     resp_size bytes of pattern; otherwise finish the call with that status
 *     and message. The whole request is tu_fill(len, seed len) under its
 *     header, and the server checks those bytes.
 *   StreamingInputCall: each message is tu_fill(len, seed len); the answer is
 *     the sum of the lengths as a u32.
 *   StreamingOutputCall: one message [count][size]...; the answer is count
 *     messages of those sizes.
 *   EmptyCall: one empty message in, one out.
 *   Sleep: reads nothing and waits until the call is cancelled or its
 *     deadline passes, then reports what it saw (see struct obs).
 * Every answer's pattern is tu_fill(size, seed size ^ RESP_SEED). Handlers
 * echo a few request metadata keys as trailing metadata.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "testutil.h"

#define SVC "/grpc.testing.TestService/"
#define M_EMPTY SVC "EmptyCall"
#define M_UNARY SVC "UnaryCall"
#define M_CLIENT_STREAMING SVC "StreamingInputCall"
#define M_SERVER_STREAMING SVC "StreamingOutputCall"
#define M_DUPLEX SVC "FullDuplexCall"
#define M_SLEEP SVC "Sleep"
#define M_UNIMPLEMENTED "/grpc.testing.UnimplementedService/UnimplementedCall"

#define ASK_HDR 7
#define MSG_CAP 65536 /* longest status message in an ask, plus 1 */
#define RESP_SEED 0x5a5a5a5au
#define WORKERS 8
#define CALL_TIMEOUT_MS 20000
/* The listed correctness bound: the server sees a cancellation this soon. */
#define CANCEL_SEEN_MS 1000

#define KEY_INITIAL "x-grpc-test-echo-initial"
#define KEY_TRAILING_BIN "x-grpc-test-echo-trailing-bin"
#define VAL_INITIAL "test_initial_metadata_value"
static const uint8_t val_trailing_bin[] = {0x00, 0xab, 0xab, 0x00, 0xab, 0x00, 0x00, 0xab};
/* Keys the handlers echo as trailing metadata when the request has them. */
static const char *const echoed_keys[] = {KEY_INITIAL, KEY_TRAILING_BIN, "x-ok-bin", "x-late"};

static const size_t req_sizes[] = {27182, 8, 1828, 45904};
static const size_t resp_sizes[] = {31415, 9, 2653, 58979};

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Non-zero when data[from..len) is tu_fill(len, seed)[from..len). */
static int pattern_ok(const uint8_t *data, size_t len, size_t from, uint32_t seed) {
  if (from >= len) return 1;
  uint8_t *want = malloc(len);
  if (!want) return 0;
  tu_fill(want, len, seed);
  int ok = memcmp(data + from, want + from, len - from) == 0;
  free(want);
  return ok;
}

/* ---- server: the test service ---------------------------------------------- */

/* Failures seen by handlers; every case checks (and clears) the count. */
static _Atomic int srv_failures;
#define SRV_CHECK(cond)                                                                    \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "%s:%d: server-side CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      srv_failures++;                                                                      \
    }                                                                                      \
  } while (0)

/* What the last cancelled or expired call's handler observed. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  int64_t t_seen;         /* tu_now_ms() when the handler saw the end */
  int cancelled;          /* rpcnet_request_cancelled then (after up to 1 s) */
  int64_t deadline_first; /* rpcnet_request_deadline_ms at the start */
  int64_t deadline_final; /* ... at the end */
  int recv_rc;            /* what the handler's receive returned */
  int finish_rc;          /* what rpcnet_request_finish returned */
} obs = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Calls the Sleep handler took, and messages StreamingInputCall read: a case
 * waits for these before it cancels, so that the server holds the call. */
static _Atomic int sleepers, streamed_in;

/* The deadline the last FullDuplexCall handler saw at its start. */
static _Atomic int64_t duplex_deadline = -100;

static void obs_reset(void) {
  pthread_mutex_lock(&obs.mu);
  obs.done = 0;
  obs.t_seen = 0;
  obs.cancelled = -1;
  obs.deadline_first = obs.deadline_final = -100;
  obs.recv_rc = obs.finish_rc = -100;
  pthread_mutex_unlock(&obs.mu);
}

static void obs_report(int64_t t_seen, int cancelled, int64_t d_first, int64_t d_final, int recv_rc,
                       int finish_rc) {
  pthread_mutex_lock(&obs.mu);
  obs.done = 1;
  obs.t_seen = t_seen;
  obs.cancelled = cancelled;
  obs.deadline_first = d_first;
  obs.deadline_final = d_final;
  obs.recv_rc = recv_rc;
  obs.finish_rc = finish_rc;
  pthread_cond_broadcast(&obs.cv);
  pthread_mutex_unlock(&obs.mu);
}

/* Waits up to ms for a report; returns obs.done. */
static int obs_wait(int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&obs.mu);
  while (!obs.done && pthread_cond_timedwait(&obs.cv, &obs.mu, &ts) == 0) {
  }
  int done = obs.done;
  pthread_mutex_unlock(&obs.mu);
  return done;
}

/* After the handler saw the end at t_seen: waits (up to 1 s) until the
 * request reports cancelled, as it must once the deadline passed or the
 * client cancelled; returns that flag and the time left. */
static void settle_cancelled(rpcnet_request *req, int64_t t_seen, int *cancelled,
                             int64_t *deadline) {
  for (;;) {
    *cancelled = rpcnet_request_cancelled(req);
    *deadline = rpcnet_request_deadline_ms(req);
    if (*cancelled || tu_now_ms() - t_seen > 1000) break;
    tu_sleep_ms(2);
  }
}

static void echo_metadata(rpcnet_request *req) {
  for (size_t i = 0; i < sizeof echoed_keys / sizeof echoed_keys[0]; i++) {
    size_t len = 0;
    const void *v = rpcnet_request_metadata(req, echoed_keys[i], &len);
    if (v) SRV_CHECK(rpcnet_request_set_trailer(req, echoed_keys[i], v, len) == RPCNET_OK);
  }
  if (rpcnet_request_metadata(req, "x-ok-bin", NULL)) {
    /* The metadata_rules case: bad trailers are refused. */
    SRV_CHECK(rpcnet_request_set_trailer(req, "", "x", 1) == RPCNET_INVALID_ARGUMENT);
    SRV_CHECK(rpcnet_request_set_trailer(req, "x-text", "\xff\xfe", 2) == RPCNET_INVALID_ARGUMENT);
  }
}

/* Finishes req, checking that finishing worked. */
static void finish_ok(rpcnet_request *req, int status, const char *message) {
  echo_metadata(req);
  int rc = rpcnet_request_finish(req, status, message);
  if (rc != RPCNET_OK)
    fprintf(stderr, "server: finish(%s) returned %s\n", rpcnet_status_name(status),
            rpcnet_status_name(rc));
  SRV_CHECK(rc == RPCNET_OK);
}

/* Sends size bytes of the answer pattern. */
static int send_pattern(rpcnet_request *req, size_t size) {
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return RPCNET_RESOURCE_EXHAUSTED;
  tu_fill(buf, size, (uint32_t)size ^ RESP_SEED);
  int rc = rpcnet_request_send(req, buf, size);
  free(buf);
  return rc;
}

/* A receive that failed (cancellation, deadline, connection): records what
 * the handler saw and releases req. */
static void end_abnormally(rpcnet_request *req, int recv_rc, int64_t d_first) {
  int64_t t = tu_now_ms();
  int cancelled;
  int64_t d_final;
  settle_cancelled(req, t, &cancelled, &d_final);
  int frc = rpcnet_request_finish(req, RPCNET_OK, NULL);
  fprintf(stderr, "server: call ended by %s; cancelled=%d deadline_ms=%lld; finish gave %s\n",
          rpcnet_status_name(recv_rc), cancelled, (long long)d_final, rpcnet_status_name(frc));
  obs_report(t, cancelled, d_first, d_final, recv_rc, frc);
}

/* Parses an ask; returns 0 (after finishing req) when it is bad. */
static int parse_ask(rpcnet_request *req, const uint8_t *d, size_t len, uint32_t *resp_size,
                     int *status, char *msg, size_t msg_cap) {
  if (len < ASK_HDR) {
    finish_ok(req, RPCNET_INVALID_ARGUMENT, "ask shorter than its header");
    return 0;
  }
  size_t mlen = (size_t)d[5] << 8 | d[6];
  if (ASK_HDR + mlen > len || mlen >= msg_cap) {
    finish_ok(req, RPCNET_INVALID_ARGUMENT, "bad status message length");
    return 0;
  }
  if (!pattern_ok(d, len, ASK_HDR + mlen, (uint32_t)len)) {
    fprintf(stderr, "server: request of %zu bytes differs from its pattern\n", len);
    finish_ok(req, RPCNET_DATA_LOSS, "request bytes differ");
    return 0;
  }
  *resp_size = get_u32(d);
  *status = d[4];
  memcpy(msg, d + ASK_HDR, mlen);
  msg[mlen] = 0;
  return 1;
}

/* UnaryCall and FullDuplexCall: one answer per ask, until end of stream or
 * an ask with a status. The receive waits in 50 ms steps and polls
 * rpcnet_request_cancelled between them. */
static void serve_asks(rpcnet_request *req, int64_t d_first) {
  char *m = malloc(MSG_CAP);
  if (!m) {
    rpcnet_request_finish(req, RPCNET_INTERNAL, "out of memory");
    return;
  }
  /* With request metadata "x-use-fd" the handler waits in poll() on
   * rpcnet_request_fd and then receives without waiting. */
  int fd = -1;
  if (rpcnet_request_metadata(req, "x-use-fd", NULL)) {
    fd = rpcnet_request_fd(req);
    SRV_CHECK(fd >= 0);
  }
  for (;;) {
    void *d = NULL;
    size_t len = 0;
    int rc;
    if (fd >= 0) {
      struct pollfd pfd = {.fd = fd, .events = POLLIN};
      int readable = poll(&pfd, 1, 50) == 1;
      rc = rpcnet_request_recv(req, 0, &d, &len);
      /* Level-triggered: readable exactly while recv would not block. */
      if (readable) SRV_CHECK(rc != RPCNET_WOULD_BLOCK);
    } else {
      rc = rpcnet_request_recv(req, 50, &d, &len);
    }
    if (rc == RPCNET_WOULD_BLOCK) {
      SRV_CHECK(d == NULL);
      if (rpcnet_request_cancelled(req)) {
        end_abnormally(req, rc, d_first);
        break;
      }
      continue;
    }
    if (rc == RPCNET_END_OF_STREAM) {
      finish_ok(req, RPCNET_OK, NULL);
      break;
    }
    if (rc != RPCNET_OK) {
      end_abnormally(req, rc, d_first);
      break;
    }
    uint32_t resp_size;
    int status;
    int ok = parse_ask(req, d, len, &resp_size, &status, m, MSG_CAP);
    rpcnet_free(d);
    if (!ok) break;
    if (status) {
      finish_ok(req, status, m);
      break;
    }
    rc = send_pattern(req, resp_size);
    if (rc != RPCNET_OK) {
      end_abnormally(req, rc, d_first);
      break;
    }
  }
  free(m);
}

static void serve_empty(rpcnet_request *req) {
  void *d = NULL;
  size_t len = 1;
  int rc = rpcnet_request_recv(req, -1, &d, &len);
  SRV_CHECK(rc == RPCNET_OK);
  SRV_CHECK(len == 0);
  rpcnet_free(d);
  if (rc != RPCNET_OK) {
    rpcnet_request_finish(req, RPCNET_INVALID_ARGUMENT, "no request message");
    return;
  }
  rc = rpcnet_request_recv(req, -1, &d, &len);
  SRV_CHECK(rc == RPCNET_END_OF_STREAM);
  if (rc == RPCNET_OK) rpcnet_free(d);
  SRV_CHECK(rpcnet_request_send(req, NULL, 0) == RPCNET_OK);
  finish_ok(req, RPCNET_OK, NULL);
}

static void serve_client_streaming(rpcnet_request *req) {
  uint32_t total = 0;
  for (;;) {
    void *d = NULL;
    size_t len = 0;
    int rc = rpcnet_request_recv(req, -1, &d, &len);
    if (rc == RPCNET_END_OF_STREAM) break;
    if (rc != RPCNET_OK) {
      end_abnormally(req, rc, -1);
      return;
    }
    int ok = pattern_ok(d, len, 0, (uint32_t)len);
    rpcnet_free(d);
    if (!ok) {
      finish_ok(req, RPCNET_DATA_LOSS, "request bytes differ");
      return;
    }
    total += (uint32_t)len;
    streamed_in++;
  }
  uint8_t out[4];
  put_u32(out, total);
  SRV_CHECK(rpcnet_request_send(req, out, 4) == RPCNET_OK);
  finish_ok(req, RPCNET_OK, NULL);
}

static void serve_server_streaming(rpcnet_request *req) {
  void *d = NULL;
  size_t len = 0;
  int rc = rpcnet_request_recv(req, -1, &d, &len);
  if (rc != RPCNET_OK) {
    end_abnormally(req, rc, -1);
    return;
  }
  const uint8_t *p = d;
  if (len < 4 || len != 4 + 4 * (size_t)get_u32(p)) {
    rpcnet_free(d);
    finish_ok(req, RPCNET_INVALID_ARGUMENT, "bad size list");
    return;
  }
  for (uint32_t i = 0; i < get_u32(p); i++) {
    rc = send_pattern(req, get_u32(p + 4 + 4 * i));
    if (rc != RPCNET_OK) {
      rpcnet_free(d);
      end_abnormally(req, rc, -1);
      return;
    }
  }
  rpcnet_free(d);
  rc = rpcnet_request_recv(req, -1, &d, &len);
  SRV_CHECK(rc == RPCNET_END_OF_STREAM);
  if (rc == RPCNET_OK) rpcnet_free(d);
  finish_ok(req, RPCNET_OK, NULL);
}

/* Waits (without reading) until the call is cancelled or expires; at most
 * 10 s, then answers OK. */
static void serve_sleep(rpcnet_request *req) {
  int64_t d_first = rpcnet_request_deadline_ms(req);
  sleepers++;
  int64_t end = tu_now_ms() + 10000;
  while (!rpcnet_request_cancelled(req) && rpcnet_request_deadline_ms(req) != 0 &&
         tu_now_ms() < end)
    tu_sleep_ms(2);
  int64_t t = tu_now_ms();
  int cancelled;
  int64_t d_final;
  settle_cancelled(req, t, &cancelled, &d_final);
  /* A short deadline (the timeout case): the client's reset may come a
   * moment before the server's own clock passes it; then it reaches 0. */
  while (d_first >= 0 && d_first <= 1000 && d_final != 0 && tu_now_ms() - t <= 1000) {
    tu_sleep_ms(1);
    d_final = rpcnet_request_deadline_ms(req);
  }
  /* The call is over: finishing must say so. */
  int frc = rpcnet_request_finish(req, RPCNET_OK, "woke up");
  fprintf(stderr, "server: Sleep woke: cancelled=%d deadline_ms %lld -> %lld; finish gave %s\n",
          cancelled, (long long)d_first, (long long)d_final, rpcnet_status_name(frc));
  obs_report(t, cancelled, d_first, d_final, RPCNET_OK, frc);
}

static void serve(rpcnet_request *req) {
  const char *method = rpcnet_request_method(req);
  size_t len = 12345;
  const void *data = rpcnet_request_data(req, &len);
  /* Streaming calls have an empty request message. */
  SRV_CHECK(data != NULL && len == 0);
  int64_t d = rpcnet_request_deadline_ms(req);
  if (!method) {
    rpcnet_request_finish(req, RPCNET_INTERNAL, "no method");
  } else if (strcmp(method, M_EMPTY) == 0) {
    serve_empty(req);
  } else if (strcmp(method, M_UNARY) == 0) {
    serve_asks(req, d);
  } else if (strcmp(method, M_DUPLEX) == 0) {
    duplex_deadline = d;
    serve_asks(req, d);
  } else if (strcmp(method, M_CLIENT_STREAMING) == 0) {
    serve_client_streaming(req);
  } else if (strcmp(method, M_SERVER_STREAMING) == 0) {
    serve_server_streaming(req);
  } else if (strcmp(method, M_SLEEP) == 0) {
    serve_sleep(req);
  } else {
    rpcnet_request_finish(req, RPCNET_INTERNAL, "method not served by the test service");
  }
}

static _Atomic int workers_stop;

static void *worker_main(void *arg) {
  rpcnet_server *srv = arg;
  while (!workers_stop) {
    rpcnet_request *req = NULL;
    int rc = rpcnet_server_next(srv, 100, &req);
    if (rc == RPCNET_DEADLINE_EXCEEDED) continue;
    if (rc != RPCNET_OK) break;
    serve(req);
  }
  return NULL;
}

/* ---- client helpers ----------------------------------------------------------- */

static rpcnet_server *srv;
static rpcnet_client *cli;

/* Checks (and clears) the handlers' failure count. */
static void check_server_side(void) {
  int n = atomic_exchange(&srv_failures, 0);
  CHECK_EQ_INT(n, 0);
}

/* A request ask of len bytes (len >= ASK_HDR + strlen(message)). */
static uint8_t *make_ask(size_t len, uint32_t resp_size, int status, const char *message) {
  size_t mlen = message ? strlen(message) : 0;
  if (len < ASK_HDR + mlen) len = ASK_HDR + mlen;
  uint8_t *p = malloc(len);
  if (!p) return NULL;
  tu_fill(p, len, (uint32_t)len);
  put_u32(p, resp_size);
  p[4] = (uint8_t)status;
  p[5] = (uint8_t)(mlen >> 8);
  p[6] = (uint8_t)mlen;
  if (mlen) memcpy(p + ASK_HDR, message, mlen);
  return p;
}

static int send_ask(rpcnet_call *call, size_t len, uint32_t resp_size, int status,
                    const char *message) {
  uint8_t *p = make_ask(len, resp_size, status, message);
  if (!p) return RPCNET_RESOURCE_EXHAUSTED;
  size_t mlen = message ? strlen(message) : 0;
  int rc = rpcnet_call_send(call, p, len < ASK_HDR + mlen ? ASK_HDR + mlen : len);
  free(p);
  return rc;
}

/* Receives one message that must be size bytes of the answer pattern. */
static int expect_answer(rpcnet_call *call, size_t size) {
  void *d = NULL;
  size_t len = 0;
  int rc = rpcnet_call_recv(call, -1, &d, &len);
  if (rc != RPCNET_OK) {
    const char *m = "";
    int st = rpcnet_call_status(call, &m);
    fprintf(stderr, "recv (want %zu bytes): %s; call status %s \"%s\"\n", size,
            rpcnet_status_name(rc), rpcnet_status_name(st), m);
  }
  CHECK_EQ_INT(rc, RPCNET_OK);
  if (rc != RPCNET_OK) return 0;
  CHECK_EQ_INT(len, size);
  int ok = len == size && pattern_ok(d, len, 0, (uint32_t)size ^ RESP_SEED);
  CHECK(ok);
  rpcnet_free(d);
  return ok;
}

/* Receives until the end of the call; returns its status (message in *msg). */
static int expect_end(rpcnet_call *call, const char **msg) {
  void *d = (void *)1;
  size_t len = 0;
  int rc = rpcnet_call_recv(call, -1, &d, &len);
  if (rc == RPCNET_OK) {
    fprintf(stderr, "unexpected extra message of %zu bytes\n", len);
    rpcnet_free(d);
  }
  CHECK_EQ_INT(rc, RPCNET_END_OF_STREAM);
  const char *m = NULL;
  int st = rpcnet_call_status(call, &m);
  CHECK(m != NULL);
  if (msg) *msg = m ? m : "";
  return st;
}

static int64_t ms_since(int64_t t0) { return tu_now_ms() - t0; }

/* Waits up to 5 s until *counter exceeds before; returns non-zero if it did. */
static int wait_above(_Atomic int *counter, int before) {
  for (int64_t end = tu_now_ms() + 5000; *counter <= before && tu_now_ms() < end;) tu_sleep_ms(1);
  return *counter > before;
}

/* ---- the interop cases ------------------------------------------------------ */

static void empty_unary(void) {
  /* Call handle: send + close_send + recv. */
  rpcnet_call *call = rpcnet_client_start(cli, M_EMPTY, CALL_TIMEOUT_MS);
  REQUIRE(call);
  CHECK_EQ_INT(rpcnet_call_send(call, NULL, 0), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK); /* harmless again */
  void *d = NULL;
  size_t len = 99;
  CHECK_EQ_INT(rpcnet_call_recv(call, -1, &d, &len), RPCNET_OK);
  CHECK_EQ_INT(len, 0);
  rpcnet_free(d);
  const char *m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), RPCNET_OK);
  CHECK(m && m[0] == 0);
  /* After the end, recv keeps saying so. */
  CHECK_EQ_INT(rpcnet_call_recv(call, 0, &d, &len), RPCNET_END_OF_STREAM);
  rpcnet_call_free(call);

  /* The blocking unary API against the same streaming handler. */
  void *resp = NULL;
  len = 99;
  int rc = rpcnet_client_call(cli, M_EMPTY, NULL, 0, &resp, &len, CALL_TIMEOUT_MS);
  if (rc != RPCNET_OK) fprintf(stderr, "rpcnet_client_call: %s\n", rpcnet_last_error());
  CHECK_EQ_INT(rc, RPCNET_OK);
  CHECK(resp != NULL);
  CHECK_EQ_INT(len, 0);
  rpcnet_free(resp);
  check_server_side();
}

static void large_unary(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_UNARY, CALL_TIMEOUT_MS);
  REQUIRE(call);
  CHECK_EQ_INT(send_ask(call, 271828, 314159, 0, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  expect_answer(call, 314159);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  rpcnet_call_free(call);

  /* The same through rpcnet_client_call. */
  uint8_t *ask = make_ask(271828, 314159, 0, NULL);
  REQUIRE(ask);
  void *resp = NULL;
  size_t len = 0;
  int rc = rpcnet_client_call(cli, M_UNARY, ask, 271828, &resp, &len, CALL_TIMEOUT_MS);
  free(ask);
  CHECK_EQ_INT(rc, RPCNET_OK);
  CHECK_EQ_INT(len, 314159);
  if (rc == RPCNET_OK && len == 314159) CHECK(pattern_ok(resp, len, 0, 314159u ^ RESP_SEED));
  rpcnet_free(resp);
  check_server_side();
}

static void client_streaming(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_CLIENT_STREAMING, CALL_TIMEOUT_MS);
  REQUIRE(call);
  for (size_t i = 0; i < 4; i++) {
    uint8_t *p = malloc(req_sizes[i]);
    REQUIRE(p);
    tu_fill(p, req_sizes[i], (uint32_t)req_sizes[i]);
    CHECK_EQ_INT(rpcnet_call_send(call, p, req_sizes[i]), RPCNET_OK);
    free(p);
  }
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  void *d = NULL;
  size_t len = 0;
  CHECK_EQ_INT(rpcnet_call_recv(call, -1, &d, &len), RPCNET_OK);
  CHECK_EQ_INT(len, 4);
  if (d && len == 4) CHECK_EQ_INT(get_u32(d), 74922);
  rpcnet_free(d);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  rpcnet_call_free(call);
  check_server_side();
}

static void server_streaming(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_SERVER_STREAMING, CALL_TIMEOUT_MS);
  REQUIRE(call);
  uint8_t list[4 + 4 * 4];
  put_u32(list, 4);
  for (size_t i = 0; i < 4; i++) put_u32(list + 4 + 4 * i, (uint32_t)resp_sizes[i]);
  CHECK_EQ_INT(rpcnet_call_send(call, list, sizeof list), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  for (size_t i = 0; i < 4; i++) expect_answer(call, resp_sizes[i]);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  rpcnet_call_free(call);
  check_server_side();
}

static void ping_pong(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  for (size_t i = 0; i < 4; i++) {
    CHECK_EQ_INT(send_ask(call, req_sizes[i], (uint32_t)resp_sizes[i], 0, NULL), RPCNET_OK);
    expect_answer(call, resp_sizes[i]);
  }
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  rpcnet_call_free(call);
  check_server_side();
}

static void empty_stream(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  const char *m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), RPCNET_OK);
  rpcnet_call_free(call);
  check_server_side();
}

static void cancel_after_begin(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_CLIENT_STREAMING, CALL_TIMEOUT_MS);
  REQUIRE(call);
  rpcnet_call_cancel(call);
  rpcnet_call_cancel(call); /* repeatable */
  CHECK_EQ_INT(rpcnet_call_send(call, "x", 1), RPCNET_CANCELLED);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_CANCELLED);
  const char *m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), RPCNET_CANCELLED);
  fprintf(stderr, "cancelled call's message: \"%s\"\n", m ? m : "(null)");
  rpcnet_call_free(call);

  /* Cancelled after the header went out (the server holds the call). */
  obs_reset();
  call = rpcnet_client_start(cli, M_CLIENT_STREAMING, CALL_TIMEOUT_MS);
  REQUIRE(call);
  uint8_t p[8];
  tu_fill(p, 8, 8);
  int before = streamed_in;
  CHECK_EQ_INT(rpcnet_call_send(call, p, 8), RPCNET_OK);
  CHECK(wait_above(&streamed_in, before));
  rpcnet_call_cancel(call);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_CANCELLED);
  rpcnet_call_free(call);
  CHECK(obs_wait(5000));
  CHECK(obs.cancelled != 0);
  CHECK_EQ_INT(obs.finish_rc, RPCNET_CANCELLED); /* not UNAVAILABLE: the connection is fine */
  check_server_side();
}

static void cancel_after_first_response(void) {
  obs_reset();
  rpcnet_call *call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  CHECK_EQ_INT(send_ask(call, req_sizes[0], (uint32_t)resp_sizes[0], 0, NULL), RPCNET_OK);
  expect_answer(call, resp_sizes[0]);
  int64_t t_cancel = tu_now_ms();
  rpcnet_call_cancel(call);
  const char *m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), RPCNET_CANCELLED);
  CHECK_EQ_INT(rpcnet_call_send(call, "x", 1), RPCNET_CANCELLED);
  /* The handler (waiting in its receive, polling rpcnet_request_cancelled)
   * sees the cancellation. */
  int seen = obs_wait(CANCEL_SEEN_MS + 4000);
  CHECK(seen);
  if (seen) {
    int64_t after = obs.t_seen - t_cancel;
    fprintf(stderr, "server saw the cancellation %lld ms after it (recv gave %s)\n",
            (long long)after, rpcnet_status_name(obs.recv_rc));
    CHECK(after <= CANCEL_SEEN_MS);
    CHECK(obs.cancelled != 0);
    CHECK(obs.recv_rc == RPCNET_CANCELLED || obs.recv_rc == RPCNET_WOULD_BLOCK);
    CHECK_EQ_INT(obs.finish_rc, RPCNET_CANCELLED); /* not UNAVAILABLE: the connection is fine */
  }
  rpcnet_call_free(call);
  check_server_side();
}

static void timeout_on_sleeping_server(void) {
  obs_reset();
  int64_t t0 = tu_now_ms();
  rpcnet_call *call = rpcnet_client_start(cli, M_SLEEP, 50);
  REQUIRE(call);
  uint8_t *p = malloc(27182);
  REQUIRE(p);
  tu_fill(p, 27182, 27182);
  int rc = rpcnet_call_send(call, p, 27182);
  free(p);
  CHECK(rc == RPCNET_OK || rc == RPCNET_DEADLINE_EXCEEDED);
  const char *m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), RPCNET_DEADLINE_EXCEEDED);
  int64_t took = ms_since(t0);
  fprintf(stderr, "DEADLINE_EXCEEDED after %lld ms: \"%s\"\n", (long long)took, m ? m : "");
  CHECK(took >= 49);                  /* not before the deadline */
  CHECK(took <= 50 + CANCEL_SEEN_MS); /* and not long after it */
  /* The server side: it had a deadline of at most 50 ms, and saw the call
   * cancelled with no time left. */
  int seen = obs_wait(CANCEL_SEEN_MS + 4000);
  CHECK(seen);
  if (seen) {
    fprintf(stderr, "server: deadline %lld ms at start, saw the end %lld ms after the deadline\n",
            (long long)obs.deadline_first, (long long)(obs.t_seen - (t0 + 50)));
    CHECK(obs.deadline_first > 0 && obs.deadline_first <= 50);
    CHECK(obs.t_seen - (t0 + 50) <= CANCEL_SEEN_MS);
    CHECK(obs.cancelled != 0);
    CHECK_EQ_INT(obs.deadline_final, 0);
    CHECK(obs.finish_rc == RPCNET_DEADLINE_EXCEEDED || obs.finish_rc == RPCNET_CANCELLED);
  }
  rpcnet_call_free(call);
  check_server_side();
}

static void check_trailers(rpcnet_call *call) {
  size_t len = 0;
  const char *v = rpcnet_call_trailer(call, KEY_INITIAL, &len);
  CHECK(v != NULL);
  if (v) {
    CHECK_EQ_INT(len, strlen(VAL_INITIAL));
    CHECK(len == strlen(VAL_INITIAL) && memcmp(v, VAL_INITIAL, len) == 0);
  }
  const uint8_t *b = rpcnet_call_trailer(call, KEY_TRAILING_BIN, &len);
  CHECK(b != NULL);
  if (b) {
    CHECK_EQ_INT(len, sizeof val_trailing_bin);
    CHECK(len == sizeof val_trailing_bin && memcmp(b, val_trailing_bin, len) == 0);
  }
  CHECK(rpcnet_call_trailer(call, "x-not-sent", &len) == NULL);
}

static void set_test_metadata(rpcnet_call *call) {
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, KEY_INITIAL, VAL_INITIAL, strlen(VAL_INITIAL)),
               RPCNET_OK);
  CHECK_EQ_INT(
      rpcnet_call_set_metadata(call, KEY_TRAILING_BIN, val_trailing_bin, sizeof val_trailing_bin),
      RPCNET_OK);
}

static void custom_metadata(void) {
  /* Unary. */
  rpcnet_call *call = rpcnet_client_start(cli, M_UNARY, CALL_TIMEOUT_MS);
  REQUIRE(call);
  set_test_metadata(call);
  CHECK_EQ_INT(send_ask(call, 271828, 314159, 0, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  expect_answer(call, 314159);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  check_trailers(call);
  rpcnet_call_free(call);

  /* Bidirectional. */
  call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  set_test_metadata(call);
  CHECK_EQ_INT(send_ask(call, req_sizes[0], (uint32_t)resp_sizes[0], 0, NULL), RPCNET_OK);
  expect_answer(call, resp_sizes[0]);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  check_trailers(call);
  rpcnet_call_free(call);

  /* With a failure status the trailers come too. */
  call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  set_test_metadata(call);
  CHECK_EQ_INT(send_ask(call, 100, 0, RPCNET_ABORTED, "aborted with trailers"), RPCNET_OK);
  const char *m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), RPCNET_ABORTED);
  CHECK(m && strcmp(m, "aborted with trailers") == 0);
  check_trailers(call);
  rpcnet_call_free(call);
  check_server_side();
}

static void expect_status_message(int status, const char *message) {
  /* Unary through a call handle. */
  rpcnet_call *call = rpcnet_client_start(cli, M_UNARY, CALL_TIMEOUT_MS);
  REQUIRE(call);
  CHECK_EQ_INT(send_ask(call, 0, 0, status, message), RPCNET_OK);
  int rc = rpcnet_call_close_send(call);
  CHECK(rc == RPCNET_OK || rc == status); /* the call may have ended already */
  const char *m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), status);
  if (m && strcmp(m, message) != 0) {
    fprintf(stderr, "status message \"%s\", want \"%s\"\n", m, message);
    CHECK(0);
  }
  rpcnet_call_free(call);

  /* Unary through rpcnet_client_call. */
  uint8_t *ask = make_ask(0, 0, status, message);
  REQUIRE(ask);
  void *resp = (void *)1;
  size_t len = 0;
  rc = rpcnet_client_call(cli, M_UNARY, ask, ASK_HDR + strlen(message), &resp, &len,
                          CALL_TIMEOUT_MS);
  free(ask);
  CHECK_EQ_INT(rc, status);
  CHECK(resp == NULL);
  CHECK(tu_contains(rpcnet_last_error(), message));

  /* Bidirectional, after one exchange. */
  call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  CHECK_EQ_INT(send_ask(call, req_sizes[1], (uint32_t)resp_sizes[1], 0, NULL), RPCNET_OK);
  expect_answer(call, resp_sizes[1]);
  CHECK_EQ_INT(send_ask(call, 0, 0, status, message), RPCNET_OK);
  m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), status);
  if (m && strcmp(m, message) != 0) {
    fprintf(stderr, "status message \"%s\", want \"%s\"\n", m, message);
    CHECK(0);
  }
  rpcnet_call_free(call);
  check_server_side();
}

static void status_code_and_message(void) {
  expect_status_message(RPCNET_UNKNOWN, "test status message");
}

static void special_status_message(void) {
  expect_status_message(RPCNET_UNKNOWN,
                        "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
                        "\xf0\x9f\x98\x88\t\n");
}

static void unimplemented_method(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_UNIMPLEMENTED, CALL_TIMEOUT_MS);
  REQUIRE(call);
  int rc = rpcnet_call_send(call, NULL, 0);
  CHECK(rc == RPCNET_OK || rc == RPCNET_UNIMPLEMENTED);
  rc = rpcnet_call_close_send(call);
  CHECK(rc == RPCNET_OK || rc == RPCNET_UNIMPLEMENTED);
  const char *m = NULL;
  CHECK_EQ_INT(expect_end(call, &m), RPCNET_UNIMPLEMENTED);
  fprintf(stderr, "unimplemented: \"%s\"\n", m ? m : "(null)");
  CHECK(tu_contains(m, M_UNIMPLEMENTED));
  rpcnet_call_free(call);

  /* The answer must not wait for the client to finish sending: a
   * bidirectional caller that sends and then waits (or only waits: recv
   * sends the header) hears UNIMPLEMENTED, not its deadline. */
  for (int with_msg = 0; with_msg < 2; with_msg++) {
    call = rpcnet_client_start(cli, M_UNIMPLEMENTED, 5000);
    REQUIRE(call);
    if (with_msg) {
      rc = rpcnet_call_send(call, "x", 1);
      CHECK(rc == RPCNET_OK || rc == RPCNET_UNIMPLEMENTED);
    }
    m = NULL;
    int64_t t0 = tu_now_ms();
    int st = expect_end(call, &m);
    if (st != RPCNET_UNIMPLEMENTED)
      fprintf(stderr, "%s, no close_send: %s \"%s\" after %lld ms\n",
              with_msg ? "one message" : "recv only", rpcnet_status_name(st), m ? m : "",
              (long long)ms_since(t0));
    CHECK_EQ_INT(st, RPCNET_UNIMPLEMENTED);
    rpcnet_call_free(call);
  }
}

/* ---- the rest of the contract -------------------------------------------------- */

/* The descriptor is readable exactly while recv would not block; recv with
 * timeout 0 says WOULD_BLOCK when nothing is queued. The server side does
 * the same with rpcnet_request_fd. */
static void call_fd_and_would_block(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  /* The handler waits on rpcnet_request_fd too. */
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "x-use-fd", "1", 1), RPCNET_OK);
  int fd = rpcnet_call_fd(call);
  CHECK(fd >= 0);
  if (fd < 0) {
    rpcnet_call_free(call);
    return;
  }
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  CHECK_EQ_INT(poll(&pfd, 1, 0), 0);
  void *d = (void *)1;
  size_t len = 7;
  CHECK_EQ_INT(rpcnet_call_recv(call, 0, &d, &len), RPCNET_WOULD_BLOCK);
  /* A short wait with nothing coming. */
  CHECK_EQ_INT(rpcnet_call_recv(call, 30, &d, &len), RPCNET_WOULD_BLOCK);

  for (size_t i = 0; i < 4; i++) {
    CHECK_EQ_INT(send_ask(call, req_sizes[i], (uint32_t)resp_sizes[i], 0, NULL), RPCNET_OK);
    pfd.revents = 0;
    int n = poll(&pfd, 1, 10000);
    CHECK_EQ_INT(n, 1);
    CHECK(pfd.revents & POLLIN);
    d = NULL;
    int rc = rpcnet_call_recv(call, 0, &d, &len);
    CHECK_EQ_INT(rc, RPCNET_OK);
    if (rc == RPCNET_OK) {
      CHECK_EQ_INT(len, resp_sizes[i]);
      if (len == resp_sizes[i]) CHECK(pattern_ok(d, len, 0, (uint32_t)len ^ RESP_SEED));
      rpcnet_free(d);
    }
    /* Drained: not readable, and recv would block. */
    pfd.revents = 0;
    CHECK_EQ_INT(poll(&pfd, 1, 0), 0);
    CHECK_EQ_INT(rpcnet_call_recv(call, 0, &d, &len), RPCNET_WOULD_BLOCK);
  }
  /* Two answers queued: readable until both are taken. */
  CHECK_EQ_INT(send_ask(call, 10, 11, 0, NULL), RPCNET_OK);
  CHECK_EQ_INT(send_ask(call, 10, 12, 0, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  for (int k = 0; k < 2; k++) {
    pfd.revents = 0;
    CHECK_EQ_INT(poll(&pfd, 1, 10000), 1);
    d = NULL;
    CHECK_EQ_INT(rpcnet_call_recv(call, 0, &d, &len), RPCNET_OK);
    CHECK_EQ_INT(len, (size_t)(11 + k));
    rpcnet_free(d);
  }
  /* The end makes it readable for good. */
  pfd.revents = 0;
  CHECK_EQ_INT(poll(&pfd, 1, 10000), 1);
  CHECK_EQ_INT(rpcnet_call_recv(call, 0, &d, &len), RPCNET_END_OF_STREAM);
  pfd.revents = 0;
  CHECK_EQ_INT(poll(&pfd, 1, 0), 1);
  CHECK_EQ_INT(rpcnet_call_status(call, NULL), RPCNET_OK);
  rpcnet_call_free(call);
  check_server_side();
}

/* Every client call carries its deadline: the handler sees 0 < left <= the
 * call's timeout, and a call with timeout <= 0 gets default_timeout_ms. */
static void request_deadline(void) {
  duplex_deadline = -100;
  rpcnet_call *call = rpcnet_client_start(cli, M_DUPLEX, 7000);
  REQUIRE(call);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  rpcnet_call_free(call);
  int64_t d = duplex_deadline;
  fprintf(stderr, "timeout 7000: the handler saw %lld ms left\n", (long long)d);
  CHECK(d > 0 && d <= 7000);

  /* Status before the end. */
  call = rpcnet_client_start(cli, M_DUPLEX, 7000);
  REQUIRE(call);
  const char *m = NULL;
  CHECK_EQ_INT(rpcnet_call_status(call, &m), RPCNET_UNKNOWN);
  CHECK(m && tu_contains(m, "in progress"));
  rpcnet_call_free(call); /* never sent anything */

  rpcnet_config *cfg = tu_config("ca_file", "@ca.pem", "default_timeout_ms", "12345", NULL);
  REQUIRE(cfg);
  rpcnet_client *c2 = rpcnet_client_connect(cfg, tu_server_addr(srv, 0));
  rpcnet_config_free(cfg);
  REQUIRE(c2);
  int timeouts[] = {0, -1};
  for (int i = 0; i < 2; i++) {
    duplex_deadline = -100;
    call = rpcnet_client_start(c2, M_DUPLEX, timeouts[i]);
    REQUIRE(call);
    CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
    CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
    rpcnet_call_free(call);
    d = duplex_deadline;
    fprintf(stderr, "timeout %d, default 12345: the handler saw %lld ms left\n", timeouts[i],
            (long long)d);
    CHECK(d > 0 && d <= 12345);
  }
  rpcnet_client_close(c2);
  check_server_side();
}

/* Request metadata: bad keys and values are refused, and nothing can be added
 * once the header is out. */
static void metadata_rules(void) {
  rpcnet_call *call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "", "x", 1), RPCNET_INVALID_ARGUMENT);
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, NULL, "x", 1), RPCNET_INVALID_ARGUMENT);
  /* A text key needs UTF-8. */
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "x-text", "\xff\xfe", 2), RPCNET_INVALID_ARGUMENT);
  static const uint8_t bin[] = {0xff, 0x00, 0xfe};
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "x-ok-bin", bin, sizeof bin), RPCNET_OK);
  CHECK_EQ_INT(send_ask(call, 20, 21, 0, NULL), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "x-late", "v", 1), RPCNET_FAILED_PRECONDITION);
  expect_answer(call, 21);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "x-late", "v", 1), RPCNET_FAILED_PRECONDITION);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  size_t len = 0;
  const void *v = rpcnet_call_trailer(call, "x-ok-bin", &len);
  CHECK(v && len == sizeof bin && memcmp(v, bin, len) == 0);
  CHECK(rpcnet_call_trailer(call, "x-late", NULL) == NULL);
  rpcnet_call_free(call);

  /* A recv (or close_send) also sends the header. */
  call = rpcnet_client_start(cli, M_DUPLEX, CALL_TIMEOUT_MS);
  REQUIRE(call);
  void *d = NULL;
  CHECK_EQ_INT(rpcnet_call_recv(call, 0, &d, &len), RPCNET_WOULD_BLOCK);
  CHECK_EQ_INT(rpcnet_call_set_metadata(call, "x-late", "v", 1), RPCNET_FAILED_PRECONDITION);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  CHECK(rpcnet_call_trailer(call, "x-late", NULL) == NULL);
  rpcnet_call_free(call);

  /* Sending after close_send, on a call still running, is refused. */
  obs_reset();
  call = rpcnet_client_start(cli, M_SLEEP, CALL_TIMEOUT_MS);
  REQUIRE(call);
  int before = sleepers;
  CHECK_EQ_INT(rpcnet_call_send(call, "a", 1), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  CHECK(wait_above(&sleepers, before)); /* the server holds the call */
  CHECK_EQ_INT(rpcnet_call_send(call, "b", 1), RPCNET_FAILED_PRECONDITION);
  CHECK_EQ_INT(rpcnet_call_send_timeout(call, "b", 1, 0), RPCNET_FAILED_PRECONDITION);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  /* The client already sent FIN: the cancellation reaches the server as
   * STOP_SENDING (and RESET_STREAM if the FIN was not yet acknowledged). */
  rpcnet_call_cancel(call);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_CANCELLED);
  rpcnet_call_free(call);
  CHECK(obs_wait(CANCEL_SEEN_MS + 4000));
  CHECK(obs.cancelled != 0);
  CHECK_EQ_INT(obs.finish_rc, RPCNET_CANCELLED); /* not UNAVAILABLE: the connection is fine */
  check_server_side();
}

/* Client-side backpressure: to a handler that reads nothing, sends with
 * timeout 0 stop with WOULD_BLOCK once the window is full, and sends that
 * wait 200 ms each stop too once the server's buffers are full: far below
 * 64 MiB. */
static void send_timeout_backpressure(void) {
  obs_reset();
  rpcnet_call *call = rpcnet_client_start(cli, M_SLEEP, CALL_TIMEOUT_MS);
  REQUIRE(call);
  size_t chunk = 64 * 1024;
  uint8_t *p = malloc(chunk);
  REQUIRE(p);
  tu_fill(p, chunk, 1);
  int rc = RPCNET_OK, sent = 0;
  while (sent < 1024 && (rc = rpcnet_call_send_timeout(call, p, chunk, 0)) == RPCNET_OK) sent++;
  fprintf(stderr, "sent %d x 64 KiB before %s (timeout 0)\n", sent, rpcnet_status_name(rc));
  CHECK_EQ_INT(rc, RPCNET_WOULD_BLOCK);
  CHECK(sent > 0);
  while (sent < 1024 && (rc = rpcnet_call_send_timeout(call, p, chunk, 200)) == RPCNET_OK) sent++;
  fprintf(stderr, "sent %d x 64 KiB before %s (timeout 200 ms)\n", sent, rpcnet_status_name(rc));
  CHECK_EQ_INT(rc, RPCNET_WOULD_BLOCK);
  CHECK(sent < 1024);
  free(p);
  rpcnet_call_cancel(call);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_CANCELLED);
  rpcnet_call_free(call);
  CHECK(obs_wait(5000));
  CHECK(obs.cancelled != 0);
  CHECK_EQ_INT(obs.finish_rc, RPCNET_CANCELLED); /* not UNAVAILABLE: the connection is fine */
  check_server_side();
}

/* A cancel from another thread ends a recv that is waiting. */
struct canceller {
  rpcnet_call *call;
  int delay_ms;
  int64_t t;
};

static void *cancel_main(void *arg) {
  struct canceller *c = arg;
  tu_sleep_ms(c->delay_ms);
  c->t = tu_now_ms();
  rpcnet_call_cancel(c->call);
  return NULL;
}

static void cancel_from_other_thread(void) {
  obs_reset();
  rpcnet_call *call = rpcnet_client_start(cli, M_SLEEP, CALL_TIMEOUT_MS);
  REQUIRE(call);
  int before = sleepers;
  CHECK_EQ_INT(rpcnet_call_send(call, "zz", 2), RPCNET_OK);
  CHECK(wait_above(&sleepers, before));
  struct canceller c = {call, 200, 0};
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, cancel_main, &c) == 0);
  void *d = NULL;
  size_t len = 0;
  int rc = rpcnet_call_recv(call, -1, &d, &len);
  int64_t woke = tu_now_ms();
  pthread_join(th, NULL);
  CHECK_EQ_INT(rc, RPCNET_END_OF_STREAM);
  CHECK_EQ_INT(rpcnet_call_status(call, NULL), RPCNET_CANCELLED);
  fprintf(stderr, "recv woke %lld ms after the cancel\n", (long long)(woke - c.t));
  CHECK(woke - c.t <= CANCEL_SEEN_MS);
  int seen = obs_wait(CANCEL_SEEN_MS + 4000);
  CHECK(seen);
  if (seen) {
    fprintf(stderr, "server saw it %lld ms after the cancel\n", (long long)(obs.t_seen - c.t));
    CHECK(obs.t_seen - c.t <= CANCEL_SEEN_MS);
    CHECK(obs.cancelled != 0);
    CHECK(obs.deadline_first > 0 && obs.deadline_first <= CALL_TIMEOUT_MS);
    CHECK_EQ_INT(obs.finish_rc, RPCNET_CANCELLED); /* not UNAVAILABLE: the connection is fine */
  }
  rpcnet_call_free(call);
  check_server_side();
}

/* Freeing a running call cancels it; the server sees that too. */
static void free_cancels(void) {
  obs_reset();
  rpcnet_call *call = rpcnet_client_start(cli, M_SLEEP, CALL_TIMEOUT_MS);
  REQUIRE(call);
  int before = sleepers;
  CHECK_EQ_INT(rpcnet_call_send(call, "zz", 2), RPCNET_OK);
  CHECK(wait_above(&sleepers, before)); /* the handler is waiting */
  int64_t t = tu_now_ms();
  rpcnet_call_free(call);
  int seen = obs_wait(CANCEL_SEEN_MS + 4000);
  CHECK(seen);
  if (seen) {
    CHECK(obs.t_seen - t <= CANCEL_SEEN_MS);
    CHECK(obs.cancelled != 0);
    CHECK_EQ_INT(obs.finish_rc, RPCNET_CANCELLED); /* not UNAVAILABLE: the connection is fine */
  }
  /* The connection is still fine. */
  call = rpcnet_client_start(cli, M_EMPTY, CALL_TIMEOUT_MS);
  REQUIRE(call);
  CHECK_EQ_INT(rpcnet_call_send(call, NULL, 0), RPCNET_OK);
  CHECK_EQ_INT(rpcnet_call_close_send(call), RPCNET_OK);
  void *d = NULL;
  size_t len = 1;
  CHECK_EQ_INT(rpcnet_call_recv(call, -1, &d, &len), RPCNET_OK);
  rpcnet_free(d);
  CHECK_EQ_INT(expect_end(call, NULL), RPCNET_OK);
  rpcnet_call_free(call);
  check_server_side();
}

static void handle_stream_errors(void) {
  CHECK_EQ_INT(rpcnet_server_handle_stream(srv, "", NULL, NULL), RPCNET_INVALID_ARGUMENT);
  CHECK_EQ_INT(rpcnet_server_handle_stream(srv, NULL, NULL, NULL), RPCNET_INVALID_ARGUMENT);
  CHECK(rpcnet_client_start(cli, NULL, 1000) == NULL);
  rpcnet_call_free(NULL);
}

int main(void) {
  tu_pki_dir_locked();
  srv = tu_server_start(tu_config("cert_file", "@server.pem", "key_file", "@server-key.pem", NULL),
                        "127.0.0.1:0");
  if (!srv) return 1;
  const char *methods[] = {M_EMPTY,  M_UNARY, M_CLIENT_STREAMING, M_SERVER_STREAMING,
                           M_DUPLEX, M_SLEEP};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (rpcnet_server_handle_stream(srv, methods[i], NULL, NULL) != RPCNET_OK) {
      fprintf(stderr, "handle_stream %s: %s\n", methods[i], rpcnet_last_error());
      return 1;
    }
  pthread_t workers[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    if (pthread_create(&workers[i], NULL, worker_main, srv) != 0) return 1;
  cli = tu_client_for(srv);
  if (cli) {
    RUN(empty_unary);
    RUN(large_unary);
    RUN(client_streaming);
    RUN(server_streaming);
    RUN(ping_pong);
    RUN(empty_stream);
    RUN(cancel_after_begin);
    RUN(cancel_after_first_response);
    RUN(timeout_on_sleeping_server);
    RUN(custom_metadata);
    RUN(status_code_and_message);
    RUN(special_status_message);
    RUN(unimplemented_method);
    RUN(call_fd_and_would_block);
    RUN(request_deadline);
    RUN(metadata_rules);
    RUN(send_timeout_backpressure);
    RUN(cancel_from_other_thread);
    RUN(free_cancels);
    RUN(handle_stream_errors);
    rpcnet_client_close(cli);
  } else {
    tu_cases_failed++;
  }
  rpcnet_server_shutdown(srv, 2000);
  workers_stop = 1;
  for (int i = 0; i < WORKERS; i++) pthread_join(workers[i], NULL);
  rpcnet_server_free(srv);
  return TEST_END();
}

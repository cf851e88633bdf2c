/*
 * The C conformance client driver (conformance/README.md):
 *
 *   conformance_client --ca CA_FILE --addr HOST:PORT --vectors VALUES_JSON
 *                      [--case NAME]...
 *
 * runs the named cases (all when none is named) and prints one JSON object
 * per case on its own line: {"case": ..., "ok": ..., "ms": ..., "error": ...}.
 * Unary cases without metadata use rpcnet_client_call; the others use call
 * handles (rpcnet_client_start, rpcnet_call_*).
 */
#include <rpcnet/rpcnet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define CALL_TIMEOUT_MS 10000
#define ERR_CAP 1024

static const size_t req_sizes[] = {27182, 8, 1828, 45904};
static const size_t resp_sizes[] = {31415, 9, 2653, 58979};
#define NSIZES 4

#define KEY_INITIAL "x-grpc-test-echo-initial"
#define VAL_INITIAL "test_initial_metadata_value"
#define KEY_TRAILING_BIN "x-grpc-test-echo-trailing-bin"
static const uint8_t val_trailing_bin[] = {0xab, 0xab, 0xab};

#define STATUS_MESSAGE "test status message"
#define SPECIAL_MESSAGE \
  "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP \xf0\x9f\x98\x88\t\n"

static rpcnet_client *cli;
static const char *connect_error; /* set when the connection failed */

/* ---- failure reporting ------------------------------------------------ */

static char err_buf[ERR_CAP];
static char note_buf[ERR_CAP]; /* a "note" for a passing case, or "" */

/* Records a failure message and returns -1. */
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_buf, sizeof err_buf, fmt, ap);
  va_end(ap);
  return -1;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Prints s as a JSON string. */
static void json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", stdout);
    else if (*p == '\r')
      fputs("\\r", stdout);
    else if (*p == '\t')
      fputs("\\t", stdout);
    else if (*p < 0x20 || *p == 0x7f)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static void report(const char *name, int ok, double ms, const char *error) {
  fputs("{\"case\": ", stdout);
  json_str(name);
  printf(", \"ok\": %s, \"ms\": %.1f", ok ? "true" : "false", ms);
  if (!ok) {
    fputs(", \"error\": ", stdout);
    json_str(error);
  } else if (note_buf[0]) {
    fputs(", \"note\": ", stdout);
    json_str(note_buf);
  }
  fputs("}\n", stdout);
  fflush(stdout);
}

/* ---- helpers ------------------------------------------------------------ */

/* Checks that a response is {"payload": want bytes of the pattern}. */
static int check_payload_msg(const void *d, size_t len, size_t want, const char *what) {
  const char *err = NULL;
  rpci_value *m = cf_decode_map(d, len, &err);
  if (!m) return fail("%s: response does not decode as a map: %s", what, err);
  const rpci_value *p = cf_get_bytes(m, "payload");
  int rc = 0;
  if (!p)
    rc = fail("%s: response has no byte string \"payload\"", what);
  else if (p->u.str.len != want)
    rc = fail("%s: payload of %zu bytes, want %zu", what, p->u.str.len, want);
  else if (!cf_payload_ok(p->u.str.p, p->u.str.len))
    rc = fail("%s: payload bytes differ from the pattern", what);
  rpci_value_free(m);
  return rc;
}

/* Checks that d[0..len) decodes to the empty map. */
static int check_empty_map(const void *d, size_t len, const char *what) {
  const char *err = NULL;
  rpci_value *m = cf_decode_map(d, len, &err);
  if (!m) return fail("%s: response does not decode as a map: %s", what, err);
  size_t n = m->u.arr.n / 2;
  rpci_value_free(m);
  return n ? fail("%s: response map has %zu entries, want 0", what, n) : 0;
}

/* {"size": size, "payload": payload bytes} (+ status/message when status). */
static uint8_t *ask_msg(size_t size, size_t payload, int status, const char *message, size_t *len) {
  rpci_value *m = cf_map();
  uint8_t *p = cf_payload(payload);
  int bad =
      !m || !p || cf_put_uint(m, "size", size) != 0 || cf_put_bytes(m, "payload", p, payload) != 0;
  if (!bad && status) bad = cf_put_uint(m, "status", (uint64_t)status) != 0;
  if (!bad && message) bad = cf_put_text(m, "message", message) != 0;
  free(p);
  if (bad) {
    rpci_value_free(m);
    return NULL;
  }
  return cf_encode_free(m, len);
}

/* Starts a call; NULL after recording a failure. */
static rpcnet_call *start(const char *method, int timeout_ms) {
  rpcnet_call *c = rpcnet_client_start(cli, method, timeout_ms);
  if (!c) fail("rpcnet_client_start(%s): %s", method, rpcnet_last_error());
  return c;
}

/* Receives and expects the end of the call with status want (and message
 * want_msg when not NULL). */
static int expect_end(rpcnet_call *c, int want, const char *want_msg) {
  void *d = NULL;
  size_t len = 0;
  int rc = rpcnet_call_recv(c, -1, &d, &len);
  if (rc == RPCNET_OK) {
    rpcnet_free(d);
    return fail("an extra message of %zu bytes before the end of the call", len);
  }
  if (rc != RPCNET_END_OF_STREAM) return fail("recv returned %s", rpcnet_status_name(rc));
  const char *msg = NULL;
  int st = rpcnet_call_status(c, &msg);
  if (st != want)
    return fail("status %d %s (\"%s\"), want %s", st, rpcnet_status_name(st), msg ? msg : "",
                rpcnet_status_name(want));
  if (want_msg && strcmp(msg ? msg : "", want_msg) != 0)
    return fail("status message \"%s\", want \"%s\"", msg ? msg : "", want_msg);
  return 0;
}

/* Receives one message; on anything else records a failure. */
static int recv_one(rpcnet_call *c, void **d, size_t *len, const char *what) {
  int rc = rpcnet_call_recv(c, -1, d, len);
  if (rc == RPCNET_OK) return 0;
  if (rc == RPCNET_END_OF_STREAM) {
    const char *msg = NULL;
    int st = rpcnet_call_status(c, &msg);
    return fail("%s: call ended with %s (\"%s\") instead of a message", what,
                rpcnet_status_name(st), msg ? msg : "");
  }
  return fail("%s: recv returned %s", what, rpcnet_status_name(rc));
}

/* Sends a message of *len bytes (freeing it); NULL message = encoding
 * failed. len is a pointer so that callers may pass encode(..., &len), &len
 * (argument evaluation order). */
static int send_free(rpcnet_call *c, uint8_t *msg, const size_t *plen, int last, const char *what) {
  if (!msg) return fail("%s: cannot encode the request", what);
  size_t len = *plen;
  int rc = last ? rpcnet_call_send_last(c, msg, len) : rpcnet_call_send(c, msg, len);
  free(msg);
  if (rc != RPCNET_OK) {
    const char *m = NULL;
    if (rc > 0) rpcnet_call_status(c, &m);
    return fail("%s: send returned %s (%s)", what, rpcnet_status_name(rc),
                m ? m : rpcnet_last_error());
  }
  return 0;
}

/* ---- the cases ---------------------------------------------------------- */

static int case_empty_unary(void) {
  void *resp = NULL;
  size_t len = 0;
  int rc = rpcnet_client_call(cli, M_EMPTY, "\xa0", 1, &resp, &len, CALL_TIMEOUT_MS);
  if (rc != RPCNET_OK) return fail("status %s: %s", rpcnet_status_name(rc), rpcnet_last_error());
  rc = check_empty_map(resp, len, "Empty");
  rpcnet_free(resp);
  return rc;
}

static int case_large_unary(void) {
  size_t qlen = 0, len = 0;
  uint8_t *q = ask_msg(314159, 271828, 0, NULL, &qlen);
  if (!q) return fail("cannot encode the request");
  void *resp = NULL;
  int rc = rpcnet_client_call(cli, M_UNARY, q, qlen, &resp, &len, CALL_TIMEOUT_MS);
  free(q);
  if (rc != RPCNET_OK) return fail("status %s: %s", rpcnet_status_name(rc), rpcnet_last_error());
  rc = check_payload_msg(resp, len, 314159, "Unary");
  rpcnet_free(resp);
  return rc;
}

static int case_client_streaming(void) {
  rpcnet_call *c = start(M_CLIENT_STREAM, CALL_TIMEOUT_MS);
  if (!c) return -1;
  int rc = 0;
  for (int i = 0; rc == 0 && i < NSIZES; i++) {
    size_t len = 0;
    rc = send_free(c, cf_payload_msg("payload", req_sizes[i], &len), &len, 0, "ClientStream");
  }
  if (rc == 0 && (rc = rpcnet_call_close_send(c)) != RPCNET_OK)
    rc = fail("close_send returned %s", rpcnet_status_name(rc));
  void *d = NULL;
  size_t len = 0;
  if (rc == 0) rc = recv_one(c, &d, &len, "ClientStream");
  if (rc == 0) {
    const char *err = NULL;
    rpci_value *m = cf_decode_map(d, len, &err);
    uint64_t agg = 0;
    if (!m)
      rc = fail("response does not decode as a map: %s", err);
    else if (cf_get_uint(m, "aggregate", &agg) != 0)
      rc = fail("response has no unsigned \"aggregate\"");
    else if (agg != 74922)
      rc = fail("aggregate %llu, want 74922", (unsigned long long)agg);
    rpci_value_free(m);
    rpcnet_free(d);
  }
  if (rc == 0) rc = expect_end(c, RPCNET_OK, NULL);
  rpcnet_call_free(c);
  return rc;
}

static int case_server_streaming(void) {
  rpcnet_call *c = start(M_SERVER_STREAM, CALL_TIMEOUT_MS);
  if (!c) return -1;
  rpci_value *m = cf_map();
  rpci_value *arr = m ? cf_put_array(m, "sizes") : NULL;
  int bad = !arr;
  for (int i = 0; !bad && i < NSIZES; i++) bad = cf_push_uint(arr, resp_sizes[i]) != 0;
  size_t len = 0;
  uint8_t *q = NULL;
  if (bad)
    rpci_value_free(m);
  else
    q = cf_encode_free(m, &len);
  int rc = send_free(c, q, &len, 1, "ServerStream");
  for (int i = 0; rc == 0 && i < NSIZES; i++) {
    void *d = NULL;
    char what[64];
    snprintf(what, sizeof what, "message %d", i);
    rc = recv_one(c, &d, &len, what);
    if (rc == 0) rc = check_payload_msg(d, len, resp_sizes[i], what);
    rpcnet_free(d);
  }
  if (rc == 0) rc = expect_end(c, RPCNET_OK, NULL);
  rpcnet_call_free(c);
  return rc;
}

static int case_ping_pong(void) {
  rpcnet_call *c = start(M_BIDI, CALL_TIMEOUT_MS);
  if (!c) return -1;
  int rc = 0;
  for (int i = 0; rc == 0 && i < NSIZES; i++) {
    char what[64];
    snprintf(what, sizeof what, "ping %d", i);
    size_t len = 0;
    rc = send_free(c, ask_msg(resp_sizes[i], req_sizes[i], 0, NULL, &len), &len, 0, what);
    void *d = NULL;
    if (rc == 0) rc = recv_one(c, &d, &len, what);
    if (rc == 0) rc = check_payload_msg(d, len, resp_sizes[i], what);
    rpcnet_free(d);
  }
  if (rc == 0 && (rc = rpcnet_call_close_send(c)) != RPCNET_OK)
    rc = fail("close_send returned %s", rpcnet_status_name(rc));
  if (rc == 0) rc = expect_end(c, RPCNET_OK, NULL);
  rpcnet_call_free(c);
  return rc;
}

static int case_empty_stream(void) {
  rpcnet_call *c = start(M_BIDI, CALL_TIMEOUT_MS);
  if (!c) return -1;
  int rc = rpcnet_call_close_send(c);
  if (rc != RPCNET_OK)
    rc = fail("close_send returned %s", rpcnet_status_name(rc));
  else
    rc = expect_end(c, RPCNET_OK, NULL);
  rpcnet_call_free(c);
  return rc;
}

static int case_cancel_after_begin(void) {
  rpcnet_call *c = start(M_CLIENT_STREAM, CALL_TIMEOUT_MS);
  if (!c) return -1;
  /* A receive sends the request header (no message); give it 20 ms so the
   * server has taken the call, then cancel. */
  void *d = NULL;
  size_t len = 0;
  int rc = rpcnet_call_recv(c, 20, &d, &len);
  if (rc != RPCNET_WOULD_BLOCK) {
    if (rc == RPCNET_OK) rpcnet_free(d);
    rc = fail("recv before cancel returned %s, want WOULD_BLOCK", rpcnet_status_name(rc));
  } else {
    rpcnet_call_cancel(c);
    rc = expect_end(c, RPCNET_CANCELLED, NULL);
  }
  rpcnet_call_free(c);
  return rc;
}

static int case_cancel_after_first_response(void) {
  rpcnet_call *c = start(M_BIDI, CALL_TIMEOUT_MS);
  if (!c) return -1;
  size_t len = 0;
  int rc = send_free(c, ask_msg(resp_sizes[0], req_sizes[0], 0, NULL, &len), &len, 0, "ping 0");
  void *d = NULL;
  if (rc == 0) rc = recv_one(c, &d, &len, "ping 0");
  if (rc == 0) rc = check_payload_msg(d, len, resp_sizes[0], "ping 0");
  rpcnet_free(d);
  if (rc == 0) {
    rpcnet_call_cancel(c);
    rc = expect_end(c, RPCNET_CANCELLED, NULL);
  }
  rpcnet_call_free(c);
  return rc;
}

static int case_timeout_on_sleeping_server(void) {
  rpci_value *m = cf_map();
  size_t qlen = 0, len = 0;
  uint8_t *q = m && cf_put_uint(m, "ms", 5000) == 0 ? cf_encode_free(m, &qlen) : NULL;
  if (!q) {
    rpci_value_free(m);
    return fail("cannot encode the request");
  }
  void *resp = NULL;
  double t0 = now_ms();
  int rc = rpcnet_client_call(cli, M_SLEEP, q, qlen, &resp, &len, 100);
  double took = now_ms() - t0;
  free(q);
  if (rc == RPCNET_OK) rpcnet_free(resp);
  if (rc != RPCNET_DEADLINE_EXCEEDED)
    return fail("status %s (\"%s\"), want DEADLINE_EXCEEDED", rpcnet_status_name(rc),
                rc == RPCNET_OK ? "" : rpcnet_last_error());
  if (took > 2000) return fail("DEADLINE_EXCEEDED only after %.0f ms (deadline 100 ms)", took);
  return 0;
}

static int case_custom_metadata(void) {
  rpcnet_call *c = start(M_ECHO_METADATA, CALL_TIMEOUT_MS);
  if (!c) return -1;
  int rc = 0;
  if (rpcnet_call_set_metadata(c, KEY_INITIAL, VAL_INITIAL, strlen(VAL_INITIAL)) != RPCNET_OK ||
      rpcnet_call_set_metadata(c, KEY_TRAILING_BIN, val_trailing_bin, sizeof val_trailing_bin) !=
          RPCNET_OK)
    rc = fail("set_metadata: %s", rpcnet_last_error());
  size_t qlen = 0;
  if (rc == 0) rc = send_free(c, cf_encode_free(cf_map(), &qlen), &qlen, 1, "EchoMetadata");
  void *d = NULL;
  size_t len = 0;
  if (rc == 0) rc = recv_one(c, &d, &len, "EchoMetadata");
  if (rc == 0) rc = check_empty_map(d, len, "EchoMetadata");
  rpcnet_free(d);
  if (rc == 0) rc = expect_end(c, RPCNET_OK, NULL);
  const struct {
    const char *key;
    const void *val;
    size_t len;
  } want[] = {{KEY_INITIAL, VAL_INITIAL, strlen(VAL_INITIAL)},
              {KEY_TRAILING_BIN, val_trailing_bin, sizeof val_trailing_bin}};
  for (size_t i = 0; rc == 0 && i < 2; i++) {
    const void *v = rpcnet_call_trailer(c, want[i].key, &len);
    if (!v) {
      rc = fail("trailer %s missing (%zu trailers)", want[i].key, rpcnet_call_trailer_count(c));
    } else if (len != want[i].len || memcmp(v, want[i].val, len) != 0) {
      char *h = cf_hex(v, len, 64);
      rc = fail("trailer %s is %s (hex), want the request's value", want[i].key, h ? h : "?");
      free(h);
    }
  }
  rpcnet_call_free(c);
  return rc;
}

static int status_case(const char *message) {
  rpcnet_call *c = start(M_UNARY, CALL_TIMEOUT_MS);
  if (!c) return -1;
  size_t len = 0;
  int rc = send_free(c, ask_msg(0, 0, RPCNET_UNKNOWN, message, &len), &len, 1, "Unary");
  if (rc == 0) rc = expect_end(c, RPCNET_UNKNOWN, message);
  rpcnet_call_free(c);
  return rc;
}

static int case_status_code_and_message(void) { return status_case(STATUS_MESSAGE); }
static int case_special_status_message(void) { return status_case(SPECIAL_MESSAGE); }

static int case_unimplemented_method(void) {
  void *resp = NULL;
  size_t len = 0;
  int rc =
      rpcnet_client_call(cli, "conformance.NoSuchMethod", "\xa0", 1, &resp, &len, CALL_TIMEOUT_MS);
  if (rc == RPCNET_OK) rpcnet_free(resp);
  if (rc != RPCNET_UNIMPLEMENTED)
    return fail("status %s, want UNIMPLEMENTED", rpcnet_status_name(rc));
  return 0;
}

/* The byte-level proof, against conformance_record_server only (named
 * with --case frames): the request of frames.json vectors
 * request_header_timeout_metadata + unary_request. */
static int case_frames(void) {
  rpcnet_call *c = rpcnet_client_start(cli, "/echo.Echo/Say", CALL_TIMEOUT_MS);
  if (!c) return fail("start: %s", rpcnet_last_error());
  static const uint8_t trace[] = {0x01, 0x02, 0xff};
  int rc = rpcnet_call_set_metadata(c, "authorization", "Bearer abc", 10);
  if (!rc) rc = rpcnet_call_set_metadata(c, "trace-bin", trace, sizeof trace);
  if (!rc) rc = rpcnet_call_send_last(c, "hello", 5);
  void *d;
  size_t len;
  while (rpcnet_call_recv(c, -1, &d, &len) == RPCNET_OK) rpcnet_free(d);
  const char *msg = "";
  int st = rpcnet_call_status(c, &msg);
  int bad = rc != RPCNET_OK || st != RPCNET_OK;
  if (bad) fail("%s: %s", rpcnet_status_name(rc ? rc : st), msg);
  rpcnet_call_free(c);
  return bad ? -1 : 0;
}

static int case_value(const rpci_value *vec) {
  const char *name = cf_text_field(vec, "name");
  size_t clen = 0;
  uint8_t *canon = cf_vector_canonical(vec, &clen);
  if (!canon) return fail("vector without usable hex");
  rpci_value *v = NULL;
  rpci_buf enc = RPCI_BUF_INIT;
  rpcnet_call *c = NULL;
  void *d = NULL;
  size_t len = 0;
  const char *msg = NULL;
  int e, rc = 0;
  if ((e = rpci_value_decode(canon, clen, NULL, &v, NULL)) != RPCI_VERR_OK) {
    rc = fail("decoding the canonical bytes failed locally: %s", rpci_verr_name(e));
  } else if ((e = rpci_value_encode(v, &enc)) != RPCI_VERR_OK) {
    rc = fail("re-encoding locally failed: %s", rpci_verr_name(e));
  } else if (enc.len != clen || memcmp(enc.data, canon, clen) != 0) {
    char *h = cf_hex(enc.data, enc.len, 64);
    rc = fail("local re-encoding differs from the canonical bytes: %s", h ? h : "?");
    free(h);
  } else if (!(c = start(M_ECHO_VALUE, CALL_TIMEOUT_MS))) {
    rc = -1;
  } else if (rpcnet_call_set_metadata(c, "x-vector", name, strlen(name)) != RPCNET_OK) {
    rc = fail("set_metadata: %s", rpcnet_last_error());
  } else if ((rc = rpcnet_call_send_last(c, enc.data, enc.len)) != RPCNET_OK) {
    const char *m = NULL;
    if (rc > 0) rpcnet_call_status(c, &m);
    rc = fail("send returned %s (%s)", rpcnet_status_name(rc), m ? m : rpcnet_last_error());
  } else if ((rc = rpcnet_call_recv(c, -1, &d, &len)) == RPCNET_END_OF_STREAM &&
             rpcnet_call_status(c, &msg) == RPCNET_UNIMPLEMENTED &&
             rpci_value_map_get(vec, "binding_errors")) {
    /* A vector some binding documents it cannot decode (spec 7.3,
     * binding_errors): that binding's server answers UNIMPLEMENTED (the
     * convention of the Python, Lua and Go servers). */
    snprintf(note_buf, sizeof note_buf, "server answered UNIMPLEMENTED (binding_errors): %s",
             msg ? msg : "");
    rc = 0;
  } else if (rc != RPCNET_OK) {
    if (rc == RPCNET_END_OF_STREAM) {
      int st = rpcnet_call_status(c, &msg);
      rc = fail("EchoValue: call ended with %s (\"%s\") instead of a message",
                rpcnet_status_name(st), msg ? msg : "");
    } else {
      rc = fail("EchoValue: recv returned %s", rpcnet_status_name(rc));
    }
  } else {
    rpci_value *back = NULL;
    if (len != clen || memcmp(d, canon, clen) != 0) {
      char *h = cf_hex(d, len, 64);
      rc = fail("echoed bytes differ: %s", h ? h : "?");
      free(h);
    } else if ((e = rpci_value_decode(d, len, NULL, &back, NULL)) != RPCI_VERR_OK) {
      rc = fail("echoed bytes do not decode: %s", rpci_verr_name(e));
    } else if (!rpci_value_equal(back, v)) {
      rc = fail("echoed value differs");
    }
    rpci_value_free(back);
    rpcnet_free(d);
    if (rc == 0) rc = expect_end(c, RPCNET_OK, NULL);
  }
  rpcnet_call_free(c);
  rpci_buf_free(&enc);
  rpci_value_free(v);
  free(canon);
  return rc;
}

static const struct {
  const char *name;
  int (*run)(void);
} cases[] = {
    {"empty_unary", case_empty_unary},
    {"large_unary", case_large_unary},
    {"client_streaming", case_client_streaming},
    {"server_streaming", case_server_streaming},
    {"ping_pong", case_ping_pong},
    {"empty_stream", case_empty_stream},
    {"cancel_after_begin", case_cancel_after_begin},
    {"cancel_after_first_response", case_cancel_after_first_response},
    {"timeout_on_sleeping_server", case_timeout_on_sleeping_server},
    {"custom_metadata", case_custom_metadata},
    {"status_code_and_message", case_status_code_and_message},
    {"special_status_message", case_special_status_message},
    {"unimplemented_method", case_unimplemented_method},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Non-zero when the value cases run vec: no error, not a C binding error. */
static int value_runs(const rpci_value *vec) {
  if (rpci_value_map_get(vec, "error")) return 0;
  const rpci_value *be = rpci_value_map_get(vec, "binding_errors");
  return !(be && rpci_value_map_get(be, "c"));
}

static void run_case(const char *name, int (*fn)(void), const rpci_value *vec) {
  err_buf[0] = 0;
  note_buf[0] = 0;
  double t0 = now_ms();
  int rc;
  if (connect_error)
    rc = fail("connect failed: %s", connect_error);
  else
    rc = fn ? fn() : case_value(vec);
  report(name, rc == 0, now_ms() - t0, err_buf);
}

static void run_value_case(const rpci_value *vec) {
  char name[300];
  snprintf(name, sizeof name, "value:%s", cf_text_field(vec, "name"));
  run_case(name, NULL, vec);
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s --ca CA_FILE --addr HOST:PORT --vectors VALUES_JSON [--case NAME]...\n",
          argv0);
  exit(2);
}

int main(int argc, char **argv) {
  const char *ca = NULL, *addr = NULL, *vpath = NULL;
  const char **only = calloc((size_t)argc, sizeof *only);
  size_t nonly = 0;
  if (!only) return 1;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage(argv[0]);
    if (strcmp(argv[i], "--ca") == 0)
      ca = argv[++i];
    else if (strcmp(argv[i], "--addr") == 0)
      addr = argv[++i];
    else if (strcmp(argv[i], "--vectors") == 0)
      vpath = argv[++i];
    else if (strcmp(argv[i], "--case") == 0)
      only[nonly++] = argv[++i];
    else
      usage(argv[0]);
  }
  if (!ca || !addr || !vpath) usage(argv[0]);
  cf_vectors vs;
  if (cf_vectors_load(&vs, vpath) != 0) return 1;

  rpcnet_config *cfg = rpcnet_config_new();
  if (!cfg || rpcnet_config_set(cfg, "ca_file", ca) != RPCNET_OK) {
    fprintf(stderr, "config: %s\n", rpcnet_last_error());
    return 1;
  }
  static char connect_err[512];
  cli = rpcnet_client_connect(cfg, addr);
  rpcnet_config_free(cfg);
  if (!cli) {
    snprintf(connect_err, sizeof connect_err, "%s", rpcnet_last_error());
    connect_error = connect_err;
    fprintf(stderr, "connect %s: %s\n", addr, connect_err);
  }

  const rpci_value *list = cf_vectors_list(&vs);
  if (nonly == 0) {
    for (size_t i = 0; i < NCASES; i++) run_case(cases[i].name, cases[i].run, NULL);
    for (size_t i = 0; i < list->u.arr.n; i++)
      if (value_runs(&list->u.arr.items[i])) run_value_case(&list->u.arr.items[i]);
  } else {
    for (size_t k = 0; k < nonly; k++) {
      if (strcmp(only[k], "frames") == 0) {
        run_case("frames", case_frames, NULL);
        continue;
      }
      size_t i = 0;
      while (i < NCASES && strcmp(cases[i].name, only[k]) != 0) i++;
      if (i < NCASES) {
        run_case(cases[i].name, cases[i].run, NULL);
        continue;
      }
      const rpci_value *vec = NULL;
      if (strncmp(only[k], "value:", 6) == 0)
        vec = cf_vectors_find(&vs, only[k] + 6, strlen(only[k] + 6));
      if (vec && value_runs(vec))
        run_value_case(vec);
      else
        report(only[k], 0, 0.0,
               vec ? "vector is an error vector or a C binding error" : "no such case");
    }
  }
  rpcnet_client_close(cli);
  cf_vectors_free(&vs);
  free(only);
  return 0;
}

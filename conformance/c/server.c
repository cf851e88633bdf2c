/*
 * The C conformance server (conformance/README.md):
 *
 *   conformance_server CERT_FILE KEY_FILE
 *
 * listens on 127.0.0.1:0, prints "PORT <n>" once ready and serves the
 * conformance service until SIGTERM/SIGINT. Every method is pulled
 * (registered with fn == NULL: rpcnet_server_handle for the unary ones,
 * rpcnet_server_handle_stream for the streaming ones) and served by worker
 * threads that take calls with rpcnet_server_next, so handlers may block.
 * EchoValue reads the vectors named by the environment variable
 * RPCNET_VECTORS.
 */
#include <pthread.h>
#include <rpcnet/rpcnet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define WORKERS 8

static rpcnet_server *srv;
static cf_vectors vectors;
static int have_vectors;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Ends a call whose receive or send failed (cancelled, expired, gone). */
static void end_failed(rpcnet_request *req, int rc) {
  const char *method = rpcnet_request_method(req);
  fprintf(stderr, "server: %s ended early: %s (cancelled=%d)\n", method ? method : "?",
          rpcnet_status_name(rc), rpcnet_request_cancelled(req));
  rpcnet_request_finish(req, rc > 0 ? rc : RPCNET_CANCELLED, "call ended early");
}

/* Sends an encoded message of *len bytes and finishes OK (pulled unary
 * calls); len is a pointer so that callers may pass encode(&len), &len. */
static void reply_free(rpcnet_request *req, uint8_t *msg, const size_t *len) {
  if (!msg) {
    rpcnet_request_fail(req, RPCNET_INTERNAL, "cannot encode the answer");
    return;
  }
  rpcnet_request_reply(req, msg, *len);
  free(msg);
}

static void reply_empty_map(rpcnet_request *req) { rpcnet_request_reply(req, "\xa0", 1); }

/* The request message of a unary call as a map; NULL after failing req. */
static rpci_value *request_map(rpcnet_request *req) {
  size_t len = 0;
  const void *d = rpcnet_request_data(req, &len);
  const char *err = NULL;
  rpci_value *m = cf_decode_map(d, len, &err);
  if (!m) {
    char msg[128];
    snprintf(msg, sizeof msg, "bad request message: %s", err);
    rpcnet_request_fail(req, RPCNET_INVALID_ARGUMENT, msg);
  }
  return m;
}

static void serve_empty(rpcnet_request *req) {
  rpci_value *m = request_map(req);
  if (!m) return;
  int empty = m->u.arr.n == 0;
  rpci_value_free(m);
  if (!empty)
    rpcnet_request_fail(req, RPCNET_INVALID_ARGUMENT, "Empty expects {}");
  else
    reply_empty_map(req);
}

static void serve_unary(rpcnet_request *req) {
  rpci_value *m = request_map(req);
  if (!m) return;
  uint64_t size = 0, status = 0;
  const rpci_value *payload = cf_get_bytes(m, "payload");
  int bad = cf_get_uint(m, "size", &size) != 0 || !payload;
  if (!bad && rpci_value_map_get(m, "status") && cf_get_uint(m, "status", &status) != 0) bad = 1;
  const rpci_value *message = rpci_value_map_get(m, "message");
  if (message && message->kind != RPCI_V_TEXT) bad = 1;
  if (bad) {
    rpci_value_free(m);
    rpcnet_request_fail(req, RPCNET_INVALID_ARGUMENT,
                        "Unary expects size, payload, status?, message?");
    return;
  }
  if (!cf_payload_ok(payload->u.str.p, payload->u.str.len)) {
    rpci_value_free(m);
    rpcnet_request_fail(req, RPCNET_DATA_LOSS, "request payload differs from its pattern");
    return;
  }
  if (status != 0) {
    /* Statuses above 16 go out as UNKNOWN (rpcnet_request_finish's range). */
    rpcnet_request_finish(req, status > 16 ? RPCNET_UNKNOWN : (int)status,
                          message ? (const char *)message->u.str.p : NULL);
    rpci_value_free(m);
    return;
  }
  rpci_value_free(m);
  size_t len = 0;
  reply_free(req, cf_payload_msg("payload", (size_t)size, &len), &len);
}

static void serve_sleep(rpcnet_request *req) {
  rpci_value *m = request_map(req);
  if (!m) return;
  uint64_t ms = 0;
  int bad = cf_get_uint(m, "ms", &ms) != 0;
  rpci_value_free(m);
  if (bad) {
    rpcnet_request_fail(req, RPCNET_INVALID_ARGUMENT, "Sleep expects {\"ms\": t}");
    return;
  }
  /* The client has finished sending a unary call, so rpcnet_request_fd
   * stays readable; poll the cancellation flag (which also turns on when
   * the deadline passes) in short steps instead. */
  int64_t end = now_ms() + (int64_t)(ms > 3600000 ? 3600000 : ms);
  int64_t left;
  while (!rpcnet_request_cancelled(req) && (left = end - now_ms()) > 0)
    sleep_ms(left < 5 ? (int)left : 5);
  if (rpcnet_request_cancelled(req)) {
    int64_t dl = rpcnet_request_deadline_ms(req);
    int rc = rpcnet_request_finish(req, dl == 0 ? RPCNET_DEADLINE_EXCEEDED : RPCNET_CANCELLED,
                                   "Sleep ended early");
    fprintf(stderr, "server: Sleep(%llu) ended early (deadline_ms %lld); finish gave %s\n",
            (unsigned long long)ms, (long long)dl, rpcnet_status_name(rc));
    return;
  }
  reply_empty_map(req);
}

static void serve_echo_value(rpcnet_request *req) {
  size_t len = 0, nlen = 0;
  const uint8_t *d = rpcnet_request_data(req, &len);
  const char *name = rpcnet_request_metadata(req, "x-vector", &nlen);
  char msg[512];
  if (!name) {
    rpcnet_request_fail(req, RPCNET_INVALID_ARGUMENT, "EchoValue needs metadata x-vector");
    return;
  }
  if (!have_vectors) {
    rpcnet_request_fail(req, RPCNET_FAILED_PRECONDITION,
                        "server has no vectors (set RPCNET_VECTORS)");
    return;
  }
  const rpci_value *vec = cf_vectors_find(&vectors, name, nlen);
  if (!vec) {
    snprintf(msg, sizeof msg, "unknown vector %.*s", (int)(nlen > 200 ? 200 : nlen), name);
    rpcnet_request_fail(req, RPCNET_NOT_FOUND, msg);
    return;
  }
  if (rpci_value_map_get(vec, "error")) {
    snprintf(msg, sizeof msg, "vector %.200s is an error vector", cf_text_field(vec, "name"));
    rpcnet_request_fail(req, RPCNET_INVALID_ARGUMENT, msg);
    return;
  }
  size_t clen = 0;
  uint8_t *canon = cf_vector_canonical(vec, &clen);
  if (!canon) {
    rpcnet_request_fail(req, RPCNET_INTERNAL, "vector without usable hex");
    return;
  }
  const char *vname = cf_text_field(vec, "name");
  rpci_value *v = NULL;
  rpci_buf out = RPCI_BUF_INIT;
  int e;
  if (len != clen || memcmp(d, canon, len) != 0) {
    char *got = cf_hex(d, len, 64);
    snprintf(msg, sizeof msg, "vector %s: received bytes differ from the canonical bytes: got %s",
             vname, got ? got : "?");
    free(got);
    rpcnet_request_fail(req, RPCNET_DATA_LOSS, msg);
  } else if ((e = rpci_value_decode(d, len, NULL, &v, NULL)) != RPCI_VERR_OK) {
    snprintf(msg, sizeof msg, "vector %s: decode failed: %s", vname, rpci_verr_name(e));
    rpcnet_request_fail(req, RPCNET_DATA_LOSS, msg);
  } else if ((e = rpci_value_encode(v, &out)) != RPCI_VERR_OK) {
    snprintf(msg, sizeof msg, "vector %s: re-encode failed: %s", vname, rpci_verr_name(e));
    rpcnet_request_fail(req, RPCNET_DATA_LOSS, msg);
  } else if (out.len != clen || memcmp(out.data, canon, clen) != 0) {
    char *got = cf_hex(out.data, out.len, 64);
    snprintf(msg, sizeof msg, "vector %s: re-encoded bytes differ: %s", vname, got ? got : "?");
    free(got);
    rpcnet_request_fail(req, RPCNET_DATA_LOSS, msg);
  } else {
    rpcnet_request_reply(req, out.data, out.len);
  }
  rpci_buf_free(&out);
  rpci_value_free(v);
  free(canon);
}

static void serve_echo_metadata(rpcnet_request *req) {
  rpci_value *m = request_map(req);
  if (!m) return;
  rpci_value_free(m);
  size_t n = rpcnet_request_metadata_count(req);
  for (size_t i = 0; i < n; i++) {
    const void *v = NULL;
    size_t len = 0;
    const char *key = rpcnet_request_metadata_at(req, i, &v, &len);
    if (key && rpcnet_request_set_trailer(req, key, v, len) != RPCNET_OK) {
      char msg[256];
      snprintf(msg, sizeof msg, "cannot echo metadata %.100s: %s", key, rpcnet_last_error());
      rpcnet_request_fail(req, RPCNET_INTERNAL, msg);
      return;
    }
  }
  reply_empty_map(req);
}

/* Receives the next message of a streaming call as a map. Returns RPCNET_OK
 * with *out, RPCNET_END_OF_STREAM, or a failure; on a bad message req is
 * finished and RPCNET_INVALID_ARGUMENT returned. */
static int recv_map(rpcnet_request *req, rpci_value **out) {
  void *d = NULL;
  size_t len = 0;
  int rc = rpcnet_request_recv(req, -1, &d, &len);
  if (rc != RPCNET_OK) return rc;
  const char *err = NULL;
  *out = cf_decode_map(d, len, &err);
  rpcnet_free(d);
  if (!*out) {
    char msg[128];
    snprintf(msg, sizeof msg, "bad request message: %s", err);
    rpcnet_request_finish(req, RPCNET_INVALID_ARGUMENT, msg);
    return RPCNET_INVALID_ARGUMENT;
  }
  return RPCNET_OK;
}

/* Sends {"payload": n bytes}; returns the send's result. */
static int send_payload(rpcnet_request *req, size_t n) {
  size_t len = 0;
  uint8_t *msg = cf_payload_msg("payload", n, &len);
  if (!msg) return RPCNET_RESOURCE_EXHAUSTED;
  int rc = rpcnet_request_send(req, msg, len);
  free(msg);
  return rc;
}

static void serve_client_stream(rpcnet_request *req) {
  uint64_t total = 0;
  for (;;) {
    rpci_value *m = NULL;
    int rc = recv_map(req, &m);
    if (rc == RPCNET_END_OF_STREAM) break;
    if (rc == RPCNET_INVALID_ARGUMENT) return;
    if (rc != RPCNET_OK) {
      end_failed(req, rc);
      return;
    }
    const rpci_value *p = cf_get_bytes(m, "payload");
    if (!p || !cf_payload_ok(p->u.str.p, p->u.str.len)) {
      rpci_value_free(m);
      rpcnet_request_finish(req, p ? RPCNET_DATA_LOSS : RPCNET_INVALID_ARGUMENT,
                            p ? "payload differs from its pattern" : "message without payload");
      return;
    }
    total += p->u.str.len;
    rpci_value_free(m);
  }
  rpci_value *a = cf_map();
  size_t len = 0;
  uint8_t *msg = a && cf_put_uint(a, "aggregate", total) == 0 ? cf_encode_free(a, &len) : NULL;
  if (!msg) {
    rpci_value_free(a);
    rpcnet_request_finish(req, RPCNET_INTERNAL, "cannot encode the answer");
    return;
  }
  int rc = rpcnet_request_send(req, msg, len);
  free(msg);
  if (rc != RPCNET_OK)
    end_failed(req, rc);
  else
    rpcnet_request_finish(req, RPCNET_OK, NULL);
}

static void serve_server_stream(rpcnet_request *req) {
  rpci_value *m = NULL;
  int rc = recv_map(req, &m);
  if (rc == RPCNET_INVALID_ARGUMENT) return;
  if (rc == RPCNET_END_OF_STREAM) {
    rpcnet_request_finish(req, RPCNET_INVALID_ARGUMENT, "ServerStream expects one message");
    return;
  }
  if (rc != RPCNET_OK) {
    end_failed(req, rc);
    return;
  }
  const rpci_value *sizes = rpci_value_map_get(m, "sizes");
  int bad = !sizes || sizes->kind != RPCI_V_ARRAY;
  for (size_t i = 0; !bad && i < sizes->u.arr.n; i++)
    if (sizes->u.arr.items[i].kind != RPCI_V_UINT) bad = 1;
  if (bad) {
    rpci_value_free(m);
    rpcnet_request_finish(req, RPCNET_INVALID_ARGUMENT, "ServerStream expects {\"sizes\": [n...]}");
    return;
  }
  for (size_t i = 0; i < sizes->u.arr.n; i++) {
    rc = send_payload(req, (size_t)sizes->u.arr.items[i].u.uint);
    if (rc != RPCNET_OK) {
      rpci_value_free(m);
      end_failed(req, rc);
      return;
    }
  }
  rpci_value_free(m);
  rpcnet_request_finish(req, RPCNET_OK, NULL);
}

static void serve_bidi(rpcnet_request *req) {
  for (;;) {
    rpci_value *m = NULL;
    int rc = recv_map(req, &m);
    if (rc == RPCNET_END_OF_STREAM) break;
    if (rc == RPCNET_INVALID_ARGUMENT) return;
    if (rc != RPCNET_OK) {
      end_failed(req, rc);
      return;
    }
    uint64_t size = 0;
    const rpci_value *p = cf_get_bytes(m, "payload");
    if (cf_get_uint(m, "size", &size) != 0 || !p) {
      rpci_value_free(m);
      rpcnet_request_finish(req, RPCNET_INVALID_ARGUMENT, "Bidi expects {size, payload}");
      return;
    }
    if (!cf_payload_ok(p->u.str.p, p->u.str.len)) {
      rpci_value_free(m);
      rpcnet_request_finish(req, RPCNET_DATA_LOSS, "payload differs from its pattern");
      return;
    }
    rpci_value_free(m);
    rc = send_payload(req, (size_t)size);
    if (rc != RPCNET_OK) {
      end_failed(req, rc);
      return;
    }
  }
  rpcnet_request_finish(req, RPCNET_OK, NULL);
}

static const struct {
  const char *method;
  int streaming;
  void (*serve)(rpcnet_request *);
} methods[] = {
    {M_EMPTY, 0, serve_empty},
    {M_UNARY, 0, serve_unary},
    {M_SLEEP, 0, serve_sleep},
    {M_ECHO_VALUE, 0, serve_echo_value},
    {M_ECHO_METADATA, 0, serve_echo_metadata},
    {M_CLIENT_STREAM, 1, serve_client_stream},
    {M_SERVER_STREAM, 1, serve_server_stream},
    {M_BIDI, 1, serve_bidi},
};
#define NMETHODS (sizeof methods / sizeof methods[0])

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    rpcnet_request *req = NULL;
    int rc = rpcnet_server_next(srv, -1, &req);
    if (rc == RPCNET_UNAVAILABLE) break;
    if (rc != RPCNET_OK) continue;
    const char *method = rpcnet_request_method(req);
    size_t i = 0;
    while (i < NMETHODS && strcmp(methods[i].method, method) != 0) i++;
    if (i < NMETHODS)
      methods[i].serve(req);
    else
      rpcnet_request_fail(req, RPCNET_UNIMPLEMENTED, method);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s CERT_FILE KEY_FILE\n", argv[0]);
    return 2;
  }
  /* SIGTERM/SIGINT are taken by sigwait in main; block them everywhere
   * (threads, the library's I/O threads included, inherit the mask). */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  const char *vpath = getenv("RPCNET_VECTORS");
  if (vpath && *vpath) {
    if (cf_vectors_load(&vectors, vpath) != 0) return 1;
    have_vectors = 1;
  } else {
    fprintf(stderr, "warning: RPCNET_VECTORS not set; EchoValue will fail\n");
  }

  rpcnet_config *cfg = rpcnet_config_new();
  if (!cfg || rpcnet_config_set(cfg, "cert_file", argv[1]) != RPCNET_OK ||
      rpcnet_config_set(cfg, "key_file", argv[2]) != RPCNET_OK) {
    fprintf(stderr, "config: %s\n", rpcnet_last_error());
    return 1;
  }
  srv = rpcnet_server_new(cfg);
  rpcnet_config_free(cfg);
  if (!srv) {
    fprintf(stderr, "server: %s\n", rpcnet_last_error());
    return 1;
  }
  for (size_t i = 0; i < NMETHODS; i++) {
    int rc = methods[i].streaming ? rpcnet_server_handle_stream(srv, methods[i].method, NULL, NULL)
                                  : rpcnet_server_handle(srv, methods[i].method, NULL, NULL);
    if (rc != RPCNET_OK) {
      fprintf(stderr, "register %s: %s\n", methods[i].method, rpcnet_last_error());
      return 1;
    }
  }
  if (rpcnet_server_listen(srv, "127.0.0.1:0") != RPCNET_OK) {
    fprintf(stderr, "listen: %s\n", rpcnet_last_error());
    return 1;
  }
  pthread_t th[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
      fprintf(stderr, "cannot start worker threads\n");
      return 1;
    }
  }
  printf("PORT %d\n", rpcnet_server_port(srv));
  fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  fprintf(stderr, "server: signal %d, shutting down\n", sig);
  rpcnet_server_shutdown(srv, 1000);
  for (int i = 0; i < WORKERS; i++) pthread_join(th[i], NULL);
  rpcnet_server_free(srv);
  if (have_vectors) cf_vectors_free(&vectors);
  return 0;
}

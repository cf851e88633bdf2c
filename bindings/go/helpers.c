// C helpers of the cgo layer (see rpcnet.go).
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

// Every helper copies rpcnet_last_error() (thread-local) into malloc'd
// memory on the thread that failed, so Go may read it from any thread.
char *rn_dup_err(void) { return strdup(rpcnet_last_error()); }

rpcnet_config *rn_config(char **kv, int n, char **err) {
  rpcnet_config *cfg = rpcnet_config_new();
  if (!cfg) {
    *err = strdup("out of memory");
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    if (rpcnet_config_set(cfg, kv[2 * i], kv[2 * i + 1]) != RPCNET_OK) {
      *err = rn_dup_err();
      rpcnet_config_free(cfg);
      return NULL;
    }
  }
  return cfg;
}

rpcnet_client *rn_connect(rpcnet_config *cfg, const char *addr, char **err) {
  rpcnet_client *c = rpcnet_client_connect(cfg, addr);
  if (!c) *err = rn_dup_err();
  return c;
}

rpcnet_call *rn_start(rpcnet_client *cli, const char *method, int timeout_ms, char **err) {
  rpcnet_call *c = rpcnet_client_start(cli, method, timeout_ms);
  if (!c) *err = rn_dup_err();
  return c;
}

int rn_call_md(rpcnet_call *call, const char *k, const void *v, size_t n, char **err) {
  int st = rpcnet_call_set_metadata(call, k, v, n);
  if (st) *err = rn_dup_err();
  return st;
}

// Final status and message of an ended call (message copied).
int rn_status(rpcnet_call *call, char **msg) {
  const char *m = NULL;
  int st = rpcnet_call_status(call, &m);
  *msg = strdup(m ? m : "");
  return st;
}

// First half of a unary call on a started handle: send the request and
// close the sending side. Neither waits unless the send window is full.
int rn_unary_begin(rpcnet_call *call, const void *req, size_t n, char **msg) {
  int st = rpcnet_call_send_last(call, req, n); /* message + FIN, one packet */
  if (st != RPCNET_OK) {
    *msg = rn_dup_err();
    rpcnet_call_cancel(call);
  }
  return st;
}

// Second half: receives up to timeout_ms (0: only what is queued, < 0: to
// the end). Returns RPCNET_WOULD_BLOCK while the call runs (*resp keeps the
// message received so far across calls), else the final status; on a
// failure *resp is freed and NULL.
int rn_unary_poll(rpcnet_call *call, int timeout_ms, void **resp, size_t *rlen, char **msg) {
  for (;;) {
    void *d = NULL;
    size_t l = 0;
    int r = rpcnet_call_recv(call, timeout_ms, &d, &l);
    if (r == RPCNET_OK) {
      if (!*resp) {
        *resp = d;
        *rlen = l;
      } else
        rpcnet_free(d);
      continue;
    }
    if (r == RPCNET_WOULD_BLOCK) return r;
    break;  // RPCNET_END_OF_STREAM
  }
  int st = rn_status(call, msg);
  if (st != RPCNET_OK) {
    rpcnet_free(*resp);
    *resp = NULL;
    *rlen = 0;
  }
  return st;
}

// A whole unary call, blocking the calling thread.
int rn_unary(rpcnet_call *call, const void *req, size_t n, void **resp, size_t *rlen, char **msg) {
  *resp = NULL;
  *rlen = 0;
  int st = rn_unary_begin(call, req, n, msg);
  return st ? st : rn_unary_poll(call, -1, resp, rlen, msg);
}

int rn_send(rpcnet_call *call, const void *d, size_t n, char **err) {
  int st = rpcnet_call_send(call, d, n);
  if (st) *err = rn_dup_err();
  return st;
}

int rn_close_send(rpcnet_call *call, char **err) {
  int st = rpcnet_call_close_send(call);
  if (st) *err = rn_dup_err();
  return st;
}

int rn_recv(rpcnet_call *call, void **d, size_t *n) { return rpcnet_call_recv(call, -1, d, n); }

rpcnet_server *rn_server_new(rpcnet_config *cfg, char **err) {
  rpcnet_server *s = rpcnet_server_new(cfg);
  if (!s) *err = rn_dup_err();
  return s;
}

int rn_listen(rpcnet_server *s, const char *addr, char **err) {
  int st = rpcnet_server_listen(s, addr);
  if (st) *err = rn_dup_err();
  return st;
}

int rn_handle(rpcnet_server *s, const char *m, int stream) {
  return stream ? rpcnet_server_handle_stream(s, m, NULL, NULL)
                : rpcnet_server_handle(s, m, NULL, NULL);
}

int rn_req_reply(rpcnet_request *r, const void *d, size_t n, char **err) {
  int st = rpcnet_request_reply(r, d, n);
  if (st) *err = rn_dup_err();
  return st;
}

int rn_req_finish(rpcnet_request *r, int code, const char *msg, char **err) {
  int st = rpcnet_request_finish(r, code, msg);
  if (st) *err = rn_dup_err();
  return st;
}

int rn_req_send(rpcnet_request *r, const void *d, size_t n, char **err) {
  int st = rpcnet_request_send(r, d, n);
  if (st) *err = rn_dup_err();
  return st;
}

int rn_req_recv(rpcnet_request *r, int timeout_ms, void **d, size_t *n, char **err) {
  int st = rpcnet_request_recv(r, timeout_ms, d, n);
  if (st > 0) *err = rn_dup_err();
  return st;
}

int rn_req_trailer(rpcnet_request *r, const char *k, const void *v, size_t n, char **err) {
  int st = rpcnet_request_set_trailer(r, k, v, n);
  if (st) *err = rn_dup_err();
  return st;
}

// Metadata listing (const void ** outputs as const char ** for cgo).
const char *rn_req_md_at(rpcnet_request *r, size_t i, const char **v, size_t *n) {
  const void *p = NULL;
  const char *k = rpcnet_request_metadata_at(r, i, &p, n);
  *v = p;
  return k;
}

const char *rn_trailer_at(rpcnet_call *call, size_t i, const char **v, size_t *n) {
  const void *p = NULL;
  const char *k = rpcnet_call_trailer_at(call, i, &p, n);
  *v = p;
  return k;
}

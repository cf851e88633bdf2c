// C helpers of the cgo layer (see rpcnet.go).
#include "helpers.h"
#include <stdlib.h>
#include <string.h>

// Every helper copies rpcnet_last_error() (thread-local) into malloc'd
// memory on the thread that failed, so Go may read it from any thread.
char *rn_dup_err(void) { return strdup(rpcnet_last_error()); }

rpcnet_config *rn_config(char **kv, int n, char **err) {
  rpcnet_config *cfg = rpcnet_config_new();
  if (!cfg) { *err = strdup("out of memory"); return NULL; }
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

// A whole unary call on a started handle: send, close_send, recv to the end.
int rn_unary(rpcnet_call *call, const void *req, size_t n, void **resp, size_t *rlen,
                    char **msg) {
  *resp = NULL;
  *rlen = 0;
  int st = rpcnet_call_send(call, req, n);
  if (st == RPCNET_OK) st = rpcnet_call_close_send(call);
  if (st != RPCNET_OK) {
    *msg = rn_dup_err();
    rpcnet_call_cancel(call);
    return st;
  }
  for (;;) {
    void *d = NULL;
    size_t l = 0;
    int r = rpcnet_call_recv(call, -1, &d, &l);
    if (r == RPCNET_OK) {
      if (!*resp) { *resp = d; *rlen = l; } else rpcnet_free(d);
      continue;
    }
    if (r == RPCNET_END_OF_STREAM) break;
    rpcnet_call_cancel(call);  // WOULD_BLOCK cannot happen with -1
  }
  st = rn_status(call, msg);
  if (st == RPCNET_OK && !*resp) {
    // C library bug: the call ended OK without delivering its message.
    free(*msg);
    *msg = strdup("call ended OK without its response message (rpcnet call-handle bug)");
    return RPCNET_DATA_LOSS;
  }
  if (st != RPCNET_OK) { rpcnet_free(*resp); *resp = NULL; *rlen = 0; }
  return st;
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

int rn_recv(rpcnet_call *call, void **d, size_t *n) {
  return rpcnet_call_recv(call, -1, d, n);
}

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
  return stream ? rpcnet_server_handle_stream(s, m, NULL, NULL) : rpcnet_server_handle(s, m, NULL, NULL);
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

int rn_client_call(rpcnet_client *cli, const char *m, const void *req, size_t n, void **resp,
                   size_t *rlen, int timeout_ms, char **msg) {
  int st = rpcnet_client_call(cli, m, req, n, resp, rlen, timeout_ms);
  if (st) *msg = rn_dup_err();
  return st;
}

// Declarations of helpers.c (cgo layer).
#ifndef RPCNET_GO_HELPERS_H
#define RPCNET_GO_HELPERS_H
#include <rpcnet/rpcnet.h>
#include <stdlib.h>
rpcnet_config *rn_config(char **kv, int n, char **err);
rpcnet_client *rn_connect(rpcnet_config *cfg, const char *addr, char **err);
rpcnet_call *rn_start(rpcnet_client *cli, const char *method, int timeout_ms, char **err);
int rn_call_md(rpcnet_call *call, const char *k, const void *v, size_t n, char **err);
int rn_status(rpcnet_call *call, char **msg);
int rn_send(rpcnet_call *call, const void *d, size_t n, char **err);
int rn_close_send(rpcnet_call *call, char **err);
int rn_recv(rpcnet_call *call, void **d, size_t *n);
rpcnet_server *rn_server_new(rpcnet_config *cfg, char **err);
int rn_listen(rpcnet_server *s, const char *addr, char **err);
int rn_handle(rpcnet_server *s, const char *m, int stream);
int rn_req_reply(rpcnet_request *r, const void *d, size_t n, char **err);
int rn_req_finish(rpcnet_request *r, int code, const char *msg, char **err);
int rn_req_send(rpcnet_request *r, const void *d, size_t n, char **err);
int rn_req_recv(rpcnet_request *r, int timeout_ms, void **d, size_t *n, char **err);
int rn_req_trailer(rpcnet_request *r, const char *k, const void *v, size_t n, char **err);
int rn_unary(rpcnet_call *call, const void *req, size_t n, void **resp, size_t *rlen, char **msg);
int rn_unary_begin(rpcnet_call *call, const void *req, size_t n, char **msg);
int rn_unary_poll(rpcnet_call *call, int timeout_ms, void **resp, size_t *rlen, char **msg);
const char *rn_req_md_at(rpcnet_request *r, size_t i, const char **v, size_t *n);
const char *rn_trailer_at(rpcnet_call *call, size_t i, const char **v, size_t *n);
#endif

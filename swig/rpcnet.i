/*
 * rpcnet.i: the one SWIG description of the C API (capi/include/rpcnet/rpcnet.h)
 * for every binding. Language-neutral parts live here; each language's
 * typemaps (buffers in and out, out-parameters, GIL/threads) live in
 * swig/<language>.i, included below.
 *
 * Conventions every <language>.i implements:
 *   (const void *data, size_t len) and the other (pointer, length) inputs:
 *       a binary-safe byte buffer in (no copy where the language allows it).
 *   (void **data, size_t *len): a library-allocated buffer out, converted to
 *       the language's bytes type and freed with rpcnet_free.
 *   (const void **borrowed, size_t *borrowed_len): a buffer owned by the
 *       library, copied out (nil/None when the pointer is NULL).
 *   (const void **value, size_t *len) of the *_at listing functions
 *       (rpcnet_request_metadata_at, rpcnet_call_trailer_at), which return
 *       the key: the borrowed value copied out with the key. Python returns
 *       the tuple (key, value_bytes), or None past the end; Lua returns
 *       key, value (nil, nil past the end).
 *   rpcnet_request **out: the request taken by rpcnet_server_next.
 *   const char **message: a status message out (string).
 * Functions returning status ints return them unchanged; the idiomatic
 * layer of each binding turns them into the language's errors.
 */
%module(package="rpcnet", threads="1") _rpcnet_c

%{
#include <rpcnet/rpcnet.h>
%}

/* The header's visibility attribute means nothing to SWIG. */
#define RPCNET_API

#if defined(SWIGPYTHON)
%include "python.i"
#elif defined(SWIGGO)
%include "go.i"
#elif defined(SWIGLUA)
%include "lua.i"
#endif

/* Replaced by the helpers below (borrowed buffers out, NULL handlers). */
%ignore rpcnet_request_data;
%ignore rpcnet_request_metadata;
%ignore rpcnet_call_trailer;
%ignore rpcnet_server_handle;
%ignore rpcnet_server_handle_stream;
%ignore rpcnet_handler_fn;
/* Replaced by rpcnet_swig_cluster_call (the member name as a string out). */
%ignore rpcnet_cluster_call;
%ignore rpcnet_cluster_call_ex;

/* Cheap functions that never block do not need to drop the host lock. */
%feature("nothread") rpcnet_version;
%feature("nothread") rpcnet_status_name;
%feature("nothread") rpcnet_last_error;
%feature("nothread") rpcnet_free;
%feature("nothread") rpcnet_config_new;
%feature("nothread") rpcnet_config_set;
%feature("nothread") rpcnet_config_free;
%feature("nothread") rpcnet_server_port;
%feature("nothread") rpcnet_server_fd;
%feature("nothread") rpcnet_request_method;
%feature("nothread") rpcnet_request_peer;
%feature("nothread") rpcnet_request_set_trailer;
%feature("nothread") rpcnet_request_fd;
%feature("nothread") rpcnet_request_cancelled;
%feature("nothread") rpcnet_request_deadline_ms;
%feature("nothread") rpcnet_call_set_metadata;
%feature("nothread") rpcnet_call_status;
%feature("nothread") rpcnet_call_fd;
%feature("nothread") rpcnet_call_cancel;
%feature("nothread") rpcnet_call_send_fd;
%feature("nothread") rpcnet_request_send_fd;
%feature("nothread") rpcnet_request_metadata_count;
%feature("nothread") rpcnet_request_metadata_at;
%feature("nothread") rpcnet_call_trailer_count;
%feature("nothread") rpcnet_call_trailer_at;
%feature("nothread") rpcnet_swig_request_data;
%feature("nothread") rpcnet_swig_request_metadata;
%feature("nothread") rpcnet_swig_call_trailer;
%feature("nothread") rpcnet_swig_server_pull;
%feature("nothread") rpcnet_swig_server_pull_stream;
%feature("nothread") rpcnet_cluster_fd;
%feature("nothread") rpcnet_cluster_name;
%feature("nothread") rpcnet_cluster_gossip_port;

%include "rpcnet/rpcnet.h"

%inline %{
/* The request message, borrowed (valid until the request is answered). */
void rpcnet_swig_request_data(const rpcnet_request *req, const void **borrowed,
                              size_t *borrowed_len) {
  *borrowed = rpcnet_request_data(req, borrowed_len);
}
/* The first value of request metadata key, borrowed, or NULL. */
void rpcnet_swig_request_metadata(const rpcnet_request *req, const char *key,
                                  const void **borrowed, size_t *borrowed_len) {
  *borrowed = rpcnet_request_metadata(req, key, borrowed_len);
}
/* The first value of trailing metadata key once the call ended, or NULL. */
void rpcnet_swig_call_trailer(rpcnet_call *call, const char *key, const void **borrowed,
                              size_t *borrowed_len) {
  *borrowed = rpcnet_call_trailer(call, key, borrowed_len);
}
/* Registers method as pulled (rpcnet_server_next): no library thread ever
 * calls into the host language. */
int rpcnet_swig_server_pull(rpcnet_server *srv, const char *method) {
  return rpcnet_server_handle(srv, method, NULL, NULL);
}
int rpcnet_swig_server_pull_stream(rpcnet_server *srv, const char *method) {
  return rpcnet_server_handle_stream(srv, method, NULL, NULL);
}
/* A routed unary call (rpcnet_cluster_call_ex); *message receives the name
 * of the member that answered ("" when none did), in thread-local storage
 * valid until the next call on this thread. */
int rpcnet_swig_cluster_call(rpcnet_cluster *cl, const char *filter, const char *method,
                             const void *data, size_t len, void **resp, size_t *resp_len,
                             int timeout_ms, int flags, const char **message) {
  static _Thread_local char member[80];
  member[0] = 0;
  int rc = rpcnet_cluster_call_ex(cl, filter, method, data, len, resp, resp_len, timeout_ms,
                                  flags, member, sizeof member);
  *message = member;
  return rc;
}
%}

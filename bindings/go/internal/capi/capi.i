/* Package capi: the C API of <rpcnet/rpcnet.h> as SWIG generates it from
 * swig/rpcnet.i with the Go typemaps of swig/go.i. The go tool runs SWIG on
 * this file itself (swig -go -cgo -intgosize 64 -module capi), with the -I
 * flags of flags.go and of pkg-config rpcnet. The idiomatic layer is the
 * package above (bindings/go); nothing here is public API.
 *
 * Two helpers are added: rpcnet_go_unary, a whole unary call on a started
 * handle in one C call (see bindings/go/README.md, "Performance notes"),
 * and rpcnet_go_cluster_untag (rpcnet_cluster_set_tag with a NULL value). */
%include "rpcnet.i"

/* A message the helper allocated (strdup): copied into the Go string,
 * then freed. */
%typemap(gotype) char **owned_message "*string"
%typemap(in) char **owned_message (char *tmp = NULL) %{
  $1 = &tmp;
%}
%typemap(argout) char **owned_message %{
  {
    _gostring_ *s_ = (_gostring_ *)$input;
    s_->p = tmp$argnum;
    s_->n = tmp$argnum ? (intgo)strlen(tmp$argnum) : 0;
  }
%}
%typemap(goargout) char **owned_message %{
	if p := unsafe.StringData(*$input); p != nil {
		*$input = string(unsafe.Slice(p, len(*$input)))
		Swig_free(uintptr(unsafe.Pointer(p)))
	}
%}

%inline %{
#include <stdlib.h>
#include <string.h>
/* A whole unary call on a started handle in one C call: sends req with
 * the FIN, receives to the end, returns the final status. On RPCNET_OK
 * *resp_out is the first message (library buffer; non-NULL even when
 * empty) and *message NULL. Otherwise *resp_out is NULL and *message a
 * malloc'd copy of the status message, or of rpcnet_last_error() when the
 * send failed (so no thread-local state crosses into Go). */
int rpcnet_go_unary(rpcnet_call *call, const void *req, size_t req_len, void **resp_out,
                    size_t *resp_out_len, char **owned_message) {
  void *d;
  size_t l;
  const char *m = NULL;
  int r = rpcnet_call_send_last(call, req, req_len);
  *owned_message = NULL;
  if (r != RPCNET_OK) {
    *owned_message = strdup(rpcnet_last_error());
    rpcnet_call_cancel(call);
    return r;
  }
  for (;;) {
    d = NULL;
    l = 0;
    r = rpcnet_call_recv(call, -1, &d, &l);
    if (r != RPCNET_OK) break;
    if (!*resp_out) {
      *resp_out = d;
      *resp_out_len = l;
    } else {
      rpcnet_free(d);
    }
  }
  r = rpcnet_call_status(call, &m);
  if (r != RPCNET_OK) {
    if (*resp_out) rpcnet_free(*resp_out);
    *resp_out = NULL;
    *resp_out_len = 0;
    *owned_message = strdup(m ? m : "");
  }
  return r;
}
%}

%inline %{
/* rpcnet_cluster_set_tag with value NULL (removes the tag): a Go string
 * cannot be NULL. */
int rpcnet_go_cluster_untag(rpcnet_cluster *cl, const char *key) {
  return rpcnet_cluster_set_tag(cl, key, NULL);
}
%}

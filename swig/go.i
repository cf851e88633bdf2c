/*
 * go.i: Go typemaps for rpcnet.i (included from it under SWIGGO), for
 * `swig -go -cgo -intgosize 64`: bindings/go/internal/capi/generate.sh runs
 * it on capi.i (which includes rpcnet.i) and the package rpcnet
 * (bindings/go) is the idiomatic layer over the result.
 *
 * Go's cgo rules and `go vet` shape the typemaps: Go memory passed to C
 * must not hold Go pointers, and vet's cgocall check rejects passing a
 * pointer to a slice, map, chan or func. So:
 *   - handles are typed uintptr values (Client, Call, ...; 0 for NULL);
 *   - buffers in are []byte passed in place (the library copies them);
 *   - buffers out are a *Buf (an unsafe.Pointer and a length) that C fills;
 *     Buf.Take copies a library buffer into Go memory once and frees it
 *     with rpcnet_free, Buf.Copy / CopyString copy a borrowed one;
 *   - strings out (const char * results, const char **message) are
 *     borrowed from the library and copied once into Go strings;
 *   - no C int output is bound to a Go *int (8 bytes against C's 4).
 * rpcnet_last_error() is thread-local and a goroutine may change threads
 * between two cgo calls: a caller that needs the message holds
 * runtime.LockOSThread across the failing call and Rpcnet_last_error.
 */

/* ---- handles: typed uintptr values (0: NULL), not SWIG's interface
 * wrappers (an interface costs an allocation per returned handle). ---- */
%insert(go_wrapper) %{
// Handles of the C API: the C pointer as a number, 0 for NULL.
type (
	Config  uintptr // rpcnet_config *
	Client  uintptr // rpcnet_client *
	Server  uintptr // rpcnet_server *
	Request uintptr // rpcnet_request *
	Call    uintptr // rpcnet_call *
	Cluster uintptr // rpcnet_cluster *
)
%}
%define RPCNET_GO_HANDLE(CTYPE, GOTYPE)
%typemap(gotype) CTYPE *, const CTYPE * "GOTYPE"
%typemap(imtype) CTYPE *, const CTYPE * "uintptr"
%typemap(goin) CTYPE *, const CTYPE * %{ $result = uintptr($input) %}
%typemap(in) CTYPE *, const CTYPE * %{ $1 = ($1_ltype)$input; %}
%typemap(out) CTYPE * %{ $result = $1; %}
%typemap(goout) CTYPE * %{ $result = GOTYPE($1) %}
%enddef
RPCNET_GO_HANDLE(rpcnet_config, Config)
RPCNET_GO_HANDLE(rpcnet_client, Client)
RPCNET_GO_HANDLE(rpcnet_server, Server)
RPCNET_GO_HANDLE(rpcnet_request, Request)
RPCNET_GO_HANDLE(rpcnet_call, Call)
RPCNET_GO_HANDLE(rpcnet_cluster, Cluster)

/* int64_t (rpcnet_request_deadline_ms) as Go int64, not an opaque type. */
%include <stdint.i>

/* ---- binary-safe input buffers: []byte, in place (no copy here) ---- */
%typemap(gotype) (const void *data, size_t len),
                 (const void *req, size_t req_len),
                 (const void *value, size_t len) "[]byte"
%typemap(in) (const void *data, size_t len),
             (const void *req, size_t req_len),
             (const void *value, size_t len) %{
  $1 = $input.array;
  $2 = (size_t)$input.len;
%}

/* ---- buffers out: *Buf (P, N), filled by C, read by Buf.Take/Copy ----
 * A Go []byte output would mean passing a pointer to a slice header to C,
 * which go vet's cgocall check rejects ("possibly passing Go type with
 * embedded pointer to C"); Buf holds only an unsafe.Pointer and a length.
 * Library buffers (void **data, ...): Take copies them into Go memory and
 * frees them with rpcnet_free. Borrowed ones (const void **...): Copy. */
%insert(go_wrapper) %{
// Buf is a C buffer returned through an output parameter.
type Buf struct {
	P unsafe.Pointer
	N uint64
}

// Take copies a library-allocated buffer into Go memory and frees it
// (nil when there was none; an empty non-nil slice for an empty buffer).
func (b *Buf) Take() []byte {
	if b.P == nil {
		return nil
	}
	out := make([]byte, int(b.N))
	copy(out, unsafe.Slice((*byte)(b.P), int(b.N)))
	Rpcnet_free(uintptr(b.P))
	b.P, b.N = nil, 0
	return out
}

// CopyString copies a borrowed buffer into a Go string ("" when none).
func (b *Buf) CopyString() string {
	if b.P == nil {
		return ""
	}
	return string(unsafe.Slice((*byte)(b.P), int(b.N)))
}

// Copy copies a borrowed buffer into Go memory (nil when there was none).
func (b *Buf) Copy() []byte {
	if b.P == nil {
		return nil
	}
	return append(make([]byte, 0, int(b.N)), unsafe.Slice((*byte)(b.P), int(b.N))...)
}
%}
%typemap(gotype) (void **data, size_t *len), (void **resp, size_t *resp_len),
                 (void **resp_out, size_t *resp_out_len),
                 (const void **borrowed, size_t *borrowed_len),
                 (const void **value, size_t *len) "*Buf"
%typemap(in) (void **data, size_t *len), (void **resp, size_t *resp_len),
             (void **resp_out, size_t *resp_out_len),
             (const void **borrowed, size_t *borrowed_len),
             (const void **value, size_t *len) %{
  {
    struct { void *p; size_t n; } *b_ = (void *)$input;
    b_->p = NULL;
    b_->n = 0;
    $1 = ($1_ltype)&b_->p;
    $2 = &b_->n;
  }
%}

/* ---- status message out: *string (borrowed by the call; copied) ---- */
%typemap(gotype) const char **message "*string"
%typemap(in) const char **message (const char *tmp = NULL) %{
  $1 = ($1_ltype)&tmp;
%}
%typemap(argout) const char **message %{
  {
    _gostring_ *s_ = (_gostring_ *)$input;
    s_->p = (char *)tmp$argnum;
    s_->n = tmp$argnum ? (intgo)strlen(tmp$argnum) : 0;
  }
%}
%typemap(goargout) const char **message %{
	*$input = string(unsafe.Slice(unsafe.StringData(*$input), len(*$input)))
%}

/* ---- const char * results (method, peer, keys, names, last error):
 * borrowed from the library, copied once into a Go string. ---- */
%typemap(out) const char * %{
  $result.p = (char *)$1;
  $result.n = $1 ? (intgo)strlen($1) : 0;
%}
%typemap(goout) const char * %{
	$result = string(unsafe.Slice(unsafe.StringData($1), len($1)))
%}

/* ---- rpcnet_server_next's request out: *Request (0 when none) ---- */
%typemap(gotype) rpcnet_request **out "*Request"
%typemap(in) rpcnet_request **out %{
  $1 = (rpcnet_request **)$input;
%}

// Package rpcnet is the Go binding of rpcnet, RPC over QUIC + TLS 1.3 with a
// CBOR wire format. It calls the C library (<rpcnet/rpcnet.h>) through a
// hand-written cgo layer: blocking C calls run on the calling goroutine's
// thread, no library thread ever calls into Go (servers pull calls with
// rpcnet_server_next), and every failure is an *Error.
package rpcnet

/*
#cgo pkg-config: rpcnet
#include "helpers.h"
*/
import "C"

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"time"
	"unsafe"
)

// Version is the C library's version ("MAJOR.MINOR.PATCH").
func Version() string { return C.GoString(C.rpcnet_version()) }

// takeErr converts a malloc'd C message into a Go string and frees it.
func takeErr(p *C.char) string {
	if p == nil {
		return ""
	}
	s := C.GoString(p)
	C.free(unsafe.Pointer(p))
	return s
}

func statusErr(st C.int, msg *C.char) error {
	m := takeErr(msg)
	if st == 0 {
		return nil
	}
	return &Error{Code: Code(st), Message: m}
}

// bytesPtr passes a Go slice to C without copying (cgo allows Go memory
// without Go pointers for the duration of a call; the library copies).
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// takeBytes copies a library buffer into Go memory (the one copy) and frees it.
func takeBytes(p unsafe.Pointer, n C.size_t) []byte {
	if p == nil {
		return nil
	}
	out := make([]byte, int(n))
	copy(out, unsafe.Slice((*byte)(p), int(n)))
	C.rpcnet_free(p)
	return out
}

func newConfig(cfg *Config) (*C.rpcnet_config, error) {
	kv := cfg.pairs()
	arr := C.malloc(C.size_t(len(kv)*2+1) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(arr)
	cs := unsafe.Slice((**C.char)(arr), len(kv)*2+1)
	for i, p := range kv {
		cs[2*i] = C.CString(p[0])
		cs[2*i+1] = C.CString(p[1])
	}
	defer func() {
		for i := 0; i < len(kv)*2; i++ {
			C.free(unsafe.Pointer(cs[i]))
		}
	}()
	var errp *C.char
	c := C.rn_config((**C.char)(arr), C.int(len(kv)), &errp)
	if c == nil {
		return nil, &Error{Code: InvalidArgument, Message: takeErr(errp)}
	}
	return c, nil
}

// timeoutMS turns ctx's deadline into the C timeout (0: the config default).
func timeoutMS(ctx context.Context) (C.int, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0, &Error{Code: DeadlineExceeded, Message: "context deadline exceeded", Cause: context.DeadlineExceeded}
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxInt32 {
		ms = math.MaxInt32
	}
	return C.int(ms), nil
}

// ctxErr makes an error from ctx when it is done before a call starts.
func ctxErr(ctx context.Context) error {
	switch err := ctx.Err(); {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: DeadlineExceeded, Message: err.Error(), Cause: err}
	default:
		return &Error{Code: Canceled, Message: err.Error(), Cause: err}
	}
}

// withCtx attaches ctx's error as the Cause of a CANCELLED or
// DEADLINE_EXCEEDED *Error that ctx caused.
func withCtx(ctx context.Context, err error) error {
	var e *Error
	if errors.As(err, &e) && e.Cause == nil && ctx.Err() != nil &&
		(e.Code == Canceled || e.Code == DeadlineExceeded) {
		e.Cause = ctx.Err()
	}
	return err
}

// ------------------------------------------------------------------ client

// Client is a connection to one server. Its methods may be called from any
// number of goroutines at once; calls are concurrent QUIC streams.
type Client struct {
	mu     sync.Mutex
	c      *C.rpcnet_client
	calls  map[*callHandle]struct{}
	closed bool
}

// Dial connects to addr ("host:port", "[v6]:port") and completes the QUIC
// and TLS handshakes. The connect blocks up to the config's handshake
// timeout; ctx is only checked before it starts.
func Dial(ctx context.Context, addr string, cfg Config) (*Client, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	cc, err := newConfig(&cfg)
	if err != nil {
		return nil, err
	}
	defer C.rpcnet_config_free(cc)
	ca := C.CString(addr)
	defer C.free(unsafe.Pointer(ca))
	var errp *C.char
	c := C.rn_connect(cc, ca, &errp)
	if c == nil {
		return nil, &Error{Code: Unavailable, Message: takeErr(errp)}
	}
	return &Client{c: c, calls: map[*callHandle]struct{}{}}, nil
}

// Close cancels the calls and streams in flight (they fail with CANCELLED),
// frees them, closes the connection and frees the client. Later use of the
// client gives an error wrapping ErrClosed. Calling it again is harmless.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	hs := make([]*callHandle, 0, len(c.calls))
	for h := range c.calls {
		hs = append(hs, h)
	}
	c.mu.Unlock()
	for _, h := range hs {
		h.free() // cancels, then waits for the goroutines using h to return
	}
	C.rpcnet_client_close(c.c)
	c.c = nil
	return nil
}

// callHandle guards one rpcnet_call: operations hold the read lock (a sender
// and a receiver may run at once), free takes the write lock after
// cancelling so that blocked operations return first.
type callHandle struct {
	mu  sync.RWMutex
	c   *C.rpcnet_call
	cli *Client
}

func (h *callHandle) cancel() {
	h.mu.RLock()
	if h.c != nil {
		C.rpcnet_call_cancel(h.c)
	}
	h.mu.RUnlock()
}

func (h *callHandle) free() {
	h.cancel()
	h.mu.Lock()
	if h.c != nil {
		C.rpcnet_call_free(h.c)
		h.c = nil
	}
	h.mu.Unlock()
	h.cli.mu.Lock()
	delete(h.cli.calls, h)
	h.cli.mu.Unlock()
}

// CallOption changes one call.
type CallOption func(*callOptions)

type callOptions struct {
	md      map[string]string
	trailer *map[string]string
}

// Trailer returns a CallOption that stores the call's trailing metadata in
// *md once the call has ended, whether it succeeded or failed (as grpc-go's
// grpc.Trailer): for Call and CallRaw by the time they return, for a Stream
// when Recv returns io.EOF or the call's error. The map has the shape of
// Stream.Trailers (first value of each key; "-bin" values are raw bytes in
// a string); it is empty when the server sent none or the call never
// reached it.
func Trailer(md *map[string]string) CallOption {
	return func(o *callOptions) { o.trailer = md }
}

// storeTrailers fills *o.trailer, when asked, from an ended call (nil: the
// call never started).
func (o *callOptions) storeTrailers(c *C.rpcnet_call) {
	if o.trailer == nil {
		return
	}
	if c == nil {
		*o.trailer = map[string]string{}
		return
	}
	*o.trailer = trailersOf(c)
}

// trailersOf lists the trailing metadata of an ended call.
func trailersOf(c *C.rpcnet_call) map[string]string {
	cnt := int(C.rpcnet_call_trailer_count(c))
	md := make(map[string]string, cnt)
	for i := 0; i < cnt; i++ {
		var v *C.char
		var n C.size_t
		k := C.rn_trailer_at(c, C.size_t(i), &v, &n)
		if k == nil {
			break
		}
		key := C.GoString(k)
		if _, dup := md[key]; !dup {
			md[key] = C.GoStringN(v, C.int(n))
		}
	}
	return md
}

// Metadata adds request metadata to a call (keys ending in "-bin" carry
// bytes, others UTF-8 text).
func Metadata(md map[string]string) CallOption {
	return func(o *callOptions) {
		if o.md == nil {
			o.md = map[string]string{}
		}
		for k, v := range md {
			o.md[k] = v
		}
	}
}

type mdKey struct{}

// WithMetadata returns a context whose calls send md as request metadata
// (added to any metadata already in ctx).
func WithMetadata(ctx context.Context, md map[string]string) context.Context {
	all := map[string]string{}
	if old, ok := ctx.Value(mdKey{}).(map[string]string); ok {
		for k, v := range old {
			all[k] = v
		}
	}
	for k, v := range md {
		all[k] = v
	}
	return context.WithValue(ctx, mdKey{}, all)
}

func collectOptions(ctx context.Context, opts []CallOption) *callOptions {
	var o callOptions
	if md, ok := ctx.Value(mdKey{}).(map[string]string); ok {
		Metadata(md)(&o)
	}
	for _, f := range opts {
		f(&o)
	}
	return &o
}

func (c *Client) start(ctx context.Context, method string, o *callOptions) (*callHandle, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	tmo, err := timeoutMS(ctx)
	if err != nil {
		return nil, err
	}
	cm := C.CString(method)
	defer C.free(unsafe.Pointer(cm))
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, closedErr("client")
	}
	var errp *C.char
	cc := C.rn_start(c.c, cm, tmo, &errp)
	if cc == nil {
		c.mu.Unlock()
		return nil, &Error{Code: InvalidArgument, Message: takeErr(errp)}
	}
	h := &callHandle{c: cc, cli: c}
	h.mu.RLock() // Close waits for the metadata below
	c.calls[h] = struct{}{}
	c.mu.Unlock()
	for k, v := range o.md {
		ck := C.CString(k)
		vb := []byte(v)
		var errp *C.char
		st := C.rn_call_md(cc, ck, bytesPtr(vb), C.size_t(len(vb)), &errp)
		C.free(unsafe.Pointer(ck))
		if st != 0 {
			h.mu.RUnlock()
			h.free()
			return nil, statusErr(st, errp)
		}
	}
	h.mu.RUnlock()
	return h, nil
}

// CallRaw sends req (bytes, binary safe) to method and returns the answer
// (an empty slice when the server ended the call OK without a message).
// ctx's deadline is the call's timeout (none: the config's default);
// cancelling ctx cancels the call, and so does Client.Close. Options:
// Metadata, Trailer.
func (c *Client) CallRaw(ctx context.Context, method string, req []byte, opts ...CallOption) ([]byte, error) {
	o := collectOptions(ctx, opts)
	h, err := c.start(ctx, method, o)
	if err != nil {
		o.storeTrailers(nil)
		return nil, err
	}
	defer h.free()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, h.cancel)
		defer stop()
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.c == nil {
		o.storeTrailers(nil)
		return nil, closedErr("client")
	}
	var resp unsafe.Pointer
	var n C.size_t
	var msg *C.char
	// One cgo call that blocks this thread to the end (measured against
	// parking on rpcnet_call_fd in the netpoller: see README.md).
	st := C.rn_unary(h.c, bytesPtr(req), C.size_t(len(req)), &resp, &n, &msg)
	o.storeTrailers(h.c)
	if err := statusErr(st, msg); err != nil {
		return nil, withCtx(ctx, err)
	}
	out := takeBytes(resp, n)
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// Call encodes in with Marshal, calls method and decodes the answer into
// out (a pointer, or nil to discard it) with Unmarshal.
func (c *Client) Call(ctx context.Context, method string, in any, out any, opts ...CallOption) error {
	req, err := Marshal(in)
	if err != nil {
		return &Error{Code: InvalidArgument, Message: "encode request: " + err.Error(), Cause: err}
	}
	resp, err := c.CallRaw(ctx, method, req, opts...)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := Unmarshal(resp, out); err != nil {
		return &Error{Code: Internal, Message: "decode response: " + err.Error(), Cause: err}
	}
	return nil
}

// Stream is a client call with any number of messages each way. One
// goroutine may send (Send, CloseSend) while another receives (Recv,
// Status, Trailer). Close frees it; Client.Close frees it too.
type Stream struct {
	h       *callHandle
	ctx     context.Context
	stop    func() bool
	trailer *map[string]string // the Trailer option's map, filled at the end
	mu      sync.Mutex         // guards the fields below
	ended   bool
	status  error
}

// Stream starts a call of method. ctx's deadline is the whole call's
// timeout (none: the config's default); cancelling ctx cancels it.
// Options: Metadata, Trailer.
func (c *Client) Stream(ctx context.Context, method string, opts ...CallOption) (*Stream, error) {
	o := collectOptions(ctx, opts)
	h, err := c.start(ctx, method, o)
	if err != nil {
		o.storeTrailers(nil)
		return nil, err
	}
	return &Stream{h: h, ctx: ctx, stop: context.AfterFunc(ctx, h.cancel), trailer: o.trailer}, nil
}

// SendRaw sends one message (copied by the library). It blocks while the
// call's send window is full, up to the deadline.
func (s *Stream) SendRaw(b []byte) error {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	if s.h.c == nil {
		return closedErr("stream")
	}
	var errp *C.char
	return statusErr(C.rn_send(s.h.c, bytesPtr(b), C.size_t(len(b)), &errp), errp)
}

// Send encodes v with Marshal and sends it.
func (s *Stream) Send(v any) error {
	b, err := Marshal(v)
	if err != nil {
		return &Error{Code: InvalidArgument, Message: "encode message: " + err.Error(), Cause: err}
	}
	return s.SendRaw(b)
}

// CloseSend finishes the client's side (the server's Recv gets io.EOF).
func (s *Stream) CloseSend() error {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	if s.h.c == nil {
		return closedErr("stream")
	}
	var errp *C.char
	return statusErr(C.rn_close_send(s.h.c, &errp), errp)
}

// RecvRaw returns the next message. At the end of the call it returns
// io.EOF when the status is OK, else the status as *Error.
func (s *Stream) RecvRaw() ([]byte, error) {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	if s.h.c == nil {
		return nil, closedErr("stream")
	}
	var d unsafe.Pointer
	var n C.size_t
	r := C.rn_recv(s.h.c, &d, &n)
	if r == C.RPCNET_OK {
		b := takeBytes(d, n)
		if b == nil {
			b = []byte{}
		}
		return b, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		var msg *C.char
		st := C.rn_status(s.h.c, &msg)
		s.status = withCtx(s.ctx, statusErr(st, msg))
		s.ended = true
		if s.trailer != nil {
			*s.trailer = trailersOf(s.h.c)
		}
	}
	if s.status != nil {
		return nil, s.status
	}
	return nil, io.EOF
}

// Recv decodes the next message into v (see RecvRaw for the end).
func (s *Stream) Recv(v any) error {
	b, err := s.RecvRaw()
	if err != nil {
		return err
	}
	if err := Unmarshal(b, v); err != nil {
		return &Error{Code: Internal, Message: "decode message: " + err.Error(), Cause: err}
	}
	return nil
}

// Status is the call's final status once Recv returned io.EOF or an error:
// nil for OK, else the *Error. Before the end it is an UNKNOWN *Error
// ("call in progress").
func (s *Stream) Status() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		return &Error{Code: Unknown, Message: "call in progress"}
	}
	return s.status
}

// Trailer returns the first value of trailing metadata key once the call
// ended.
func (s *Stream) Trailer(key string) (string, bool) {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	if s.h.c == nil {
		return "", false
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var n C.size_t
	p := C.rpcnet_call_trailer(s.h.c, ck, &n)
	if p == nil {
		return "", false
	}
	return C.GoStringN((*C.char)(p), C.int(n)), true
}

// Trailers returns all trailing metadata once the call ended (after Recv
// returned io.EOF or an error) as a map from key to value; for a key sent
// more than once the map holds its first value (as Trailer). Values of keys
// ending in "-bin" are the raw bytes held in a string. Before the end the
// map is empty; after Close it is nil.
func (s *Stream) Trailers() map[string]string {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	if s.h.c == nil {
		return nil
	}
	return trailersOf(s.h.c)
}

// Cancel cancels the call (any goroutine, any time).
func (s *Stream) Cancel() { s.h.cancel() }

// Close cancels the call if it is still running and frees it. Harmless
// when repeated.
func (s *Stream) Close() error {
	s.stop()
	s.h.free()
	return nil
}

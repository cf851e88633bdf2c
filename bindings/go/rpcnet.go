// Package rpcnet is the Go binding of rpcnet, RPC over QUIC + TLS 1.3 with a
// CBOR wire format. It calls the C library (<rpcnet/rpcnet.h>) through the
// SWIG-generated package internal/capi (swig/rpcnet.i + swig/go.i):
// blocking C calls run on the calling goroutine's thread, no library thread
// ever calls into Go (servers pull calls with rpcnet_server_next), and
// every failure is an *Error.
package rpcnet

import (
	"context"
	"errors"
	"io"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/rpcnet/rpcnet/bindings/go/internal/capi"
)

// The C handles, as SWIG names them.
type (
	cConfig  = capi.Config
	cClient  = capi.Client
	cCall    = capi.Call
	cServer  = capi.Server
	cRequest = capi.Request
)

// Results of the C API that are not status codes.
const (
	cEndOfStream = -1 // RPCNET_END_OF_STREAM
	cWouldBlock  = -2 // RPCNET_WOULD_BLOCK
)

// Version is the C library's version ("MAJOR.MINOR.PATCH").
func Version() string { return capi.Rpcnet_version() }

// locked runs f, a C call returning a status, with the goroutine locked to
// its thread, and reads rpcnet_last_error() (thread-local) on that thread
// when the status is not OK.
func locked(f func() int) (int, string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f()
	if st == 0 {
		return 0, ""
	}
	return st, capi.Rpcnet_last_error()
}

// lockedPtr runs f, a C call returning a handle (0: failed), likewise.
func lockedPtr(f func() uintptr) string {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if f() != 0 {
		return ""
	}
	return capi.Rpcnet_last_error()
}

func statusErr(st int, msg string) error {
	if st == 0 {
		return nil
	}
	return &Error{Code: Code(st), Message: msg}
}

func newConfig(cfg *Config) (cConfig, error) {
	cc := capi.Rpcnet_config_new()
	if cc == 0 {
		return 0, &Error{Code: ResourceExhausted, Message: "out of memory"}
	}
	for _, p := range cfg.pairs() {
		if st, msg := locked(func() int { return capi.Rpcnet_config_set(cc, p[0], p[1]) }); st != 0 {
			capi.Rpcnet_config_free(cc)
			return 0, &Error{Code: InvalidArgument, Message: msg}
		}
	}
	return cc, nil
}

// timeoutMS turns ctx's deadline into the C timeout (0: the config default).
func timeoutMS(ctx context.Context) (int, error) {
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
	return int(ms), nil
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
	c      cClient
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
	defer capi.Rpcnet_config_free(cc)
	var c cClient
	if msg := lockedPtr(func() uintptr { c = capi.Rpcnet_client_connect(cc, addr); return uintptr(c) }); msg != "" || c == 0 {
		return nil, &Error{Code: Unavailable, Message: msg}
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
	capi.Rpcnet_client_close(c.c)
	c.c = 0
	return nil
}

// callHandle guards one rpcnet_call: operations hold the read lock (a sender
// and a receiver may run at once), free takes the write lock after
// cancelling so that blocked operations return first.
type callHandle struct {
	mu    sync.RWMutex
	c     cCall
	owner interface{ forget(*callHandle) } // the *Client or *Cluster that started it
}

func (h *callHandle) cancel() {
	h.mu.RLock()
	if h.c != 0 {
		capi.Rpcnet_call_cancel(h.c)
	}
	h.mu.RUnlock()
}

// free cancels the call (waking operations blocked on it in other
// goroutines), then releases it.
func (h *callHandle) free() {
	h.cancel()
	h.release()
}

// release frees the call once no operation holds it. Without a cancel
// first: rpcnet_call_free ends a call that still runs, and cancelling one
// that has ended takes the connection's lock for nothing (measured: see
// docs/performance.md).
func (h *callHandle) release() {
	h.mu.Lock()
	if h.c != 0 {
		capi.Rpcnet_call_free(h.c)
		h.c = 0
	}
	h.mu.Unlock()
	h.owner.forget(h)
}

// forget drops a released call from the client's set.
func (c *Client) forget(h *callHandle) {
	c.mu.Lock()
	delete(c.calls, h)
	c.mu.Unlock()
}

// CallOption changes one call.
type CallOption func(*callOptions)

type callOptions struct {
	md       map[string]string
	trailer  *map[string]string
	flags    int     // Idempotent, Hedge (Cluster calls)
	servedBy *string // ServedBy (Cluster calls)
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

// storeTrailers fills *o.trailer, when asked, from an ended call (0: the
// call never started).
func (o *callOptions) storeTrailers(c cCall) {
	if o.trailer == nil {
		return
	}
	if c == 0 {
		*o.trailer = map[string]string{}
		return
	}
	*o.trailer = trailersOf(c)
}

// trailersOf lists the trailing metadata of an ended call.
func trailersOf(c cCall) map[string]string {
	cnt := capi.Rpcnet_call_trailer_count(c)
	md := make(map[string]string, cnt)
	for i := int64(0); i < cnt; i++ {
		var v capi.Buf
		key := capi.Rpcnet_call_trailer_at(c, i, &v)
		if v.P == nil && key == "" {
			break
		}
		if _, dup := md[key]; !dup {
			md[key] = v.CopyString()
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
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, closedErr("client")
	}
	var cc cCall
	if msg := lockedPtr(func() uintptr { cc = capi.Rpcnet_client_start(c.c, method, tmo); return uintptr(cc) }); msg != "" || cc == 0 {
		c.mu.Unlock()
		return nil, &Error{Code: InvalidArgument, Message: msg}
	}
	h := &callHandle{c: cc, owner: c}
	h.mu.RLock() // Close waits for the metadata below
	c.calls[h] = struct{}{}
	c.mu.Unlock()
	if err := h.setMetadata(o.md); err != nil {
		return nil, err
	}
	return h, nil
}

// setMetadata sends md on a call just started, with h read-locked by the
// caller; it unlocks h, and frees it on failure.
func (h *callHandle) setMetadata(md map[string]string) error {
	for k, v := range md {
		if st, msg := locked(func() int { return capi.Rpcnet_call_set_metadata(h.c, k, []byte(v)) }); st != 0 {
			h.mu.RUnlock()
			h.free()
			return statusErr(st, msg)
		}
	}
	h.mu.RUnlock()
	return nil
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
		o.storeTrailers(0)
		return nil, err
	}
	defer h.release() // after RUnlock below: nothing else blocks on h
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, h.cancel)
		defer stop()
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.c == 0 {
		o.storeTrailers(0)
		return nil, closedErr("client")
	}
	var resp capi.Buf
	var msg string
	// One cgo call that blocks this thread to the end (measured against
	// parking on rpcnet_call_fd in the netpoller: see README.md).
	st := capi.Rpcnet_go_unary(h.c, req, &resp, &msg)
	o.storeTrailers(h.c)
	if err := statusErr(st, msg); err != nil {
		return nil, withCtx(ctx, err)
	}
	out := resp.Take()
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
		o.storeTrailers(0)
		return nil, err
	}
	return &Stream{h: h, ctx: ctx, stop: context.AfterFunc(ctx, h.cancel), trailer: o.trailer}, nil
}

// SendRaw sends one message (copied by the library). It blocks while the
// call's send window is full, up to the deadline.
func (s *Stream) SendRaw(b []byte) error {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	if s.h.c == 0 {
		return closedErr("stream")
	}
	return statusErr(locked(func() int { return capi.Rpcnet_call_send(s.h.c, b) }))
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
	if s.h.c == 0 {
		return closedErr("stream")
	}
	return statusErr(locked(func() int { return capi.Rpcnet_call_close_send(s.h.c) }))
}

// RecvRaw returns the next message. At the end of the call it returns
// io.EOF when the status is OK, else the status as *Error.
func (s *Stream) RecvRaw() ([]byte, error) {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	if s.h.c == 0 {
		return nil, closedErr("stream")
	}
	var d capi.Buf
	if capi.Rpcnet_call_recv(s.h.c, -1, &d) == 0 {
		b := d.Take()
		if b == nil {
			b = []byte{}
		}
		return b, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		var msg string
		st := capi.Rpcnet_call_status(s.h.c, &msg)
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
	if s.h.c == 0 {
		return "", false
	}
	var v capi.Buf
	capi.Rpcnet_swig_call_trailer(s.h.c, key, &v)
	if v.P == nil {
		return "", false
	}
	return v.CopyString(), true
}

// Trailers returns all trailing metadata once the call ended (after Recv
// returned io.EOF or an error) as a map from key to value; for a key sent
// more than once the map holds its first value (as Trailer). Values of keys
// ending in "-bin" are the raw bytes held in a string. Before the end the
// map is empty; after Close it is nil.
func (s *Stream) Trailers() map[string]string {
	s.h.mu.RLock()
	defer s.h.mu.RUnlock()
	if s.h.c == 0 {
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

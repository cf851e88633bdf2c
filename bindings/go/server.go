package rpcnet

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"
)

// Handler answers a unary call: its result is encoded with Marshal
// (RawMessage is sent as is). Returning an *Error sends that status; any
// other error sends INTERNAL with its message.
type Handler func(ctx context.Context, req *Request) (any, error)

// StreamHandler serves a streaming call; returning sends the final status
// as for Handler.
type StreamHandler func(ctx context.Context, s *ServerStream) error

// Server serves calls. Handlers run in their own goroutines; a few
// goroutines pull calls with rpcnet_server_next (no C→Go callbacks).
type Server struct {
	mu       sync.RWMutex // write-locked only to free s
	s        *C.rpcnet_server
	hmu      sync.RWMutex
	unary    map[string]Handler
	streams  map[string]StreamHandler
	handlers sync.WaitGroup
}

// Pullers is how many goroutines Serve uses to take calls.
const pullers = 2

// NewServer creates a server with the config's certificate and key.
func NewServer(cfg Config) (*Server, error) {
	cc, err := newConfig(&cfg)
	if err != nil {
		return nil, err
	}
	defer C.rpcnet_config_free(cc)
	var errp *C.char
	s := C.rn_server_new(cc, &errp)
	if s == nil {
		return nil, &Error{Code: InvalidArgument, Message: takeErr(errp)}
	}
	return &Server{s: s, unary: map[string]Handler{}, streams: map[string]StreamHandler{}}, nil
}

func (s *Server) register(method string, stream bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == nil {
		return closedErr("server")
	}
	cm := C.CString(method)
	defer C.free(unsafe.Pointer(cm))
	flag := C.int(0)
	if stream {
		flag = 1
	}
	if st := C.rn_handle(s.s, cm, flag); st != 0 {
		return &Error{Code: Code(st), Message: "bad method name"}
	}
	return nil
}

// Handle registers a unary method (registering again replaces it).
func (s *Server) Handle(method string, h Handler) error {
	if err := s.register(method, false); err != nil {
		return err
	}
	s.hmu.Lock()
	s.unary[method] = h
	delete(s.streams, method)
	s.hmu.Unlock()
	return nil
}

// HandleStream registers a streaming method.
func (s *Server) HandleStream(method string, h StreamHandler) error {
	if err := s.register(method, true); err != nil {
		return err
	}
	s.hmu.Lock()
	s.streams[method] = h
	delete(s.unary, method)
	s.hmu.Unlock()
	return nil
}

// Listen binds addr ("127.0.0.1:0" picks a port) and returns the port.
func (s *Server) Listen(addr string) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == nil {
		return 0, closedErr("server")
	}
	ca := C.CString(addr)
	defer C.free(unsafe.Pointer(ca))
	var errp *C.char
	if err := statusErr(C.rn_listen(s.s, ca, &errp), errp); err != nil {
		return 0, err
	}
	return int(C.rpcnet_server_port(s.s)), nil
}

// Serve takes calls and runs their handlers in goroutines until ctx is
// done (it returns ctx.Err()) or the server is shut down (it returns nil).
// Handlers still running keep running; Shutdown and Close wait for them.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, pullers)
	for i := 0; i < pullers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- s.pull(ctx)
		}()
	}
	wg.Wait()
	return <-errc
}

func (s *Server) pull(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.mu.RLock()
		if s.s == nil {
			s.mu.RUnlock()
			return nil
		}
		var req *C.rpcnet_request
		st := C.rpcnet_server_next(s.s, 100, &req)
		if st == C.RPCNET_OK {
			s.handlers.Add(1)
		}
		s.mu.RUnlock()
		switch st {
		case C.RPCNET_OK:
			go s.dispatch(ctx, req)
		case C.RPCNET_DEADLINE_EXCEEDED:
		default: // UNAVAILABLE: shut down
			return nil
		}
	}
}

func (s *Server) dispatch(sctx context.Context, creq *C.rpcnet_request) {
	defer s.handlers.Done()
	r := &Request{r: creq}
	r.method = C.GoString(C.rpcnet_request_method(creq))
	r.peer = C.GoString(C.rpcnet_request_peer(creq))
	s.hmu.RLock()
	uh, sh := s.unary[r.method], s.streams[r.method]
	s.hmu.RUnlock()
	var n C.size_t
	p := C.rpcnet_request_data(creq, &n)
	r.data = C.GoBytes(p, C.int(n))

	ctx, cancel := context.WithCancel(context.WithoutCancel(sctx))
	if ms := int64(C.rpcnet_request_deadline_ms(creq)); ms >= 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, time.Now().Add(time.Duration(ms)*time.Millisecond))
		defer c2()
	}
	ctx = context.WithValue(ctx, reqKey{}, r)
	r.cancel = cancel
	done := make(chan struct{})
	go r.watch(done)
	defer func() { close(done); cancel() }()

	var result any
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("handler panic: %v\n%s", p, debug.Stack())
			}
		}()
		switch {
		case sh != nil:
			err = sh(ctx, &ServerStream{Request: r, ctx: ctx})
		case uh != nil:
			result, err = uh(ctx, r)
		default:
			err = Errorf(Unimplemented, "method %s has no Go handler", r.method)
		}
	}()
	if err == nil && sh == nil {
		var b []byte
		if b, err = Marshal(result); err == nil {
			r.reply(b)
			return
		}
		err = &Error{Code: Internal, Message: "encode response: " + err.Error(), Cause: err}
	}
	code, msg := OK, ""
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			code, msg = e.Code, e.Message
			if code == OK {
				code = Unknown
			}
		} else {
			code, msg = Internal, err.Error()
		}
	}
	r.finish(code, msg)
}

type reqKey struct{}

// RequestFrom returns the request a handler's ctx belongs to.
func RequestFrom(ctx context.Context) (*Request, bool) {
	r, ok := ctx.Value(reqKey{}).(*Request)
	return r, ok
}

// Request is the server side of one call. Its methods are safe for
// concurrent use; after the call is answered they fail with ErrClosed.
type Request struct {
	mu     sync.Mutex // serialises every use of r (the C API allows one thread at a time)
	r      *C.rpcnet_request
	method string
	peer   string
	data   []byte
	cancel context.CancelFunc
}

// watch cancels the handler's ctx once the client cancelled, the deadline
// passed or the connection went away (polled; skipped while an operation
// holds the request, which then reports the cancellation itself).
func (r *Request) watch(done chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if !r.mu.TryLock() {
			continue
		}
		gone := r.r == nil || C.rpcnet_request_cancelled(r.r) != 0
		r.mu.Unlock()
		if gone {
			r.cancel()
			return
		}
	}
}

// Method is the called method's name.
func (r *Request) Method() string { return r.method }

// Peer is "ip:port", with " subject=<DN>" when the client presented a
// certificate.
func (r *Request) Peer() string { return r.peer }

// Raw is the request message (empty for streaming calls).
func (r *Request) Raw() []byte { return r.data }

// Decode decodes the request message into v with Unmarshal.
func (r *Request) Decode(v any) error {
	if err := Unmarshal(r.data, v); err != nil {
		return &Error{Code: InvalidArgument, Message: "decode request: " + err.Error(), Cause: err}
	}
	return nil
}

// Metadata returns the first value of request metadata key.
func (r *Request) Metadata(key string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == nil {
		return "", false
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var n C.size_t
	p := C.rpcnet_request_metadata(r.r, ck, &n)
	if p == nil {
		return "", false
	}
	return C.GoStringN((*C.char)(p), C.int(n)), true
}

// MetadataAll returns all request metadata as a map from key to value; for
// a key sent more than once the map holds its first value (as Metadata).
// Values of keys ending in "-bin" are the raw bytes held in a string
// ([]byte(v) gives them back); other values are UTF-8 text. After the call
// is answered it returns nil.
func (r *Request) MetadataAll() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == nil {
		return nil
	}
	cnt := int(C.rpcnet_request_metadata_count(r.r))
	md := make(map[string]string, cnt)
	for i := 0; i < cnt; i++ {
		var v *C.char
		var n C.size_t
		k := C.rn_req_md_at(r.r, C.size_t(i), &v, &n)
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

// SetTrailer adds trailing metadata sent with the status.
func (r *Request) SetTrailer(key, value string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == nil {
		return closedErr("request")
	}
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	vb := []byte(value)
	var errp *C.char
	return statusErr(C.rn_req_trailer(r.r, ck, bytesPtr(vb), C.size_t(len(vb)), &errp), errp)
}

func (r *Request) reply(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == nil {
		return
	}
	var errp *C.char
	C.rn_req_reply(r.r, bytesPtr(b), C.size_t(len(b)), &errp)
	takeErr(errp)
	r.r = nil
}

func (r *Request) finish(code Code, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == nil {
		return
	}
	var cm *C.char
	if msg != "" {
		cm = C.CString(msg)
		defer C.free(unsafe.Pointer(cm))
	}
	var errp *C.char
	C.rn_req_finish(r.r, C.int(code), cm, &errp)
	takeErr(errp)
	r.r = nil
}

// ServerStream is the server side of a streaming call: Recv the client's
// messages, Send any number back, SetTrailer; the handler's return value
// ends the call.
type ServerStream struct {
	*Request
	ctx context.Context
}

// Context is the handler's context.
func (s *ServerStream) Context() context.Context { return s.ctx }

// RecvRaw returns the client's next message, io.EOF once the client
// finished sending, or an *Error (CANCELLED, DEADLINE_EXCEEDED,
// UNAVAILABLE) when the call ended.
func (s *ServerStream) RecvRaw() ([]byte, error) {
	for {
		s.mu.Lock()
		if s.r == nil {
			s.mu.Unlock()
			return nil, closedErr("request")
		}
		var d unsafe.Pointer
		var n C.size_t
		var errp *C.char
		st := C.rn_req_recv(s.r, 50, &d, &n, &errp)
		s.mu.Unlock()
		switch {
		case st == C.RPCNET_OK:
			b := takeBytes(d, n)
			if b == nil {
				b = []byte{}
			}
			return b, nil
		case st == C.RPCNET_END_OF_STREAM:
			return nil, io.EOF
		case st == C.RPCNET_WOULD_BLOCK:
			if err := ctxErr(s.ctx); err != nil {
				return nil, err
			}
		default:
			return nil, statusErr(st, errp)
		}
	}
}

// Recv decodes the client's next message into v.
func (s *ServerStream) Recv(v any) error {
	b, err := s.RecvRaw()
	if err != nil {
		return err
	}
	if err := Unmarshal(b, v); err != nil {
		return &Error{Code: InvalidArgument, Message: "decode message: " + err.Error(), Cause: err}
	}
	return nil
}

// SendRaw sends one message; it blocks while the send window is full.
func (s *ServerStream) SendRaw(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r == nil {
		return closedErr("request")
	}
	var errp *C.char
	return statusErr(C.rn_req_send(s.r, bytesPtr(b), C.size_t(len(b)), &errp), errp)
}

// Send encodes v with Marshal and sends it.
func (s *ServerStream) Send(v any) error {
	b, err := Marshal(v)
	if err != nil {
		return &Error{Code: InvalidArgument, Message: "encode message: " + err.Error(), Cause: err}
	}
	return s.SendRaw(b)
}

// Shutdown stops accepting calls, lets calls in flight finish until ctx's
// deadline (default 5 s), fails what remains with UNAVAILABLE, and waits
// for the handler goroutines. Serve then returns nil.
func (s *Server) Shutdown(ctx context.Context) error {
	drain := 5000
	if dl, ok := ctx.Deadline(); ok {
		drain = max(int(time.Until(dl)/time.Millisecond), 0)
	}
	return s.shutdown(drain)
}

func (s *Server) shutdown(drain int) error {
	s.mu.RLock()
	if s.s == nil {
		s.mu.RUnlock()
		return nil
	}
	C.rpcnet_server_shutdown(s.s, C.int(drain))
	s.mu.RUnlock()
	s.handlers.Wait()
	return nil
}

// Close shuts the server down without draining, waits for the handlers and
// frees it. Later use gives an error wrapping ErrClosed.
func (s *Server) Close() error {
	if err := s.shutdown(0); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s != nil {
		C.rpcnet_server_free(s.s)
		s.s = nil
	}
	return nil
}

package rpcnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rpcnet/rpcnet/bindings/go/internal/capi"
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
	s        cServer
	hmu      sync.RWMutex
	unary    map[string]Handler
	streams  map[string]StreamHandler
	handlers sync.WaitGroup
	cmu      sync.Mutex // guards clusters
	clusters []*Cluster // attached (AttachServer), closed before s is freed
}

// detach forgets a cluster that was closed.
func (s *Server) detach(c *Cluster) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for i, x := range s.clusters {
		if x == c {
			s.clusters = append(s.clusters[:i], s.clusters[i+1:]...)
			return
		}
	}
}

// Pullers is how many goroutines Serve uses to take calls.
const pullers = 2

// NewServer creates a server with the config's certificate and key.
func NewServer(cfg Config) (*Server, error) {
	cc, err := newConfig(&cfg)
	if err != nil {
		return nil, err
	}
	defer capi.Rpcnet_config_free(cc)
	var s cServer
	if msg := lockedPtr(func() uintptr { s = capi.Rpcnet_server_new(cc); return uintptr(s) }); msg != "" || s == 0 {
		return nil, &Error{Code: InvalidArgument, Message: msg}
	}
	return &Server{s: s, unary: map[string]Handler{}, streams: map[string]StreamHandler{}}, nil
}

func (s *Server) register(method string, stream bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == 0 {
		return closedErr("server")
	}
	var st int
	if stream {
		st = capi.Rpcnet_swig_server_pull_stream(s.s, method)
	} else {
		st = capi.Rpcnet_swig_server_pull(s.s, method)
	}
	if st != 0 {
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
	if s.s == 0 {
		return 0, closedErr("server")
	}
	if err := statusErr(locked(func() int { return capi.Rpcnet_server_listen(s.s, addr) })); err != nil {
		return 0, err
	}
	return capi.Rpcnet_server_port(s.s), nil
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
		if s.s == 0 {
			s.mu.RUnlock()
			return nil
		}
		var req cRequest
		st := capi.Rpcnet_server_next(s.s, 100, &req)
		if st == 0 {
			s.handlers.Add(1)
		}
		s.mu.RUnlock()
		switch Code(st) {
		case OK:
			go s.dispatch(ctx, req)
		case DeadlineExceeded:
		default: // UNAVAILABLE: shut down
			return nil
		}
	}
}

func (s *Server) dispatch(sctx context.Context, creq cRequest) {
	defer s.handlers.Done()
	r := &Request{r: creq}
	r.method = capi.Rpcnet_request_method(creq)
	r.peer = capi.Rpcnet_request_peer(creq)
	s.hmu.RLock()
	uh, sh := s.unary[r.method], s.streams[r.method]
	s.hmu.RUnlock()
	var d capi.Buf
	capi.Rpcnet_swig_request_data(creq, &d)
	if r.data = d.Copy(); r.data == nil {
		r.data = []byte{}
	}

	ctx, cancel := context.WithCancel(context.WithoutCancel(sctx))
	if ms := capi.Rpcnet_request_deadline_ms(creq); ms >= 0 {
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
	r      cRequest
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
		gone := r.r == 0 || capi.Rpcnet_request_cancelled(r.r) != 0
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
	if r.r == 0 {
		return "", false
	}
	var v capi.Buf
	capi.Rpcnet_swig_request_metadata(r.r, key, &v)
	if v.P == nil {
		return "", false
	}
	return v.CopyString(), true
}

// MetadataAll returns all request metadata as a map from key to value; for
// a key sent more than once the map holds its first value (as Metadata).
// Values of keys ending in "-bin" are the raw bytes held in a string
// ([]byte(v) gives them back); other values are UTF-8 text. After the call
// is answered it returns nil.
func (r *Request) MetadataAll() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == 0 {
		return nil
	}
	cnt := capi.Rpcnet_request_metadata_count(r.r)
	md := make(map[string]string, cnt)
	for i := int64(0); i < cnt; i++ {
		var v capi.Buf
		key := capi.Rpcnet_request_metadata_at(r.r, i, &v)
		if v.P == nil && key == "" {
			break
		}
		if _, dup := md[key]; !dup {
			md[key] = v.CopyString()
		}
	}
	return md
}

// SetTrailer adds trailing metadata sent with the status.
func (r *Request) SetTrailer(key, value string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == 0 {
		return closedErr("request")
	}
	return statusErr(locked(func() int { return capi.Rpcnet_request_set_trailer(r.r, key, []byte(value)) }))
}

func (r *Request) reply(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == 0 {
		return
	}
	capi.Rpcnet_request_reply(r.r, b)
	r.r = 0
}

func (r *Request) finish(code Code, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r == 0 {
		return
	}
	capi.Rpcnet_request_finish(r.r, int(code), msg)
	r.r = 0
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
		if s.r == 0 {
			s.mu.Unlock()
			return nil, closedErr("request")
		}
		var d capi.Buf
		st, msg := locked(func() int { return capi.Rpcnet_request_recv(s.r, 50, &d) })
		s.mu.Unlock()
		switch st {
		case 0:
			b := d.Take()
			if b == nil {
				b = []byte{}
			}
			return b, nil
		case cEndOfStream:
			return nil, io.EOF
		case cWouldBlock:
			if err := ctxErr(s.ctx); err != nil {
				return nil, err
			}
		default:
			return nil, statusErr(st, msg)
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
	if s.r == 0 {
		return closedErr("request")
	}
	return statusErr(locked(func() int { return capi.Rpcnet_request_send(s.r, b) }))
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
	if s.s == 0 {
		s.mu.RUnlock()
		return nil
	}
	capi.Rpcnet_server_shutdown(s.s, drain)
	s.mu.RUnlock()
	s.handlers.Wait()
	return nil
}

// Close shuts the server down without draining, waits for the handlers and
// frees it. Clusters attached to it (Cluster.AttachServer) are closed first
// (Cluster.Close: without a leave). Later use gives an error wrapping
// ErrClosed.
func (s *Server) Close() error {
	if err := s.shutdown(0); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmu.Lock()
	attached := append([]*Cluster(nil), s.clusters...)
	s.cmu.Unlock()
	for _, c := range attached {
		c.Close() // detaches c
	}
	if s.s != 0 {
		capi.Rpcnet_server_free(s.s)
		s.s = 0
	}
	return nil
}

package rpcnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var certDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rpcnet-go-certs")
	if err != nil {
		panic(err)
	}
	out, err := exec.Command("bash", "../../scripts/gen-certs.sh", dir).CombinedOutput()
	if err != nil {
		panic("gen-certs: " + err.Error() + ": " + string(out))
	}
	certDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func cert(name string) string { return filepath.Join(certDir, name) }

// startServer serves the test methods on a free port.
func startServer(t *testing.T) (*Server, string) {
	t.Helper()
	s, err := NewServer(Config{CertFile: cert("server.pem"), KeyFile: cert("server-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("add", func(ctx context.Context, r *Request) (any, error) {
		var xs []int64
		if err := r.Decode(&xs); err != nil {
			return nil, err
		}
		var sum int64
		for _, x := range xs {
			sum += x
		}
		return sum, nil
	})
	s.Handle("echo", func(ctx context.Context, r *Request) (any, error) {
		return RawMessage(r.Raw()), nil
	})
	s.Handle("fail", func(ctx context.Context, r *Request) (any, error) {
		var code int
		r.Decode(&code)
		if code == 0 {
			return nil, errors.New("plain failure")
		}
		return nil, Errorf(Code(code), "failed with %d", code)
	})
	s.Handle("meta", func(ctx context.Context, r *Request) (any, error) {
		v, _ := r.Metadata("x-user")
		b, _ := r.Metadata("x-data-bin")
		r.SetTrailer("x-served-by", "go")
		return []any{v, []byte(b), r.Peer() != ""}, nil
	})
	s.Handle("sleep", func(ctx context.Context, r *Request) (any, error) {
		var ms int
		r.Decode(&ms)
		select {
		case <-ctx.Done():
			return nil, Errorf(Canceled, "noticed: %v", ctx.Err())
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return "slept", nil
		}
	})
	s.Handle("meta-all", func(ctx context.Context, r *Request) (any, error) {
		out := map[string]any{}
		for k, v := range r.MetadataAll() {
			if strings.HasSuffix(k, "-bin") {
				out[k] = []byte(v)
			} else {
				out[k] = v
			}
		}
		r.SetTrailer("x-a", "1")
		r.SetTrailer("x-a", "2")
		r.SetTrailer("x-raw-bin", "\x00\xff")
		return out, nil
	})
	s.Handle("fail-trailer", func(ctx context.Context, r *Request) (any, error) {
		r.SetTrailer("x-why", "missing")
		return nil, Errorf(NotFound, "no such thing")
	})
	s.Handle("panic", func(ctx context.Context, r *Request) (any, error) { panic("boom") })
	s.HandleStream("sum-stream", func(ctx context.Context, st *ServerStream) error {
		var total int64
		for {
			var x int64
			err := st.Recv(&x)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			total += x
			if err := st.Send(total); err != nil {
				return err
			}
		}
		st.SetTrailer("x-total", strconv.FormatInt(total, 10))
		if total < 0 {
			return Errorf(OutOfRange, "negative total")
		}
		return nil
	})
	port, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return s, "127.0.0.1:" + strconv.Itoa(port)
}

func dial(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, Config{CAFile: cert("ca.pem"), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestUnary(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	ctx := context.Background()
	var sum int64
	if err := c.Call(ctx, "add", []int{1, 2, 39}, &sum); err != nil || sum != 42 {
		t.Fatalf("add: %d %v", sum, err)
	}
	// Binary safe, 16 MiB minus framing headroom, NUL bytes.
	for _, n := range []int{0, 1, 1 << 20, 16<<20 - 64} {
		in := bytes.Repeat([]byte{0, 1, 0xff}, n/3+1)[:n]
		out, err := c.CallRaw(ctx, "echo", in)
		if err != nil || !bytes.Equal(in, out) {
			t.Fatalf("echo %d bytes: %d bytes, %v", n, len(out), err)
		}
	}
}

func TestErrors(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	ctx := context.Background()
	sentinels := []*Error{ErrCanceled, ErrUnknown, ErrInvalidArgument, ErrDeadlineExceeded,
		ErrNotFound, ErrAlreadyExists, ErrPermissionDenied, ErrResourceExhausted,
		ErrFailedPrecondition, ErrAborted, ErrOutOfRange, ErrUnimplemented, ErrInternal,
		ErrUnavailable, ErrDataLoss, ErrUnauthenticated}
	for i, s := range sentinels {
		code := i + 1
		err := c.Call(ctx, "fail", code, nil)
		var e *Error
		if !errors.As(err, &e) || e.Code != Code(code) || !errors.Is(err, s) {
			t.Fatalf("code %d: %v", code, err)
		}
		if e.Message != "failed with "+strconv.Itoa(code) {
			t.Fatalf("message %q", e.Message)
		}
		if code != int(NotFound) && errors.Is(err, ErrNotFound) {
			t.Fatalf("code %d matched NOT_FOUND", code)
		}
	}
	err := c.Call(ctx, "fail", 0, nil)
	if !errors.Is(err, ErrInternal) || !bytes.Contains([]byte(err.Error()), []byte("plain failure")) {
		t.Fatalf("plain: %v", err)
	}
	if err := c.Call(ctx, "panic", nil, nil); !errors.Is(err, ErrInternal) {
		t.Fatalf("panic: %v", err)
	}
	if err := c.Call(ctx, "nope", nil, nil); !errors.Is(err, ErrUnimplemented) {
		t.Fatalf("unimplemented: %v", err)
	}
	if err := c.Call(ctx, "add", "not a list", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad request: %v", err)
	}
	if err := c.Call(ctx, "add", "\xff", nil); !errors.Is(err, ErrInvalidArgument) || !errors.Is(err, ErrUTF8) {
		t.Fatalf("bad encode: %v", err)
	}
	var s string
	if err := c.Call(ctx, "add", []int{1}, &s); !errors.Is(err, ErrType) {
		t.Fatalf("bad decode: %v", err)
	}
	// Bad certificates.
	_, err = Dial(ctx, addr, Config{CAFile: cert("other-ca.pem")})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong CA: %v", err)
	}
	if _, err := NewServer(Config{CertFile: "/nonexistent"}); err == nil {
		t.Fatal("server without key")
	}
	if _, err := Dial(ctx, addr, Config{Extra: map[string]string{"no_such_key": "1"}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Call(ctx, "sleep", 5000, nil)
	if !errors.Is(err, ErrDeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("deadline: %v after %v", err, time.Since(start))
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel2)
	start = time.Now()
	err = c.Call(ctx2, "sleep", 5000, nil)
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
	if err := c.Call(ctx2, "add", nil, nil); !errors.Is(err, ErrCanceled) {
		t.Fatalf("done ctx: %v", err)
	}
	var s string
	if err := c.Call(context.Background(), "sleep", 10, &s); err != nil || s != "slept" {
		t.Fatalf("after cancel: %q %v", s, err)
	}
}

func TestMetadataAndTrailers(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	ctx := WithMetadata(context.Background(), map[string]string{"x-user": "ann"})
	var out []any
	err := c.Call(ctx, "meta", nil, &out, Metadata(map[string]string{"x-data-bin": "\x00\x01"}))
	if err != nil || out[0] != "ann" || !bytes.Equal(out[1].([]byte), []byte{0, 1}) || out[2] != true {
		t.Fatalf("meta: %#v %v", out, err)
	}
	st, err := c.Stream(context.Background(), "meta")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Send(nil)
	st.CloseSend()
	if err := st.Recv(&out); err != nil {
		t.Fatal(err)
	}
	if err := st.Recv(&out); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	if v, ok := st.Trailer("x-served-by"); !ok || v != "go" || st.Status() != nil {
		t.Fatalf("trailer %q %v %v", v, ok, st.Status())
	}
}

func TestMetadataAllAndTrailers(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	md := map[string]string{"x-user": "ann", "x-data-bin": "\x00\xff\x01", "x-empty": ""}
	var out map[string]any
	if err := c.Call(context.Background(), "meta-all", nil, &out, Metadata(md)); err != nil {
		t.Fatal(err)
	}
	if out["x-user"] != "ann" || out["x-empty"] != "" || !bytes.Equal(out["x-data-bin"].([]byte), []byte{0, 0xff, 1}) {
		t.Fatalf("metadata seen by the server: %#v", out)
	}
	st, err := c.Stream(context.Background(), "meta-all")
	if err != nil {
		t.Fatal(err)
	}
	if tr := st.Trailers(); len(tr) != 0 {
		t.Fatalf("trailers before the end: %#v", tr)
	}
	st.Send(nil)
	st.CloseSend()
	if err := st.Recv(&out); err != nil {
		t.Fatal(err)
	}
	if err := st.Recv(&out); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	tr := st.Trailers()
	if len(tr) != 2 || tr["x-a"] != "1" || tr["x-raw-bin"] != "\x00\xff" {
		t.Fatalf("trailers: %#v", tr)
	}
	if v, ok := st.Trailer("x-a"); !ok || v != "1" {
		t.Fatalf("trailer: %q %v", v, ok)
	}
	st.Close()
	if tr := st.Trailers(); tr != nil {
		t.Fatalf("trailers after close: %#v", tr)
	}
}

func TestUnaryTrailerOption(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	ctx := context.Background()
	var tr map[string]string
	var out map[string]any
	if err := c.Call(ctx, "meta-all", nil, &out, Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	if len(tr) != 2 || tr["x-a"] != "1" || tr["x-raw-bin"] != "\x00\xff" {
		t.Fatalf("unary trailers: %#v", tr)
	}
	// with metadata and a deadline too
	dctx, cancel := context.WithTimeout(WithMetadata(ctx, map[string]string{"x-user": "ann"}), 5*time.Second)
	defer cancel()
	var vals []any
	if err := c.Call(dctx, "meta", nil, &vals, Trailer(&tr)); err != nil || vals[0] != "ann" || tr["x-served-by"] != "go" {
		t.Fatalf("meta: %#v %#v %v", vals, tr, err)
	}
	// a failure: the error, and the trailers sent with it
	err := c.Call(ctx, "fail-trailer", nil, nil, Trailer(&tr))
	if !errors.Is(err, ErrNotFound) || tr["x-why"] != "missing" || len(tr) != 1 {
		t.Fatalf("failure: %v %#v", err, tr)
	}
	// none sent: an empty map, not the previous one
	tr = map[string]string{"stale": "x"}
	if raw, err := c.CallRaw(ctx, "echo", []byte{0, 1}, Trailer(&tr)); err != nil || !bytes.Equal(raw, []byte{0, 1}) || tr == nil || len(tr) != 0 {
		t.Fatalf("echo: %v %#v", err, tr)
	}
	// a stream: filled when Recv reaches the end
	var str map[string]string
	st, err := c.Stream(ctx, "sum-stream", Trailer(&str))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Send(2)
	st.Send(3)
	st.CloseSend()
	var x int64
	for st.Recv(&x) == nil {
	}
	if str["x-total"] != "5" {
		t.Fatalf("stream trailers: %#v", str)
	}
	// the call never started (closed client): an empty map
	c2 := dial(t, addr)
	c2.Close()
	tr = map[string]string{"stale": "x"}
	if err := c2.Call(ctx, "add", []int{1}, nil, Trailer(&tr)); !errors.Is(err, ErrClosed) || tr == nil || len(tr) != 0 {
		t.Fatalf("closed: %v %#v", err, tr)
	}
}

func TestStreaming(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	for _, sign := range []int64{1, -1} {
		st, err := c.Stream(context.Background(), "sum-stream")
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		for i := int64(1); i <= 50; i++ {
			if err := st.Send(sign * i); err != nil {
				t.Fatal(err)
			}
			want += sign * i
			var got int64
			if err := st.Recv(&got); err != nil || got != want {
				t.Fatalf("recv %d: %d %v", i, got, err)
			}
		}
		st.CloseSend()
		var x int64
		err = st.Recv(&x)
		if v, _ := st.Trailer("x-total"); v != strconv.FormatInt(want, 10) {
			t.Fatalf("trailer %q", v)
		}
		if sign > 0 && (err != io.EOF || st.Status() != nil) {
			t.Fatalf("end: %v %v", err, st.Status())
		}
		if sign < 0 && (!errors.Is(err, ErrOutOfRange) || !errors.Is(st.Status(), ErrOutOfRange)) {
			t.Fatalf("end: %v %v", err, st.Status())
		}
		st.Close()
		if err := st.Send(1); !errors.Is(err, ErrClosed) {
			t.Fatalf("send after close: %v", err)
		}
	}
	// Full duplex with ctx cancellation of a stream.
	ctx, cancel := context.WithCancel(context.Background())
	st, _ := c.Stream(ctx, "sum-stream")
	defer st.Close()
	st.Send(int64(1))
	var got int64
	st.Recv(&got)
	cancel()
	if err := st.Recv(&got); !errors.Is(err, ErrCanceled) {
		t.Fatalf("cancelled stream: %v", err)
	}
}

func TestUseAfterClose(t *testing.T) {
	s, addr := startServer(t)
	c := dial(t, addr)
	st, err := c.Stream(context.Background(), "sum-stream")
	if err != nil {
		t.Fatal(err)
	}
	// A call blocked in flight fails when the client closes.
	errc := make(chan error, 1)
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	go func() { errc <- c.Call(cctx, "sleep", 3000, nil) }()
	time.Sleep(100 * time.Millisecond)
	c.Close()
	c.Close()
	if err := <-errc; !errors.Is(err, ErrCanceled) {
		t.Fatalf("in flight: %v", err)
	}
	if err := c.Call(context.Background(), "add", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
	if _, err := c.Stream(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("stream after close: %v", err)
	}
	if err := st.Send(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("stream of closed client: %v", err)
	}
	st.Close()
	s.Close()
	s.Close()
	if _, err := s.Listen("127.0.0.1:0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("listen after close: %v", err)
	}
	if err := s.Handle("x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("handle after close: %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				var sum int64
				if err := c.Call(context.Background(), "add", []int{g, i}, &sum); err != nil || sum != int64(g+i) {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestConcurrentHandleCalls runs many unary calls at once over call handles
// (metadata, cancellable contexts, plain) and checks that every answer is
// the call's own. It catches a library that ends a call OK before handing
// over its last message (fixed in the C library at 3d79762).
func TestConcurrentHandleCalls(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	const goroutines, calls = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				ctx := context.Background()
				var opts []CallOption
				switch (g + i) % 3 {
				case 0:
					opts = append(opts, Metadata(map[string]string{"x-call": strconv.Itoa(i)}))
				case 1:
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
				}
				want := []byte(strconv.Itoa(g*1000+i) + strings.Repeat("x", i))
				got, err := c.CallRaw(ctx, "echo", want, opts...)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("goroutine %d call %d: %q, %v", g, i, got, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCloseCancelsCalls(t *testing.T) {
	_, addr := startServer(t)
	c := dial(t, addr)
	// A call with a context that is never done is cancelled by Close too.
	errc := make(chan error, 1)
	go func() { errc <- c.Call(context.Background(), "sleep", 5000, nil) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	c.Close()
	if err := <-errc; !errors.Is(err, ErrCanceled) {
		t.Fatalf("in flight: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close waited %v", d)
	}
}

func TestShutdown(t *testing.T) {
	s, addr := startServer(t)
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(context.Background(), "add", nil, nil); err == nil {
		t.Fatal("call after shutdown succeeded")
	}
	if Version() == "" {
		t.Fatal("no version")
	}
}

// Conformance client driver (Go): runs the cases of conformance/README.md
// against a conformance server with the Go binding's public API only.
//
// Usage: client --ca CA_FILE --addr HOST:PORT --vectors VALUES_JSON [--case NAME]...
//
// Prints one JSON object per case ({"case", "ok", "ms", "error"}) and exits
// 0; a failed case is a line with "ok": false.
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	rpcnet "github.com/rpcnet/rpcnet/bindings/go"
)

const (
	svc         = "conformance."
	callTimeout = 10 * time.Second
	lang        = "go"
)

type caseFunc func(c *rpcnet.Client) error

type vector struct {
	Name          string            `json:"name"`
	Hex           string            `json:"hex"`
	Canonical     *string           `json:"canonical"`
	Error         string            `json:"error"`
	BindingErrors map[string]string `json:"binding_errors"`
}

type result struct {
	Case  string
	OK    bool
	MS    float64
	Error string
	Note  string
}

// jsonString quotes s as JSON (invalid UTF-8 becomes U+FFFD).
func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(buf.String(), "\n")
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func checkPayload(b []byte, n int) error {
	if len(b) != n {
		return fmt.Errorf("payload has %d bytes, want %d", len(b), n)
	}
	for i, c := range b {
		if c != byte(i%251) {
			return fmt.Errorf("payload byte %d is %d, want %d", i, c, i%251)
		}
	}
	return nil
}

// payloadOf decodes a {"payload": b} message and checks b has n bytes.
func payloadOf(msg []byte, n int) error {
	v, err := rpcnet.Decode(msg)
	if err != nil {
		return fmt.Errorf("decode response: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return fmt.Errorf("response %#v is not {\"payload\": b}", v)
	}
	b, ok := m["payload"].([]byte)
	if !ok {
		return fmt.Errorf("response payload is %T, want []byte", m["payload"])
	}
	return checkPayload(b, n)
}

func isEmptyMap(msg []byte) error {
	v, err := rpcnet.Decode(msg)
	if err != nil {
		return fmt.Errorf("decode response: %v", err)
	}
	if m, ok := v.(map[string]any); !ok || len(m) != 0 {
		return fmt.Errorf("response %#v (%x), want {}", v, msg)
	}
	return nil
}

// wantCode checks err is an *rpcnet.Error with code (and message, if not nil).
func wantCode(err error, code rpcnet.Code, msg *string) error {
	if err == nil {
		return fmt.Errorf("call succeeded, want %v", code)
	}
	var e *rpcnet.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("error %v is not an *rpcnet.Error, want %v", err, code)
	}
	if e.Code != code {
		return fmt.Errorf("status %v (%q), want %v", e.Code, e.Message, code)
	}
	if msg != nil && e.Message != *msg {
		return fmt.Errorf("status message %q, want %q", e.Message, *msg)
	}
	return nil
}

func timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

func call(c *rpcnet.Client, method string, req any, opts ...rpcnet.CallOption) ([]byte, error) {
	b, err := rpcnet.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := timeout()
	defer cancel()
	return c.CallRaw(ctx, svc+method, b, opts...)
}

// recvEnd receives from st and expects the end of the call with status OK.
func recvEnd(st *rpcnet.Stream) error {
	b, err := st.RecvRaw()
	if err == nil {
		return fmt.Errorf("unexpected extra message %x", b)
	}
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("status %v, want OK", err)
	}
	return nil
}

var sizesReq = []int{27182, 8, 1828, 45904}
var sizesResp = []int{31415, 9, 2653, 58979}

func emptyUnary(c *rpcnet.Client) error {
	resp, err := call(c, "Empty", map[string]any{})
	if err != nil {
		return err
	}
	return isEmptyMap(resp)
}

func largeUnary(c *rpcnet.Client) error {
	resp, err := call(c, "Unary", map[string]any{"size": 314159, "payload": payload(271828)})
	if err != nil {
		return err
	}
	return payloadOf(resp, 314159)
}

func clientStreaming(c *rpcnet.Client) error {
	ctx, cancel := timeout()
	defer cancel()
	st, err := c.Stream(ctx, svc+"ClientStream")
	if err != nil {
		return err
	}
	defer st.Close()
	for _, n := range sizesReq {
		if err := st.Send(map[string]any{"payload": payload(n)}); err != nil {
			return fmt.Errorf("send: %v", err)
		}
	}
	if err := st.CloseSend(); err != nil {
		return fmt.Errorf("close send: %v", err)
	}
	b, err := st.RecvRaw()
	if err != nil {
		return fmt.Errorf("recv: %v", err)
	}
	v, err := rpcnet.Decode(b)
	if err != nil {
		return fmt.Errorf("decode response: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 || m["aggregate"] != int64(74922) {
		return fmt.Errorf("response %#v, want {\"aggregate\": 74922}", v)
	}
	return recvEnd(st)
}

func serverStreaming(c *rpcnet.Client) error {
	ctx, cancel := timeout()
	defer cancel()
	st, err := c.Stream(ctx, svc+"ServerStream")
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Send(map[string]any{"sizes": sizesResp}); err != nil {
		return fmt.Errorf("send: %v", err)
	}
	if err := st.CloseSend(); err != nil {
		return fmt.Errorf("close send: %v", err)
	}
	for i, n := range sizesResp {
		b, err := st.RecvRaw()
		if err != nil {
			return fmt.Errorf("recv %d: %v", i, err)
		}
		if err := payloadOf(b, n); err != nil {
			return fmt.Errorf("message %d: %v", i, err)
		}
	}
	return recvEnd(st)
}

func pingPong(c *rpcnet.Client) error {
	ctx, cancel := timeout()
	defer cancel()
	st, err := c.Stream(ctx, svc+"Bidi")
	if err != nil {
		return err
	}
	defer st.Close()
	for i := range sizesReq {
		if err := st.Send(map[string]any{"size": sizesResp[i], "payload": payload(sizesReq[i])}); err != nil {
			return fmt.Errorf("send %d: %v", i, err)
		}
		b, err := st.RecvRaw()
		if err != nil {
			return fmt.Errorf("recv %d: %v", i, err)
		}
		if err := payloadOf(b, sizesResp[i]); err != nil {
			return fmt.Errorf("message %d: %v", i, err)
		}
	}
	if err := st.CloseSend(); err != nil {
		return fmt.Errorf("close send: %v", err)
	}
	return recvEnd(st)
}

func emptyStream(c *rpcnet.Client) error {
	ctx, cancel := timeout()
	defer cancel()
	st, err := c.Stream(ctx, svc+"Bidi")
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.CloseSend(); err != nil {
		return fmt.Errorf("close send: %v", err)
	}
	return recvEnd(st)
}

func cancelAfterBegin(c *rpcnet.Client) error {
	ctx, cancel := timeout()
	defer cancel()
	st, err := c.Stream(ctx, svc+"ClientStream")
	if err != nil {
		return err
	}
	defer st.Close()
	// A receive puts the call on the wire (the header goes out); cancel
	// while it waits, so the cancellation reaches the server.
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := st.RecvRaw()
		done <- result{b, err}
	}()
	time.Sleep(20 * time.Millisecond)
	st.Cancel()
	r := <-done
	if r.err == nil {
		return fmt.Errorf("got message %x after cancel", r.b)
	}
	return wantCode(r.err, rpcnet.Canceled, nil)
}

func cancelAfterFirstResponse(c *rpcnet.Client) error {
	ctx, cancel := timeout()
	defer cancel()
	st, err := c.Stream(ctx, svc+"Bidi")
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Send(map[string]any{"size": sizesResp[0], "payload": payload(sizesReq[0])}); err != nil {
		return fmt.Errorf("send: %v", err)
	}
	b, err := st.RecvRaw()
	if err != nil {
		return fmt.Errorf("recv: %v", err)
	}
	if err := payloadOf(b, sizesResp[0]); err != nil {
		return err
	}
	st.Cancel()
	b, err = st.RecvRaw()
	if err == nil {
		return fmt.Errorf("got message %x after cancel", b)
	}
	return wantCode(err, rpcnet.Canceled, nil)
}

func timeoutOnSleepingServer(c *rpcnet.Client) error {
	b, err := rpcnet.Marshal(map[string]any{"ms": 5000})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = c.CallRaw(ctx, svc+"Sleep", b)
	if e := wantCode(err, rpcnet.DeadlineExceeded, nil); e != nil {
		return e
	}
	if d := time.Since(t0); d > 2*time.Second {
		return fmt.Errorf("DEADLINE_EXCEEDED only after %v", d)
	}
	return nil
}

func customMetadata(c *rpcnet.Client) error {
	md := map[string]string{
		"x-grpc-test-echo-initial":      "test_initial_metadata_value",
		"x-grpc-test-echo-trailing-bin": "\xab\xab\xab",
	}
	ctx, cancel := timeout()
	defer cancel()
	// A stream call: the unary API does not expose trailers.
	st, err := c.Stream(ctx, svc+"EchoMetadata", rpcnet.Metadata(md))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Send(map[string]any{}); err != nil {
		return fmt.Errorf("send: %v", err)
	}
	if err := st.CloseSend(); err != nil {
		return fmt.Errorf("close send: %v", err)
	}
	b, err := st.RecvRaw()
	if err != nil {
		return fmt.Errorf("recv: %v", err)
	}
	if err := isEmptyMap(b); err != nil {
		return err
	}
	if err := recvEnd(st); err != nil {
		return err
	}
	tr := st.Trailers()
	for k, want := range md {
		got, ok := tr[k]
		if !ok {
			return fmt.Errorf("trailer %s missing (trailers %q)", k, tr)
		}
		if got != want {
			return fmt.Errorf("trailer %s is %q, want %q", k, got, want)
		}
	}
	return nil
}

func statusCase(msg string) caseFunc {
	return func(c *rpcnet.Client) error {
		_, err := call(c, "Unary", map[string]any{"size": 0, "payload": []byte{}, "status": 2, "message": msg})
		return wantCode(err, rpcnet.Unknown, &msg)
	}
}

func unimplementedMethod(c *rpcnet.Client) error {
	_, err := call(c, "NoSuchMethod", map[string]any{})
	return wantCode(err, rpcnet.Unimplemented, nil)
}

// frames is the byte-level proof, against conformance_record_server only
// (run when named: --case frames): the request of frames.json vectors
// request_header_timeout_metadata + unary_request. The recorder answers OK
// when the bytes it received match.
func frames(c *rpcnet.Client) error {
	ctx, cancel := timeout()
	defer cancel()
	ctx = rpcnet.WithMetadata(ctx, map[string]string{
		"authorization": "Bearer abc",
		"trace-bin":     "\x01\x02\xff",
	})
	_, err := c.CallRaw(ctx, "/echo.Echo/Say", []byte("hello"))
	return err
}

// valueCase runs one vector. limited is true when the vector's
// binding_errors name some language: a server in such a language cannot
// decode it, and answers UNIMPLEMENTED (the Python and Lua servers' reply);
// that answer is accepted, with a note, for those vectors only.
func valueCase(name string, canon []byte, limited bool, note *string) caseFunc {
	return func(c *rpcnet.Client) error {
		v, err := rpcnet.Decode(canon)
		if err != nil {
			return fmt.Errorf("local decode of %x: %v", canon, err)
		}
		enc, err := rpcnet.Marshal(v)
		if err != nil {
			return fmt.Errorf("local encode: %v", err)
		}
		if !bytes.Equal(enc, canon) {
			return fmt.Errorf("local re-encoding %x differs from canonical %x", enc, canon)
		}
		ctx, cancel := timeout()
		defer cancel()
		resp, err := c.CallRaw(ctx, svc+"EchoValue", enc, rpcnet.Metadata(map[string]string{"x-vector": name}))
		if limited && rpcnet.CodeOf(err) == rpcnet.Unimplemented {
			*note = "server's binding cannot decode this vector (binding_errors): " + err.Error()
			return nil
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(resp, canon) {
			return fmt.Errorf("echoed bytes differ: got %x, want %x", resp, canon)
		}
		if _, err := rpcnet.Decode(resp); err != nil {
			return fmt.Errorf("decode echoed bytes: %v", err)
		}
		return nil
	}
}

func loadVectors(path string) ([]vector, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return f.Vectors, nil
}

func main() {
	var ca, addr, vecPath string
	var only multi
	flag.StringVar(&ca, "ca", "", "CA certificate file")
	flag.StringVar(&addr, "addr", "", "server HOST:PORT")
	flag.StringVar(&vecPath, "vectors", "", "values.json")
	flag.Var(&only, "case", "case to run (repeatable; default all)")
	flag.Parse()
	if ca == "" || addr == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: client --ca CA_FILE --addr HOST:PORT --vectors VALUES_JSON [--case NAME]...")
		os.Exit(2)
	}

	names := []string{}
	cases := map[string]caseFunc{}
	add := func(name string, f caseFunc) {
		names = append(names, name)
		cases[name] = f
	}
	add("empty_unary", emptyUnary)
	add("large_unary", largeUnary)
	add("client_streaming", clientStreaming)
	add("server_streaming", serverStreaming)
	add("ping_pong", pingPong)
	add("empty_stream", emptyStream)
	add("cancel_after_begin", cancelAfterBegin)
	add("cancel_after_first_response", cancelAfterFirstResponse)
	add("timeout_on_sleeping_server", timeoutOnSleepingServer)
	add("custom_metadata", customMetadata)
	add("status_code_and_message", statusCase("test status message"))
	add("special_status_message", statusCase("\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001F608\t\n"))
	add("unimplemented_method", unimplementedMethod)

	var note string // set by a case that passed with a remark
	var loadErr error
	if vecPath != "" {
		vs, err := loadVectors(vecPath)
		if err != nil {
			loadErr = err
		}
		for _, v := range vs {
			if v.Error != "" {
				continue
			}
			if _, skip := v.BindingErrors[lang]; skip {
				continue
			}
			h := v.Hex
			if v.Canonical != nil {
				h = *v.Canonical
			}
			b, err := hex.DecodeString(h)
			if err != nil {
				name := v.Name
				add("value:"+name, func(*rpcnet.Client) error { return fmt.Errorf("bad hex: %v", err) })
				continue
			}
			add("value:"+v.Name, valueCase(v.Name, b, len(v.BindingErrors) > 0, &note))
		}
	}

	run := names
	if len(only) > 0 {
		run = only
	}
	emit := func(r result) {
		// The README's layout: {"case": "x", "ok": true, "ms": 1.2, "error": "..."}
		line := fmt.Sprintf("{\"case\": %s, \"ok\": %t, \"ms\": %s", jsonString(r.Case), r.OK,
			strconv.FormatFloat(r.MS, 'f', -1, 64))
		if r.Error != "" {
			line += ", \"error\": " + jsonString(r.Error)
		}
		if r.Note != "" {
			line += ", \"note\": " + jsonString(r.Note)
		}
		fmt.Println(line + "}")
	}
	if loadErr != nil {
		emit(result{Case: "load_vectors", OK: false, Error: loadErr.Error()})
	}

	cfg := rpcnet.Config{CAFile: ca, ServerName: "localhost"}
	c, err := rpcnet.Dial(context.Background(), addr, cfg)
	if err != nil {
		for _, name := range run {
			emit(result{Case: name, OK: false, Error: "dial: " + err.Error()})
		}
		return
	}
	defer func() { c.Close() }()
	cases["frames"] = frames // only when named: it needs the recording server
	for _, name := range run {
		f, ok := cases[name]
		if !ok {
			msg := "unknown case"
			if strings.HasPrefix(name, "value:") {
				msg = "unknown case (not a vector of --vectors, or an error/binding_errors vector)"
			}
			emit(result{Case: name, OK: false, Error: msg})
			continue
		}
		note = ""
		t0 := time.Now()
		err := f(c)
		if rpcnet.CodeOf(err) == rpcnet.Unavailable {
			// The connection is gone: the next case gets a new one.
			c.Close()
			if c2, derr := rpcnet.Dial(context.Background(), addr, cfg); derr == nil {
				c = c2
			} else {
				err = fmt.Errorf("%v (redial: %v)", err, derr)
			}
		}
		r := result{Case: name, OK: err == nil, MS: float64(time.Since(t0).Microseconds()) / 1000}
		if err != nil {
			r.Error = err.Error()
		}
		r.Note = note
		emit(r)
	}
}

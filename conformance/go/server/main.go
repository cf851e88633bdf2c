// Conformance server (Go): the service of conformance/README.md and
// docs/wire-format.md section 8.1, with the Go binding's public API only.
//
// Usage: server CERT_FILE KEY_FILE
//
// Listens on 127.0.0.1:0, prints "PORT <n>" once ready and serves until
// SIGTERM/SIGINT. RPCNET_VECTORS names values.json for EchoValue.
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	rpcnet "github.com/rpcnet/rpcnet/bindings/go"
)

const svc = "conformance."

// payload returns n bytes, byte i being i % 251.
func payload(n uint64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// checkPayload reports whether b follows the i % 251 pattern.
func checkPayload(b []byte) error {
	for i, c := range b {
		if c != byte(i%251) {
			return rpcnet.Errorf(rpcnet.InvalidArgument, "payload byte %d is %d, want %d", i, c, i%251)
		}
	}
	return nil
}

// Request shapes (text-keyed maps; Unmarshal fills structs by key).
type unaryReq struct {
	Size    *uint64 `cbor:"size"`
	Payload []byte  `cbor:"payload"`
	Status  *int64  `cbor:"status"`
	Message *string `cbor:"message"`
}

type streamReq struct {
	Payload []byte `cbor:"payload"`
}

type sizesReq struct {
	Sizes []uint64 `cbor:"sizes"`
}

type sleepReq struct {
	Ms *uint64 `cbor:"ms"`
}

func decodeMsg(b []byte, v any) error {
	if err := rpcnet.Unmarshal(b, v); err != nil {
		return rpcnet.Errorf(rpcnet.InvalidArgument, "decode request: %v", err)
	}
	return nil
}

// vec is one vector of values.json: its canonical bytes, and the error the
// Go binding reports instead of decoding it (binding_errors["go"], if any).
type vec struct {
	canon   []byte
	goError string
}

// loadVectors reads RPCNET_VECTORS: vector name -> vector (nil when the
// variable is unset).
func loadVectors() (map[string]vec, error) {
	path := os.Getenv("RPCNET_VECTORS")
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Vectors []struct {
			Name          string            `json:"name"`
			Hex           string            `json:"hex"`
			Canonical     *string           `json:"canonical"`
			BindingErrors map[string]string `json:"binding_errors"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	m := make(map[string]vec, len(f.Vectors))
	for _, v := range f.Vectors {
		h := v.Hex
		if v.Canonical != nil {
			h = *v.Canonical
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("%s: vector %s: %v", path, v.Name, err)
		}
		m[v.Name] = vec{canon: b, goError: v.BindingErrors["go"]}
	}
	return m, nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: server CERT_FILE KEY_FILE")
		os.Exit(2)
	}
	vectors, err := loadVectors()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vectors:", err)
		os.Exit(1)
	}
	s, err := rpcnet.NewServer(rpcnet.Config{CertFile: os.Args[1], KeyFile: os.Args[2]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}

	must(s.Handle(svc+"Empty", func(ctx context.Context, r *rpcnet.Request) (any, error) {
		var m map[string]any
		if err := decodeMsg(r.Raw(), &m); err != nil {
			return nil, err
		}
		return map[string]any{}, nil
	}))

	must(s.Handle(svc+"Unary", func(ctx context.Context, r *rpcnet.Request) (any, error) {
		var q unaryReq
		if err := decodeMsg(r.Raw(), &q); err != nil {
			return nil, err
		}
		if q.Status != nil && *q.Status != 0 {
			msg := ""
			if q.Message != nil {
				msg = *q.Message
			}
			return nil, &rpcnet.Error{Code: rpcnet.Code(*q.Status), Message: msg}
		}
		if q.Size == nil {
			return nil, rpcnet.Errorf(rpcnet.InvalidArgument, "missing size")
		}
		if err := checkPayload(q.Payload); err != nil {
			return nil, err
		}
		return map[string]any{"payload": payload(*q.Size)}, nil
	}))

	must(s.HandleStream(svc+"ClientStream", func(ctx context.Context, st *rpcnet.ServerStream) error {
		var total uint64
		for {
			b, err := st.RecvRaw()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			var q streamReq
			if err := decodeMsg(b, &q); err != nil {
				return err
			}
			if err := checkPayload(q.Payload); err != nil {
				return err
			}
			total += uint64(len(q.Payload))
		}
		return st.Send(map[string]any{"aggregate": total})
	}))

	must(s.HandleStream(svc+"ServerStream", func(ctx context.Context, st *rpcnet.ServerStream) error {
		b, err := st.RecvRaw()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return rpcnet.Errorf(rpcnet.InvalidArgument, "no request message")
			}
			return err
		}
		var q sizesReq
		if err := decodeMsg(b, &q); err != nil {
			return err
		}
		for _, n := range q.Sizes {
			if err := st.Send(map[string]any{"payload": payload(n)}); err != nil {
				return err
			}
		}
		return nil
	}))

	must(s.HandleStream(svc+"Bidi", func(ctx context.Context, st *rpcnet.ServerStream) error {
		for {
			b, err := st.RecvRaw()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			var q unaryReq
			if err := decodeMsg(b, &q); err != nil {
				return err
			}
			if q.Size == nil {
				return rpcnet.Errorf(rpcnet.InvalidArgument, "missing size")
			}
			if err := checkPayload(q.Payload); err != nil {
				return err
			}
			if err := st.Send(map[string]any{"payload": payload(*q.Size)}); err != nil {
				return err
			}
		}
	}))

	must(s.Handle(svc+"Sleep", func(ctx context.Context, r *rpcnet.Request) (any, error) {
		var q sleepReq
		if err := decodeMsg(r.Raw(), &q); err != nil {
			return nil, err
		}
		if q.Ms == nil {
			return nil, rpcnet.Errorf(rpcnet.InvalidArgument, "missing ms")
		}
		t0 := time.Now()
		t := time.NewTimer(time.Duration(*q.Ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return map[string]any{}, nil
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "Sleep(%d ms): ended early after %v: %v\n", *q.Ms,
				time.Since(t0).Round(time.Millisecond), ctx.Err())
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, rpcnet.Errorf(rpcnet.DeadlineExceeded, "sleep: deadline exceeded")
			}
			return nil, rpcnet.Errorf(rpcnet.Canceled, "sleep: cancelled")
		}
	}))

	must(s.Handle(svc+"EchoValue", func(ctx context.Context, r *rpcnet.Request) (any, error) {
		got := r.Raw()
		name, ok := r.Metadata("x-vector")
		var goError string
		if vectors != nil {
			if !ok {
				return nil, rpcnet.Errorf(rpcnet.InvalidArgument, "no x-vector metadata")
			}
			vv, known := vectors[name]
			if !known {
				return nil, rpcnet.Errorf(rpcnet.NotFound, "unknown vector %q", name)
			}
			want := vv.canon
			goError = vv.goError
			if !bytes.Equal(got, want) {
				return nil, rpcnet.Errorf(rpcnet.DataLoss,
					"vector %s: received bytes %x differ from canonical %x", name, got, want)
			}
		}
		v, err := rpcnet.Decode(got)
		if ve := (*rpcnet.ValueError)(nil); goError != "" && errors.As(err, &ve) && ve.Kind == goError {
			// A documented limit of the Go mapping (spec 7.3): not a failure.
			return nil, rpcnet.Errorf(rpcnet.Unimplemented,
				"vector %s: the go binding cannot decode it (binding_errors: %s)", name, goError)
		}
		if err != nil {
			return nil, rpcnet.Errorf(rpcnet.DataLoss, "vector %s: decode: %v", name, err)
		}
		enc, err := rpcnet.Marshal(v)
		if err != nil {
			return nil, rpcnet.Errorf(rpcnet.DataLoss, "vector %s: re-encode: %v", name, err)
		}
		if !bytes.Equal(enc, got) {
			return nil, rpcnet.Errorf(rpcnet.DataLoss,
				"vector %s: re-encoded bytes %x differ from received %x", name, enc, got)
		}
		return rpcnet.RawMessage(enc), nil
	}))

	must(s.Handle(svc+"EchoMetadata", func(ctx context.Context, r *rpcnet.Request) (any, error) {
		var m map[string]any
		if err := decodeMsg(r.Raw(), &m); err != nil {
			return nil, err
		}
		for k, v := range r.MetadataAll() {
			if err := r.SetTrailer(k, v); err != nil {
				return nil, err
			}
		}
		return map[string]any{}, nil
	}))

	port, err := s.Listen("127.0.0.1:0")
	must(err)
	fmt.Printf("PORT %d\n", port)
	os.Stdout.Sync()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	_ = s.Serve(ctx)
	s.Close()
}

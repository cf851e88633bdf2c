package rpcnet

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

type vector struct {
	Name          string            `json:"name"`
	Hex           string            `json:"hex"`
	Canonical     *string           `json:"canonical"`
	Error         string            `json:"error"`
	BindingErrors map[string]string `json:"binding_errors"`
}

// TestVectors runs every vector of conformance/vectors/values.json as its
// README says: errors by name, canonical re-encoding, idempotence, and
// every proper prefix of a valid input failing with truncated.
func TestVectors(t *testing.T) {
	raw, err := os.ReadFile("../../conformance/vectors/values.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		MaxDepth int      `json:"max_depth"`
		Vectors  []vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if f.MaxDepth != MaxDepth || len(f.Vectors) < 200 {
		t.Fatalf("max_depth %d, %d vectors", f.MaxDepth, len(f.Vectors))
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			in, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			want := v.Error
			if be, ok := v.BindingErrors["go"]; ok {
				want = be
			}
			val, err := Decode(in)
			if want != "" {
				var ve *ValueError
				if !errors.As(err, &ve) || ve.Kind != want {
					t.Fatalf("decode %s: got %v (%#v), want error %s", v.Hex, err, val, want)
				}
				if !errors.Is(err, &ValueError{Kind: want}) {
					t.Fatalf("errors.Is failed for %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode %s: %v", v.Hex, err)
			}
			canon := v.Hex
			if v.Canonical != nil {
				canon = *v.Canonical
			}
			enc, err := Marshal(val)
			if err != nil {
				t.Fatalf("encode %#v: %v", val, err)
			}
			if hex.EncodeToString(enc) != canon {
				t.Fatalf("encode(decode(%s)) = %x, want %s (value %#v)", v.Hex, enc, canon, val)
			}
			val2, err := Decode(enc)
			if err != nil {
				t.Fatalf("decode canonical: %v", err)
			}
			enc2, err := Marshal(val2)
			if err != nil || hex.EncodeToString(enc2) != canon {
				t.Fatalf("second round: %x %v", enc2, err)
			}
			for i := 0; i < len(in); i++ {
				if _, err := Decode(in[:i]); !errors.Is(err, ErrTruncated) {
					t.Fatalf("prefix %x: got %v, want truncated", in[:i], err)
				}
			}
		})
	}
}

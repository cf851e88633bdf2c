package rpcnet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustHex(s string) []byte { b, _ := hex.DecodeString(s); return b }

func TestDecodeTypes(t *testing.T) {
	cases := []struct {
		hex  string
		want any
	}{
		{"17", int64(23)},
		{"1bffffffffffffffff", uint64(math.MaxUint64)},
		{"20", int64(-1)},
		{"f93c00", 1.0},
		{"4101", []byte{1}},
		{"6100", "\x00"},
		{"8201f6", []any{int64(1), nil}},
		{"a0", map[string]any{}},
		{"a16161f5", map[string]any{"a": true}},
		{"a201f541610a", map[any]any{int64(1): true, ByteString("a"): int64(10)}},
		{"a1810100", map[any]any{RawKey(mustHex("8101")): int64(0)}},
		{"c074323031332d30332d32315432303a30343a30305a", time.Date(2013, 3, 21, 20, 4, 0, 0, time.UTC)},
		{"c11a514b67b0", EpochTime{time.Unix(1363896240, 0).UTC()}},
		{"c24101", Tag{Number: 2, Content: []byte{1}}},
		{"d864d8c86178", Tag{100, Tag{200, "x"}}},
	}
	for _, c := range cases {
		got, err := Decode(mustHex(c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Decode(%s) = %#v, %v; want %#v", c.hex, got, err, c.want)
		}
	}
	got, err := Decode(mustHex("3bffffffffffffffff"))
	if n, ok := got.(*big.Int); err != nil || !ok || n.String() != "-18446744073709551616" {
		t.Errorf("-2^64: %#v %v", got, err)
	}
	if v, _ := Decode(mustHex("f97e00")); !math.IsNaN(v.(float64)) {
		t.Errorf("NaN: %v", v)
	}
}

func TestEncodeTypes(t *testing.T) {
	big64, _ := new(big.Int).SetString("-18446744073709551616", 10)
	cases := []struct {
		v   any
		hex string
	}{
		{nil, "f6"},
		{true, "f5"},
		{int8(-5), "24"},
		{uint16(500), "1901f4"},
		{float32(1.5), "f93e00"},
		{1.1, "fb3ff199999999999a"},
		{math.Copysign(0, -1), "f98000"},
		{math.Inf(-1), "f9fc00"},
		{big64, "3bffffffffffffffff"},
		{[]byte{}, "40"},
		{[2]int{1, 2}, "820102"},
		{map[string]int{"b": 1, "aa": 2}, "a261620162616102"},
		{map[any]any{"z": 3, 10: 1}, "a20a01617a03"},
		{time.Date(2013, 3, 21, 20, 4, 0, 500000000, time.UTC), "c076323031332d30332d32315432303a30343a30302e355a"},
		{EpochTime{time.Unix(1363896240, 500000000)}, "c1fb41d452d9ec200000"},
		{Tag{Number: 32, Content: "x"}, "d8206178"},
		{struct {
			A int    `cbor:"a"`
			B string `cbor:"-"`
			C []int  `cbor:",omitempty"`
		}{A: 1}, "a1616101"},
	}
	for _, c := range cases {
		got, err := Marshal(c.v)
		if err != nil || hex.EncodeToString(got) != c.hex {
			t.Errorf("Marshal(%#v) = %x, %v; want %s", c.v, got, err, c.hex)
		}
	}
	tooBig := new(big.Int).Lsh(big.NewInt(1), 64)
	bad := []struct {
		v    any
		kind error
	}{
		{tooBig, ErrType},
		{"\xff", ErrUTF8},
		{map[any]any{int64(1): 1, uint64(1): 2}, ErrDuplicateKey},
		{make(chan int), ErrType},
	}
	for _, c := range bad {
		if _, err := Marshal(c.v); !errors.Is(err, c.kind) {
			t.Errorf("Marshal(%#v): %v, want %v", c.v, err, c.kind)
		}
	}
	deep := any(0)
	for i := 0; i < 65; i++ {
		deep = []any{deep}
	}
	if _, err := Marshal(deep); !errors.Is(err, ErrDepth) {
		t.Errorf("depth: %v", err)
	}
}

func TestUnmarshalTyped(t *testing.T) {
	type point struct {
		X, Y int
		Tag  string `cbor:"tag"`
	}
	b, _ := Marshal(map[string]any{"X": 1, "Y": -2, "tag": "p"})
	var p point
	if err := Unmarshal(b, &p); err != nil || p != (point{1, -2, "p"}) {
		t.Fatalf("%+v %v", p, err)
	}
	var u8 uint8
	if err := Unmarshal(mustHex("190100"), &u8); !errors.Is(err, ErrType) {
		t.Fatalf("overflow: %v", err)
	}
	var xs []float64
	if err := Unmarshal(mustHex("8201f93e00"), &xs); err != nil || !reflect.DeepEqual(xs, []float64{1, 1.5}) {
		t.Fatalf("%v %v", xs, err)
	}
	big := bytes.Repeat([]byte{0, 'a'}, 8<<20) // 16 MiB with NUL bytes
	enc, _ := Marshal(big)
	var back []byte
	if err := Unmarshal(enc, &back); err != nil || !bytes.Equal(back, big) {
		t.Fatal("16 MiB round trip")
	}
	if err := Unmarshal([]byte{0}, nil); !strings.Contains(err.Error(), "pointer") {
		t.Fatal(err)
	}
}

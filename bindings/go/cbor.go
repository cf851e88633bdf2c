package rpcnet

// Pure Go CBOR implementing the value mapping of docs/wire-format.md
// section 7 (decoding rules 7.1, deterministic encoding 7.2, Go's row of
// 7.3, tags 7.4).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxDepth is the nesting limit for arrays, maps and tags (spec 7.1).
const MaxDepth = 64

// Tag is a CBOR tag the mapping has no native type for.
type Tag struct {
	Number  uint64
	Content any
}

// EpochTime is a time that came from (or encodes as) tag 1: seconds since
// 1970-01-01T00:00Z, an integer when whole, else a float.
type EpochTime struct{ time.Time }

// ByteString is a byte string used as a key of a map[any]any.
type ByteString string

// BigKey is an integer key below -2^63 of a map[any]any (decimal string).
type BigKey string

// RawKey is an array, map or tag key of a map[any]any: its canonical CBOR.
type RawKey string

// RawMessage is an already encoded payload: Marshal, Call and handler
// results pass it through unchanged, and Unmarshal into *RawMessage copies
// the input.
type RawMessage []byte

// ValueError is a CBOR encoding or decoding failure. Kind is one of the
// spec's error names (malformed, truncated, trailing, depth, utf8,
// duplicate_key, unsupported, invalid_tag) or "type" for a Go value that
// has no mapping or a decoded value that does not fit the target.
type ValueError struct {
	Kind   string
	Detail string
}

func (e *ValueError) Error() string {
	if e.Detail == "" {
		return "rpcnet: cbor: " + e.Kind
	}
	return "rpcnet: cbor: " + e.Kind + ": " + e.Detail
}

// Is matches another *ValueError of the same Kind (the Err* values below).
func (e *ValueError) Is(target error) bool {
	t, ok := target.(*ValueError)
	return ok && t.Kind == e.Kind
}

// Sentinels for errors.Is.
var (
	ErrMalformed    = &ValueError{Kind: "malformed"}
	ErrTruncated    = &ValueError{Kind: "truncated"}
	ErrTrailing     = &ValueError{Kind: "trailing"}
	ErrDepth        = &ValueError{Kind: "depth"}
	ErrUTF8         = &ValueError{Kind: "utf8"}
	ErrDuplicateKey = &ValueError{Kind: "duplicate_key"}
	ErrUnsupported  = &ValueError{Kind: "unsupported"}
	ErrInvalidTag   = &ValueError{Kind: "invalid_tag"}
	ErrType         = &ValueError{Kind: "type"}
)

func verr(kind, format string, a ...any) error {
	return &ValueError{Kind: kind, Detail: fmt.Sprintf(format, a...)}
}

// ------------------------------------------------------------------ decode

// Decode decodes exactly one CBOR data item into its Go value (section 7.3).
func Decode(b []byte) (any, error) {
	d := decoder{b: b}
	v, err := d.item(0)
	if err != nil {
		return nil, err
	}
	if d.pos != len(d.b) {
		return nil, verr("trailing", "%d bytes after the item", len(d.b)-d.pos)
	}
	return v, nil
}

type decoder struct {
	b   []byte
	pos int
}

var errBreak = &ValueError{Kind: "malformed", Detail: "unexpected break"}

func (d *decoder) need(n uint64) error {
	if uint64(len(d.b)-d.pos) < n {
		return verr("truncated", "need %d bytes at offset %d", n, d.pos)
	}
	return nil
}

// head reads an initial byte and its argument. indef reports ai 31.
func (d *decoder) head() (major byte, ai byte, arg uint64, indef bool, err error) {
	if err = d.need(1); err != nil {
		return
	}
	ib := d.b[d.pos]
	d.pos++
	major, ai = ib>>5, ib&31
	switch {
	case ai < 24:
		arg = uint64(ai)
	case ai <= 27:
		n := uint64(1) << (ai - 24)
		if err = d.need(n); err != nil {
			return
		}
		p := d.b[d.pos : d.pos+int(n)]
		d.pos += int(n)
		switch n {
		case 1:
			arg = uint64(p[0])
		case 2:
			arg = uint64(binary.BigEndian.Uint16(p))
		case 4:
			arg = uint64(binary.BigEndian.Uint32(p))
		default:
			arg = binary.BigEndian.Uint64(p)
		}
	case ai == 31:
		indef = true
	default:
		err = verr("malformed", "reserved additional information %d", ai)
	}
	return
}

func (d *decoder) remaining() uint64 { return uint64(len(d.b) - d.pos) }

func (d *decoder) item(depth int) (any, error) {
	start := d.pos
	major, ai, arg, indef, err := d.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case 0:
		if indef {
			return nil, verr("malformed", "indefinite length integer")
		}
		if arg <= math.MaxInt64 {
			return int64(arg), nil
		}
		return arg, nil
	case 1:
		if indef {
			return nil, verr("malformed", "indefinite length integer")
		}
		if arg <= math.MaxInt64 {
			return -1 - int64(arg), nil
		}
		n := new(big.Int).SetUint64(arg)
		return n.Neg(n.Add(n, big.NewInt(1))), nil
	case 2, 3:
		var s []byte
		if !indef {
			if arg > d.remaining() {
				return nil, verr("truncated", "string of %d bytes", arg)
			}
			s = d.b[d.pos : d.pos+int(arg)]
			d.pos += int(arg)
			if major == 3 && !utf8.Valid(s) {
				return nil, verr("utf8", "invalid UTF-8 in text string")
			}
		} else {
			var buf []byte
			for {
				if err := d.need(1); err != nil {
					return nil, err
				}
				if d.b[d.pos] == 0xff {
					d.pos++
					break
				}
				cm, _, carg, cindef, err := d.head()
				if err != nil {
					return nil, err
				}
				if cm != major || cindef {
					return nil, verr("malformed", "bad chunk in indefinite string")
				}
				if carg > d.remaining() {
					return nil, verr("truncated", "chunk of %d bytes", carg)
				}
				c := d.b[d.pos : d.pos+int(carg)]
				d.pos += int(carg)
				if major == 3 && !utf8.Valid(c) {
					return nil, verr("utf8", "invalid UTF-8 in text chunk")
				}
				buf = append(buf, c...)
			}
			s = buf
		}
		if major == 3 {
			return string(s), nil
		}
		out := make([]byte, len(s))
		copy(out, s)
		return out, nil
	case 4:
		if depth+1 > MaxDepth {
			return nil, verr("depth", "more than %d nested containers", MaxDepth)
		}
		if !indef && arg > d.remaining() {
			return nil, verr("truncated", "array of %d items", arg)
		}
		arr := make([]any, 0, min(arg, 1024))
		for i := uint64(0); indef || i < arg; i++ {
			if indef {
				if err := d.need(1); err != nil {
					return nil, err
				}
				if d.b[d.pos] == 0xff {
					d.pos++
					break
				}
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case 5:
		if depth+1 > MaxDepth {
			return nil, verr("depth", "more than %d nested containers", MaxDepth)
		}
		if !indef && arg > d.remaining()/2 {
			return nil, verr("truncated", "map of %d pairs", arg)
		}
		var keys, vals []any
		seen := map[string]struct{}{}
		allText := true
		for i := uint64(0); indef || i < arg; i++ {
			if indef {
				if err := d.need(1); err != nil {
					return nil, err
				}
				if d.b[d.pos] == 0xff {
					d.pos++
					break
				}
			}
			k, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			if indef {
				if err := d.need(1); err != nil {
					return nil, err
				}
				if d.b[d.pos] == 0xff {
					return nil, verr("malformed", "odd number of items in indefinite map")
				}
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			kb, err := Marshal(k)
			if err != nil {
				return nil, err
			}
			if _, dup := seen[string(kb)]; dup {
				return nil, verr("duplicate_key", "key %x", kb)
			}
			seen[string(kb)] = struct{}{}
			if _, ok := k.(string); !ok {
				allText = false
			}
			keys = append(keys, k)
			vals = append(vals, v)
		}
		if allText {
			m := make(map[string]any, len(keys))
			for i, k := range keys {
				m[k.(string)] = vals[i]
			}
			return m, nil
		}
		m := make(map[any]any, len(keys))
		for i, k := range keys {
			gk, err := goKey(k)
			if err != nil {
				return nil, err
			}
			if _, dup := m[gk]; dup {
				return nil, verr("duplicate_key", "keys equal as Go values")
			}
			m[gk] = vals[i]
		}
		return m, nil
	case 6:
		if indef {
			return nil, verr("malformed", "indefinite length tag")
		}
		if depth+1 > MaxDepth {
			return nil, verr("depth", "more than %d nested containers", MaxDepth)
		}
		c, err := d.item(depth + 1)
		if err != nil {
			return nil, err
		}
		return tagValue(arg, c)
	default: // 7
		if indef {
			_ = start
			return nil, errBreak
		}
		switch {
		case ai == 20:
			return false, nil
		case ai == 21:
			return true, nil
		case ai == 22:
			return nil, nil
		case ai == 24 && arg < 32:
			return nil, verr("malformed", "two-byte simple value %d", arg)
		case ai == 25:
			return normNaN(halfToFloat(uint16(arg))), nil
		case ai == 26:
			return normNaN(float64(math.Float32frombits(uint32(arg)))), nil
		case ai == 27:
			return normNaN(math.Float64frombits(arg)), nil
		case ai == 23:
			return nil, verr("unsupported", "undefined")
		default:
			return nil, verr("unsupported", "simple value %d", arg)
		}
	}
}

func normNaN(f float64) float64 {
	if math.IsNaN(f) {
		return math.NaN()
	}
	return f
}

func goKey(k any) (any, error) {
	switch x := k.(type) {
	case nil, bool, int64, uint64, float64, string:
		return x, nil
	case *big.Int:
		return BigKey(x.String()), nil
	case []byte:
		return ByteString(x), nil
	default:
		b, err := Marshal(k)
		if err != nil {
			return nil, err
		}
		return RawKey(b), nil
	}
}

const rfc3339Layout = "2006-01-02T15:04:05.999999999Z07:00"

func tagValue(n uint64, c any) (any, error) {
	switch n {
	case 0:
		s, ok := c.(string)
		if !ok {
			return nil, verr("invalid_tag", "tag 0 content is not text")
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			if enc, ok := formatTime(t); ok && enc == s {
				return t, nil
			}
		}
	case 1:
		switch x := c.(type) {
		case int64:
			t := EpochTime{time.Unix(x, 0).UTC()}
			return t, nil
		case uint64, *big.Int:
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, verr("invalid_tag", "tag 1 content is not finite")
			}
			if x > -9e15 && x < 9e15 {
				sec := math.Floor(x)
				ns := math.Round((x - sec) * 1e9)
				t := EpochTime{time.Unix(int64(sec), int64(ns)).UTC()}
				if f, isInt := epochNumber(t); !isInt && f == x {
					return t, nil
				}
			}
		default:
			return nil, verr("invalid_tag", "tag 1 content is not a number")
		}
	case 2, 3:
		if _, ok := c.([]byte); !ok {
			return nil, verr("invalid_tag", "tag %d content is not a byte string", n)
		}
	}
	return Tag{Number: n, Content: c}, nil
}

func formatTime(t time.Time) (string, bool) {
	if t.Year() < 0 || t.Year() > 9999 {
		return "", false
	}
	_, off := t.Zone()
	if off%60 != 0 {
		return "", false
	}
	if off == 0 {
		t = t.UTC()
	}
	return t.Format(rfc3339Layout), true
}

// epochNumber gives tag 1's content for t: whole seconds (isInt) or a float.
func epochNumber(t EpochTime) (float64, bool) {
	if t.Nanosecond() == 0 {
		return 0, true
	}
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9, false
}

func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+mant/1024, exp-15)
}

// floatToHalf returns the binary16 bits of f when f is exactly representable.
func floatToHalf(f float64) (uint16, bool) {
	var sign uint16
	if math.Signbit(f) {
		sign = 0x8000
	}
	a := math.Abs(f)
	if a == 0 {
		return sign, true
	}
	if math.IsInf(f, 0) {
		return sign | 0x7c00, true
	}
	frac, exp := math.Frexp(a) // a = frac * 2^exp, frac in [0.5,1)
	e := exp - 1
	if e > 15 {
		return 0, false
	}
	if e >= -14 {
		m := (frac*2 - 1) * 1024
		if m != math.Trunc(m) {
			return 0, false
		}
		return sign | uint16(e+15)<<10 | uint16(m), true
	}
	m := math.Ldexp(a, 24)
	if m != math.Trunc(m) || m < 1 || m > 1023 {
		return 0, false
	}
	return sign | uint16(m), true
}

// ------------------------------------------------------------------ encode

// Marshal encodes v with the deterministic encoding of spec 7.2.
//
// Accepted: nil, bool, every integer type, *big.Int and big.Int in
// [-2^64, 2^64-1], float32, float64, string (valid UTF-8), []byte, other
// slices and arrays, maps, time.Time (tag 0), EpochTime (tag 1), Tag,
// ByteString, BigKey, RawKey, RawMessage (written as is), pointers to these,
// and as a convenience structs (a map of their exported fields, named by a
// `cbor:"name"` tag or the field name; `cbor:"-"` skips a field,
// `cbor:",omitempty"` omits a zero field).
func Marshal(v any) ([]byte, error) {
	if r, ok := v.(RawMessage); ok {
		return append([]byte(nil), r...), nil
	}
	var e encoder
	if err := e.value(reflect.ValueOf(v), 0); err != nil {
		return nil, err
	}
	return e.buf, nil
}

type encoder struct{ buf []byte }

func (e *encoder) head(major byte, n uint64) {
	m := major << 5
	switch {
	case n < 24:
		e.buf = append(e.buf, m|byte(n))
	case n <= math.MaxUint8:
		e.buf = append(e.buf, m|24, byte(n))
	case n <= math.MaxUint16:
		e.buf = append(e.buf, m|25)
		e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n))
	case n <= math.MaxUint32:
		e.buf = append(e.buf, m|26)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
	default:
		e.buf = append(e.buf, m|27)
		e.buf = binary.BigEndian.AppendUint64(e.buf, n)
	}
}

func (e *encoder) float(f float64) {
	if math.IsNaN(f) {
		e.buf = append(e.buf, 0xf9, 0x7e, 0x00)
		return
	}
	if h, ok := floatToHalf(f); ok {
		e.buf = append(e.buf, 0xf9, byte(h>>8), byte(h))
		return
	}
	if f32 := float32(f); float64(f32) == f {
		e.buf = append(e.buf, 0xfa)
		e.buf = binary.BigEndian.AppendUint32(e.buf, math.Float32bits(f32))
		return
	}
	e.buf = append(e.buf, 0xfb)
	e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(f))
}

var (
	two64     = new(big.Int).Lsh(big.NewInt(1), 64)
	negTwo64  = new(big.Int).Neg(two64)
	typeTime  = reflect.TypeOf(time.Time{})
	typeEpoch = reflect.TypeOf(EpochTime{})
	typeTag   = reflect.TypeOf(Tag{})
	typeBig   = reflect.TypeOf(big.Int{})
	typeRaw   = reflect.TypeOf(RawMessage(nil))
	typeBStr  = reflect.TypeOf(ByteString(""))
	typeBKey  = reflect.TypeOf(BigKey(""))
	typeRKey  = reflect.TypeOf(RawKey(""))
)

func (e *encoder) bigInt(n *big.Int) error {
	if n.Cmp(negTwo64) < 0 || n.Cmp(two64) >= 0 {
		return verr("type", "integer %s outside [-2^64, 2^64-1]", n)
	}
	if n.Sign() >= 0 {
		e.head(0, n.Uint64())
		return nil
	}
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	e.head(1, m.Uint64())
	return nil
}

func (e *encoder) value(v reflect.Value, depth int) error {
	if !v.IsValid() {
		e.buf = append(e.buf, 0xf6)
		return nil
	}
	switch v.Type() {
	case typeTime:
		t := v.Interface().(time.Time)
		s, ok := formatTime(t)
		if !ok {
			return verr("type", "time %v cannot be written as tag 0", t)
		}
		e.head(6, 0)
		e.head(3, uint64(len(s)))
		e.buf = append(e.buf, s...)
		return nil
	case typeEpoch:
		t := v.Interface().(EpochTime)
		e.head(6, 1)
		if f, isInt := epochNumber(t); isInt {
			return e.bigInt(big.NewInt(t.Unix()))
		} else {
			e.float(f)
		}
		return nil
	case typeTag:
		if depth+1 > MaxDepth {
			return verr("depth", "more than %d nested containers", MaxDepth)
		}
		t := v.Interface().(Tag)
		e.head(6, t.Number)
		return e.value(reflect.ValueOf(t.Content), depth+1)
	case typeBig:
		n := v.Interface().(big.Int)
		return e.bigInt(&n)
	case typeRaw, typeRKey:
		if v.Kind() == reflect.String {
			e.buf = append(e.buf, v.String()...)
		} else {
			e.buf = append(e.buf, v.Bytes()...)
		}
		return nil
	case typeBStr:
		e.head(2, uint64(v.Len()))
		e.buf = append(e.buf, v.String()...)
		return nil
	case typeBKey:
		n, ok := new(big.Int).SetString(v.String(), 10)
		if !ok {
			return verr("type", "BigKey %q is not a decimal integer", v.String())
		}
		return e.bigInt(n)
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			e.buf = append(e.buf, 0xf6)
			return nil
		}
		return e.value(v.Elem(), depth)
	case reflect.Bool:
		if v.Bool() {
			e.buf = append(e.buf, 0xf5)
		} else {
			e.buf = append(e.buf, 0xf4)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := v.Int()
		if n >= 0 {
			e.head(0, uint64(n))
		} else {
			e.head(1, uint64(-1-n))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.head(0, v.Uint())
	case reflect.Float32, reflect.Float64:
		e.float(v.Float())
	case reflect.String:
		s := v.String()
		if !utf8.ValidString(s) {
			return verr("utf8", "string is not valid UTF-8")
		}
		e.head(3, uint64(len(s)))
		e.buf = append(e.buf, s...)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			e.head(2, uint64(v.Len()))
			e.buf = append(e.buf, v.Bytes()...)
			return nil
		}
		if depth+1 > MaxDepth {
			return verr("depth", "more than %d nested containers", MaxDepth)
		}
		e.head(4, uint64(v.Len()))
		for i := 0; i < v.Len(); i++ {
			if err := e.value(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		if depth+1 > MaxDepth {
			return verr("depth", "more than %d nested containers", MaxDepth)
		}
		type kv struct{ k, v []byte }
		pairs := make([]kv, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			var ke, ve encoder
			if err := ke.value(it.Key(), depth+1); err != nil {
				return err
			}
			if err := ve.value(it.Value(), depth+1); err != nil {
				return err
			}
			pairs = append(pairs, kv{ke.buf, ve.buf})
		}
		return e.pairs(len(pairs), func(i int) ([]byte, []byte) { return pairs[i].k, pairs[i].v },
			func(less func(i, j int) bool) { sort.Slice(pairs, less) },
			func(i, j int) bool { return bytes.Compare(pairs[i].k, pairs[j].k) < 0 })
	case reflect.Struct:
		if depth+1 > MaxDepth {
			return verr("depth", "more than %d nested containers", MaxDepth)
		}
		type kv struct{ k, v []byte }
		var pairs []kv
		for _, f := range structFields(v.Type()) {
			fv := v.FieldByIndex(f.index)
			if f.omitEmpty && fv.IsZero() {
				continue
			}
			var ke, ve encoder
			ke.head(3, uint64(len(f.name)))
			ke.buf = append(ke.buf, f.name...)
			if err := ve.value(fv, depth+1); err != nil {
				return err
			}
			pairs = append(pairs, kv{ke.buf, ve.buf})
		}
		return e.pairs(len(pairs), func(i int) ([]byte, []byte) { return pairs[i].k, pairs[i].v },
			func(less func(i, j int) bool) { sort.Slice(pairs, less) },
			func(i, j int) bool { return bytes.Compare(pairs[i].k, pairs[j].k) < 0 })
	default:
		return verr("type", "cannot encode %s", v.Type())
	}
	return nil
}

func (e *encoder) pairs(n int, at func(int) ([]byte, []byte), sortf func(func(i, j int) bool), less func(i, j int) bool) error {
	sortf(less)
	e.head(5, uint64(n))
	for i := 0; i < n; i++ {
		k, v := at(i)
		if i > 0 {
			pk, _ := at(i - 1)
			if bytes.Equal(pk, k) {
				return verr("duplicate_key", "key %x", k)
			}
		}
		e.buf = append(e.buf, k...)
		e.buf = append(e.buf, v...)
	}
	return nil
}

type field struct {
	name      string
	index     []int
	omitEmpty bool
}

func structFields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("cbor"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, field{name: name, index: f.Index, omitEmpty: opts == "omitempty"})
	}
	return out
}

// ------------------------------------------------------- decode into types

// Unmarshal decodes b into v, a non-nil pointer. *any receives the value of
// section 7.3; typed targets (integers with range checks, floats, strings,
// []byte, slices, arrays, maps, structs by field name, time.Time,
// EpochTime, Tag, *big.Int, RawMessage) are filled from it.
func Unmarshal(b []byte, v any) error {
	if r, ok := v.(*RawMessage); ok {
		*r = append(RawMessage(nil), b...)
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return verr("type", "Unmarshal needs a non-nil pointer, got %T", v)
	}
	x, err := Decode(b)
	if err != nil {
		return err
	}
	return assign(rv.Elem(), x)
}

func assign(dst reflect.Value, x any) error {
	if x == nil {
		dst.Set(reflect.Zero(dst.Type()))
		return nil
	}
	xv := reflect.ValueOf(x)
	if dst.Kind() == reflect.Interface && xv.Type().AssignableTo(dst.Type()) {
		dst.Set(xv)
		return nil
	}
	if xv.Type().AssignableTo(dst.Type()) {
		dst.Set(xv)
		return nil
	}
	bad := func() error { return verr("type", "cannot decode %T into %s", x, dst.Type()) }
	switch dst.Type() {
	case typeTime:
		if et, ok := x.(EpochTime); ok {
			dst.Set(reflect.ValueOf(et.Time))
			return nil
		}
		return bad()
	case typeEpoch:
		if t, ok := x.(time.Time); ok {
			dst.Set(reflect.ValueOf(EpochTime{t}))
			return nil
		}
		return bad()
	case typeBig:
		if n, ok := toBig(x); ok {
			dst.Set(reflect.ValueOf(*n))
			return nil
		}
		return bad()
	}
	switch dst.Kind() {
	case reflect.Pointer:
		if dst.Type().Elem() == typeBig {
			if n, ok := toBig(x); ok {
				dst.Set(reflect.ValueOf(n))
				return nil
			}
			return bad()
		}
		p := reflect.New(dst.Type().Elem())
		if err := assign(p.Elem(), x); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := x.(int64)
		if !ok || dst.OverflowInt(n) {
			return bad()
		}
		dst.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		var u uint64
		switch n := x.(type) {
		case int64:
			if n < 0 {
				return bad()
			}
			u = uint64(n)
		case uint64:
			u = n
		default:
			return bad()
		}
		if dst.OverflowUint(u) {
			return bad()
		}
		dst.SetUint(u)
	case reflect.Float32, reflect.Float64:
		switch n := x.(type) {
		case float64:
			dst.SetFloat(n)
		case int64:
			dst.SetFloat(float64(n))
		case uint64:
			dst.SetFloat(float64(n))
		default:
			return bad()
		}
	case reflect.String:
		switch s := x.(type) {
		case string:
			dst.SetString(s)
		case []byte:
			if dst.Type() != typeBStr {
				return bad()
			}
			dst.SetString(string(s))
		default:
			return bad()
		}
	case reflect.Slice:
		if b, ok := x.([]byte); ok && dst.Type().Elem().Kind() == reflect.Uint8 {
			dst.SetBytes(append([]byte(nil), b...))
			return nil
		}
		arr, ok := x.([]any)
		if !ok {
			return bad()
		}
		s := reflect.MakeSlice(dst.Type(), len(arr), len(arr))
		for i, e := range arr {
			if err := assign(s.Index(i), e); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Array:
		arr, ok := x.([]any)
		if !ok || len(arr) != dst.Len() {
			return bad()
		}
		for i, e := range arr {
			if err := assign(dst.Index(i), e); err != nil {
				return err
			}
		}
	case reflect.Map:
		m := reflect.MakeMap(dst.Type())
		put := func(k, v any) error {
			kv := reflect.New(dst.Type().Key()).Elem()
			if err := assign(kv, k); err != nil {
				return err
			}
			vv := reflect.New(dst.Type().Elem()).Elem()
			if err := assign(vv, v); err != nil {
				return err
			}
			m.SetMapIndex(kv, vv)
			return nil
		}
		switch src := x.(type) {
		case map[string]any:
			for k, v := range src {
				if err := put(k, v); err != nil {
					return err
				}
			}
		case map[any]any:
			for k, v := range src {
				if err := put(k, v); err != nil {
					return err
				}
			}
		default:
			return bad()
		}
		dst.Set(m)
	case reflect.Struct:
		src, ok := x.(map[string]any)
		if !ok {
			return bad()
		}
		for _, f := range structFields(dst.Type()) {
			if v, ok := src[f.name]; ok {
				if err := assign(dst.FieldByIndex(f.index), v); err != nil {
					return err
				}
			}
		}
	default:
		return bad()
	}
	return nil
}

func toBig(x any) (*big.Int, bool) {
	switch n := x.(type) {
	case int64:
		return big.NewInt(n), true
	case uint64:
		return new(big.Int).SetUint64(n), true
	case *big.Int:
		return new(big.Int).Set(n), true
	}
	return nil, false
}

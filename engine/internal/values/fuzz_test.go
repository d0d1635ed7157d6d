package values

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

type fuzzInner struct {
	ID   int64  `json:"id"`
	Name string `json:"name,omitempty"`
}

type fuzzArgs struct {
	Name  string      `json:"name"`
	N     int64       `json:"n"`
	F     float64     `json:"f,omitempty"`
	B     []byte      `json:"b,omitempty"`
	Opt   *string     `json:"opt"`
	Tags  []string    `json:"tags,omitempty"`
	Inner *fuzzInner  `json:"inner"`
	List  []fuzzInner `json:"list,omitempty"`
	Any   any         `json:"any,omitempty"`
}

// FuzzDecode feeds arbitrary argument payloads to Decode with a size bound. Properties:
//   - it never panics, and every refusal is a *Error (sent as INVALID_ARGUMENT);
//   - the bound holds: a payload over maxBytes is refused for its size, whatever it holds, and
//     one within it decodes as with no bound;
//   - what it accepts round trips: re-encoded as plain JSON, and again in Convex's tagged wire
//     form ($integer for the int64s, $bytes for the bytes, [args]), it decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`[{"name":"a","n":1}]`,
		`{"name":"a","n":{"$integer":"AQAAAAAAAAA="},"b":{"$bytes":"aGk="},"f":{"$float":"AAAAAAAA+H8="}}`,
		`[{"name":"a","n":-9223372036854775808,"f":1e308,"opt":"x","tags":["t"],"inner":{"id":{"$integer":"//////////8="}},"list":[{"id":2,"name":"z"}]}]`,
		`[{"name":"a","n":1,"any":{"$integer":"AQAAAAAAAAA="}}]`,
		`[{"name":"a","n":1,"any":[{"$float":"AAAAAAAA8H8="}]}]`,
		`[{"name":"a","n":1,"$x":1}]`,
		`[{"name":"a","n":1,"extra":1}]`,
		`[{"name":"a"}]`,
		`[{"name":"a","n":1.5}]`,
		`[{"name":"a","n":1e400}]`,
		`[{"name":"a","n":1},{}]`,
		`[]`, `null`, ``, `  `, `"x"`, `[1]`, `{"name":`, `{"n":{"$integer":1}}`,
		`{"name":"a","n":1,"list":[{"name":"no id"}]}`,
		`{"name":"\ud800","n":1}`,
		`{"name":"a","n":1} trailing`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(seed), 0)
		f.Add([]byte(seed), 16)
	}
	f.Fuzz(func(t *testing.T, raw []byte, maxBytes int) {
		if maxBytes < 0 {
			maxBytes = -maxBytes % 4096
		}
		got, err := Decode[fuzzArgs](raw, maxBytes)
		if err != nil {
			var ve *Error
			if !errors.As(err, &ve) || ve.Message == "" {
				t.Fatalf("refusal is not a *values.Error: %T %v", err, err)
			}
		}
		if maxBytes > 0 && len(raw) > maxBytes {
			if err == nil || !strings.Contains(err.Error(), "over the limit") {
				t.Fatalf("%d bytes over a limit of %d: %v", len(raw), maxBytes, err)
			}
			return
		}
		unbounded, uerr := Decode[fuzzArgs](raw, 0)
		if (err == nil) != (uerr == nil) || (err != nil && err.Error() != uerr.Error()) || mustJSON(t, got) != mustJSON(t, unbounded) {
			t.Fatalf("within the bound, decoding differs from unbounded: %v / %v", err, uerr)
		}
		if err != nil {
			return
		}
		plain := mustJSON(t, got)
		again, err := Decode[fuzzArgs](json.RawMessage(plain), 0)
		if err != nil {
			t.Fatalf("re-decoding the plain form %s: %v", plain, err)
		}
		if mustJSON(t, again) != plain {
			t.Fatalf("plain round trip changed %s into %s", plain, mustJSON(t, again))
		}
		tagged := "[" + wireForm(t, got) + "]"
		again, err = Decode[fuzzArgs](json.RawMessage(tagged), 0)
		if err != nil {
			t.Fatalf("re-decoding the wire form %s: %v", tagged, err)
		}
		if mustJSON(t, again) != plain {
			t.Fatalf("wire round trip changed %s into %s", plain, mustJSON(t, again))
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	buf, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding %#v: %v", v, err)
	}
	return string(buf)
}

func integer(n int64) map[string]any {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	return map[string]any{"$integer": base64.StdEncoding.EncodeToString(b[:])}
}

// wireForm encodes a as a Convex client would: int64s tagged, bytes tagged, floats as $float.
func wireForm(t *testing.T, a fuzzArgs) string {
	t.Helper()
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(mustJSON(t, a))))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		t.Fatal(err)
	}
	obj["n"] = integer(a.N)
	if a.B != nil {
		obj["b"] = map[string]any{"$bytes": base64.StdEncoding.EncodeToString(a.B)}
	}
	if a.F != 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(a.F))
		obj["f"] = map[string]any{"$float": base64.StdEncoding.EncodeToString(b[:])}
	}
	if a.Inner != nil {
		inner := obj["inner"].(map[string]any)
		inner["id"] = integer(a.Inner.ID)
	}
	for i, it := range a.List {
		obj["list"].([]any)[i].(map[string]any)["id"] = integer(it.ID)
	}
	return mustJSON(t, obj)
}

// Package values decodes function arguments from the wire's JSON (Convex's tagged encodings of
// 64-bit integers, bytes and special floats) strictly into a function's Go argument type, with
// errors that name the offending argument.
package values

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Wire values follow Convex's JSON encoding: 64-bit integers as {"$integer": base64 of 8
// little-endian bytes}, bytes as {"$bytes": base64}, special floats as {"$float": ...}.
// Error is a caller's mistake in its arguments; the engine sends it as INVALID_ARGUMENT.
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }

func invalid(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}

// Decode decodes the wire form of a function's arguments (a JSON array holding one object or,
// from /api/function, the bare object) into A: tagged values become plain JSON (integers JSON
// numbers, bytes base64 strings as encoding/json expects for []byte), required fields are
// checked, and unknown fields refused. Validation of the decoded value is the caller's.
func Decode[A any](raw json.RawMessage, maxBytes int) (A, error) {
	var zero A
	if maxBytes > 0 && len(raw) > maxBytes {
		return zero, invalid("arguments are %d bytes, over the limit of %d", len(raw), maxBytes)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return zero, invalid("arguments are not valid JSON: %v", err)
	}
	if list, ok := top.([]any); ok {
		switch len(list) {
		case 0:
			top = map[string]any{}
		case 1:
			top = list[0]
		default:
			return zero, invalid("expected one arguments object, got %d", len(list))
		}
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return zero, invalid("arguments must be an object")
	}
	plain, err := fromWire(obj, "")
	if err != nil {
		return zero, err
	}
	if err := checkRequired(reflect.TypeFor[A](), plain, ""); err != nil {
		return zero, err
	}
	buf, err := json.Marshal(plain)
	if err != nil {
		return zero, invalid("arguments: %v", err)
	}
	strict := json.NewDecoder(bytes.NewReader(buf))
	strict.DisallowUnknownFields()
	var out A
	if err := strict.Decode(&out); err != nil {
		return zero, describeDecodeError(err)
	}
	return out, nil
}

// fromWire replaces Convex's tagged encodings with plain JSON values.
func fromWire(v any, path string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 1 {
			for k, inner := range t {
				if strings.HasPrefix(k, "$") {
					return decodeTagged(k, inner, path)
				}
			}
		}
		out := make(map[string]any, len(t))
		// In key order, so the same arguments always get the same error.
		for _, k := range slices.Sorted(maps.Keys(t)) {
			inner := t[k]
			if strings.HasPrefix(k, "$") {
				return nil, invalid("argument %q: field names starting with $ are reserved", joinPath(path, k))
			}
			conv, err := fromWire(inner, joinPath(path, k))
			if err != nil {
				return nil, err
			}
			out[k] = conv
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, inner := range t {
			conv, err := fromWire(inner, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = conv
		}
		return out, nil
	default:
		return v, nil
	}
}

func decodeTagged(tag string, v any, path string) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, invalid("argument %q: %s must hold a base64 string", path, tag)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, invalid("argument %q: bad base64 in %s", path, tag)
	}
	switch tag {
	case "$integer":
		if len(raw) != 8 {
			return nil, invalid("argument %q: $integer must be 8 bytes", path)
		}
		return json.Number(strconv.FormatInt(int64(binary.LittleEndian.Uint64(raw)), 10)), nil
	case "$float":
		if len(raw) != 8 {
			return nil, invalid("argument %q: $float must be 8 bytes", path)
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(raw))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, invalid("argument %q: non-finite numbers are not accepted", path)
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	case "$bytes":
		return s, nil
	default:
		return nil, invalid("argument %q: unknown encoding %s", path, tag)
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// checkRequired rejects a missing field unless it is optional: a pointer, or tagged omitempty /
// omitzero, as in Convex's v.optional.
func checkRequired(t reflect.Type, v any, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil // the strict decoder reports the type mismatch
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			inner, present := obj[name]
			optional := f.Type.Kind() == reflect.Pointer || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
			if !present || inner == nil {
				if !optional {
					return invalid("argument %q is required", joinPath(path, name))
				}
				continue
			}
			if err := checkRequired(f.Type, inner, joinPath(path, name)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, inner := range list {
			if err := checkRequired(t.Elem(), inner, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func describeDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = "(arguments)"
		}
		return invalid("argument %q: expected %s, got %s", field, typeErr.Type.String(), typeErr.Value)
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return invalid("argument %s is not accepted by this function", rest)
	}
	return invalid("arguments: %s", strings.TrimPrefix(msg, "json: "))
}

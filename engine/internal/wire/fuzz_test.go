package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeClientMessage feeds arbitrary frames to the session's decoder: it never panics,
// refuses with a *MalformedError exactly when the frame is not a JSON object of the right shape,
// and what it accepts survives encode→decode unchanged (the raw args up to whitespace).
func FuzzDecodeClientMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"Connect","sessionId":"a1b2","connectionCount":0,"maxObservedTimestamp":"AAAAAAAAAAA="}`,
		`{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[{"type":"Add","queryId":0,"udfPath":"messages:list","args":[{"conversationId":"1","paginationOpts":{"numItems":20,"cursor":null}}],"journal":"end"}]}`,
		`{"type":"ModifyQuerySet","baseVersion":1,"newVersion":2,"modifications":[{"type":"Remove","queryId":0}]}`,
		`{"type":"Mutation","requestId":3,"udfPath":"messages:send","args":[{"body":"hi","n":{"$integer":"AQAAAAAAAAA="}}]}`,
		`{"type":"Action","requestId":4,"udfPath":"messages:search","args":[{}]}`,
		`{"type":"Authenticate","baseVersion":0,"tokenType":"User","value":"eyJ..."}`,
		`{"type":"Authenticate","baseVersion":1,"tokenType":"Admin","value":"k","impersonating":{"subject":"1"}}`,
		`{"type":"Event","eventType":"x","event":null}`,
		`{"type":"Mutation","requestId":9223372036854775808}`,
		`{"type":"Mutation","requestId":1.5}`,
		`{"TYPE":"Connect","SESSIONID":"x"}`,
		`{"type":"Connect","sessionId":"\ud800"}`,
		`[]`, `null`, `"Connect"`, `{`, ``, `{"type":1}`,
		`{"type":"ModifyQuerySet","modifications":{"type":"Add"}}`,
		"{\"type\":\"Connect\",\"sessionId\":\"\xff\xfe\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var msg ClientMessage
		err := DecodeClientMessage(data, &msg)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) || !strings.HasPrefix(err.Error(), "malformed message: ") {
				t.Fatalf("error is not a *MalformedError: %T %v", err, err)
			}
			if !reflect.DeepEqual(msg, ClientMessage{}) {
				t.Fatalf("a refused frame left a partial message: %+v", msg)
			}
			if json.Valid(data) && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
				// A JSON object can still be refused for a field of the wrong type; it must say so.
				var typeErr *json.UnmarshalTypeError
				if !errors.As(err, &typeErr) {
					t.Fatalf("a valid JSON object refused for something other than a field's type: %v", err)
				}
			}
			return
		}
		for _, s := range []string{msg.Type, msg.SessionID, msg.UDFPath, msg.TokenType, msg.Value, msg.MaxObservedTimestamp} {
			if !utf8.ValidString(s) {
				t.Fatalf("decoded string is not UTF-8: %q", s)
			}
		}
		enc, err := json.Marshal(msg)
		if err != nil {
			t.Fatalf("an accepted message does not encode: %v", err)
		}
		var again ClientMessage
		if err := DecodeClientMessage(enc, &again); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if !reflect.DeepEqual(normalize(msg), normalize(again)) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", msg, again)
		}
	})
}

// normalize compacts the raw JSON fields, which json.Marshal compacts.
func normalize(m ClientMessage) ClientMessage {
	// The same JSON value however it is spelled: encoding/json escapes "&" as \u0026 when it
	// encodes, so the bytes of a round trip may differ where the value does not.
	compact := func(raw json.RawMessage) json.RawMessage {
		if raw == nil {
			return nil
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				return raw
			}
			return b.Bytes()
		}
		if v == nil {
			return nil
		}
		out, err := json.Marshal(v)
		if err != nil {
			return raw
		}
		return out
	}
	m.Args, m.Impersonating = compact(m.Args), compact(m.Impersonating)
	if m.Modifications != nil {
		mods := make([]QuerySetModification, len(m.Modifications))
		for i, mod := range m.Modifications {
			mod.Args = compact(mod.Args)
			mods[i] = mod
		}
		m.Modifications = mods
	}
	return m
}

// FuzzDecodeTS: a ts decodes to what was encoded; any other string is either refused or is
// 8 bytes of base64 whose canonical encoding decodes to the same value.
func FuzzDecodeTS(f *testing.F) {
	f.Add(uint64(0), "AAAAAAAAAAA=")
	f.Add(uint64(1<<63), EncodeTS(1<<63))
	f.Add(^uint64(0), "//////////8=")
	f.Add(uint64(1752000000000000000), "AAAAAAAAAAB=") // non-zero trailing bits
	f.Add(uint64(7), "AAAA\nAAAAAAA=")
	f.Add(uint64(7), "")
	f.Fuzz(func(t *testing.T, v uint64, s string) {
		if got, ok := DecodeTS(EncodeTS(v)); !ok || got != v {
			t.Fatalf("DecodeTS(EncodeTS(%d)) = %d, %v", v, got, ok)
		}
		got, ok := DecodeTS(s)
		if !ok {
			if got != 0 {
				t.Fatalf("a refused ts returned %d", got)
			}
			return
		}
		if back, ok := DecodeTS(EncodeTS(got)); !ok || back != got {
			t.Fatalf("ts %q decoded to %d, which does not round trip", s, got)
		}
	})
}

// FuzzChunks: the chunks of any transition join back to it, are numbered in order, never split
// a rune of valid UTF-8, and stay within the limit (a limit under utf8.UTFMax may be exceeded by
// the one rune that does not fit).
func FuzzChunks(f *testing.F) {
	f.Add([]byte(`{"type":"Transition","v":"héllo wörld ✓"}`), 7)
	f.Add([]byte(`{"v":"✓✓✓✓"}`), 1)
	f.Add([]byte(`{"v":"𝄞𝄞"}`), 2)
	f.Add([]byte(`{}`), 0)
	f.Add([]byte(`{"v":"abc"}`), 1000)
	f.Fuzz(func(t *testing.T, buf []byte, limit int) {
		if !utf8.Valid(buf) || len(buf) == 0 {
			return // transitions are json.Marshal's output: valid UTF-8
		}
		limit %= 64 // small limits: many chunks from short inputs
		frames := Chunks(buf, limit)
		if limit <= 0 || len(buf) <= limit {
			if len(frames) != 1 || !bytes.Equal(frames[0], buf) {
				t.Fatalf("a transition within the limit (%d) was not sent as it is", limit)
			}
			return
		}
		var joined strings.Builder
		id := ""
		for i, fr := range frames {
			var c TransitionChunk
			if err := json.Unmarshal(fr, &c); err != nil {
				t.Fatalf("chunk %d is not JSON: %v", i, err)
			}
			if i == 0 {
				id = c.TransitionID
			}
			if c.Type != "TransitionChunk" || c.PartNumber != i || c.TotalParts != len(frames) || c.TransitionID != id || c.Chunk == "" {
				t.Fatalf("chunk %d of %d: %+v", i, len(frames), c)
			}
			if len(c.Chunk) > max(limit, utf8.UTFMax) {
				t.Fatalf("chunk %d is %d bytes, over the limit %d", i, len(c.Chunk), limit)
			}
			if !utf8.ValidString(c.Chunk) {
				t.Fatalf("chunk %d splits a rune: %q", i, c.Chunk)
			}
			joined.WriteString(c.Chunk)
		}
		if joined.String() != string(buf) {
			t.Fatalf("chunks join to %q, not %q", joined.String(), buf)
		}
	})
}

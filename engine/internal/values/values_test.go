package values

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type sendArgs struct {
	ConversationID string  `json:"conversationId"`
	Body           string  `json:"body"`
	Count          int64   `json:"count,omitempty"`
	Ratio          float64 `json:"ratio,omitempty"`
	Data           []byte  `json:"data,omitempty"`
	Note           *string `json:"note"`
	Tags           []struct {
		Name string `json:"name"`
	} `json:"tags,omitempty"`
}

func TestDecodeAcceptsTheWireForms(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string]string{
		"array of one object": `[{"conversationId":"7","body":"hi"}]`,
		"bare object":         `{"conversationId":"7","body":"hi"}`,
	} {
		got, err := Decode[sendArgs](json.RawMessage(raw), 0)
		if err != nil || got.ConversationID != "7" || got.Body != "hi" {
			t.Errorf("%s: got %+v, %v", name, got, err)
		}
	}
	// Tagged values: $integer is 8 little-endian bytes, $float likewise, $bytes plain base64.
	raw := `[{"conversationId":"1","body":"b","count":{"$integer":"KgAAAAAAAAA="},"ratio":{"$float":"AAAAAAAA+D8="},"data":{"$bytes":"aGk="}}]`
	got, err := Decode[sendArgs](json.RawMessage(raw), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 42 || got.Ratio != 1.5 || string(got.Data) != "hi" {
		t.Errorf("tagged values decoded as %+v", got)
	}
	if empty, err := Decode[struct{}](nil, 0); err != nil {
		t.Errorf("no arguments: %+v, %v", empty, err)
	}
}

func TestDecodeNamesTheBadArgument(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ raw, want string }{
		{`[{"body":"hi"}]`, `"conversationId" is required`},
		{`[{"conversationId":"1","body":"b","extra":1}]`, `"extra" is not accepted`},
		{`[{"conversationId":1,"body":"b"}]`, `argument "conversationId": expected string`},
		{`[{"conversationId":"1","body":"b","tags":[{}]}]`, `"tags[0].name" is required`},
		{`[{"conversationId":"1","body":"b","count":{"$integer":"AA=="}}]`, `$integer must be 8 bytes`},
		{`[{"conversationId":"1","body":"b","ratio":{"$float":"AAAAAAAA8H8="}}]`, `non-finite`},
		{`[{"conversationId":"1","body":"b","$x":1}]`, `reserved`},
		{`[{},{}]`, `expected one arguments object, got 2`},
		{`"text"`, `must be an object`},
		{`{`, `not valid JSON`},
	} {
		_, err := Decode[sendArgs](json.RawMessage(tt.raw), 0)
		var ve *Error
		if !errors.As(err, &ve) || !strings.Contains(ve.Message, tt.want) {
			t.Errorf("%s: got %v, want an *Error containing %q", tt.raw, err, tt.want)
		}
	}
	if _, err := Decode[sendArgs](json.RawMessage(`{"conversationId":"1","body":"b"}`), 10); err == nil || !strings.Contains(err.Error(), "over the limit of 10") {
		t.Errorf("oversize arguments: %v", err)
	}
}

package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// A transition built from shared, pre-encoded modifications is the JSON the protocol wants.
func TestEncodeTransition(t *testing.T) {
	t.Parallel()
	ok := &Result{Value: json.RawMessage(`{"page":[1,2]}`), Journal: "j1"}
	failed := &Result{Err: errors.New("bad thing"), ErrorMessage: "bad thing", ErrorData: map[string]any{"code": "INVALID_ARGUMENT"}}
	body := ok.QueryBody()
	buf, err := EncodeTransition(StateVersion{QuerySet: 1, TS: EncodeTS(5)}, StateVersion{QuerySet: 2, Identity: 1, TS: EncodeTS(9)},
		[]Modification{ForQuery(7, body), ForQuery(8, body), ForQuery(3, failed.QueryBody()), QueryRemoved(4)})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf)
	}
	want := map[string]any{
		"type":         "Transition",
		"startVersion": map[string]any{"querySet": float64(1), "identity": float64(0), "ts": EncodeTS(5)},
		"endVersion":   map[string]any{"querySet": float64(2), "identity": float64(1), "ts": EncodeTS(9)},
		"modifications": []any{
			map[string]any{"type": "QueryUpdated", "queryId": float64(7), "value": map[string]any{"page": []any{float64(1), float64(2)}}, "logLines": []any{}, "journal": "j1"},
			map[string]any{"type": "QueryUpdated", "queryId": float64(8), "value": map[string]any{"page": []any{float64(1), float64(2)}}, "logLines": []any{}, "journal": "j1"},
			map[string]any{"type": "QueryFailed", "queryId": float64(3), "errorMessage": "bad thing", "logLines": []any{}, "journal": nil,
				"errorData": map[string]any{"code": "INVALID_ARGUMENT"}},
			map[string]any{"type": "QueryRemoved", "queryId": float64(4)},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if empty, _ := EncodeTransition(StateVersion{}, StateVersion{}, nil); !json.Valid(empty) {
		t.Errorf("empty transition is not JSON: %s", empty)
	}
}

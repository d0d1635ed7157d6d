package engine

import (
	"encoding/json"
	"reflect"
	"testing"
)

// A transition built from shared, pre-encoded modifications is the JSON the protocol wants.
func TestEncodeTransition(t *testing.T) {
	t.Parallel()
	ok := &callResult{value: json.RawMessage(`{"page":[1,2]}`), journal: "j1"}
	failed := &callResult{err: InvalidArgument("bad %s", "thing")}
	body := modificationBody(ok)
	buf, err := encodeTransition(stateVersion{QuerySet: 1, TS: encodeTS(5)}, stateVersion{QuerySet: 2, Identity: 1, TS: encodeTS(9)},
		[]modification{forQuery(7, body), forQuery(8, body), forQuery(3, modificationBody(failed)), queryRemoved(4)})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf)
	}
	want := map[string]any{
		"type":         "Transition",
		"startVersion": map[string]any{"querySet": float64(1), "identity": float64(0), "ts": encodeTS(5)},
		"endVersion":   map[string]any{"querySet": float64(2), "identity": float64(1), "ts": encodeTS(9)},
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
	if empty, _ := encodeTransition(stateVersion{}, stateVersion{}, nil); !json.Valid(empty) {
		t.Errorf("empty transition is not JSON: %s", empty)
	}
}

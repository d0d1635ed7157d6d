package engine

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Wire messages of the sync protocol (docs/protocol.md). Field names follow Convex's client.

type stateVersion struct {
	QuerySet int64  `json:"querySet"`
	Identity int64  `json:"identity"`
	TS       string `json:"ts"`
}

func encodeTS(ts uint64) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], ts)
	return base64.StdEncoding.EncodeToString(b[:])
}

// maxPlausibleTS is the newest ts a client can have seen from any honest server: ts values are
// wall-clock nanoseconds, and clocks of servers sharing a database are not an hour apart.
func maxPlausibleTS() uint64 { return uint64(time.Now().Add(time.Hour).UnixNano()) }

func decodeTS(s string) (uint64, bool) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(raw), true
}

type queryUpdated struct {
	Type     string          `json:"type"`
	Value    json.RawMessage `json:"value"`
	LogLines []string        `json:"logLines"`
	Journal  *string         `json:"journal"`
}

type queryFailed struct {
	Type         string         `json:"type"`
	ErrorMessage string         `json:"errorMessage"`
	LogLines     []string       `json:"logLines"`
	ErrorData    map[string]any `json:"errorData,omitempty"`
	Journal      *string        `json:"journal"`
}

// modification is one encoded entry of a Transition's modifications.
type modification struct {
	json    []byte
	removal bool
}

// modificationBody encodes a query's result once, without its queryId: every subscription of
// a group (a user's devices, say) shares it, and forQuery adds the id.
func modificationBody(res *callResult) []byte {
	var journal *string
	if res.journal != "" {
		j := res.journal
		journal = &j
	}
	logLines := res.logLines
	if logLines == nil {
		logLines = []string{}
	}
	var body any
	if res.err != nil {
		msg, data := res.wireError()
		body = queryFailed{Type: "QueryFailed", ErrorMessage: msg, LogLines: logLines, ErrorData: data, Journal: journal}
	} else {
		body = queryUpdated{Type: "QueryUpdated", Value: res.value, LogLines: logLines, Journal: journal}
	}
	buf, err := json.Marshal(body)
	if err != nil {
		// The value was produced by json.Marshal already; this cannot fail.
		panic(fmt.Sprintf("encoding a query result: %v", err))
	}
	return buf
}

// forQuery is the modification for one subscription: body with its queryId first.
func forQuery(queryID int64, body []byte) modification {
	buf := make([]byte, 0, len(body)+24)
	buf = append(buf, `{"queryId":`...)
	buf = strconv.AppendInt(buf, queryID, 10)
	buf = append(buf, ',')
	buf = append(buf, body[1:]...)
	return modification{json: buf}
}

func queryRemoved(queryID int64) modification {
	buf := strconv.AppendInt([]byte(`{"type":"QueryRemoved","queryId":`), queryID, 10)
	return modification{json: append(buf, '}'), removal: true}
}

// encodeTransition writes a Transition frame from encoded modifications, copying each once.
func encodeTransition(start, end stateVersion, mods []modification) ([]byte, error) {
	s, err := json.Marshal(start)
	if err != nil {
		return nil, err
	}
	e, err := json.Marshal(end)
	if err != nil {
		return nil, err
	}
	size := len(s) + len(e) + 80
	for _, m := range mods {
		size += len(m.json) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"type":"Transition","startVersion":`...)
	buf = append(buf, s...)
	buf = append(buf, `,"endVersion":`...)
	buf = append(buf, e...)
	buf = append(buf, `,"modifications":[`...)
	for i, m := range mods {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, m.json...)
	}
	return append(buf, "]}"...), nil
}

// outcome is a call's result in the fields MutationResponse and ActionResponse share: the
// value on success, else the error message as the result plus errorData.
type outcome struct {
	Success   bool            `json:"success"`
	Result    json.RawMessage `json:"result"`
	LogLines  []string        `json:"logLines"`
	ErrorData map[string]any  `json:"errorData,omitempty"`
}

func (r *callResult) outcome() outcome {
	o := outcome{Success: r.err == nil, Result: r.value, LogLines: r.logLines}
	if o.LogLines == nil {
		o.LogLines = []string{}
	}
	if r.err != nil {
		msg, data := r.wireError()
		o.Result, _ = json.Marshal(msg)
		o.ErrorData = data
	}
	return o
}

type mutationResponse struct {
	Type      string `json:"type"`
	RequestID int64  `json:"requestId"`
	outcome
	TS string `json:"ts,omitempty"`
}

type actionResponse struct {
	Type      string `json:"type"`
	RequestID int64  `json:"requestId"`
	outcome
}

type authErrorMsg struct {
	Type                string `json:"type"`
	Error               string `json:"error"`
	BaseVersion         int64  `json:"baseVersion"`
	AuthUpdateAttempted bool   `json:"authUpdateAttempted"`
}

type fatalErrorMsg struct {
	Type  string `json:"type"`
	Error string `json:"error"`
}

type transitionChunk struct {
	Type         string `json:"type"`
	Chunk        string `json:"chunk"`
	PartNumber   int    `json:"partNumber"`
	TotalParts   int    `json:"totalParts"`
	TransitionID string `json:"transitionId"`
}

// clientMessage is any message from the client; fields are read according to Type.
type clientMessage struct {
	Type string `json:"type"`

	// Connect
	SessionID            string `json:"sessionId"`
	MaxObservedTimestamp string `json:"maxObservedTimestamp"`

	// ModifyQuerySet
	BaseVersion   *int64                 `json:"baseVersion"`
	NewVersion    *int64                 `json:"newVersion"`
	Modifications []querySetModification `json:"modifications"`

	// Mutation, Action
	RequestID *int64          `json:"requestId"`
	UDFPath   string          `json:"udfPath"`
	Args      json.RawMessage `json:"args"`

	// Authenticate
	TokenType     string          `json:"tokenType"`
	Value         string          `json:"value"`
	Impersonating json.RawMessage `json:"impersonating"`

	// identity is the session's identity when the message arrived: a mutation or action runs
	// as it, even if an Authenticate that came later is processed first.
	identity Identity
}

type querySetModification struct {
	Type    string          `json:"type"`
	QueryID *int64          `json:"queryId"`
	UDFPath string          `json:"udfPath"`
	Args    json.RawMessage `json:"args"`
	Journal *string         `json:"journal"`
}

// Package wire holds the sync protocol's messages as they travel (docs/protocol.md): the
// client's messages, the server's replies and transitions, timestamps, and the form a function's
// result takes on the wire. Field names follow Convex's client.
package wire

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Result is one function call's outcome as the wire carries it. The engine fills in the error's
// client-facing form when the call ends, so every service that sends it (a transition, a
// mutation response, an HTTP reply) sends the same thing.
type Result struct {
	Value json.RawMessage
	// Err is nil on success. ErrorMessage and ErrorData are what the client sees of it.
	Err          error
	ErrorMessage string
	ErrorData    map[string]any
	// Internal is set when Err is not meant for the client (it sees only the request id);
	// Transient when the same call may succeed shortly (an internal error, the database
	// unreachable), so a subscription runs again after a delay.
	Internal, Transient bool
	LogLines            []string
	Journal             string // queries only
	// RequestID identifies the call in server logs.
	RequestID string
	// Xid is a committed mutation's transaction id, when known (0: unknown).
	Xid uint64
}

func (r *Result) logLines() []string {
	if r.LogLines == nil {
		return []string{}
	}
	return r.LogLines
}

// NewRequestID names one call in logs and error replies.
func NewRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Chunks cuts an encoded transition longer than limit into TransitionChunk frames, on UTF-8
// boundaries (the client joins the chunks as strings). A transition within the limit is
// returned as the one frame it is.
func Chunks(buf []byte, limit int) [][]byte {
	if limit <= 0 || len(buf) <= limit {
		return [][]byte{buf}
	}
	var pieces []string
	for start := 0; start < len(buf); {
		end := min(start+limit, len(buf))
		for end < len(buf) && end > start+1 && !utf8.RuneStart(buf[end]) {
			end--
		}
		// A limit below utf8.UTFMax can fall inside the piece's first rune: take the whole rune
		// (a little over the limit) rather than split it, which JSON would turn into U+FFFD.
		for end < len(buf) && !utf8.RuneStart(buf[end]) && end-start < utf8.UTFMax {
			end++
		}
		pieces = append(pieces, string(buf[start:end]))
		start = end
	}
	id := NewRequestID()
	frames := make([][]byte, len(pieces))
	for i, piece := range pieces {
		frames[i], _ = json.Marshal(TransitionChunk{Type: "TransitionChunk", Chunk: piece, PartNumber: i, TotalParts: len(pieces), TransitionID: id})
	}
	return frames
}

// StateVersion is a client's view of the server: its query set, identity and timestamp.
type StateVersion struct {
	QuerySet int64  `json:"querySet"`
	Identity int64  `json:"identity"`
	TS       string `json:"ts"`
}

// EncodeTS writes a ts as the protocol does: 8 little-endian bytes in base64.
func EncodeTS(ts uint64) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], ts)
	return base64.StdEncoding.EncodeToString(b[:])
}

// MaxPlausibleTS is the newest ts a client can have seen from any honest server: ts values are
// wall-clock nanoseconds, and clocks of servers sharing a database are not an hour apart.
func MaxPlausibleTS() uint64 { return uint64(time.Now().Add(time.Hour).UnixNano()) }

// DecodeTS reads a ts written by EncodeTS.
func DecodeTS(s string) (uint64, bool) {
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

// Modification is one encoded entry of a Transition's modifications.
type Modification struct {
	JSON    []byte
	Removal bool // a QueryRemoved
}

// QueryBody encodes a query's result once, without its queryId: every subscription of a group
// (a user's devices, say) shares it, and ForQuery adds the id.
func (r *Result) QueryBody() []byte {
	var journal *string
	if r.Journal != "" {
		j := r.Journal
		journal = &j
	}
	var body any
	if r.Err != nil {
		body = queryFailed{Type: "QueryFailed", ErrorMessage: r.ErrorMessage, LogLines: r.logLines(), ErrorData: r.ErrorData, Journal: journal}
	} else {
		body = queryUpdated{Type: "QueryUpdated", Value: r.Value, LogLines: r.logLines(), Journal: journal}
	}
	buf, err := json.Marshal(body)
	if err != nil {
		// The value was produced by json.Marshal already; this cannot fail.
		panic(fmt.Sprintf("encoding a query result: %v", err))
	}
	return buf
}

// ForQuery is the modification for one subscription: body with its queryId first.
func ForQuery(queryID int64, body []byte) Modification {
	buf := make([]byte, 0, len(body)+24)
	buf = append(buf, `{"queryId":`...)
	buf = strconv.AppendInt(buf, queryID, 10)
	buf = append(buf, ',')
	buf = append(buf, body[1:]...)
	return Modification{JSON: buf}
}

// QueryRemoved is the modification that drops a query.
func QueryRemoved(queryID int64) Modification {
	buf := strconv.AppendInt([]byte(`{"type":"QueryRemoved","queryId":`), queryID, 10)
	return Modification{JSON: append(buf, '}'), Removal: true}
}

// EncodeTransition writes a Transition frame from encoded modifications, copying each once.
func EncodeTransition(start, end StateVersion, mods []Modification) ([]byte, error) {
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
		size += len(m.JSON) + 1
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
		buf = append(buf, m.JSON...)
	}
	return append(buf, "]}"...), nil
}

// Outcome is a call's result in the fields MutationResponse and ActionResponse share: the
// value on success, else the error message as the result plus errorData.
type Outcome struct {
	Success   bool            `json:"success"`
	Result    json.RawMessage `json:"result"`
	LogLines  []string        `json:"logLines"`
	ErrorData map[string]any  `json:"errorData,omitempty"`
}

// Outcome is r as a MutationResponse or ActionResponse carries it.
func (r *Result) Outcome() Outcome {
	o := Outcome{Success: r.Err == nil, Result: r.Value, LogLines: r.logLines()}
	if r.Err != nil {
		o.Result, _ = json.Marshal(r.ErrorMessage)
		o.ErrorData = r.ErrorData
	}
	return o
}

// MutationResponse answers a Mutation; TS is set once the mutation's effects are visible.
type MutationResponse struct {
	Type      string `json:"type"`
	RequestID int64  `json:"requestId"`
	Outcome
	TS string `json:"ts,omitempty"`
}

// ActionResponse answers an Action.
type ActionResponse struct {
	Type      string `json:"type"`
	RequestID int64  `json:"requestId"`
	Outcome
}

// AuthError refuses an Authenticate, or ends an expired identity.
type AuthError struct {
	Type                string `json:"type"`
	Error               string `json:"error"`
	BaseVersion         int64  `json:"baseVersion"`
	AuthUpdateAttempted bool   `json:"authUpdateAttempted"`
}

// FatalError ends a socket after a protocol error.
type FatalError struct {
	Type  string `json:"type"`
	Error string `json:"error"`
}

// TransitionChunk is one part of a transition too large for one frame.
type TransitionChunk struct {
	Type         string `json:"type"`
	Chunk        string `json:"chunk"`
	PartNumber   int    `json:"partNumber"`
	TotalParts   int    `json:"totalParts"`
	TransitionID string `json:"transitionId"`
}

// ClientMessage is any message from the client; fields are read according to Type.
type ClientMessage struct {
	Type string `json:"type"`

	// Connect
	SessionID            string `json:"sessionId"`
	MaxObservedTimestamp string `json:"maxObservedTimestamp"`

	// ModifyQuerySet
	BaseVersion   *int64                 `json:"baseVersion"`
	NewVersion    *int64                 `json:"newVersion"`
	Modifications []QuerySetModification `json:"modifications"`

	// Mutation, Action
	RequestID *int64          `json:"requestId"`
	UDFPath   string          `json:"udfPath"`
	Args      json.RawMessage `json:"args"`

	// Authenticate
	TokenType     string          `json:"tokenType"`
	Value         string          `json:"value"`
	Impersonating json.RawMessage `json:"impersonating"`
}

// MalformedError is a client frame that is not a ClientMessage; the session answers it with a
// FatalError carrying Error().
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string { return "malformed message: " + e.Err.Error() }
func (e *MalformedError) Unwrap() error { return e.Err }

// DecodeClientMessage parses one text frame from a client into msg (left zero on error). It
// checks only the JSON shape; which fields each message type needs is the session's to check.
// Its error is a *MalformedError. It fills the caller's message rather than returning one: the
// message is large, and the copies on every socket's read loop made that goroutine's stack
// outgrow its first 8 KiB, which costs memory on every idle connection.
func DecodeClientMessage(data []byte, msg *ClientMessage) error {
	if err := json.Unmarshal(data, msg); err != nil {
		*msg = ClientMessage{}
		return &MalformedError{Err: err}
	}
	return nil
}

// QuerySetModification adds or removes one query.
type QuerySetModification struct {
	Type    string          `json:"type"`
	QueryID *int64          `json:"queryId"`
	UDFPath string          `json:"udfPath"`
	Args    json.RawMessage `json:"args"`
	Journal *string         `json:"journal"`
}

// Internal is the Result of a call that failed for a reason the client is not meant to see: it
// gets the request id to quote, and the server log has err under the same id.
func Internal(err error, requestID string) Result {
	if requestID == "" {
		requestID = NewRequestID()
	}
	return Result{
		Err: err, Internal: true, Transient: true, RequestID: requestID,
		ErrorMessage: fmt.Sprintf("Server error (request %s)", requestID),
		ErrorData:    map[string]any{"code": CodeInternal, "requestId": requestID},
	}
}

// Error codes the engine's services produce themselves (the engine package lists them all).
const (
	CodeInvalidArgument = "INVALID_ARGUMENT"
	CodeInternal        = "INTERNAL"
	CodeUnavailable     = "UNAVAILABLE"
	CodeRateLimited     = "RATE_LIMITED"
)

// Failed is the Result of a call refused with a client-facing error.
func Failed(code, message string) Result {
	return Result{Err: errors.New(message), ErrorMessage: message, ErrorData: map[string]any{"code": code}, RequestID: NewRequestID()}
}

package synctest

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// messageTimeout bounds the wait for any one server message: a liveness bound far above what a
// healthy server takes on a busy machine, never a timing assertion.
const messageTimeout = time.Minute

// URL is the sync WebSocket address of the server at base (its http:// URL).
func URL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/api/1.48.0/sync"
}

// Write writes each message as one JSON text frame.
func Write(ctx context.Context, conn *websocket.Conn, msgs ...any) error {
	for _, m := range msgs {
		buf, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := conn.Write(ctx, websocket.MessageText, buf); err != nil {
			return err
		}
	}
	return nil
}

// AuthenticateMessage signs a socket in: tokenType "User" (an access token), "Admin" (an admin
// key, impersonating {"subject": userID} when impersonating is not nil) or "None".
func AuthenticateMessage(tokenType, value string, baseVersion int64, impersonating any) map[string]any {
	m := map[string]any{"type": "Authenticate", "tokenType": tokenType, "baseVersion": baseVersion}
	if tokenType != "None" {
		m["value"] = value
	}
	if impersonating != nil {
		m["impersonating"] = impersonating
	}
	return m
}

// AddQueryMessage subscribes to path(args) under queryID, moving the query set from
// baseVersion to the next.
func AddQueryMessage(baseVersion, queryID int64, path string, args any) map[string]any {
	return map[string]any{"type": "ModifyQuerySet", "baseVersion": baseVersion, "newVersion": baseVersion + 1,
		"modifications": []any{map[string]any{"type": "Add", "queryId": queryID, "udfPath": path, "args": []any{args}}}}
}

// MutationMessage runs the mutation path(args) as request requestID.
func MutationMessage(requestID int64, path string, args any) map[string]any {
	return map[string]any{"type": "Mutation", "requestId": requestID, "udfPath": path, "args": []any{args}}
}

// Socket is an open sync socket: every frame the server sends, decoded, in Frames.
type Socket struct {
	Conn *websocket.Conn
	// Frames is closed when the socket ends.
	Frames chan map[string]any

	stop      chan struct{}
	stopOnce  sync.Once
	readerEnd chan struct{}
}

// Open dials the sync endpoint of the server at base and sends Connect under sessionID. It
// returns its failure rather than failing a test, so goroutines can use it; Close the socket.
func Open(ctx context.Context, base, sessionID string) (*Socket, error) {
	conn, _, err := websocket.Dial(ctx, URL(base), nil)
	if err != nil {
		return nil, err
	}
	// Transitions of large pages are bigger than the library's 32 KiB default.
	conn.SetReadLimit(64 << 20)
	s := &Socket{Conn: conn, Frames: make(chan map[string]any, 4096), stop: make(chan struct{}), readerEnd: make(chan struct{})}
	go s.read()
	connect := map[string]any{"type": "Connect", "sessionId": sessionID, "connectionCount": 0, "lastCloseReason": nil, "clientTs": time.Now().UnixMilli()}
	if err := Write(ctx, conn, connect); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Socket) read() {
	defer close(s.readerEnd)
	defer close(s.Frames)
	for {
		_, data, err := s.Conn.Read(context.Background())
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		select {
		case s.Frames <- m:
		case <-s.stop: // nobody reads any more: do not hold Close up
			return
		}
	}
}

// Write sends messages on the socket.
func (s *Socket) Write(ctx context.Context, msgs ...any) error {
	return Write(ctx, s.Conn, msgs...)
}

// Close closes the socket and waits for its reader to end (so leak checks see no goroutine).
func (s *Socket) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	_ = s.Conn.Close(websocket.StatusNormalClosure, "")
	<-s.readerEnd
}

// sessions makes session ids unique within a test binary.
var sessions atomic.Int64

// Client is a Socket that fails its test on errors, tracks its query set and request ids, and
// applies transitions as the official client does.
type Client struct {
	*Socket
	t testing.TB

	// Values holds each query's newest value, or {"error": message, "data": errorData} when it
	// failed.
	Values map[int64]any
	// Version is the last transition's end version (nil before the first).
	Version map[string]any
	// Updated and Failed are the queries the last transition updated and failed.
	Updated, Failed []int64
	// Chunked counts the transitions that arrived in chunks.
	Chunked int
	// QuerySetVersion is the query set's version after the last Subscribe.
	QuerySetVersion int64
	// RequestID is the last request id Mutate used.
	RequestID int64

	chunks  []string
	pending []map[string]any // transitions put back together, read before Frames
}

// Dial opens a Client to the server at base under a session id of its own, closed when the test
// ends. It is not signed in: see Authenticate.
func Dial(t testing.TB, base string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, base, fmt.Sprintf("%s-%d-%d", t.Name(), sessions.Add(1), time.Now().UnixNano()))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return &Client{Socket: s, t: t, Values: map[int64]any{}}
}

// Send writes one message.
func (c *Client) Send(m any) {
	c.t.Helper()
	require.NoError(c.t, c.Write(context.Background(), m))
}

// Authenticate sends an Authenticate message (see AuthenticateMessage).
func (c *Client) Authenticate(tokenType, value string, baseVersion int64, impersonating any) {
	c.t.Helper()
	c.Send(AuthenticateMessage(tokenType, value, baseVersion, impersonating))
}

// Subscribe adds path(args) to the query set under queryID.
func (c *Client) Subscribe(queryID int64, path string, args any) {
	c.t.Helper()
	c.Send(AddQueryMessage(c.QuerySetVersion, queryID, path, args))
	c.QuerySetVersion++
}

// Mutate sends a mutation under the next request id and returns that id.
func (c *Client) Mutate(path string, args any) int64 {
	c.t.Helper()
	c.RequestID++
	c.Send(MutationMessage(c.RequestID, path, args))
	return c.RequestID
}

// Next returns the next message other than Ping, applying transitions to Values and checking
// their version chain.
func (c *Client) Next() map[string]any {
	c.t.Helper()
	return c.next(nil)
}

func (c *Client) next(waitingFor []any) map[string]any {
	c.t.Helper()
	for {
		m := c.receive(waitingFor)
		switch m["type"] {
		case "Ping":
			continue
		case "TransitionChunk":
			c.chunks = append(c.chunks, m["chunk"].(string))
			if int(m["partNumber"].(float64)) != len(c.chunks)-1 {
				c.t.Fatalf("chunk %v arrived out of order", m["partNumber"])
			}
			if len(c.chunks) < int(m["totalParts"].(float64)) {
				continue
			}
			var whole map[string]any
			require.NoError(c.t, json.Unmarshal([]byte(strings.Join(c.chunks, "")), &whole))
			c.chunks = nil
			c.Chunked++
			c.pending = append(c.pending, whole)
			continue
		case "Transition":
			c.apply(m)
		}
		return m
	}
}

func (c *Client) receive(waitingFor []any) map[string]any {
	c.t.Helper()
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		return m
	}
	select {
	case m, ok := <-c.Frames:
		require.True(c.t, ok, "socket closed")
		return m
	case <-time.After(messageTimeout):
		what := "a server message"
		switch {
		case len(waitingFor) == 1:
			what = fmt.Sprint(waitingFor[0])
		case len(waitingFor) > 1:
			what = fmt.Sprintf(fmt.Sprint(waitingFor[0]), waitingFor[1:]...)
		}
		c.t.Fatalf("no server message for %s waiting for %s; values: %v", messageTimeout, what, c.Values)
		return nil
	}
}

func (c *Client) apply(m map[string]any) {
	c.t.Helper()
	start := m["startVersion"].(map[string]any)
	if c.Version == nil {
		require.Equal(c.t, float64(0), start["querySet"])
		require.Equal(c.t, EncodeTS(0), start["ts"])
	} else {
		require.Equal(c.t, c.Version, start, "transition chain is broken")
	}
	c.Version = m["endVersion"].(map[string]any)
	c.Updated, c.Failed = nil, nil
	for _, raw := range m["modifications"].([]any) {
		mod := raw.(map[string]any)
		qid := int64(mod["queryId"].(float64))
		switch mod["type"] {
		case "QueryUpdated":
			c.Values[qid] = mod["value"]
			c.Updated = append(c.Updated, qid)
		case "QueryFailed":
			c.Values[qid] = map[string]any{"error": mod["errorMessage"], "data": mod["errorData"]}
			c.Failed = append(c.Failed, qid)
		case "QueryRemoved":
			delete(c.Values, qid)
		}
	}
}

// WaitFor reads messages until cond holds on the client's state; msgAndArgs say what it waits
// for when no message comes.
func (c *Client) WaitFor(cond func() bool, msgAndArgs ...any) {
	c.t.Helper()
	for !cond() {
		c.next(msgAndArgs)
	}
}

// Await reads messages until the response to request id arrives, and returns it.
func (c *Client) Await(id int64) map[string]any {
	c.t.Helper()
	for {
		m := c.Next()
		if m["type"] == "MutationResponse" && m["requestId"] == float64(id) {
			return m
		}
	}
}

// Call runs a mutation and waits for its response: "" when it succeeded, else its result (the
// error message).
func (c *Client) Call(path string, args any) string {
	c.t.Helper()
	m := c.Await(c.Mutate(path, args))
	if m["success"] == true {
		return ""
	}
	return fmt.Sprint(m["result"])
}

// Settle makes sure the client has applied every transition up to now: a mutation's response
// comes after a transition that reflects all earlier commits. The server must register
// test:noop, a mutation that does nothing.
func (c *Client) Settle() {
	c.t.Helper()
	m := c.Await(c.Mutate("test:noop", map[string]any{}))
	require.Equal(c.t, true, m["success"], "%v", m)
	ts := DecodeTS(m["ts"].(string))
	c.WaitFor(func() bool { return c.TS() >= ts })
}

// TS is the timestamp of the last transition's end version (0 before the first).
func (c *Client) TS() uint64 {
	if c.Version == nil {
		return 0
	}
	return DecodeTS(c.Version["ts"].(string))
}

// ErrorOf is the message and data of a failed query's value in Values, "" when it did not fail.
func ErrorOf(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	msg, failed := m["error"]
	if !failed {
		return ""
	}
	data, _ := json.Marshal(m["data"])
	return fmt.Sprint(msg) + " " + string(data)
}

// DecodeTS reads the protocol's timestamps (base64 of 8 little-endian bytes); 0 when malformed.
func DecodeTS(s string) uint64 {
	raw, _ := base64.StdEncoding.DecodeString(s)
	if len(raw) != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(raw)
}

// EncodeTS writes ts as the protocol does.
func EncodeTS(ts uint64) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], ts)
	return base64.StdEncoding.EncodeToString(b[:])
}

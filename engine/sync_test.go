package engine_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/synctest"
	"github.com/ripplehq/ripple/internal/testdb"
)

func TestSubscriptionSeesMutationsAndOutsideWrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)
	other := b.newConversation(t)
	c := dial(t, b)

	c.Subscribe(1, "messages:list", map[string]any{"conversationId": conv})
	c.WaitFor(func() bool { _, ok := c.Values[1]; return ok })
	require.Equal(t, []any{}, c.Values[1])

	// Read your writes, as the official client sees them: the response comes first, and the very
	// next transition reaches its ts and holds the write.
	req := c.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "hello"})
	var respTS uint64
	for {
		m := c.Next()
		if m["type"] == "MutationResponse" {
			require.Equal(t, float64(req), m["requestId"])
			require.Equal(t, true, m["success"], "%v", m)
			respTS = synctest.DecodeTS(m["ts"].(string))
			break
		}
	}
	require.Equal(t, "Transition", c.Next()["type"])
	require.GreaterOrEqual(t, c.TS(), respTS)
	require.Len(t, c.Values[1], 1)

	// A write from outside Ripple reaches the subscriber too.
	_, err := b.db.Pool.Exec(context.Background(), "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'from psql')", b.senderID, mustInt(conv))
	require.NoError(t, err)
	c.WaitFor(func() bool { return len(c.Values[1].([]any)) == 2 })

	// A write to another conversation does not re-run the subscription.
	before := b.engine.Stats()
	_, err = b.db.Pool.Exec(context.Background(), "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'elsewhere')", b.senderID, mustInt(other))
	require.NoError(t, err)
	_, err = b.engine.Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, before.Reruns, b.engine.Stats().Reruns)
}

func TestBadInputGetsErrorsAndServerKeepsServing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	conv := b.newConversation(t)

	t.Run("unknown and internal functions fail the query only", func(t *testing.T) {
		c := dial(t, b)
		c.Subscribe(1, "nope:missing", map[string]any{})
		c.Subscribe(2, "secret:peek", map[string]any{})
		c.Subscribe(3, "messages:list", map[string]any{"conversationId": 42})
		c.Subscribe(4, "messages:list", map[string]any{"conversationId": conv, "extra": true})
		c.Subscribe(5, "boom:panic", map[string]any{})
		c.WaitFor(func() bool { return len(c.Values) == 5 })
		for qid := int64(1); qid <= 5; qid++ {
			failure, ok := c.Values[qid].(map[string]any)
			require.True(t, ok, "query %d should fail: %v", qid, c.Values[qid])
			msg := fmt.Sprint(failure["error"])
			switch qid {
			case 1, 2:
				require.Contains(t, msg, "could not find public query function")
			case 3:
				require.Contains(t, msg, `argument "conversationId"`)
			case 4:
				require.Contains(t, msg, `"extra"`)
			case 5:
				require.Contains(t, msg, "Server error (request")
				require.NotContains(t, msg, "boom")
			}
		}
	})

	t.Run("wrong baseVersion is fatal", func(t *testing.T) {
		c := dial(t, b)
		c.Send(map[string]any{"type": "ModifyQuerySet", "baseVersion": 7, "newVersion": 8, "modifications": []any{}})
		m := c.Next()
		require.Equal(t, "FatalError", m["type"])
	})

	t.Run("malformed JSON and unknown types are fatal", func(t *testing.T) {
		for _, raw := range []string{"{not json", `{"type":"Nope"}`} {
			c := dial(t, b)
			require.NoError(t, c.Conn.Write(context.Background(), 1, []byte(raw)))
			m := c.Next()
			require.Equal(t, "FatalError", m["type"], raw)
		}
	})

	t.Run("a 10 MB frame closes only that socket", func(t *testing.T) {
		c := dial(t, b)
		big := make([]byte, 10<<20)
		for i := range big {
			big[i] = 'a'
		}
		_ = c.Conn.Write(context.Background(), 1, big)
		_, ok := <-c.Frames
		for ok {
			_, ok = <-c.Frames
		}
	})

	t.Run("a second Connect is fatal", func(t *testing.T) {
		c := dial(t, b)
		c.Send(map[string]any{"type": "Connect", "sessionId": "again", "connectionCount": 0, "lastCloseReason": nil, "clientTs": 0})
		m := c.Next()
		require.Equal(t, "FatalError", m["type"])
		require.Contains(t, m["error"], "already")
	})

	t.Run("an implausible maxObservedTimestamp does not move the clock", func(t *testing.T) {
		ctx := context.Background()
		url := syncURL(b)
		conn, _, err := websocket.Dial(ctx, url, nil)
		require.NoError(t, err)
		defer conn.Close(websocket.StatusNormalClosure, "")
		huge := make([]byte, 8)
		binary.LittleEndian.PutUint64(huge, math.MaxUint64-15)
		require.NoError(t, synctest.Write(ctx, conn,
			map[string]any{"type": "Connect", "sessionId": "poison", "connectionCount": 0, "lastCloseReason": nil, "clientTs": 0,
				"maxObservedTimestamp": base64.StdEncoding.EncodeToString(huge)},
			map[string]any{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": []any{
				map[string]any{"type": "Add", "queryId": 1, "udfPath": "messages:count", "args": []any{map[string]any{"conversationId": conv}}}}},
		))
		// The transition answering the query set comes after Connect was handled.
		for {
			_, data, err := conn.Read(ctx)
			require.NoError(t, err)
			var m struct {
				Type       string
				EndVersion struct{ TS string }
			}
			require.NoError(t, json.Unmarshal(data, &m))
			if m.Type == "Transition" {
				raw, _ := base64.StdEncoding.DecodeString(m.EndVersion.TS)
				require.Less(t, binary.LittleEndian.Uint64(raw), uint64(time.Now().Add(time.Hour).UnixNano()))
				break
			}
		}
	})

	t.Run("a query set past the socket's limit is fatal", func(t *testing.T) {
		c := dial(t, b)
		mods := make([]any, 1001)
		for i := range mods {
			mods[i] = map[string]any{"type": "Add", "queryId": i, "udfPath": "messages:count", "args": []any{map[string]any{"conversationId": conv}}}
		}
		c.Send(map[string]any{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": mods})
		m := c.Next()
		require.Equal(t, "FatalError", m["type"])
		require.Contains(t, m["error"], "at most 1000 queries")
	})

	t.Run("a page of another site cannot open a socket", func(t *testing.T) {
		ctx := context.Background()
		url := syncURL(b)
		_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
		require.Error(t, err)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		// The server's own pages, and clients that are not browsers, may.
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {b.server.URL}}})
		require.NoError(t, err)
		conn.Close(websocket.StatusNormalClosure, "")
	})

	// After all that, a fresh client is served normally.
	c := dial(t, b)
	c.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
	c.WaitFor(func() bool { return c.Values[1] != nil })
	require.Equal(t, float64(0), c.Values[1])
}

// Identical (function, args, identity) subscriptions run once per batch, and a re-run whose
// result did not change sends nothing.
func TestIdenticalSubscriptionsRunOnceAndUnchangedResultsAreNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	conv := b.newConversation(t)
	c1, c2 := dial(t, b), dial(t, b)
	for _, c := range []*syncClient{c1, c2} {
		c.Subscribe(1, "messages:count", map[string]any{"conversationId": conv})
		c.Settle()
	}
	var msgID int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, 'x') RETURNING id", b.senderID, mustInt(conv)).Scan(&msgID))
	for _, c := range []*syncClient{c1, c2} {
		c.WaitFor(func() bool { return c.Values[1] == float64(1) })
	}

	// An update re-runs both subscriptions (same key) as one execution; the count is unchanged,
	// so no QueryUpdated is sent.
	before := b.engine.Stats()
	_, err := b.db.Pool.Exec(ctx, "UPDATE messages SET body = 'y' WHERE id = $1", msgID)
	require.NoError(t, err)
	_, err = b.engine.Sync(ctx)
	require.NoError(t, err)
	after := b.engine.Stats()
	require.Equal(t, before.Executions+1, after.Executions)
	require.Equal(t, before.Reruns+2, after.Reruns)
	require.Equal(t, before.ChangedReruns, after.ChangedReruns)
	// No transition carried a modification for the unchanged result.
	for _, c := range []*syncClient{c1, c2} {
		req := c.Mutate("test:noop", map[string]any{})
		for {
			m := c.Next()
			if m["type"] == "Transition" {
				require.Empty(t, m["modifications"], "an unchanged result was sent")
			}
			if m["type"] == "MutationResponse" && m["requestId"] == float64(req) {
				break
			}
		}
	}
}

// An action calling a mutation with the mutation's own argument type skips JSON but not
// validation: both ways give the same results and errors.
func TestActionCallsWithTypedArgsAreValidated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, asMap := range []bool{false, true} {
		var out int
		require.NoError(t, b.engine.Call(ctx, "test:callDouble", map[string]any{"N": 3, "AsMap": asMap}, engine.Identity{}, &out))
		require.Equal(t, 6, out)
		err := b.engine.Call(ctx, "test:callDouble", map[string]any{"N": 11, "AsMap": asMap}, engine.Identity{}, &out)
		e, ok := engine.AsError(err)
		require.True(t, ok, "asMap=%v: %v", asMap, err)
		require.Equal(t, engine.CodeInvalidArgument, e.Code)
		require.Contains(t, e.Message, "at most 10")
	}
}

// A client sending mutations faster than the per-caller limit gets RATE_LIMITED with the wait;
// its excess commits nothing, and other clients are not held back.
func TestMutationsPastTheRateLimitAreRefused(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	// A burst of 5, then one more every 10 s.
	b := setupWith(t, db, func(c *engine.Config) { c.MutationsPerSecond, c.MutationBurst = 0.1, 5 })
	conv := b.newConversation(t)
	c := dial(t, b)
	for i := range 8 {
		c.Mutate("messages:send", map[string]any{"conversationId": conv, "body": fmt.Sprintf("m%d", i)})
	}
	ok, limited := 0, 0
	for ok+limited < 8 {
		m := c.nextOf("MutationResponse")
		if m["success"] == true {
			ok++
			continue
		}
		limited++
		data := m["errorData"].(map[string]any)
		require.Equal(t, "RATE_LIMITED", data["code"])
		require.Greater(t, data["retryAfterMs"], float64(0))
	}
	require.GreaterOrEqual(t, ok, 5)
	require.GreaterOrEqual(t, limited, 1)
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM messages WHERE conversation_id = $1", mustInt(conv)).Scan(&n))
	require.Equal(t, ok, n)
	// Another client has its own allowance.
	other := dial(t, b)
	other.Mutate("messages:send", map[string]any{"conversationId": conv, "body": "from someone else"})
	require.Equal(t, true, other.nextOf("MutationResponse")["success"])
}

// A function's own rate limit (FunctionOpts.RateLimit) holds per client on top of the one on
// all mutations; calls made by the server (functions, jobs, Engine.Call) are not counted.
func TestFunctionRateLimitPerCaller(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c, other := dial(t, b), dial(t, b)
	for i := range 3 {
		req := c.Mutate("test:limited", map[string]any{})
		for {
			m := c.Next()
			if m["type"] != "MutationResponse" || m["requestId"] != float64(req) {
				continue
			}
			if i < 2 {
				require.Equal(t, true, m["success"], "%v", m)
			} else {
				require.Equal(t, false, m["success"])
				data := m["errorData"].(map[string]any)
				require.Equal(t, "RATE_LIMITED", data["code"])
				require.Greater(t, data["retryAfterMs"], float64(0))
			}
			break
		}
	}
	// Another anonymous socket is another caller, and the server's own calls are not limited.
	req := other.Mutate("test:limited", map[string]any{})
	for {
		if m := other.Next(); m["type"] == "MutationResponse" && m["requestId"] == float64(req) {
			require.Equal(t, true, m["success"], "%v", m)
			break
		}
	}
	var ok bool
	require.NoError(t, b.engine.Call(context.Background(), "test:limited", struct{}{}, engine.Identity{}, &ok))
}

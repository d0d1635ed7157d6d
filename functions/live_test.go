package functions_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/testdb"
)

// liveBundle is the chat served the way ripple serve serves it: accounts, the sync socket and
// the HTTP actions on a real HTTP server.
type liveBundle struct {
	*testBundle
	url      string
	adminKey string
}

func setupLive(t *testing.T) *liveBundle {
	t.Helper()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	svc, err := engine.NewAuthService(db.Pool, &engine.AuthConfig{})
	require.NoError(t, err)
	require.NoError(t, svc.Start(ctx))
	embedder, err := embedding.New(embedding.Config{Provider: embedding.ProviderLocal})
	require.NoError(t, err)
	reg := engine.NewRegistry()
	functions.Register(reg, &functions.Deps{Embedder: embedder})
	// test:noop lets a client settle: its response comes after every earlier commit's transition.
	engine.AddMutation(reg, "test:noop", func(*engine.MutationCtx, struct{}) (*struct{}, error) { return nil, nil }, nil)
	e, err := engine.New(db.Pool, reg, &engine.Config{Schema: db.Schema, JobWorkers: 2, Auth: svc.Authenticator()})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	mux := http.NewServeMux()
	svc.Routes(mux)
	mux.Handle("/api/", e.Handler())
	mux.Handle(e.HTTPActionPrefix(), e.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, e.Stop(stopCtx))
		srv.Close()
	})
	key, err := svc.CreateAdminKey(ctx)
	require.NoError(t, err)
	return &liveBundle{testBundle: &testBundle{db: db, engine: e}, url: srv.URL, adminKey: key}
}

// signUp makes an account (name@school.test) and returns its identity and access token.
func (b *liveBundle) signUp(t *testing.T, name string) (engine.Identity, string) {
	t.Helper()
	var out struct {
		AccessToken string `json:"accessToken"`
		User        struct {
			ID string `json:"_id"`
		} `json:"user"`
	}
	code, body := b.post(t, "/api/auth/signup", "", map[string]string{"email": name + "@school.test", "password": "correct horse battery staple", "name": name})
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &out))
	return engine.Identity{UserID: out.User.ID}, out.AccessToken
}

func (b *liveBundle) post(t *testing.T, path, token string, body any) (int, string) {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, b.url+path, bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func (b *liveBundle) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// liveClient is a minimal sync-protocol client: it applies transitions to values (a query's
// value, or {"error": message} when it failed) and counts the transitions it saw.
type liveClient struct {
	t           *testing.T
	conn        *websocket.Conn
	msgs        chan map[string]any
	values      map[int64]any
	transitions int
	qsVer       int64
	nextReq     int64
	ts          string
}

// dialAs opens a socket acting as the user (the admin key impersonating them, so a test needs
// no password hashing per member; the functions see the user's identity).
func (b *liveBundle) dialAs(t *testing.T, who engine.Identity) *liveClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.url, "http")+"/api/1.48.0/sync", nil)
	require.NoError(t, err)
	conn.SetReadLimit(64 << 20)
	c := &liveClient{t: t, conn: conn, msgs: make(chan map[string]any, 4096), values: map[int64]any{}}
	go func() {
		defer close(c.msgs)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				c.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { conn.Close(websocket.StatusNormalClosure, "") })
	c.send(map[string]any{"type": "Connect", "sessionId": fmt.Sprintf("s-%s-%d", who.UserID, time.Now().UnixNano()), "connectionCount": 0, "lastCloseReason": nil, "clientTs": time.Now().UnixMilli()})
	c.send(map[string]any{"type": "Authenticate", "tokenType": "Admin", "value": b.adminKey, "baseVersion": 0, "impersonating": map[string]any{"subject": who.UserID}})
	return c
}

func (c *liveClient) send(m any) {
	buf, err := json.Marshal(m)
	require.NoError(c.t, err)
	require.NoError(c.t, c.conn.Write(context.Background(), websocket.MessageText, buf))
}

func (c *liveClient) subscribe(queryID int64, path string, args any) {
	c.send(map[string]any{"type": "ModifyQuerySet", "baseVersion": c.qsVer, "newVersion": c.qsVer + 1,
		"modifications": []any{map[string]any{"type": "Add", "queryId": queryID, "udfPath": path, "args": []any{args}}}})
	c.qsVer++
}

func (c *liveClient) mutate(path string, args any) int64 {
	c.nextReq++
	c.send(map[string]any{"type": "Mutation", "requestId": c.nextReq, "udfPath": path, "args": []any{args}})
	return c.nextReq
}

// next reads the next message other than Ping, applying transitions.
func (c *liveClient) next() map[string]any {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		require.True(c.t, ok, "socket closed")
		if m["type"] == "Transition" {
			c.transitions++
			c.ts = m["endVersion"].(map[string]any)["ts"].(string)
			for _, raw := range m["modifications"].([]any) {
				mod := raw.(map[string]any)
				qid := int64(mod["queryId"].(float64))
				switch mod["type"] {
				case "QueryUpdated":
					c.values[qid] = mod["value"]
				case "QueryFailed":
					c.values[qid] = map[string]any{"error": mod["errorMessage"], "data": mod["errorData"]}
				case "QueryRemoved":
					delete(c.values, qid)
				}
			}
		}
		return m
	case <-time.After(60 * time.Second):
		c.t.Fatal("timed out waiting for a server message")
		return nil
	}
}

// waitFor reads messages until cond holds on the client's values.
func (c *liveClient) waitFor(cond func() bool) {
	c.t.Helper()
	for !cond() {
		c.next()
	}
}

// call runs a mutation over the socket and waits for its response; it returns the error
// message, or "" on success.
func (c *liveClient) call(path string, args any) string {
	c.t.Helper()
	req := c.mutate(path, args)
	for {
		m := c.next()
		if m["type"] == "MutationResponse" && m["requestId"] == float64(req) {
			if m["success"] == true {
				return ""
			}
			return fmt.Sprint(m["result"])
		}
	}
}

// settle makes sure the client has applied every transition up to now.
func (c *liveClient) settle() {
	c.t.Helper()
	req := c.mutate("test:noop", map[string]any{})
	for {
		m := c.next()
		if m["type"] == "MutationResponse" && m["requestId"] == float64(req) {
			require.Equal(c.t, true, m["success"], "%v", m)
			ts := decodeTS(m["ts"].(string))
			c.waitFor(func() bool { return decodeTS(c.ts) >= ts })
			return
		}
	}
}

func decodeTS(s string) uint64 {
	raw, _ := base64.StdEncoding.DecodeString(s)
	if len(raw) != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(raw)
}

// pageBodies is the bodies of a messages:list value, or nil when it is an error.
func pageBodies(v any) []string {
	m, _ := v.(map[string]any)
	page, ok := m["page"].([]any)
	if !ok {
		return nil
	}
	bodies := make([]string, len(page))
	for i, m := range page {
		bodies[i] = m.(map[string]any)["body"].(string)
	}
	return bodies
}

func isError(v any) bool {
	m, ok := v.(map[string]any)
	_, failed := m["error"]
	return ok && failed
}

func requireJSONEqual(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	require.JSONEq(t, string(w), string(g), msgAndArgs...)
}

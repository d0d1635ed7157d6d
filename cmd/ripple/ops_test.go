package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/functions"
	"github.com/ripplehq/ripple/internal/testdb"
)

// get sends a GET with an Authorization header (empty: none) and returns the status and body.
func get(t *testing.T, url, authorization string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestServeOperatorRoutesAndTheExport: `ripple serve` routes the chat's HTTP action (the
// caller's own export, 401 without a token), keeps /metrics and River's UI behind the admin key
// on its port, and serves metrics to anyone on --metrics-addr.
func TestServeOperatorRoutesAndTheExport(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	metricsAddr := freeAddr(t)
	base := startServe(t, map[string]string{"DATABASE_URL": db.URL}, db.Schema, "", "--metrics-addr", metricsAddr).base()

	tokens := map[string]string{}
	for _, name := range []string{"ada", "bob", "cy"} {
		status, out := post(t, base+"/api/auth/signup", "", map[string]any{"email": name + "@school.test", "password": "correct horse battery", "name": name})
		require.Equal(t, http.StatusOK, status, "%v", out)
		tokens[name] = out["accessToken"].(string)
	}
	status, out := post(t, base+"/api/mutation", tokens["ada"], map[string]any{"path": "conversations:getOrCreateDirect", "format": "json",
		"args": []any{map[string]any{"email": "bob@school.test"}}})
	require.Equal(t, http.StatusOK, status, "%v", out)
	conv := out["value"].(string)
	for _, body := range []string{"hello bob", "are you there?"} {
		status, out := post(t, base+"/api/mutation", tokens["ada"], map[string]any{"path": "messages:send", "format": "json",
			"args": []any{map[string]any{"conversationId": conv, "body": body}}})
		require.Equal(t, http.StatusOK, status, "%v", out)
	}

	// The export: 401 without a token, the caller's own conversations with one.
	code, body := get(t, base+"/http/me/export", "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	code, body = get(t, base+"/http/me/export", "Bearer "+tokens["bob"])
	require.Equal(t, http.StatusOK, code, body)
	var export functions.Export
	require.NoError(t, json.Unmarshal([]byte(body), &export))
	require.Equal(t, "bob", export.User.Name)
	require.Len(t, export.Conversations, 1)
	require.Equal(t, conv, export.Conversations[0].ID)
	require.Len(t, export.Conversations[0].Participants, 2)
	msgs := export.Conversations[0].Messages
	require.Len(t, msgs, 2)
	require.Equal(t, "hello bob", msgs[0].Body, "oldest first")
	require.Equal(t, "are you there?", msgs[1].Body)
	// cy is in no conversation: her export holds none of theirs.
	code, body = get(t, base+"/http/me/export", "Bearer "+tokens["cy"])
	require.Equal(t, http.StatusOK, code, body)
	require.NotContains(t, body, "hello bob")
	require.Contains(t, body, `"conversations":[]`)

	// Operators: the main port wants the admin key; the metrics port serves anyone.
	for _, path := range []string{"/metrics", "/admin/jobs/"} {
		code, _ := get(t, base+path, "")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = get(t, base+path, "Bearer "+tokens["ada"])
		require.Equal(t, http.StatusForbidden, code, path)
	}
	key := runBinary(t, map[string]string{"DATABASE_URL": db.URL}, "admin-key", "--schema", db.Schema)
	require.Equal(t, 0, key.code, key.stderr)
	for _, path := range []string{"/metrics", "/admin/jobs/"} {
		code, body := get(t, base+path, "Convex "+strings.TrimSpace(key.stdout))
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}
	code, body = get(t, "http://"+metricsAddr+"/metrics", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `ripple_function_duration_seconds_count{kind="mutation",path="messages:send"} 2`)
	require.True(t, strings.Contains(body, `ripple_function_duration_seconds_count{kind="http",path="GET /me/export"} 3`), body)
}

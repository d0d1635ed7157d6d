package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/convextest"
	"github.com/ripplehq/ripple/internal/testdb"
)

// Moving from Convex: a snapshot ZIP imports with one command, the students sign in over the
// real auth routes with the passwords they had on Convex (the stored hash becomes argon2id),
// and see their messages through the chat's functions.
func TestImportConvexCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	vars := map[string]string{"DATABASE_URL": db.URL}
	zipPath := convextest.Chat(t).WriteZip(t, filepath.Join(t.TempDir(), "snapshot.zip"))

	// A dry run reports the same and writes nothing.
	res := runBinary(t, vars, "import", "--convex", "--dry-run", "--quiet", zipPath, "--schema", db.Schema)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "dry run, nothing changed: would import from Convex 2 users (2 with passwords), 1 conversations (0 groups), 2 participants, 3 messages")
	var stored int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM messages)
		+ (SELECT count(*) FROM message_embedding_queue)`).Scan(&stored))
	require.Zero(t, stored, "a dry run changed the database")

	res = runBinary(t, vars, "import", "--convex", zipPath, "--schema", db.Schema)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Contains(t, res.stdout, "imported from Convex 2 users (2 with passwords), 1 conversations (0 groups), 2 participants, 3 messages")
	assert.Contains(t, res.stdout, "3 messages are queued for the embedding sweep")
	assert.Contains(t, res.stdout, "not imported: authSessions (1)")
	assert.Contains(t, res.stderr, "importing from Convex")

	// Again: refused (one error line); --replace accepted.
	res = runBinary(t, vars, "import", "--convex", "--quiet", "--schema", db.Schema, zipPath)
	require.Equal(t, 1, res.code)
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "--replace")
	res = runBinary(t, vars, "import", "--convex", "--quiet", "--replace", "--schema", db.Schema, zipPath)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Empty(t, res.stderr, "--quiet")

	base := startServe(t, vars, db.Schema, "").base()
	hash := func(email string) string {
		var h string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT c.password_hash FROM ripple_auth_credentials c JOIN users u ON u.id = c.user_id
			WHERE u.email = $1`, email).Scan(&h))
		return h
	}
	require.True(t, strings.HasPrefix(hash(convextest.AdaEmail), "$convex-scrypt$"))

	status, out := post(t, base+"/api/auth/signin", "", map[string]any{"email": convextest.AdaEmail, "password": "not ada's password"})
	require.Equal(t, http.StatusUnauthorized, status, "%v", out)
	require.Equal(t, "invalid email or password", out["message"])

	status, out = post(t, base+"/api/auth/signin", "", map[string]any{"email": "ADA@school.test", "password": convextest.AdaPassword})
	require.Equal(t, http.StatusOK, status, "%v", out)
	token := out["accessToken"].(string)
	require.True(t, strings.HasPrefix(hash(convextest.AdaEmail), "$argon2id$"), "replaced at the first sign-in")
	status, out = post(t, base+"/api/auth/signin", "", map[string]any{"email": convextest.AdaEmail, "password": convextest.AdaPassword})
	require.Equal(t, http.StatusOK, status, "%v", out)

	var conv int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT id FROM conversations`).Scan(&conv))
	status, out = post(t, base+"/api/query", token, map[string]any{"path": "messages:list", "format": "json",
		"args": []any{map[string]any{"conversationId": strconv.FormatInt(conv, 10), "paginationOpts": map[string]any{"numItems": 10, "cursor": nil}}}})
	require.Equal(t, http.StatusOK, status, "%v", out)
	var bodies []string
	for _, m := range out["value"].(map[string]any)["page"].([]any) {
		bodies = append(bodies, m.(map[string]any)["body"].(string))
	}
	require.Equal(t, []string{"see you in class", "hi Ada", "hello Bob"}, bodies, "newest first, in Convex's creation order")

	// The imported messages are embedded by the server's sweep; then search finds them.
	require.Eventually(t, func() bool {
		var queued int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM message_embedding_queue`).Scan(&queued))
		return queued == 0
	}, 60*time.Second, 50*time.Millisecond, "the imported messages were not embedded")
	status, out = post(t, base+"/api/action", token, map[string]any{"path": "messages:search", "format": "json",
		"args": []any{map[string]any{"conversationId": strconv.FormatInt(conv, 10), "query": "class"}}})
	require.Equal(t, http.StatusOK, status, "%v", out)
	hits, _ := out["value"].([]any)
	require.NotEmpty(t, hits, "search found no imported message: %v", out)
	require.Equal(t, "see you in class", hits[0].(map[string]any)["body"])
}

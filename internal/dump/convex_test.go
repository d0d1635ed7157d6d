package dump_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/convextest"
	"github.com/ripplehq/ripple/internal/dump"
	"github.com/ripplehq/ripple/internal/testdb"
)

func countRows(t *testing.T, db *testdb.Bundle, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n))
	return n
}

func TestImportConvexDirectoryAndZip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	snap := convextest.Chat(t)
	for _, tt := range []struct {
		name string
		path string
	}{
		{"directory", snap.WriteDir(t, t.TempDir())},
		{"zip", snap.WriteZip(t, filepath.Join(t.TempDir(), "snapshot.zip"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := testdb.NewSchema(t)
			var progress bytes.Buffer
			res, err := dump.ImportConvex(ctx, db.Pool, tt.path, dump.Options{Schema: db.Schema, Progress: &progress})
			require.NoError(t, err)
			require.Equal(t, int64(2), res.Users)
			require.Equal(t, int64(2), res.Credentials)
			require.Equal(t, int64(1), res.Conversations)
			require.Equal(t, int64(2), res.Participants)
			require.Equal(t, int64(3), res.Messages)
			require.Equal(t, int64(3), res.QueuedForEmbedding)
			require.Equal(t, int64(1), res.EmbeddingsNotImported)
			require.Equal(t, map[string]int64{"authSessions": 1}, res.Skipped)
			require.Contains(t, strings.Join(res.Notes, "\n"), "_storage/")
			require.Contains(t, progress.String(), "importing from Convex")

			// Canonical emails; the Convex hashes stored behind their prefix.
			rows, err := db.Pool.Query(ctx, `SELECT u.email, u.name, c.password_hash, u.created_at FROM users u
				JOIN ripple_auth_credentials c ON c.user_id = u.id ORDER BY u.id`)
			require.NoError(t, err)
			type user struct {
				Email, Name, Hash string
				Created           time.Time
			}
			users, err := pgx.CollectRows(rows, pgx.RowToStructByPos[user])
			require.NoError(t, err)
			require.Len(t, users, 2)
			require.Equal(t, convextest.AdaEmail, users[0].Email)
			require.Equal(t, "Ada", users[0].Name)
			require.Equal(t, "$convex-scrypt$"+snap["authAccounts"][0]["secret"].(string), users[0].Hash)
			require.Equal(t, time.UnixMicro(1717000000000500).UTC(), users[0].Created.UTC(), "_creationTime to the microsecond")

			// The direct pair, participants, and messages in time order with mapped ids.
			var low, high int64
			var typ string
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT type, direct_user_low, direct_user_high FROM conversations`).Scan(&typ, &low, &high))
			require.Equal(t, "direct", typ)
			require.Less(t, low, high)
			rows, err = db.Pool.Query(ctx, `SELECT u.name || ': ' || m.body FROM messages m JOIN users u ON u.id = m.sender_id ORDER BY m.created_at, m.id`)
			require.NoError(t, err)
			bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Equal(t, []string{"Ada: hello Bob", "Bob: hi Ada", "Ada: see you in class"}, bodies)
			var ordered bool
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT bool_and(ok) FROM (SELECT id > lag(id, 1, 0::bigint) OVER (ORDER BY created_at) AS ok FROM messages) s`).Scan(&ordered))
			require.True(t, ordered, "message ids follow creation order")
			require.Equal(t, 2, countRows(t, db, "conversation_participants"))
			require.Equal(t, 3, countRows(t, db, "message_embedding_queue"))
			require.Equal(t, 0, countRows(t, db, "message_embeddings"))

			// A second import is refused; --replace replaces.
			_, err = dump.ImportConvex(ctx, db.Pool, tt.path, dump.Options{Schema: db.Schema})
			require.ErrorIs(t, err, dump.ErrNotEmpty)
			_, err = dump.ImportConvex(ctx, db.Pool, tt.path, dump.Options{Schema: db.Schema, Replace: true})
			require.NoError(t, err)
			require.Equal(t, 2, countRows(t, db, "users"))
			require.Equal(t, 3, countRows(t, db, "messages"))
		})
	}
}

// Every refusal names what is wrong (with file and line when one line is) and writes nothing.
func TestImportConvexRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	for _, tt := range []struct {
		name   string
		change func(s convextest.Snapshot)
		want   []string
	}{
		{"two users with one canonical email", func(s convextest.Snapshot) {
			s["users"][1]["email"] = "ADA@school.test"
			s["authAccounts"][1]["providerAccountId"] = "ADA@school.test"
		}, []string{`users "u_ada"`, `"u_bob"`, "ada@school.test", "users/documents.jsonl:2", "nothing was imported"}},
		{"a body over 4000 characters", func(s convextest.Snapshot) {
			s["messages"][1]["body"] = strings.Repeat("x", 4001)
		}, []string{"messages/documents.jsonl:2", "4001 characters"}},
		{"a reference to nothing", func(s convextest.Snapshot) {
			s["messages"][2]["senderId"] = "u_nobody"
		}, []string{"messages/documents.jsonl:3", `senderId "u_nobody"`}},
		{"a field the chat does not have", func(s convextest.Snapshot) {
			s["conversations"][0]["title"] = "x"
		}, []string{"conversations/documents.jsonl:1", `unknown field "title"`}},
		{"an unknown table", func(s convextest.Snapshot) {
			s["polls"] = []map[string]any{{"_id": "x", "_creationTime": 1.0}}
		}, []string{"polls"}},
		{"a malformed Convex hash", func(s convextest.Snapshot) {
			s["authAccounts"][1]["secret"] = "plain"
		}, []string{"authAccounts/documents.jsonl:2", `"a_bob"`}},
	} {
		s := convextest.Chat(t)
		tt.change(s)
		dir := s.WriteDir(t, t.TempDir())
		_, err := dump.ImportConvex(ctx, db.Pool, dir, dump.Options{Schema: db.Schema})
		require.Error(t, err, tt.name)
		for _, w := range tt.want {
			require.Contains(t, err.Error(), w, tt.name)
		}
		require.Equal(t, 0, countRows(t, db, "users"), tt.name)
	}

	// A corrupted line.
	dir := convextest.Chat(t).WriteDir(t, t.TempDir())
	f, err := os.OpenFile(filepath.Join(dir, "messages", "documents.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("{\"_id\": \"m_4\", \"body\": \n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = dump.ImportConvex(ctx, db.Pool, dir, dump.Options{Schema: db.Schema})
	require.ErrorContains(t, err, "messages/documents.jsonl:4")
	require.Equal(t, 0, countRows(t, db, "users"))
	require.Equal(t, 0, countRows(t, db, "messages"))
}

// With --embedding-model the snapshot's vectors are kept under that model and only the messages
// without one wait for the sweep; a vector of other dimensions, or a model id that is not one,
// is refused with nothing written.
func TestImportConvexKeepsEmbeddings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	snap := convextest.Chat(t)
	vec := make([]float64, 1536)
	for i := range vec {
		vec[i] = float64(i%7) / 7
	}
	snap["messageEmbeddings"][0]["embedding"] = vec
	dir := snap.WriteDir(t, t.TempDir())

	db := testdb.NewSchema(t)
	res, err := dump.ImportConvex(ctx, db.Pool, dir, dump.Options{Schema: db.Schema, EmbeddingModel: "cohere/embed-v4.0@1536"})
	require.NoError(t, err)
	require.Equal(t, int64(1), res.EmbeddingsImported)
	require.Zero(t, res.EmbeddingsNotImported)
	require.Equal(t, int64(2), res.QueuedForEmbedding, "the messages without a vector")
	var model, body string
	var dims int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT e.model, vector_dims(e.embedding), m.body FROM message_embeddings e
		JOIN messages m ON m.id = e.message_id AND m.conversation_id = e.conversation_id AND m.sender_id = e.sender_id`).Scan(&model, &dims, &body))
	require.Equal(t, "cohere/embed-v4.0@1536", model)
	require.Equal(t, 1536, dims)
	var want any
	for _, m := range snap["messages"] {
		if m["_id"] == snap["messageEmbeddings"][0]["messageId"] {
			want = m["body"]
		}
	}
	require.Equal(t, want, body, "the vector belongs to its message")
	var queued int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM message_embedding_queue q JOIN message_embeddings e USING (message_id)`).Scan(&queued))
	require.Zero(t, queued, "a message with a kept vector is not queued")

	for _, model := range []string{"cohere/embed-v4.0@1024", "embed-v4.0"} {
		empty := testdb.NewSchema(t)
		_, err := dump.ImportConvex(ctx, empty.Pool, dir, dump.Options{Schema: empty.Schema, EmbeddingModel: model})
		require.Error(t, err, model)
		var n int
		require.NoError(t, empty.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n))
		require.Zero(t, n)
	}
}

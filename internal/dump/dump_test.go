package dump_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/dump"
	"github.com/ripplehq/ripple/internal/testdb"
)

// seed fills every exported table with rows that test the conversions: unicode, quotes and
// newlines in text, NULLs next to values, JSON null next to SQL NULL, vectors with awkward
// floats, timestamps with microseconds and infinity, bytea.
func seed(t *testing.T, db *testdb.Bundle) {
	t.Helper()
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	exec(`INSERT INTO users (name, email, created_at) VALUES
  ('Zoë "Z" O''Brien', 'zoe@school.test', '2026-01-02 03:04:05.123456+00'),
  ('李小龍 🐉', 'li@school.test', '2026-01-02 03:04:05+09'),
  ('back\slash
newline', 'bs@school.test', now())`)
	exec(`DELETE FROM users WHERE email = 'bs@school.test'`) // a gap in the ids
	exec(`INSERT INTO users (name, email, created_at) VALUES ('Ann', 'ann@school.test', '-infinity')`)
	exec(`INSERT INTO conversations (type, direct_user_low, direct_user_high, last_message_time)
  SELECT 'direct', min(id), max(id), NULL FROM users WHERE email IN ('zoe@school.test', 'li@school.test')`)
	exec(`INSERT INTO conversations (type, last_message_time) VALUES ('group', '2026-03-04 05:06:07.000001+00')`)
	exec(`INSERT INTO conversation_participants (conversation_id, user_id) SELECT c.id, u.id FROM conversations c, users u`)
	exec(`INSERT INTO user_blocks (blocker_id, blocked_id) SELECT min(id), max(id) FROM users`)
	for i := range 7 {
		exec(`INSERT INTO messages (sender_id, conversation_id, body)
  SELECT (SELECT min(id) FROM users), (SELECT min(id) FROM conversations), $1`,
			fmt.Sprintf("message %d: tab\there, quote \" and \\ backslash, é, 😀, \u2028", i))
	}
	// Read positions (schema 0011): every member of the first conversation has read its newest.
	exec(`INSERT INTO conversation_read_states (user_id, conversation_id, last_read_message_id, last_read_at)
  SELECT p.user_id, p.conversation_id, m.id, m.created_at FROM conversation_participants p
  JOIN LATERAL (SELECT id, created_at FROM messages WHERE conversation_id = p.conversation_id ORDER BY created_at DESC, id DESC LIMIT 1) m ON true`)
	rng := rand.New(rand.NewPCG(1, 2))
	var msgIDs []int64
	rows, err := db.Pool.Query(ctx, "SELECT id FROM messages ORDER BY id")
	require.NoError(t, err)
	msgIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	for _, id := range msgIDs[:4] {
		vec := make([]float32, 1536)
		for k := range vec {
			vec[k] = float32(rng.NormFloat64()) * float32([]float64{1, 1e-30, 3.4e38 / 10, 1e-7}[k%4])
		}
		exec(`INSERT INTO message_embeddings (message_id, conversation_id, sender_id, embedding, model)
  SELECT id, conversation_id, sender_id, $2, 'local/test@1536' FROM messages WHERE id = $1`, id, pgvector.NewVector(vec))
	}
	exec(`INSERT INTO message_embedding_failures (message_id, reason) VALUES ($1, 'refused: "too long" ✗')`, msgIDs[4])
	// A search query's cached vector (a vector column of no fixed dimension).
	exec(`INSERT INTO search_query_vectors (key, model, embedding, created_at, used_at)
  VALUES (repeat('ab', 32), 'local/test@1536', $1, '2026-05-06 07:08:09.5+02', '2026-05-07 07:08:09.25+02')`, pgvector.NewVector([]float32{0.5, -1e-7, 3}))
	// Every message queued itself (schema 0008); the sweep took the embedded and failed ones off
	// the queue and holds a lease on one of the others.
	exec(`DELETE FROM message_embedding_queue WHERE message_id <> ALL($1)`, []int64{msgIDs[5], msgIDs[6]})
	exec(`UPDATE message_embedding_queue SET leased_until = '2026-05-06 07:08:09.5+02' WHERE message_id = $1`, msgIDs[6])

	// Auth and engine tables.
	exec(`INSERT INTO ripple_auth_credentials (user_id, password_hash, created_at, updated_at)
  SELECT id, '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', now(), now() FROM users`)
	exec(`INSERT INTO ripple_auth_sessions (user_id, created_at, last_used_at, revoked_at, revoked_reason)
  SELECT id, now(), now(), NULL, NULL FROM users UNION ALL SELECT min(id), now(), now(), now(), 'signout' FROM users`)
	exec(`INSERT INTO ripple_auth_refresh_tokens (session_id, token_hash, created_at, spent_at, successor_sealed)
  SELECT id, sha256(id::text::bytea), now(), CASE WHEN id % 2 = 0 THEN now() END, CASE WHEN id % 2 = 0 THEN '\x00ff10'::bytea END
  FROM ripple_auth_sessions`)
	exec(`INSERT INTO ripple_auth_signing_keys (kid, algorithm, public_key, private_key_sealed, kek_fingerprint, created_at, retired_at) VALUES
  ('b-kid', 'EdDSA', sha256('b'), '\xdeadbeef', '\x01', now(), NULL),
  ('A-kid', 'EdDSA', sha256('a'), '\x00', '\x01', now(), now())`)
	exec(`INSERT INTO ripple_auth_admin_keys (key_hash, created_at) VALUES (sha256('k'), now())`)
	exec(`INSERT INTO ripple_mutation_log (session_id, request_id, success, result, error_data) VALUES
  ('s1', 1, true, 'null', NULL),
  ('s1', 2, true, NULL, NULL),
  ('s1', 3, true, '{"b": [1, 2.50, "ü\n"], "a": null}', NULL),
  ('s2', 1, false, NULL, '{"code": "RATE_LIMITED"}'),
  ('s2', 2, true, '"just a string"', NULL)`)
	// Not exported: rate limits are expiring counters.
	exec(`INSERT INTO ripple_auth_rate_limits (bucket, window_start, count, expires_at) VALUES ('b', now(), 1, now())`)
}

func export(t *testing.T, db *testdb.Bundle) (string, *dump.ExportResult) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "export")
	res, err := dump.Export(context.Background(), db.Pool, dir, dump.Options{Schema: db.Schema})
	require.NoError(t, err)
	return dir, res
}

// readDir returns every file of an export by name.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = string(body)
	}
	return out
}

// requireSameTables checks, in SQL, that two schemas hold the same rows in every exported table
// (values compared by type, not by their text), and returns the row count compared.
func requireSameTables(t *testing.T, a, b *testdb.Bundle, m *dump.Manifest) int64 {
	t.Helper()
	var total int64
	for _, tbl := range m.Tables {
		q := fmt.Sprintf(`SELECT (SELECT count(*) FROM (TABLE %[1]s.%[3]s EXCEPT ALL TABLE %[2]s.%[3]s) x)
  + (SELECT count(*) FROM (TABLE %[2]s.%[3]s EXCEPT ALL TABLE %[1]s.%[3]s) y), (SELECT count(*) FROM %[1]s.%[3]s)`,
			pgx.Identifier{a.Schema}.Sanitize(), pgx.Identifier{b.Schema}.Sanitize(), pgx.Identifier{tbl.Name}.Sanitize())
		if strings.Contains(tbl.Name, "embeddings") {
			// vector has no hash or sort support for EXCEPT; compare by id and equality.
			q = fmt.Sprintf(`SELECT count(*) FILTER (WHERE x IS DISTINCT FROM y), count(*) FROM %[1]s.%[3]s x FULL JOIN %[2]s.%[3]s y USING (id)`,
				pgx.Identifier{a.Schema}.Sanitize(), pgx.Identifier{b.Schema}.Sanitize(), pgx.Identifier{tbl.Name}.Sanitize())
		}
		var diff, n int64
		require.NoError(t, a.Pool.QueryRow(context.Background(), q).Scan(&diff, &n), tbl.Name)
		require.Zero(t, diff, "table %s differs", tbl.Name)
		total += n
	}
	return total
}

type laterJob struct{}

func (laterJob) Kind() string { return "ripple.function" }

func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := testdb.NewSchema(t)
	seed(t, src)
	// A function scheduled for later is a River job: not exported, but counted.
	jobs, err := river.NewClient(riverpgxv5.New(src.Pool), &river.Config{Schema: src.Schema})
	require.NoError(t, err)
	_, err = jobs.Insert(ctx, laterJob{}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)

	dirA, res := export(t, src)
	require.Equal(t, int64(1), res.PendingJobs)
	m := res.Manifest
	require.Equal(t, dump.Format, m.Format)
	require.Positive(t, m.SchemaVersion)
	var names []string
	for _, tbl := range m.Tables {
		names = append(names, tbl.Name)
		require.Positive(t, tbl.Rows, "every table was seeded: %s", tbl.Name)
	}
	require.NotContains(t, names, "ripple_auth_rate_limits")
	require.NotContains(t, names, "ripple_migration")
	require.NotContains(t, names, "river_job")
	for _, want := range []string{"users", "messages", "message_embeddings", "ripple_auth_signing_keys", "ripple_mutation_log"} {
		require.Contains(t, names, want)
	}
	require.Less(t, indexOf(names, "users"), indexOf(names, "messages"), "referenced tables load first")
	require.Less(t, indexOf(names, "ripple_auth_sessions"), indexOf(names, "ripple_auth_refresh_tokens"))
	require.Less(t, indexOf(names, "conversation_participants"), indexOf(names, "conversation_read_states"))

	// The files are what the manifest says, rows in key order (text keys byte-wise).
	files := readDir(t, dirA)
	require.Len(t, files, len(m.Tables)+1)
	for _, tbl := range m.Tables {
		sum := sha256.Sum256([]byte(files[tbl.File]))
		require.Equal(t, hex.EncodeToString(sum[:]), tbl.SHA256, tbl.File)
		require.Equal(t, int(tbl.Rows), strings.Count(files[tbl.File], "\n"), tbl.File)
	}
	keys := strings.Split(strings.TrimSpace(files["ripple_auth_signing_keys.jsonl"]), "\n")
	require.Contains(t, keys[0], `"kid":"A-kid"`, "COLLATE \"C\": upper case first")
	require.Contains(t, files["ripple_mutation_log.jsonl"], `"result":"null"`, "JSON null is a string of its text")
	require.Contains(t, files["ripple_mutation_log.jsonl"], `"result":null`, "SQL NULL is null")
	require.Contains(t, files["users.jsonl"], `"created_at":"-infinity"`)
	require.Contains(t, files["users.jsonl"], "李小龍 🐉")

	// Two exports of the same data are byte-identical.
	dirB, _ := export(t, src)
	require.Equal(t, files, readDir(t, dirB))

	// Import into a fresh, migrated schema; the tables are equal value by value.
	dst := testdb.NewSchema(t)
	// A dry run does it all and keeps nothing.
	dry, err := dump.Import(ctx, dst.Pool, dirA, dump.Options{Schema: dst.Schema, DryRun: true})
	require.NoError(t, err)
	require.Equal(t, m.RowCount(), dry.RowCount())
	var kept int
	require.NoError(t, dst.Pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM messages)").Scan(&kept))
	require.Zero(t, kept, "a dry run changed the target")
	got, err := dump.Import(ctx, dst.Pool, dirA, dump.Options{Schema: dst.Schema})
	require.NoError(t, err)
	require.Equal(t, manifestJSON(t, m), manifestJSON(t, got))
	require.Positive(t, requireSameTables(t, src, dst, m))
	var jsonNull, sqlNull int
	require.NoError(t, dst.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE result = 'null'::jsonb), count(*) FILTER (WHERE result IS NULL)
FROM ripple_mutation_log`).Scan(&jsonNull, &sqlNull))
	require.Equal(t, []int{1, 2}, []int{jsonNull, sqlNull})

	// Identity sequences continue past the restored ids.
	var maxID, newID int64
	require.NoError(t, dst.Pool.QueryRow(ctx, "SELECT max(id) FROM users").Scan(&maxID))
	require.NoError(t, dst.Pool.QueryRow(ctx, "INSERT INTO users (name, email) VALUES ('New', 'new@school.test') RETURNING id").Scan(&newID))
	require.Equal(t, maxID+1, newID)
	_, err = dst.Pool.Exec(ctx, "DELETE FROM users WHERE id = $1", newID)
	require.NoError(t, err)

	// Export → import → export gives the same files.
	dirC, _ := export(t, dst)
	require.Equal(t, files, readDir(t, dirC))
}

func manifestJSON(t *testing.T, m *dump.Manifest) string {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// countAll is the number of rows in every exported table, for "nothing changed" checks.
func countAll(t *testing.T, db *testdb.Bundle, m *dump.Manifest) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tbl := range m.Tables {
		var n int64
		require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{tbl.Name}.Sanitize()).Scan(&n))
		out[tbl.Name] = n
	}
	return out
}

func TestImportRefusesAndLeavesTargetUntouched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := testdb.NewSchema(t)
	seed(t, src)
	dir, res := export(t, src)
	m := res.Manifest

	// A target holding data is refused, and kept.
	dst := testdb.NewSchema(t)
	_, err := dst.Pool.Exec(ctx, `INSERT INTO users (name, email) VALUES ('Other', 'other@school.test')`)
	require.NoError(t, err)
	before := countAll(t, dst, m)
	_, err = dump.Import(ctx, dst.Pool, dir, dump.Options{Schema: dst.Schema})
	require.ErrorIs(t, err, dump.ErrNotEmpty)
	require.ErrorContains(t, err, "users")
	require.ErrorContains(t, err, "--replace")
	require.Equal(t, before, countAll(t, dst, m))

	// A changed file fails its checksum before anything is written.
	bad := copyDir(t, dir)
	edit(t, filepath.Join(bad, "messages.jsonl"), func(s string) string { return strings.Replace(s, "message 3", "message 9", 1) })
	_, err = dump.Import(ctx, dst.Pool, bad, dump.Options{Schema: dst.Schema, Replace: true})
	require.ErrorContains(t, err, "messages.jsonl does not match its checksum")
	require.Equal(t, before, countAll(t, dst, m))

	// A row the database refuses (checksum made to match) rolls the whole import back, even
	// with --replace: the target keeps its data.
	bad = copyDir(t, dir)
	edit(t, filepath.Join(bad, "messages.jsonl"), func(s string) string { return strings.Replace(s, `"sender_id":`, `"sender_id":999`, 1) })
	rehash(t, bad, "messages")
	_, err = dump.Import(ctx, dst.Pool, bad, dump.Options{Schema: dst.Schema, Replace: true})
	require.ErrorContains(t, err, "importing messages")
	require.ErrorContains(t, err, "messages_sender_id_fkey")
	require.Equal(t, before, countAll(t, dst, m))

	// An export from another schema version is refused.
	bad = copyDir(t, dir)
	edit(t, filepath.Join(bad, dump.ManifestFile), func(s string) string {
		return strings.Replace(s, fmt.Sprintf(`"schemaVersion": %d`, m.SchemaVersion), fmt.Sprintf(`"schemaVersion": %d`, m.SchemaVersion-1), 1)
	})
	_, err = dump.Import(ctx, dst.Pool, bad, dump.Options{Schema: dst.Schema, Replace: true})
	require.ErrorContains(t, err, fmt.Sprintf("the target is at schema version %d and the export at %d", m.SchemaVersion, m.SchemaVersion-1))
	require.Equal(t, before, countAll(t, dst, m))

	// A manifest cannot name files outside its directory.
	bad = copyDir(t, dir)
	edit(t, filepath.Join(bad, dump.ManifestFile), func(s string) string {
		return strings.Replace(s, `"file": "users.jsonl"`, `"file": "../users.jsonl"`, 1)
	})
	_, err = dump.Import(ctx, dst.Pool, bad, dump.Options{Schema: dst.Schema, Replace: true})
	require.ErrorContains(t, err, "is not a table of an export")

	// An unmigrated target is told what to do.
	empty := testdb.NewEmptySchema(t)
	_, err = dump.Import(ctx, empty.Pool, dir, dump.Options{Schema: empty.Schema})
	require.ErrorContains(t, err, "ripple migrate")

	// --replace swaps the data for the export's.
	_, err = dump.Import(ctx, dst.Pool, dir, dump.Options{Schema: dst.Schema, Replace: true})
	require.NoError(t, err)
	requireSameTables(t, src, dst, m)
}

func TestExportRefusesNonEmptyDirectory(t *testing.T) {
	t.Parallel()
	src := testdb.NewSchema(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("mine"), 0o644))
	_, err := dump.Export(context.Background(), src.Pool, dir, dump.Options{Schema: src.Schema})
	require.ErrorContains(t, err, "is not empty")
	body, err := os.ReadFile(filepath.Join(dir, "keep.txt"))
	require.NoError(t, err)
	require.Equal(t, "mine", string(body))

	// An empty database exports to empty files that import.
	out, res := export(t, src)
	for _, tbl := range res.Manifest.Tables {
		require.Zero(t, tbl.Rows)
	}
	dst := testdb.NewSchema(t)
	_, err = dump.Import(context.Background(), dst.Pool, out, dump.Options{Schema: dst.Schema})
	require.NoError(t, err)
}

// Progress goes to the writer as plain lines when it is not a terminal.
func TestExportImportProgressLines(t *testing.T) {
	t.Parallel()
	src := testdb.NewSchema(t)
	seed(t, src)
	var out bytes.Buffer
	dir := filepath.Join(t.TempDir(), "x")
	_, err := dump.Export(context.Background(), src.Pool, dir, dump.Options{Schema: src.Schema, Progress: &out})
	require.NoError(t, err)
	require.Contains(t, out.String(), "exporting messages: 7 rows done in ")
	out.Reset()
	dst := testdb.NewSchema(t)
	_, err = dump.Import(context.Background(), dst.Pool, dir, dump.Options{Schema: dst.Schema, Progress: &out})
	require.NoError(t, err)
	require.Contains(t, out.String(), "verifying checksums: ")
	require.Regexp(t, `importing: \d+ rows done in `, out.String())
	require.NotContains(t, out.String(), "\r")
}

func copyDir(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "copy")
	require.NoError(t, os.CopyFS(out, os.DirFS(dir)))
	return out
}

func edit(t *testing.T, path string, f func(string) string) {
	t.Helper()
	body, err := os.ReadFile(path)
	require.NoError(t, err)
	changed := f(string(body))
	require.NotEqual(t, string(body), changed, "the edit of %s changed nothing", path)
	require.NoError(t, os.WriteFile(path, []byte(changed), 0o644))
}

// rehash makes the manifest's checksum of a table match its edited file.
func rehash(t *testing.T, dir, table string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(dir, table+".jsonl"))
	require.NoError(t, err)
	sum := sha256.Sum256(body)
	var m dump.Manifest
	raw, err := os.ReadFile(filepath.Join(dir, dump.ManifestFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &m))
	for i := range m.Tables {
		if m.Tables[i].Name == table {
			m.Tables[i].SHA256 = hex.EncodeToString(sum[:])
		}
	}
	raw, err = json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, dump.ManifestFile), raw, 0o644))
}

// Enough rows to cross both batch limits on import: 2,500 messages (rows per batch) and 300
// vectors of about 20 KB of text each (bytes per batch).
func TestImportInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := testdb.NewSchema(t)
	for _, sql := range []string{
		`INSERT INTO users (name, email) VALUES ('Ann', 'ann@school.test'), ('Bo', 'bo@school.test')`,
		`INSERT INTO conversations (type) VALUES ('group')`,
		`INSERT INTO messages (sender_id, conversation_id, body)
  SELECT 1 + i % 2, 1, 'message ' || i FROM generate_series(1, 2500) i`,
		`INSERT INTO message_embeddings (message_id, conversation_id, sender_id, embedding, model)
  SELECT m.id, 1, m.sender_id, (SELECT array_agg(random() - 0.5)::vector(1536) FROM generate_series(1, 1536) g WHERE g > m.id * 0), 'local/test@1536'
  FROM messages m WHERE m.id <= 300`,
	} {
		_, err := src.Pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	dir, res := export(t, src)
	st, err := os.Stat(filepath.Join(dir, "message_embeddings.jsonl"))
	require.NoError(t, err)
	require.Greater(t, st.Size(), int64(4<<20), "the vectors pass one batch's bytes")

	dst := testdb.NewSchema(t)
	_, err = dump.Import(ctx, dst.Pool, dir, dump.Options{Schema: dst.Schema})
	require.NoError(t, err)
	// 2,500 messages, each queued for embedding (schema 0008), 300 embeddings, 2 users, 1 conversation.
	require.Equal(t, int64(2500+2500+300+2+1), requireSameTables(t, src, dst, res.Manifest))
	again, _ := export(t, dst)
	require.Equal(t, readDir(t, dir), readDir(t, again))
}

package schema_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/schema"
)

func TestMigrateCreatesEverythingAndIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewEmptySchema(t)

	first, err := schema.Migrate(ctx, db.Pool, &schema.MigrateOpts{Schema: db.Schema})
	require.NoError(t, err)
	require.NotEmpty(t, first.Applied)
	require.Positive(t, first.RiverApplied)

	catalog := func() []string {
		rows, err := db.Pool.Query(ctx, `
			SELECT c.relkind::text || ':' || c.relname FROM pg_class c
			WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'i')
			UNION ALL
			SELECT 't:' || tgname || '@' || tgrelid::regclass::text FROM pg_trigger
			WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = $1::regnamespace)
			ORDER BY 1`, db.Schema)
		require.NoError(t, err)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return names
	}
	before := catalog()

	for _, want := range []string{
		"r:users", "i:users_email_lower",
		"r:conversations", "i:conversations_direct_pair",
		"r:conversation_participants", "i:conversation_participants_pkey", "i:conversation_participants_user_joined",
		"r:conversation_read_states", "i:conversation_read_states_pkey",
		"t:ripple_capture_upd@conversation_read_states",
		"r:messages", "i:messages_conversation_created",
		"r:message_embeddings", "i:message_embeddings_hnsw", "i:message_embeddings_conversation", "i:message_embeddings_message_id_key",
		"r:river_job", "r:ripple_migration", "r:ripple_mutation_log",
		"t:ripple_capture_ins@messages", "t:ripple_capture_upd@messages", "t:ripple_capture_del@messages",
	} {
		require.Contains(t, before, want)
	}

	// The HNSW index uses cosine distance, and the vector extension is installed.
	var indexDef string
	require.NoError(t, db.Pool.QueryRow(ctx,
		"SELECT pg_get_indexdef($1::regclass)", db.Schema+".message_embeddings_hnsw").Scan(&indexDef))
	require.Contains(t, indexDef, "USING hnsw (embedding vector_cosine_ops)")
	var extVersion string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT extversion FROM pg_extension WHERE extname = 'vector'").Scan(&extVersion))
	require.Regexp(t, `^0\.[8-9]|^[1-9]`, extVersion)

	// No river_* or ripple_* table is captured.
	for _, name := range before {
		require.NotRegexp(t, `^t:.*@(.*\.)?(river|ripple)_`, name)
	}

	second, err := schema.Migrate(ctx, db.Pool, &schema.MigrateOpts{Schema: db.Schema})
	require.NoError(t, err)
	require.Empty(t, second.Applied)
	require.Zero(t, second.RiverApplied)
	require.Equal(t, before, catalog())

	// The engine's migrations run first, then the chat's, then the auth service's (its tables
	// reference the chat's users), each part numbered on its own.
	var order []string
	for _, m := range first.Applied {
		order = append(order, m.ID())
	}
	all, err := schema.Migrations()
	require.NoError(t, err)
	require.Len(t, order, len(all))
	require.Equal(t, []string{"engine/0001_engine", "engine/0002_capture_keys", "engine/0003_capture_rows",
		"engine/0004_capture_skip", "engine/0005_change_feed", "app/0001_chat", "app/0002_embedding_claims", "app/0003_embedding_storage", "app/0004_embedding_queue",
		"app/0005_read_state", "app/0006_user_blocks", "app/0007_message_text_search",
		"app/0008_message_enqueue", "app/0009_groups", "app/0010_search_query_vectors", "app/0011_read_states", "app/0012_queue_without_message_check", "auth/0001_auth", "auth/0002_convex_scrypt", "auth/0003_retention"}, order)
}

// A database migrated when the engine's and the chat's migrations shared one numbering
// (0001–0008) is recognised as up to date: its records move to parts, nothing runs again.
func TestMigrateRenumbersASingleNumberingDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewEmptySchema(t)
	_, err := schema.Migrate(ctx, db.Pool, &schema.MigrateOpts{Schema: db.Schema})
	require.NoError(t, err)

	// Put the migration table back the way the old migrator left it, and take away what the
	// chat's migrations after that numbering (app/0005 on), the engine's (engine/0004 on) and the
	// auth service's (auth/0003 on) made: such a database predates them. (ripple_capture_install_all
	// is left as engine/0005 replaced it: 0005 replaces it again.)
	table := pgx.Identifier{db.Schema, "ripple_migration"}.Sanitize()
	for _, stmt := range []string{
		"DROP TABLE conversation_read_states",
		"DROP TABLE user_blocks",
		"DROP TABLE ripple_capture_skip",
		"DROP TABLE ripple_change_feed",
		"DROP FUNCTION ripple_change_feed_publication(), ripple_capture_install_triggers(), ripple_capture_drop_triggers(), " +
			"ripple_capture_install_logical(), ripple_slots()",
		"DROP TRIGGER message_embedding_enqueue ON messages",
		"DROP FUNCTION message_embedding_enqueue()",
		"DROP TRIGGER message_embedding_dequeue ON messages",
		"DROP FUNCTION message_embedding_dequeue()",
		"ALTER TABLE message_embedding_queue ADD CONSTRAINT message_embedding_queue_message_id_fkey " +
			"FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE",
		"DROP INDEX messages_body_fts",
		"DROP TABLE search_query_vectors",
		"ALTER TABLE conversations DROP COLUMN name",
		"ALTER TABLE conversation_participants DROP COLUMN admin",
		"ALTER TABLE messages DROP COLUMN kind",
		"DROP INDEX ripple_auth_refresh_tokens_spent",
		"DROP INDEX ripple_auth_sessions_revoked",
		"DROP TABLE " + table,
		"CREATE TABLE " + table + " (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
		"INSERT INTO " + table + " (version, name) VALUES (1, 'engine'), (2, 'chat'), (3, 'auth'), (4, 'embedding_claims'), " +
			"(5, 'embedding_storage'), (6, 'capture_keys'), (7, 'capture_rows'), (8, 'embedding_queue')",
	} {
		_, err := db.Pool.Exec(ctx, stmt)
		require.NoError(t, err)
	}

	res, err := schema.Migrate(ctx, db.Pool, &schema.MigrateOpts{Schema: db.Schema})
	require.NoError(t, err)
	var applied []string
	for _, m := range res.Applied {
		applied = append(applied, m.ID())
	}
	require.Equal(t, []string{"engine/0004_capture_skip", "engine/0005_change_feed", "app/0005_read_state", "app/0006_user_blocks", "app/0007_message_text_search", "app/0008_message_enqueue", "app/0009_groups", "app/0010_search_query_vectors", "app/0011_read_states", "app/0012_queue_without_message_check", "auth/0002_convex_scrypt", "auth/0003_retention"}, applied,
		"a migrated database must not run its migrations again; only the newer ones run")
	rows, err := db.Pool.Query(ctx, "SELECT part || '/' || version || '_' || name FROM "+table+" ORDER BY part, version")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"app/1_chat", "app/2_embedding_claims", "app/3_embedding_storage", "app/4_embedding_queue",
		"app/5_read_state", "app/6_user_blocks", "app/7_message_text_search", "app/8_message_enqueue", "app/9_groups", "app/10_search_query_vectors", "app/11_read_states", "app/12_queue_without_message_check",
		"auth/1_auth", "auth/2_convex_scrypt", "auth/3_retention", "engine/1_engine", "engine/2_capture_keys", "engine/3_capture_rows", "engine/4_capture_skip", "engine/5_change_feed"}, got)

	// A version this binary does not know means a newer database: refused, nothing changed.
	_, err = db.Pool.Exec(ctx, "DROP TABLE "+table)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "CREATE TABLE "+table+" (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "INSERT INTO "+table+" (version, name) VALUES (1, 'engine'), (9, 'from_the_future')")
	require.NoError(t, err)
	_, err = schema.Migrate(ctx, db.Pool, &schema.MigrateOpts{Schema: db.Schema})
	require.ErrorContains(t, err, "migration 0009 is recorded but unknown")
	var hasPart bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'ripple_migration' AND column_name = 'part')", db.Schema).Scan(&hasPart))
	require.False(t, hasPart, "a refused renumbering must leave the table as it was")
}

// 0011 moves the read positions kept on conversation_participants into conversation_read_states
// (a row where both halves were set; none where nothing was read), and a member's row goes with
// their membership.
func TestMigrateMovesReadPositions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchema(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	// The schema as 0010 left it, with positions on the participant rows.
	exec("DROP TABLE conversation_read_states")
	exec("ALTER TABLE conversation_participants ADD COLUMN last_read_message_id bigint, ADD COLUMN last_read_at timestamptz")
	exec("DELETE FROM " + pgx.Identifier{db.Schema, "ripple_migration"}.Sanitize() + " WHERE part = 'app' AND version = 11")

	exec("INSERT INTO users (name, email) VALUES ('A', 'a@example.com'), ('B', 'b@example.com'), ('C', 'c@example.com')")
	exec("INSERT INTO conversations (type) VALUES ('group')")
	exec("INSERT INTO conversation_participants (conversation_id, user_id) SELECT c.id, u.id FROM conversations c, users u")
	exec("INSERT INTO messages (sender_id, conversation_id, body) SELECT min(u.id), min(c.id), 'hi' FROM users u, conversations c")
	exec(`UPDATE conversation_participants p SET (last_read_message_id, last_read_at) = (SELECT id, created_at FROM messages)
		FROM users u WHERE u.id = p.user_id AND u.email = 'a@example.com'`)
	exec(`UPDATE conversation_participants p SET last_read_message_id = (SELECT id FROM messages)
		FROM users u WHERE u.id = p.user_id AND u.email = 'b@example.com'`) // half a position: nothing read

	res, err := schema.Migrate(ctx, db.Pool, &schema.MigrateOpts{Schema: db.Schema})
	require.NoError(t, err)
	require.Len(t, res.Applied, 1)
	require.Equal(t, "app/0011_read_states", res.Applied[0].ID())

	var moved []string
	rows, err := db.Pool.Query(ctx, `SELECT u.email FROM conversation_read_states r
		JOIN users u ON u.id = r.user_id JOIN messages m ON m.id = r.last_read_message_id AND m.created_at = r.last_read_at`)
	require.NoError(t, err)
	moved, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"a@example.com"}, moved)
	var left int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'conversation_participants' AND column_name LIKE 'last_read%'`, db.Schema).Scan(&left))
	require.Zero(t, left)

	exec("DELETE FROM conversation_participants WHERE user_id = (SELECT id FROM users WHERE email = 'a@example.com')")
	var states int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM conversation_read_states").Scan(&states))
	require.Zero(t, states, "a member who leaves loses their read state")
}

func TestMessageBodyConstraint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewSchema(t)

	var userID, convID int64
	require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO users (name, email) VALUES ('A', 'a@example.com') RETURNING id").Scan(&userID))
	require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO conversations (type) VALUES ('group') RETURNING id").Scan(&convID))
	insert := func(body string) error {
		_, err := db.Pool.Exec(ctx, "INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3)", userID, convID, body)
		return err
	}
	require.NoError(t, insert("hello"))
	require.Error(t, insert(""))
	require.Error(t, insert("   "))
	require.Error(t, insert(strings.Repeat("a", 4001)))
	_, err := db.Pool.Exec(ctx, "INSERT INTO users (name, email) VALUES ('B', 'A@EXAMPLE.COM')")
	require.Error(t, err, "email is unique case-insensitively")
}

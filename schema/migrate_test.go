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

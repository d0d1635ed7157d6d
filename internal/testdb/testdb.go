// Package testdb gives each test a Postgres schema of its own, fully migrated, so tests run in
// parallel against one real database. It needs a server with pgvector: `make db` provides one,
// or set DATABASE_URL (TEST_DATABASE_URL wins when both are set).
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/schema"
)

// DefaultURL is the database `make db` brings up.
const DefaultURL = "postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable"

// URL is the database tests run against.
func URL() string {
	for _, name := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(name); v != "" {
			return v
		}
	}
	return DefaultURL
}

// Bundle is what NewSchema returns.
type Bundle struct {
	Pool   *pgxpool.Pool
	Schema string
	URL    string
}

// NewSchema creates a fresh schema named after nothing in particular, migrates it, and returns a
// pool whose connections use it. The schema is dropped when the test ends.
func NewSchema(t testing.TB) *Bundle {
	t.Helper()
	return newSchema(t, true)
}

// NewEmptySchema is NewSchema without migrations, for tests of the migrator itself.
func NewEmptySchema(t testing.TB) *Bundle {
	t.Helper()
	return newSchema(t, false)
}

// NewSchemaAt is NewSchema on another server (a private one of pglocal, say).
func NewSchemaAt(t testing.TB, url string) *Bundle {
	t.Helper()
	return newSchemaAt(t, url, true)
}

func newSchema(t testing.TB, migrate bool) *Bundle {
	return newSchemaAt(t, URL(), migrate)
}

func newSchemaAt(t testing.TB, url string, migrate bool) *Bundle {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "t_" + hex.EncodeToString(suffix[:])

	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err, "connecting to %s (run `make db` or set DATABASE_URL)", url)
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+name)
	require.NoError(t, err)
	require.NoError(t, admin.Close(ctx))

	cfg, err := schema.PoolConfig(url, name)
	require.NoError(t, err)
	cfg.MaxConns = 8
	// Tests find their own backends by this name (to terminate them, say).
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)

	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Logf("dropping schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Logf("dropping schema %s: %v", name, err)
		}
	})

	if migrate {
		_, err = schema.Migrate(ctx, pool, &schema.MigrateOpts{Schema: name})
		require.NoError(t, err)
	}
	return &Bundle{Pool: pool, Schema: name, URL: url}
}

// NewPoolFor opens a second pool on an existing test schema, as another process would.
func NewPoolFor(t testing.TB, b *Bundle) *pgxpool.Pool {
	t.Helper()
	cfg, err := schema.PoolConfig(b.URL, b.Schema)
	require.NoError(t, err)
	cfg.MaxConns = 8
	cfg.ConnConfig.RuntimeParams["application_name"] = b.Schema
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// Package testdb gives each test a Postgres schema of its own, fully migrated, so tests run in
// parallel against one real database. It needs a server with pgvector: `make db` provides one,
// or set DATABASE_URL (TEST_DATABASE_URL wins when both are set).
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/engine/ripplemigrate"
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

// NewAppSchema is NewSchema for an application other than the chat: the schema is migrated
// with the engine's migrations and app's (ripplemigrate.Opts.App).
func NewAppSchema(t testing.TB, app fs.FS) *Bundle {
	t.Helper()
	b := newSchema(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := ripplemigrate.Migrate(ctx, b.Pool, &ripplemigrate.Opts{Schema: b.Schema, App: app})
	require.NoError(t, err)
	return b
}

// NewSchemaAt is NewSchema on another server (a private one of pglocal, say).
func NewSchemaAt(t testing.TB, url string) *Bundle {
	t.Helper()
	return newSchemaAt(t, url, true)
}

// Create makes an empty schema and a pool on it outside a test: for runnable examples, which
// have no testing.T. The caller drops it with Drop.
func Create(ctx context.Context) (*Bundle, error) { return createAt(ctx, URL()) }

func createAt(ctx context.Context, url string) (*Bundle, error) {
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "t_" + hex.EncodeToString(suffix[:])

	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s (run `make db` or set DATABASE_URL): %w", url, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return nil, err
	}
	cfg, err := schema.PoolConfig(url, name)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 8
	// Tests find their own backends by this name (to terminate them, say).
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Bundle{Pool: pool, Schema: name, URL: url}, nil
}

// Drop closes the pool and drops the schema.
func (b *Bundle) Drop(ctx context.Context) error {
	b.Pool.Close()
	conn, err := pgx.Connect(ctx, b.URL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA "+b.Schema+" CASCADE")
	return err
}

func newSchema(t testing.TB, migrate bool) *Bundle {
	return newSchemaAt(t, URL(), migrate)
}

func newSchemaAt(t testing.TB, url string, migrate bool) *Bundle {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	b, err := createAt(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Drop(ctx); err != nil {
			t.Logf("dropping schema %s: %v", b.Schema, err)
		}
	})

	if migrate {
		_, err = schema.Migrate(ctx, b.Pool, &schema.MigrateOpts{Schema: b.Schema})
		require.NoError(t, err)
	}
	return b
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

package schema

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine/ripplemigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// App is the chat's migrations, for ripplemigrate.Opts.App.
func App() fs.FS {
	f, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return f
}

// renumbered maps the versions a database recorded while the engine's and the chat's migrations
// shared one numbering (0001–0008) to their parts.
var renumbered = map[int]ripplemigrate.Ref{
	1: {Part: "engine", Version: 1},              // engine
	2: {Part: ripplemigrate.AppPart, Version: 1}, // chat
	3: {Part: "auth", Version: 1},                // auth
	4: {Part: ripplemigrate.AppPart, Version: 2}, // embedding_claims
	5: {Part: ripplemigrate.AppPart, Version: 3}, // embedding_storage
	6: {Part: "engine", Version: 2},              // capture_keys
	7: {Part: "engine", Version: 3},              // capture_rows
	8: {Part: ripplemigrate.AppPart, Version: 4}, // embedding_queue
}

// MigrateOpts are optional settings for Migrate.
type MigrateOpts struct {
	// Schema is the Postgres schema to migrate. Empty means "public".
	Schema string
	// Logger receives one line per applied migration. Nil discards.
	Logger *slog.Logger
}

// Migrate applies the engine's migrations, the chat's, and River's (ripplemigrate.Migrate).
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts *MigrateOpts) (*ripplemigrate.Result, error) {
	if opts == nil {
		opts = &MigrateOpts{}
	}
	return ripplemigrate.Migrate(ctx, pool, &ripplemigrate.Opts{Schema: opts.Schema, Logger: opts.Logger, App: App(), Renumbered: renumbered})
}

// Migrations lists every migration Migrate applies, in order.
func Migrations() ([]ripplemigrate.Migration, error) {
	return ripplemigrate.Migrations(&ripplemigrate.Opts{App: App()})
}

// PoolConfig parses a connection string and sets every connection's search_path to the given
// schema (then public, where the vector extension lives), so unqualified SQL (sqlc's) lands there.
func PoolConfig(databaseURL, schemaName string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	if schemaName == "" {
		schemaName = "public"
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schemaName}.Sanitize() + ", public"
	return cfg, nil
}

// Package ripplemigrate applies Ripple's migrations, as rivermigrate does River's: the engine's
// own (change capture, the mutation log), the application's, the auth service's (whose tables
// reference the application's users) and River's, each part numbered on its own and recorded
// in ripple_migration, and then (re)installs change capture on every table.
package ripplemigrate

import (
	"context"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine/internal/migrate"
)

// Migration is one numbered SQL file of a part: the engine's ("engine", "auth") or the
// application's ("app").
type Migration = migrate.Migration

// Ref names one migration of a part.
type Ref = migrate.Ref

// Result says what Migrate did.
type Result = migrate.Result

// AppPart names the application's migrations in ripple_migration.
const AppPart = "app"

// Opts configure Migrate.
type Opts struct {
	// Schema is the Postgres schema to migrate (the engine's Config.Schema). Empty means "public".
	Schema string
	// Logger receives one line per applied migration. Nil discards.
	Logger *slog.Logger
	// App holds the application's migrations, NNNN_name.sql files at its root, numbered on their
	// own. They run after the engine's and before the auth service's, whose tables reference
	// the application's users table (users.id bigint).
	App fs.FS
	// Renumbered maps the versions recorded by a database migrated when the engine's and the
	// application's migrations shared one numbering to what they are now.
	Renumbered map[int]Ref
}

func (o *Opts) parts() []migrate.Part {
	parts := []migrate.Part{migrate.EnginePart}
	if o.App != nil {
		parts = append(parts, migrate.Part{Name: AppPart, FS: o.App})
	}
	return append(parts, migrate.AuthPart)
}

// Migrate applies every outstanding migration: the engine's, the application's, the auth
// service's and River's, and then (re)installs change capture on every table. It takes an
// advisory lock, so processes starting together migrate one at a time, and running it again on
// a migrated database changes nothing.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts *Opts) (*Result, error) {
	if opts == nil {
		opts = &Opts{}
	}
	return migrate.Run(ctx, pool, migrate.Opts{Schema: opts.Schema, Logger: opts.Logger, Parts: opts.parts(), Renumbered: opts.Renumbered})
}

// Migrations lists every migration Migrate would consider, in the order it applies them.
func Migrations(opts *Opts) ([]Migration, error) {
	if opts == nil {
		opts = &Opts{}
	}
	var out []Migration
	for _, p := range opts.parts() {
		ms, err := migrate.Read(p)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

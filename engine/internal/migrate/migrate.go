// Package migrate applies numbered SQL migrations in parts, each numbered on its own: the
// engine's (change capture, the mutation log), the application's, and the auth service's (which
// reference the application's users table), then River's through rivermigrate, then reinstalls
// change capture on every table. Each part's versions are recorded in ripple_migration under the
// part's name, so the engine and an application can add migrations without taking each other's
// numbers.
package migrate

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed sql/engine/*.sql sql/auth/*.sql
var engineFiles embed.FS

// Migration is one numbered SQL file of a part.
type Migration struct {
	Part    string
	Version int
	Name    string
	SQL     string
}

// ID names a migration across parts: "engine/0001_engine".
func (m Migration) ID() string { return fmt.Sprintf("%s/%04d_%s", m.Part, m.Version, m.Name) }

// Part is a set of migrations numbered on its own.
type Part struct {
	Name string
	FS   fs.FS // NNNN_name.sql files at its root
}

// The engine's parts. EnginePart runs before the application's migrations, AuthPart after them.
var (
	EnginePart = Part{Name: "engine", FS: sub("sql/engine")}
	AuthPart   = Part{Name: "auth", FS: sub("sql/auth")}
)

func sub(dir string) fs.FS {
	f, err := fs.Sub(engineFiles, dir)
	if err != nil {
		panic(err)
	}
	return f
}

// Read returns a part's migrations in version order.
func Read(p Part) ([]Migration, error) {
	entries, err := fs.ReadDir(p.FS, ".")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s/%s is not named NNNN_name.sql", p.Name, e.Name())
		}
		body, err := fs.ReadFile(p.FS, e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Part: p.Name, Version: version, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("two migrations of %s have version %d", p.Name, out[i].Version)
		}
	}
	return out, nil
}

// Opts configure Run.
type Opts struct {
	// Schema is the Postgres schema to migrate. Empty means "public".
	Schema string
	// Logger receives one line per applied migration. Nil discards.
	Logger *slog.Logger
	// Parts run in order.
	Parts []Part
	// Renumbered maps the versions a database recorded when every migration shared one
	// numbering (before the parts were numbered apart) to what they are now, so such a database
	// is recognised as migrated.
	Renumbered map[int]Ref
}

// Ref names one migration of a part.
type Ref struct {
	Part    string
	Version int
}

// Result says what a run did.
type Result struct {
	Applied      []Migration // in the order applied
	RiverApplied int         // River migrations applied
}

// advisoryLockKey serialises concurrent migrators (several processes starting at once).
const advisoryLockKey = 0x7269_7070_6c65 // "ripple"

// Run applies every outstanding migration of opts.Parts, then River's, and reinstalls change
// capture when anything changed. Running it again on a migrated database changes nothing.
func Run(ctx context.Context, pool *pgxpool.Pool, opts Opts) (*Result, error) {
	schemaName := opts.Schema
	if schemaName == "" {
		schemaName = "public"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var todo []Migration
	for _, p := range opts.Parts {
		ms, err := Read(p)
		if err != nil {
			return nil, err
		}
		todo = append(todo, ms...)
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", advisoryLockKey); err != nil {
		return nil, err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", advisoryLockKey) }()

	ident := pgx.Identifier{schemaName}.Sanitize()
	applied, err := prepare(ctx, conn.Conn(), ident, opts.Renumbered)
	if err != nil {
		return nil, fmt.Errorf("preparing schema %s: %w", schemaName, err)
	}

	result := &Result{}
	for _, m := range todo {
		if applied[Ref{m.Part, m.Version}] {
			continue
		}
		err := inSchema(ctx, conn.Conn(), ident, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+ident+".ripple_migration (part, version, name) VALUES ($1, $2, $3)", m.Part, m.Version, m.Name)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", m.ID(), err)
		}
		logger.Info("applied migration", "migration", m.ID(), "schema", schemaName)
		result.Applied = append(result.Applied, m)
	}

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schemaName, Logger: logger})
	if err != nil {
		return nil, err
	}
	riverResult, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	result.RiverApplied = len(riverResult.Versions)

	// Capture is reinstalled only when something changed, so a no-op run stays a no-op.
	if len(result.Applied) > 0 {
		err := inSchema(ctx, conn.Conn(), ident, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "SELECT ripple_capture_install_all()")
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("installing change capture: %w", err)
		}
	}
	return result, nil
}

// prepare creates the schema and the migration table (moving a table of the single-numbering
// days to parts), and returns the migrations already applied.
func prepare(ctx context.Context, conn *pgx.Conn, ident string, renumbered map[int]Ref) (map[Ref]bool, error) {
	setup := []string{
		"CREATE SCHEMA IF NOT EXISTS " + ident,
		"CREATE EXTENSION IF NOT EXISTS vector SCHEMA public",
		`CREATE TABLE IF NOT EXISTS ` + ident + `.ripple_migration (
			part       text        NOT NULL,
			version    integer     NOT NULL,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (part, version))`,
	}
	for _, stmt := range setup {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, err
		}
	}
	var legacy bool
	if err := conn.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM pg_attribute
		WHERE attrelid = ($1 || '.ripple_migration')::regclass AND attname = 'part' AND NOT attisdropped)`, ident).Scan(&legacy); err != nil {
		return nil, err
	}
	if legacy {
		if err := renumber(ctx, conn, ident, renumbered); err != nil {
			return nil, fmt.Errorf("renumbering recorded migrations: %w", err)
		}
	}
	rows, err := conn.Query(ctx, "SELECT part, version FROM "+ident+".ripple_migration")
	if err != nil {
		return nil, err
	}
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Ref, error) {
		var r Ref
		var v int32
		err := row.Scan(&r.Part, &v)
		r.Version = int(v)
		return r, err
	})
	if err != nil {
		return nil, err
	}
	applied := make(map[Ref]bool, len(refs))
	for _, r := range refs {
		applied[r] = true
	}
	return applied, nil
}

// renumber moves a migration table with one numbering to parts, in one transaction. A recorded
// version that renumbered does not know is refused: the database is newer than this binary.
func renumber(ctx context.Context, conn *pgx.Conn, ident string, renumbered map[int]Ref) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT version FROM "+ident+".ripple_migration")
		if err != nil {
			return err
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		stmts := []string{
			"ALTER TABLE " + ident + ".ripple_migration DROP CONSTRAINT ripple_migration_pkey",
			"ALTER TABLE " + ident + ".ripple_migration ADD COLUMN part text",
		}
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		for _, v := range versions {
			ref, ok := renumbered[int(v)]
			if !ok {
				return fmt.Errorf("migration %04d is recorded but unknown to this version of Ripple", v)
			}
			if _, err := tx.Exec(ctx, "UPDATE "+ident+".ripple_migration SET part = $1, version = $2 WHERE version = $3 AND part IS NULL",
				ref.Part, ref.Version, v); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, "ALTER TABLE "+ident+".ripple_migration ALTER COLUMN part SET NOT NULL, ADD PRIMARY KEY (part, version)")
		return err
	})
}

func inSchema(ctx context.Context, conn *pgx.Conn, ident string, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident+", public"); err != nil {
			return err
		}
		return fn(tx)
	})
}

package schema

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

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns every embedded migration in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: version, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("two migrations have version %d", out[i].Version)
		}
	}
	return out, nil
}

// MigrateOpts are optional settings for Migrate.
type MigrateOpts struct {
	// Schema is the Postgres schema to migrate. Empty means "public".
	Schema string
	// Logger receives one line per applied migration. Nil discards.
	Logger *slog.Logger
}

// MigrateResult says what a run did.
type MigrateResult struct {
	Applied      []int // Ripple migration versions applied by this run
	RiverApplied int   // River migrations applied by this run
}

// advisoryLockKey serialises concurrent migrators (several processes starting at once).
const advisoryLockKey = 0x7269_7070_6c65 // "ripple"

// Migrate applies every outstanding migration, River's included, and reinstalls change capture.
// Running it again on a migrated database changes nothing.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts *MigrateOpts) (*MigrateResult, error) {
	if opts == nil {
		opts = &MigrateOpts{}
	}
	schemaName := opts.Schema
	if schemaName == "" {
		schemaName = "public"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	migrations, err := Migrations()
	if err != nil {
		return nil, err
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
	setup := []string{
		"CREATE SCHEMA IF NOT EXISTS " + ident,
		"CREATE EXTENSION IF NOT EXISTS vector SCHEMA public",
		`CREATE TABLE IF NOT EXISTS ` + ident + `.ripple_migration (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`,
	}
	for _, stmt := range setup {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("preparing schema %s: %w", schemaName, err)
		}
	}

	rows, err := conn.Query(ctx, "SELECT version FROM "+ident+".ripple_migration")
	if err != nil {
		return nil, err
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	applied := make(map[int]bool, len(done))
	for _, v := range done {
		applied[int(v)] = true
	}

	result := &MigrateResult{}
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident+", public"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+ident+".ripple_migration (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		logger.Info("applied migration", "version", m.Version, "name", m.Name, "schema", schemaName)
		result.Applied = append(result.Applied, m.Version)
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
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident+", public"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "SELECT ripple_capture_install_all()")
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("installing change capture: %w", err)
		}
	}
	return result, nil
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

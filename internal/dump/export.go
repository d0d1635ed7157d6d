package dump

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/internal/progress"
	"github.com/ripplehq/ripple/queries"
)

// Options are what Export and Import share.
type Options struct {
	// Schema is the Postgres schema the pool's search_path starts with. Empty means "public".
	Schema string
	// Progress receives progress bars or lines (stderr). Nil: silent.
	Progress io.Writer
	// Replace lets Import empty a target that already holds data.
	Replace bool
	// DryRun makes Import and ImportConvex do everything, every check and constraint included,
	// and roll back instead of committing: what they report is what would be imported. The
	// tables are locked meanwhile, as by a real import.
	DryRun bool
	// EmbeddingModel, for ImportConvex, is the Ripple model id ("cohere/embed-v4.0@1536", as
	// `ripple reembed` lists them) the snapshot's vectors were made with. When set, the vectors
	// are kept under it (their dimensions must match its @N) and only messages without one are
	// queued for embedding; empty, every message is queued and no vector is kept.
	EmbeddingModel string
}

func (o Options) schema() string {
	if o.Schema == "" {
		return "public"
	}
	return o.Schema
}

// ExportResult is what Export wrote.
type ExportResult struct {
	Manifest *Manifest
	// PendingJobs counts jobs waiting in River (scheduled functions among them) when the
	// snapshot was taken: they are not part of the export.
	PendingJobs int64
}

// Export writes every application table of the pool's schema into dir (created if missing; it
// must be empty) from one snapshot: a REPEATABLE READ, read-only transaction. On failure it
// removes what it wrote.
func Export(ctx context.Context, pool *pgxpool.Pool, dir string, opts Options) (res *ExportResult, err error) {
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	var written []string
	defer func() {
		if err != nil {
			for _, f := range written {
				_ = os.Remove(f)
			}
		}
	}()

	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("starting the snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := checkSchema(ctx, tx, opts.Schema); err != nil {
		return nil, err
	}
	if err := queries.New().DumpSettingsSet(ctx, tx); err != nil {
		return nil, err
	}
	version, err := schemaVersion(ctx, tx, opts.schema())
	if err != nil {
		return nil, fmt.Errorf("reading the schema version: %w", err)
	}
	if version == 0 {
		return nil, errors.New("the database has no Ripple schema (nothing was ever migrated): check DATABASE_URL and --schema")
	}
	tables, err := readTables(ctx, tx)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Format: Format, SchemaVersion: version, Tables: tables}
	for i := range m.Tables {
		path := filepath.Join(dir, m.Tables[i].File)
		written = append(written, path)
		if err := exportTable(ctx, tx, &m.Tables[i], path, opts.Progress); err != nil {
			return nil, fmt.Errorf("exporting %s: %w", m.Tables[i].Name, err)
		}
	}
	pending, err := pendingJobs(ctx, tx, opts.schema())
	if err != nil {
		return nil, err
	}

	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ManifestFile)
	written = append(written, path)
	if err := writeFileSync(path, append(body, '\n')); err != nil {
		return nil, err
	}
	return &ExportResult{Manifest: m, PendingJobs: pending}, nil
}

// prepareDir creates dir, or checks that it is empty: an export never overwrites another.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: export into a new or empty directory", dir)
	}
	return nil
}

// exportTable writes one table's rows to path, counting them and hashing the file as it goes.
func exportTable(ctx context.Context, tx pgx.Tx, t *Table, path string, progressOut io.Writer) error {
	var total int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+ident(t.Name)).Scan(&total); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	hash := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, hash), 1<<20)

	bar := progress.New(progressOut, "exporting "+t.Name, total, progress.Rows)
	defer bar.Stop()
	rows, err := tx.Query(ctx, selectSQL(*t))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		line := rows.RawValues()[0]
		if _, err := w.Write(line); err != nil {
			return err
		}
		if err := w.WriteByte('\n'); err != nil {
			return err
		}
		t.Rows++
		bar.Add(1)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if t.Rows != total {
		return fmt.Errorf("read %d rows where the snapshot counted %d", t.Rows, total)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	bar.Finish()
	t.SHA256 = hex.EncodeToString(hash.Sum(nil))
	return f.Close()
}

// selectSQL reads a table as one JSON object per row, in primary-key order (text under
// COLLATE "C"). json and jsonb values become JSON strings of their text.
func selectSQL(t Table) string {
	cols := make([]string, len(t.Columns))
	collate := map[string]bool{}
	for i, c := range t.Columns {
		cols[i] = ident(c.Name)
		if isJSON(c) {
			cols[i] = fmt.Sprintf("to_json(%s::text) AS %s", ident(c.Name), ident(c.Name))
		}
		collate[c.Name] = c.collate
	}
	order := make([]string, len(t.PrimaryKey))
	for i, k := range t.PrimaryKey {
		order[i] = "x." + ident(k)
		if collate[k] {
			order[i] += ` COLLATE "C"`
		}
	}
	return fmt.Sprintf("SELECT row_to_json(x)::text FROM (SELECT %s FROM %s) x ORDER BY %s",
		strings.Join(cols, ", "), ident(t.Name), strings.Join(order, ", "))
}

// pendingJobs counts River jobs not yet finished, if River's tables are there, leaving out
// periodic ones (River marks them; every serve inserts them again).
func pendingJobs(ctx context.Context, tx pgx.Tx, schemaName string) (int64, error) {
	table := ident(schemaName) + ".river_job"
	exists, err := queries.New().DumpRelationExists(ctx, tx, table)
	if err != nil || !exists {
		return 0, err
	}
	// River's tables are not in the migration files, so sqlc cannot check this query.
	var n int64
	err = tx.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled') AND NOT coalesce((metadata->>'periodic')::bool, false)").Scan(&n)
	return n, err
}

func writeFileSync(path string, body []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

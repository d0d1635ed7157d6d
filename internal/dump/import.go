package dump

import (
	"bufio"
	"bytes"
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

// Batches of rows sent per INSERT: at most importBatchRows rows or about importBatchBytes of
// JSON (a 1536-dimension vector is ~18 KB of text).
const (
	importBatchRows  = 1000
	importBatchBytes = 4 << 20
)

// ErrNotEmpty is returned by Import when the target holds data and Options.Replace is unset.
var ErrNotEmpty = errors.New("the target database already holds data")

// ReadManifest reads and checks dir's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	body, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has no %s: not an export, or an unfinished one", dir, ManifestFile)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%s: format %q, want %q", ManifestFile, m.Format, Format)
	}
	seen := map[string]bool{}
	for _, t := range m.Tables {
		// The file name is derived, so a manifest cannot point outside the directory.
		if t.File != t.Name+".jsonl" || strings.ContainsAny(t.Name, `/\`) || t.Name == "" || seen[t.Name] {
			return nil, fmt.Errorf("%s: table %q with file %q is not a table of an export", ManifestFile, t.Name, t.File)
		}
		seen[t.Name] = true
	}
	return &m, nil
}

// Verify checks every file of the export against the manifest's row counts and checksums,
// before anything is written to a database.
func Verify(dir string, m *Manifest, progressOut io.Writer) error {
	var total int64
	for _, t := range m.Tables {
		st, err := os.Stat(filepath.Join(dir, t.File))
		if err != nil {
			return err
		}
		total += st.Size()
	}
	bar := progress.New(progressOut, "verifying checksums", total, progress.Bytes)
	defer bar.Stop()
	for _, t := range m.Tables {
		f, err := os.Open(filepath.Join(dir, t.File))
		if err != nil {
			return err
		}
		hash := sha256.New()
		lines := &lineCounter{}
		_, err = io.Copy(io.MultiWriter(hash, lines, barWriter{bar}), f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", t.File, err)
		}
		if hex.EncodeToString(hash.Sum(nil)) != t.SHA256 {
			return fmt.Errorf("%s does not match its checksum in %s: the file was changed or cut short", t.File, ManifestFile)
		}
		if lines.n != t.Rows {
			return fmt.Errorf("%s has %d rows, %s says %d", t.File, lines.n, ManifestFile, t.Rows)
		}
	}
	bar.Finish()
	return nil
}

type lineCounter struct{ n int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

type barWriter struct{ bar *progress.Bar }

func (b barWriter) Write(p []byte) (int, error) {
	b.bar.Add(int64(len(p)))
	return len(p), nil
}

// Import restores an export into the pool's schema in one transaction, after checking every
// checksum: rows keep their ids and identity sequences continue past them. The schema must be
// migrated to the export's version. A target holding data is refused (ErrNotEmpty) unless
// opts.Replace, which empties the application tables first. On any error nothing is changed.
func Import(ctx context.Context, pool *pgxpool.Pool, dir string, opts Options) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := queries.New().ImportBegin(ctx, tx); err != nil {
		return nil, err
	}
	target, err := checkTarget(ctx, tx, m, opts.schema())
	if err != nil {
		return nil, err
	}
	// Refused early, before the files are read, then checked again under the lock.
	if err := refuseData(ctx, tx, m, opts.Replace); err != nil {
		return nil, err
	}
	if err := Verify(dir, m, opts.Progress); err != nil {
		return nil, err
	}
	names := make([]string, len(m.Tables))
	for i, t := range m.Tables {
		names[i] = ident(t.Name)
	}
	// Running servers wait (their writes block) until the restore commits or rolls back.
	if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return nil, fmt.Errorf("locking the tables: %w", err)
	}
	if err := refuseData(ctx, tx, m, opts.Replace); err != nil {
		return nil, err
	}
	if opts.Replace {
		if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
			return nil, fmt.Errorf("emptying the tables: %w", err)
		}
	}

	bar := progress.New(opts.Progress, "importing", m.RowCount(), progress.Rows)
	defer bar.Stop()
	for i, t := range m.Tables {
		if err := importTable(ctx, tx, dir, t, target[i], bar); err != nil {
			return nil, fmt.Errorf("importing %s: %w", t.Name, err)
		}
	}
	if opts.DryRun {
		return m, nil // rolled back by the deferred Rollback
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	bar.Finish()
	return m, nil
}

// refuseData returns ErrNotEmpty, naming the tables, when the target holds data and replace is
// unset.
func refuseData(ctx context.Context, tx pgx.Tx, m *Manifest, replace bool) error {
	if replace {
		return nil
	}
	var holding []string
	for _, t := range m.Tables {
		var any bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident(t.Name)+")").Scan(&any); err != nil {
			return err
		}
		if any {
			holding = append(holding, t.Name)
		}
	}
	if len(holding) > 0 {
		return fmt.Errorf("%w (%s); import into an empty database, or pass --replace to delete it first", ErrNotEmpty, strings.Join(holding, ", "))
	}
	return nil
}

// checkTarget refuses a schema at another version or whose tables differ from the export's.
// It returns the target's tables in the manifest's order.
func checkTarget(ctx context.Context, tx pgx.Tx, m *Manifest, schemaName string) ([]Table, error) {
	if err := checkSchema(ctx, tx, schemaName); err != nil {
		return nil, err
	}
	version, err := schemaVersion(ctx, tx, schemaName)
	if err != nil {
		return nil, err
	}
	switch {
	case version == 0:
		return nil, fmt.Errorf("the target has no Ripple schema: run `ripple migrate` on it first")
	case version < m.SchemaVersion:
		return nil, fmt.Errorf("the target is at schema version %d and the export at %d: run `ripple migrate` on it first", version, m.SchemaVersion)
	case version > m.SchemaVersion:
		return nil, fmt.Errorf("the target is at schema version %d and the export at %d: import into a database at version %d "+
			"(migrated by the ripple release that made the export), then upgrade it", version, m.SchemaVersion, m.SchemaVersion)
	}
	tables, err := readTables(ctx, tx)
	if err != nil {
		return nil, err
	}
	target := map[string]Table{}
	for _, t := range tables {
		target[t.Name] = t
	}
	ordered := make([]Table, len(m.Tables))
	for i, t := range m.Tables {
		got, ok := target[t.Name]
		if !ok {
			return nil, fmt.Errorf("the export has table %s, the target does not", t.Name)
		}
		if diff := sameColumns(t, got); diff != "" {
			return nil, fmt.Errorf("table %s differs from the export's: %s", t.Name, diff)
		}
		ordered[i] = got
		delete(target, t.Name)
	}
	for name := range target {
		return nil, fmt.Errorf("the target has table %s, the export does not", name)
	}
	return ordered, nil
}

// importTable loads one file in batches, then moves the table's identity sequences past the
// ids it restored.
// target is the table as the target's catalog has it (the manifest does not say which columns
// are identities).
func importTable(ctx context.Context, tx pgx.Tx, dir string, t, target Table, bar *progress.Bar) error {
	f, err := os.Open(filepath.Join(dir, t.File))
	if err != nil {
		return err
	}
	defer f.Close()
	insert := insertSQL(target)
	// Hashed again as loaded, so a file changed since Verify is caught before the commit.
	hash := sha256.New()
	r := bufio.NewReaderSize(io.TeeReader(f, hash), 1<<20)
	var batch bytes.Buffer
	var n, inserted int64
	flush := func() error {
		if n == 0 {
			return nil
		}
		batch.WriteByte(']')
		tag, err := tx.Exec(ctx, insert, batch.String())
		if err != nil {
			return err
		}
		inserted += tag.RowsAffected()
		bar.Add(n)
		batch.Reset()
		n = 0
		return nil
	}
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if n == 0 {
				batch.WriteByte('[')
			} else {
				batch.WriteByte(',')
			}
			batch.Write(bytes.TrimSuffix(line, []byte{'\n'}))
			n++
			if n >= importBatchRows || batch.Len() >= importBatchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if inserted != t.Rows || hex.EncodeToString(hash.Sum(nil)) != t.SHA256 {
		return fmt.Errorf("%s changed while it was being imported", t.File)
	}
	return moveSequences(ctx, tx, target)
}

// insertSQL inserts a JSON array of rows as exported, ids included (OVERRIDING SYSTEM VALUE:
// the ids are GENERATED ALWAYS). json and jsonb values arrive as strings of their text.
func insertSQL(t Table) string {
	cols := make([]string, len(t.Columns))
	vals := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = ident(c.Name)
		vals[i] = "r." + ident(c.Name)
		if isJSON(c) {
			vals[i] = fmt.Sprintf("(r.%s #>> '{}')::%s", ident(c.Name), c.Type)
		}
	}
	return fmt.Sprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM json_populate_recordset(NULL::%s, $1::json) r",
		ident(t.Name), strings.Join(cols, ", "), strings.Join(vals, ", "), ident(t.Name))
}

// moveSequences sets each identity column's sequence to the largest id restored, so the next
// insert gets the one after it.
func moveSequences(ctx context.Context, tx pgx.Tx, t Table) error {
	for _, c := range t.Columns {
		if !c.identity {
			continue
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("SELECT setval(pg_get_serial_sequence($1, $2), max(%s)) FROM %s HAVING max(%s) IS NOT NULL",
			ident(c.Name), ident(t.Name), ident(c.Name)), ident(t.Name), c.Name)
		if err != nil {
			return fmt.Errorf("moving the sequence of %s.%s: %w", t.Name, c.Name, err)
		}
	}
	return nil
}

// Package dump writes a Ripple database's application tables to a directory as JSON Lines and
// restores them: `ripple export` and `ripple import`.
//
// An export is one file per table, <table>.jsonl, a JSON object per row in primary-key order,
// and manifest.json: the format, the schema version (the last Ripple migration applied), and per
// table its columns, row count and the SHA-256 of its file. It holds no timestamps or host
// names, so two exports of the same data are byte-identical, and export → import → export
// gives the same files.
//
// Which tables: every table of the schema except
//   - River's (river_*): jobs are work in flight, not data. The chat keeps the work that must
//     survive in its own tables (message_embedding_queue), and periodic jobs are recreated by
//     every `ripple serve`; a job a function scheduled for later is not carried over (Export
//     counts them so the command can say so);
//   - ripple_migration: its content is the schema version, which the manifest carries and
//     import checks;
//   - ripple_auth_rate_limits: counters of windows that expire within minutes;
//   - ripple_capture_skip: the tables the running application leaves uncaptured, which the
//     engine writes at every start from its registry (engine.Registry.DoNotCapture);
//   - ripple_change_feed: the deployment's change feed (NOTIFY or logical), which belongs to
//     the target's servers, not to the data.
//
// Everything else is exported, the engine's and auth's tables included, because a restore
// that keeps users signed in and mutations exactly-once needs them: ripple_auth_signing_keys
// (tokens already issued keep verifying; the private keys are sealed under the
// key-encryption key, so the restored server needs the same RIPPLE_KEY_ENCRYPTION_KEY),
// sessions and refresh tokens (stored as hashes), admin keys, password hashes, and
// ripple_mutation_log (a client that resends a mutation whose commit is in the export gets the
// stored outcome instead of running it twice). A table a later migration adds is exported
// without a change here.
//
// The per-table SELECT and INSERT are built from the catalog (queries/dump.sql): a table name
// cannot be a parameter. Postgres does the value conversion both ways (row_to_json, then
// json_populate_recordset), so every type round-trips through its own text form: vectors,
// timestamps (in UTC), bytea (hex). json and jsonb columns are written as JSON strings of their
// text, because a JSON null could not otherwise be told from SQL NULL.
package dump

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/queries"
)

// Format names this layout in the manifest; import refuses any other.
const Format = "ripple-export/1"

// ManifestFile is the manifest's name in an export directory. It is written last, so a
// directory without one is not a finished export.
const ManifestFile = "manifest.json"

// Manifest describes an export.
type Manifest struct {
	Format        string  `json:"format"`
	SchemaVersion int     `json:"schemaVersion"`
	Tables        []Table `json:"tables"`
}

// RowCount is the number of rows of every table together.
func (m *Manifest) RowCount() int64 {
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}

// Table is one exported table, in the order import loads them (referenced tables first).
type Table struct {
	Name       string   `json:"name"`
	File       string   `json:"file"`
	Columns    []Column `json:"columns"`
	PrimaryKey []string `json:"primaryKey"`
	Rows       int64    `json:"rows"`
	SHA256     string   `json:"sha256"`
}

// Column is a column's name and type as Postgres prints it (format_type).
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	identity bool
	collate  bool // ordered under COLLATE "C"
}

// excluded says whether a table is left out of exports (see the package comment for why).
func excluded(table string) bool {
	return strings.HasPrefix(table, "river_") || table == "ripple_migration" || table == "ripple_auth_rate_limits" ||
		table == "ripple_capture_skip" || table == "ripple_change_feed"
}

// readTables returns the application tables of the current schema, referenced tables first
// (ties by name), with their columns and primary keys.
func readTables(ctx context.Context, db queries.DBTX) ([]Table, error) {
	q := queries.New()
	cols, err := q.DumpColumnList(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	byName := map[string]*Table{}
	var names []string
	keys := map[string]map[int32]string{}
	for _, c := range cols {
		if excluded(c.TableName) {
			continue
		}
		t := byName[c.TableName]
		if t == nil {
			t = &Table{Name: c.TableName, File: c.TableName + ".jsonl"}
			byName[c.TableName] = t
			names = append(names, c.TableName)
			keys[c.TableName] = map[int32]string{}
		}
		t.Columns = append(t.Columns, Column{Name: c.ColumnName, Type: c.ColumnType, identity: c.IsIdentity, collate: c.IsCollatable})
		if c.KeyPosition > 0 {
			keys[c.TableName][c.KeyPosition] = c.ColumnName
		}
	}
	for _, name := range names {
		k := keys[name]
		if len(k) == 0 {
			return nil, fmt.Errorf("table %s has no primary key: an export needs one to order its rows", name)
		}
		for i := int32(1); i <= int32(len(k)); i++ {
			byName[name].PrimaryKey = append(byName[name].PrimaryKey, k[i])
		}
	}

	fks, err := q.DumpForeignKeyList(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	deps := map[string][]string{}
	for _, fk := range fks {
		if byName[fk.TableName] != nil && fk.ReferencedTable != fk.TableName {
			deps[fk.TableName] = append(deps[fk.TableName], fk.ReferencedTable)
		}
	}
	// Depth-first, in name order: a table comes after every table it references.
	slices.Sort(names)
	var out []Table
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("tables %s reference each other in a cycle: import could not order them", name)
		case 2:
			return nil
		}
		state[name] = 1
		for _, d := range deps[name] {
			if byName[d] == nil {
				return fmt.Errorf("table %s references %s, which is not exported", name, d)
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, *byName[name])
		return nil
	}
	for _, name := range names {
		if err := visit(name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkSchema makes sure the connection's search_path starts at the schema it was asked for: when
// that schema does not exist, Postgres silently falls back to the next one (public).
func checkSchema(ctx context.Context, db queries.DBTX, schemaName string) error {
	if schemaName == "" {
		schemaName = "public"
	}
	current, err := queries.New().DumpCurrentSchema(ctx, db)
	if err != nil {
		return err
	}
	if current != schemaName {
		return fmt.Errorf("schema %s does not exist: check --schema and DATABASE_URL", schemaName)
	}
	return nil
}

// schemaVersion is how many Ripple migrations the schema has applied, 0 when none: the
// engine's, the application's and the auth service's are numbered apart (ripplemigrate), and
// migrations are only ever added, so the count orders schema versions as one number would.
// ripple_migration is created by the migrator, not by a migration file, so sqlc does not know
// it and the query is written here.
func schemaVersion(ctx context.Context, db queries.DBTX, schemaName string) (int, error) {
	table := ident(schemaName) + ".ripple_migration"
	exists, err := queries.New().DumpRelationExists(ctx, db, table)
	if err != nil || !exists {
		return 0, err
	}
	var v int
	err = db.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&v)
	return v, err
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func isJSON(c Column) bool { return c.Type == "json" || c.Type == "jsonb" }

// sameColumns reports the first difference between two tables' columns, or "".
func sameColumns(want, got Table) string {
	for i, c := range want.Columns {
		if i >= len(got.Columns) {
			return fmt.Sprintf("column %s is missing", c.Name)
		}
		if g := got.Columns[i]; g.Name != c.Name || g.Type != c.Type {
			return fmt.Sprintf("column %d is %s %s, the export has %s %s", i+1, g.Name, g.Type, c.Name, c.Type)
		}
	}
	if len(got.Columns) > len(want.Columns) {
		return fmt.Sprintf("column %s is not in the export", got.Columns[len(want.Columns)].Name)
	}
	return ""
}

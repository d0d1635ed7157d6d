package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// DBTX is what sqlc-generated code calls; QueryCtx.DB and MutationCtx.DB satisfy it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadKind says how one statement reads one table.
type ReadKind int

const (
	// ReadTable: any change to the table may change the result.
	ReadTable ReadKind = iota
	// ReadParam: the statement reads only rows whose Column equals the value(s) bound to Param
	// (a scalar or, for `= ANY($n)`, an array).
	ReadParam
	// ReadOutput: the table is reached through a join on its Column (its primary key), and the
	// statement returns that column at output position Output; only the returned rows matter.
	ReadOutput
)

// TableRead is one table's part of a ReadSpec.
type TableRead struct {
	Table  string
	Kind   ReadKind
	Column string
	Param  int // 1-based, for ReadParam
	Output int // 0-based, for ReadOutput
}

// ReadSpec is the generated read-set analysis of one sqlc statement.
type ReadSpec struct {
	Tables []TableRead
}

// readKey is one (table, column, value) that a query depends on.
type readKey struct {
	table, column, value string
}

// readSetLimit is how many keys one query may record for one table before it depends on the
// whole table instead (a coarser, safe read that keeps the index small).
const readSetLimit = 1000

// ReadSet is what one run of a query read.
type ReadSet struct {
	all    bool // read something unanalysed: any change re-runs it
	tables map[string]struct{}
	keys   map[readKey]struct{}
	perTbl map[string]int
}

// newReadSet returns an empty read set. Its maps are made on first use: thousands of live
// subscriptions each hold one, and empty maps would only add to what the GC scans.
func newReadSet() *ReadSet { return &ReadSet{} }

func (rs *ReadSet) addTable(table string) {
	if rs.tables == nil {
		rs.tables = map[string]struct{}{}
	}
	rs.tables[table] = struct{}{}
}

func (rs *ReadSet) addKey(table, column, value string) {
	if _, whole := rs.tables[table]; whole {
		return
	}
	k := readKey{table, column, value}
	if _, ok := rs.keys[k]; ok {
		return
	}
	if rs.keys == nil {
		rs.keys = map[readKey]struct{}{}
		rs.perTbl = map[string]int{}
	}
	rs.perTbl[table]++
	if rs.perTbl[table] > readSetLimit {
		rs.addTable(table)
		return
	}
	rs.keys[k] = struct{}{}
}

// compact drops keys of tables that are read whole, and the per-table counts only recording
// needed.
func (rs *ReadSet) compact() {
	for k := range rs.keys {
		if _, whole := rs.tables[k.table]; whole {
			delete(rs.keys, k)
		}
	}
	rs.perTbl = nil
}

// String describes the read set for logs and tests.
func (rs *ReadSet) String() string {
	if rs.all {
		return "everything"
	}
	var parts []string
	for t := range rs.tables {
		parts = append(parts, t+".*")
	}
	for k := range rs.keys {
		parts = append(parts, fmt.Sprintf("%s.%s=%s", k.table, k.column, k.value))
	}
	return strings.Join(parts, " ")
}

// captureCatalog is what the database's capture triggers watch, loaded at start.
type captureCatalog struct {
	watched map[string]map[string]bool // table -> column -> watched
	pk      map[string][]string
}

func (c *captureCatalog) isWatched(table, column string) bool {
	return c != nil && c.watched[table][column]
}

func (c *captureCatalog) isPrimaryKey(table, column string) bool {
	if c == nil {
		return false
	}
	pk := c.pk[table]
	return len(pk) == 1 && pk[0] == column
}

// trackingDB wraps a transaction and records the read set of the statements run through it.
type trackingDB struct {
	tx      pgx.Tx
	reg     *Registry
	catalog *captureCatalog
	reads   *ReadSet
	// deadline is when the query's time budget ends; no statement starts after it.
	deadline time.Time
}

// errQueryTimeout is returned for a statement a query tries to start after its time budget.
var errQueryTimeout = errors.New("the query exceeded its time limit")

func (db *trackingDB) checkBudget() error {
	if !db.deadline.IsZero() && time.Now().After(db.deadline) {
		return errQueryTimeout
	}
	return nil
}

func statementName(sql string) string {
	rest, ok := strings.CutPrefix(strings.TrimLeft(sql, " \t\r\n"), "-- name: ")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, " ")
	return name
}

// plan records what can be known before the statement runs and returns the output columns to
// collect from its rows.
func (db *trackingDB) plan(sql string, args []any) (outputs []TableRead) {
	if db.reads == nil {
		return nil
	}
	spec, ok := db.reg.readSpec(statementName(sql))
	if !ok {
		db.reads.all = true
		return nil
	}
	for _, tr := range spec.Tables {
		switch tr.Kind {
		case ReadParam:
			if !db.catalog.isWatched(tr.Table, tr.Column) || tr.Param < 1 || tr.Param > len(args) {
				db.reads.addTable(tr.Table)
				continue
			}
			values, ok := keyValues(args[tr.Param-1])
			if !ok {
				db.reads.addTable(tr.Table)
				continue
			}
			for _, v := range values {
				db.reads.addKey(tr.Table, tr.Column, v)
			}
		case ReadOutput:
			if !db.catalog.isWatched(tr.Table, tr.Column) || !db.catalog.isPrimaryKey(tr.Table, tr.Column) {
				db.reads.addTable(tr.Table)
				continue
			}
			outputs = append(outputs, tr)
		default:
			if db.catalog == nil || db.catalog.watched[tr.Table] == nil {
				// A view or anything else the triggers do not watch: changes arrive under
				// other names, so only "everything" is safe.
				db.reads.all = true
				continue
			}
			db.reads.addTable(tr.Table)
		}
	}
	return outputs
}

func (db *trackingDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := db.checkBudget(); err != nil {
		return pgconn.CommandTag{}, err
	}
	db.plan(sql, args)
	return db.tx.Exec(ctx, sql, args...)
}

func (db *trackingDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := db.checkBudget(); err != nil {
		return nil, err
	}
	outputs := db.plan(sql, args)
	rows, err := db.tx.Query(ctx, sql, args...)
	if err != nil || len(outputs) == 0 {
		return rows, err
	}
	return &trackingRows{Rows: rows, db: db, outputs: outputs}, nil
}

func (db *trackingDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := db.checkBudget(); err != nil {
		return errRow{err}
	}
	outputs := db.plan(sql, args)
	row := db.tx.QueryRow(ctx, sql, args...)
	if len(outputs) == 0 {
		return row
	}
	return &trackingRow{row: row, db: db, outputs: outputs}
}

// errRow is a pgx.Row that only fails.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type trackingRows struct {
	pgx.Rows
	db      *trackingDB
	outputs []TableRead
}

func (r *trackingRows) Scan(dest ...any) error {
	if err := r.Rows.Scan(dest...); err != nil {
		return err
	}
	r.db.recordOutputs(r.outputs, dest)
	return nil
}

// Values and RawValues bypass Scan, so the returned keys cannot be recorded: the tables read
// through the output fall back to whole-table reads.
func (r *trackingRows) Values() ([]any, error) {
	r.wholeTables()
	return r.Rows.Values()
}

func (r *trackingRows) RawValues() [][]byte {
	r.wholeTables()
	return r.Rows.RawValues()
}

func (r *trackingRows) wholeTables() {
	for _, tr := range r.outputs {
		r.db.reads.addTable(tr.Table)
	}
}

type trackingRow struct {
	row     pgx.Row
	db      *trackingDB
	outputs []TableRead
}

func (r *trackingRow) Scan(dest ...any) error {
	if err := r.row.Scan(dest...); err != nil {
		return err
	}
	r.db.recordOutputs(r.outputs, dest)
	return nil
}

func (db *trackingDB) recordOutputs(outputs []TableRead, dest []any) {
	for _, tr := range outputs {
		if tr.Output < 0 || tr.Output >= len(dest) {
			db.reads.addTable(tr.Table)
			continue
		}
		v := reflect.ValueOf(dest[tr.Output])
		if v.Kind() != reflect.Pointer || v.IsNil() {
			db.reads.addTable(tr.Table)
			continue
		}
		values, ok := keyValues(v.Elem().Interface())
		if !ok {
			db.reads.addTable(tr.Table)
			continue
		}
		for _, val := range values {
			db.reads.addKey(tr.Table, tr.Column, val)
		}
	}
}

// keyValues formats a bound or scanned value the way Postgres's ::text cast prints it, which is
// how the capture trigger reports keys. A value it cannot format returns false, and the caller
// falls back to the whole table.
func keyValues(v any) ([]string, bool) {
	switch t := v.(type) {
	case nil:
		return nil, true
	case string:
		return []string{t}, true
	case int64:
		return []string{strconv.FormatInt(t, 10)}, true
	case int32:
		return []string{strconv.FormatInt(int64(t), 10)}, true
	case int:
		return []string{strconv.Itoa(t)}, true
	case int16:
		return []string{strconv.FormatInt(int64(t), 10)}, true
	case bool:
		return []string{strconv.FormatBool(t)}, true
	case *int64:
		if t == nil {
			return nil, true
		}
		return keyValues(*t)
	case *string:
		if t == nil {
			return nil, true
		}
		return keyValues(*t)
	case pgtype.Int8:
		if !t.Valid {
			return nil, true
		}
		return keyValues(t.Int64)
	case pgtype.Text:
		if !t.Valid {
			return nil, true
		}
		return keyValues(t.String)
	case []int64:
		out := make([]string, len(t))
		for i, x := range t {
			out[i] = strconv.FormatInt(x, 10)
		}
		return out, true
	case []string:
		return t, true
	}
	return nil, false
}

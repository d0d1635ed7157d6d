// Package readset records what a query read and finds the queries a committed change affects.
//
// A query's statements run through DB, which looks up each sqlc statement's generated analysis
// (Spec) and records, from the bound parameters and the rows returned, the tables, keys and
// index ranges the query depended on: its ReadSet. An Index holds the read sets of live
// subscriptions and, given a change from the capture triggers, visits every subscription whose
// read set the change may touch. Whenever the analysis is unsure, it records a coarser read:
// a query may re-run needlessly, but never miss a change.
package readset

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

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
	// ReadRange: the statement reads one index range of the table, described by Range; only
	// changes to rows inside the range it actually scanned matter.
	ReadRange
	// ReadOutputKey: the statement reads only rows whose Column (a watched column, not
	// necessarily the primary key) equals a value it returns at output position Output; the
	// rows of the table whose Column holds any other value cannot change the result.
	//
	// Soundness (readsetgen's outputKeyReads): the table is read on the nullable side of LEFT
	// JOINs, through `table.Column = d.key`, d.key a column of the statement's driving rows that
	// it returns as is; nothing that can drop a driving row depends on those joins, so every
	// driving row is returned whatever the table holds, and the keys returned do not depend on
	// it. A write that adds or removes a driving row is caught by the driving table's own read.
	// The keys are recorded from the rows actually returned, so a run must be read to its end:
	// rows closed early, an error, a one-row read (QueryRow), Exec, Values/RawValues, a NULL or
	// unformattable key, or a column the triggers do not watch read the whole table instead.
	ReadOutputKey
)

// TableRead is one table's part of a Spec.
type TableRead struct {
	Table  string
	Kind   ReadKind
	Column string
	Param  int // 1-based, for ReadParam
	Output int // 0-based, for ReadOutput and ReadOutputKey
	Range  *RangeSpec
}

// Spec is the generated read-set analysis of one sqlc statement.
type Spec struct {
	Tables []TableRead
}

// key is one (table, column, value) that a query depends on.
type key struct {
	table, column, value string
}

// readSetLimit is how many keys one query may record for one table before it depends on the
// whole table instead (a coarser, safe read that keeps the index small).
const readSetLimit = 1000

// ReadSet is what one run of a query read.
type ReadSet struct {
	all    bool // read something unanalysed: any change re-runs it
	tables map[string]struct{}
	keys   map[key]struct{}
	ranges []rangeRead
	perTbl map[string]int
}

// New returns an empty read set. Its maps are made on first use: thousands of live
// subscriptions each hold one, and empty maps would only add to what the GC scans.
func New() *ReadSet { return &ReadSet{} }

// Everything is the read set of a query whose reads are unknown: any change re-runs it.
func Everything() *ReadSet { return &ReadSet{all: true} }

// AddTable records a dependency on every row of table.
func (rs *ReadSet) AddTable(table string) {
	if rs.tables == nil {
		rs.tables = map[string]struct{}{}
	}
	rs.tables[table] = struct{}{}
}

// AddKey records a dependency on the rows of table whose column equals value.
func (rs *ReadSet) AddKey(table, column, value string) {
	if _, whole := rs.tables[table]; whole {
		return
	}
	k := key{table, column, value}
	if _, ok := rs.keys[k]; ok {
		return
	}
	if rs.keys == nil {
		rs.keys = map[key]struct{}{}
		rs.perTbl = map[string]int{}
	}
	rs.perTbl[table]++
	if rs.perTbl[table] > readSetLimit {
		rs.AddTable(table)
		return
	}
	rs.keys[k] = struct{}{}
}

func (rs *ReadSet) addRange(r rangeRead) {
	if _, whole := rs.tables[r.shape.table]; whole {
		return
	}
	if rs.perTbl == nil {
		rs.perTbl = map[string]int{}
	}
	rs.perTbl[r.shape.table]++
	if rs.perTbl[r.shape.table] > readSetLimit {
		rs.AddTable(r.shape.table)
		return
	}
	rs.ranges = append(rs.ranges, r)
}

// Compact drops keys of tables that are read whole, and the per-table counts only recording
// needed. A query's read set is compacted once, when the query ends.
func (rs *ReadSet) Compact() {
	for k := range rs.keys {
		if _, whole := rs.tables[k.table]; whole {
			delete(rs.keys, k)
		}
	}
	rs.ranges = slices.DeleteFunc(rs.ranges, func(r rangeRead) bool {
		_, whole := rs.tables[r.shape.table]
		return whole
	})
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
	for _, r := range rs.ranges {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, " ")
}

// Catalog is what the database's capture triggers watch, loaded at start (LoadCatalog).
type Catalog struct {
	watched map[string]map[string]bool // table -> column -> watched
	pk      map[string][]string
	// captured: the columns of the row images; ordered: those ranges may order by.
	captured map[string]map[string]bool
	ordered  map[string]map[string]bool
	// uncaptured tables have no capture triggers (Registry.DoNotCapture): no query may read them.
	uncaptured map[string]bool
}

// ErrUncapturedRead is a query's statement reading a table whose writes are not captured: its
// result could never be kept live.
var ErrUncapturedRead = errors.New("the query reads a table whose writes are not captured (Registry.DoNotCapture)")

// IsWatched reports whether changes to table report column's values (a key may be read).
func (c *Catalog) IsWatched(table, column string) bool {
	return c != nil && c.watched[table][column]
}

func (c *Catalog) isPrimaryKey(table, column string) bool {
	if c == nil {
		return false
	}
	pk := c.pk[table]
	return len(pk) == 1 && pk[0] == column
}

// DB wraps a query's transaction and records the read set of the statements run through it.
// It satisfies the DBTX interface sqlc's generated code calls.
type DB struct {
	tx      pgx.Tx
	specs   *Specs
	catalog *Catalog
	reads   *ReadSet
	// deadline is when the query's time budget ends; no statement starts after it.
	deadline time.Time
	// pending are range scans whose rows may not have been closed yet (finishPending).
	pending []*rangeScan
	// savepoint, once started, is what tx now is: the query's own savepoint in the shared
	// snapshot.
	savepoint pgx.Tx
	// savepointRefused: the transaction could not give the query a savepoint (its connection is
	// shared with other queries at once).
	savepointRefused bool
}

// NeedsOwnConnection reports that the query asked for a savepoint (to change settings) on a
// transaction that could not give it one.
func (db *DB) NeedsOwnConnection() bool { return db.savepointRefused }

// NewDB returns a DB recording into a fresh read set. No statement starts after deadline (zero:
// no budget).
func NewDB(tx pgx.Tx, specs *Specs, catalog *Catalog, deadline time.Time) *DB {
	return &DB{tx: tx, specs: specs, catalog: catalog, reads: New(), deadline: deadline}
}

// Reads is the read set recorded so far.
func (db *DB) Reads() *ReadSet { return db.reads }

// Catalog is what the capture triggers watch.
func (db *DB) Catalog() *Catalog { return db.catalog }

// Savepoint is the query's own savepoint, or nil if none was started.
func (db *DB) Savepoint() pgx.Tx { return db.savepoint }

// BeginSavepoint puts the rest of the query under a savepoint of its own.
func (db *DB) BeginSavepoint(ctx context.Context) error {
	sp, err := db.tx.Begin(ctx)
	if err != nil {
		db.savepointRefused = true
		return err
	}
	db.tx, db.savepoint = sp, sp
	return nil
}

// changesSettings reports whether a statement may change a setting that would outlive it in
// the shared snapshot: SET, RESET, or a set_config call.
func changesSettings(sql string) bool {
	s := strings.TrimLeft(sql, " \t\r\n(")
	for strings.HasPrefix(s, "--") { // sqlc's `-- name:` header
		_, s, _ = strings.Cut(s, "\n")
		s = strings.TrimLeft(s, " \t\r\n(")
	}
	if len(s) >= 5 && (strings.EqualFold(s[:4], "SET ") || strings.EqualFold(s[:5], "RESET")) {
		return true
	}
	return containsFold(sql, "set_config")
}

// containsFold is strings.Contains ignoring ASCII case, without allocating: it runs on every
// statement a query sends.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// prepare runs before every statement: it enforces the time budget and isolates a statement
// that changes settings.
func (db *DB) prepare(ctx context.Context, sql string) error {
	if err := db.checkBudget(); err != nil {
		return err
	}
	if db.savepoint == nil && db.reads != nil && changesSettings(sql) {
		return db.BeginSavepoint(ctx)
	}
	return nil
}

// ErrQueryTimeout is returned for a statement a query tries to start after its time budget.
var ErrQueryTimeout = errors.New("the query exceeded its time limit")

func (db *DB) checkBudget() error {
	if !db.deadline.IsZero() && time.Now().After(db.deadline) {
		return ErrQueryTimeout
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

// statementReads is what one statement still has to record once its rows are seen: the keys of
// ReadOutput and ReadOutputKey tables and the edges of ReadRange ranges.
type statementReads struct {
	outputs []TableRead
	ranges  []*rangeScan
	// outputKeys are ReadOutputKey tables: their keys count only once every row was read
	// (keysDone); until then, and whenever a row cannot be recorded, the whole table.
	outputKeys []TableRead
	keysDone   bool
}

func (sr *statementReads) empty() bool {
	return len(sr.outputs) == 0 && len(sr.ranges) == 0 && len(sr.outputKeys) == 0
}

// finishKeys settles the ReadOutputKey tables once the statement's rows end: complete says
// every row was read (and recorded) without an error; otherwise the keys seen are not all the
// keys the result depends on, and the tables are read whole.
func (sr *statementReads) finishKeys(reads *ReadSet, complete bool) {
	if sr.keysDone {
		return
	}
	sr.keysDone = true
	if !complete {
		for _, tr := range sr.outputKeys {
			reads.AddTable(tr.Table)
		}
	}
}

// plan records what can be known before the statement runs and returns what its rows must
// still tell.
func (db *DB) plan(sql string, args []any) (*statementReads, error) {
	sr := &statementReads{}
	if db.reads == nil {
		return sr, nil
	}
	spec, ok := db.specs.Get(statementName(sql))
	if !ok {
		db.reads.all = true
		return sr, nil
	}
	for _, tr := range spec.Tables {
		if db.catalog != nil && db.catalog.uncaptured[tr.Table] {
			return nil, fmt.Errorf("%w: %s reads %s", ErrUncapturedRead, statementName(sql), tr.Table)
		}
	}
	for _, tr := range spec.Tables {
		switch tr.Kind {
		case ReadParam:
			db.planParam(tr.Table, tr.Column, tr.Param, args)
		case ReadOutput:
			if !db.catalog.IsWatched(tr.Table, tr.Column) || !db.catalog.isPrimaryKey(tr.Table, tr.Column) {
				db.reads.AddTable(tr.Table)
				continue
			}
			sr.outputs = append(sr.outputs, tr)
		case ReadOutputKey:
			if db.catalog == nil || db.catalog.watched[tr.Table] == nil {
				db.reads.all = true // a view: its changes arrive under other names
				continue
			}
			if !db.catalog.IsWatched(tr.Table, tr.Column) {
				db.reads.AddTable(tr.Table)
				continue
			}
			sr.outputKeys = append(sr.outputKeys, tr)
		case ReadRange:
			if scan := db.planRange(tr, args); scan != nil {
				db.pending = append(db.pending, scan)
				sr.ranges = append(sr.ranges, scan)
			}
		default:
			if db.catalog == nil || db.catalog.watched[tr.Table] == nil {
				// A view or anything else the triggers do not watch: changes arrive under
				// other names, so only "everything" is safe.
				db.reads.all = true
				continue
			}
			db.reads.AddTable(tr.Table)
		}
	}
	return sr, nil
}

// planParam records `table.column = $param` (or `= ANY($param)`).
func (db *DB) planParam(table, column string, param int, args []any) {
	if !db.catalog.IsWatched(table, column) || param < 1 || param > len(args) {
		db.reads.AddTable(table)
		return
	}
	values, ok := keyValues(args[param-1])
	if !ok {
		db.reads.AddTable(table)
		return
	}
	for _, v := range values {
		db.reads.AddKey(table, column, v)
	}
}

// planRange turns a ReadRange spec and the bound parameters into a range scan whose edge the
// returned rows will settle. When the range cannot be expressed exactly (a column the triggers
// do not capture, a parameter of an unknown type), it records a coarser read instead: the key
// of a watched equality column, else the whole table. A nil result means nothing is left to do.
func (db *DB) planRange(tr TableRead, args []any) *rangeScan {
	spec := tr.Range
	coarser := func() *rangeScan {
		for _, eq := range spec.Eq {
			if db.catalog.IsWatched(tr.Table, eq.Column) {
				db.planParam(tr.Table, eq.Column, eq.Param, args)
				return nil
			}
		}
		db.reads.AddTable(tr.Table)
		return nil
	}
	arg := func(n int) (any, bool) {
		if n < 1 || n > len(args) {
			return nil, false
		}
		return args[n-1], true
	}
	if db.catalog == nil || len(spec.Order) == 0 {
		return coarser()
	}
	eqVals := make([]string, len(spec.Eq))
	eqCols := make([]string, len(spec.Eq))
	for i, eq := range spec.Eq {
		v, ok := arg(eq.Param)
		if !ok || !db.catalog.captured[tr.Table][eq.Column] {
			return coarser()
		}
		vals, ok := keyValues(v)
		if !ok || len(vals) > 1 {
			return coarser()
		}
		if len(vals) == 0 {
			return nil // `column = NULL` matches no row
		}
		eqVals[i], eqCols[i] = vals[0], eq.Column
	}
	for _, col := range spec.Order {
		if !db.catalog.ordered[tr.Table][col] {
			return coarser()
		}
	}
	scan := &rangeScan{
		read: rangeRead{
			shape:  rangeShape{table: tr.Table, eq: strings.Join(eqCols, ","), order: strings.Join(spec.Order, ",")},
			eqVals: strings.Join(eqVals, "\x00"),
			lo:     bound{inf: true},
			hi:     bound{inf: true},
		},
		spec:  spec,
		limit: -1,
	}
	for _, b := range spec.Bounds {
		if b.Guard > 0 {
			if g, ok := arg(b.Guard); !ok {
				return coarser()
			} else if _, null, _ := orderValue(g); null {
				continue // `$g IS NULL OR …`: no bound this time
			}
		}
		p := make([]int64, len(b.Params))
		usable := len(b.Params) <= len(spec.Order)
		for i, n := range b.Params {
			v, ok := arg(n)
			if !ok {
				return coarser()
			}
			x, null, ok := orderValue(v)
			if !ok {
				return coarser()
			}
			// A NULL makes the comparison NULL or true for some rows: treat the bound as absent.
			usable = usable && !null
			p[i] = x
		}
		if !usable {
			continue
		}
		lo, hi, ok := tupleBound(b.Op, p, len(spec.Order))
		if !ok {
			return coarser()
		}
		if cmpLo(lo, scan.read.lo) > 0 {
			scan.read.lo = lo
		}
		if cmpHi(hi, scan.read.hi) < 0 {
			scan.read.hi = hi
		}
	}
	switch {
	case spec.Limit > 0:
		v, ok := arg(spec.Limit)
		if !ok {
			return coarser()
		}
		n, null, ok := orderValue(v)
		if !ok {
			return coarser()
		}
		if !null { // LIMIT NULL is no limit
			scan.limit = max(n, 0)
		}
	case spec.LimitConst > 0:
		scan.limit = spec.LimitConst
	}
	if scan.limit < 0 || len(spec.Outputs) != len(spec.Order) {
		// No LIMIT: the rows returned cannot narrow the range.
		db.reads.addRange(scan.read)
		scan.done = true
		return nil
	}
	return scan
}

// rangeScan follows the rows of one statement over a range read with a LIMIT: once the limit
// is reached (or the caller stops reading), the last row returned is the far edge of what the
// result depends on.
type rangeScan struct {
	read     rangeRead
	spec     *RangeSpec
	limit    int64
	rows     int64
	last     []int64
	lastNull bool // the last row's order tuple has a NULL (or a value it cannot compare)
	done     bool
}

func (s *rangeScan) row(dest []any) {
	s.rows++
	s.lastNull = false
	s.last = s.last[:0]
	for _, pos := range s.spec.Outputs {
		if pos < 0 || pos >= len(dest) {
			s.lastNull = true
			return
		}
		x, null, ok := orderValue(dest[pos])
		if null || !ok {
			s.lastNull = true
			return
		}
		s.last = append(s.last, x)
	}
}

// finish records the range. exhausted says the rows ended without an error.
func (s *rangeScan) finish(reads *ReadSet, exhausted bool) {
	if s.done {
		return
	}
	s.done = true
	r := s.read
	if s.rows > 0 && !s.lastNull && (s.rows >= s.limit || !exhausted) {
		edge := bound{vals: slices.Clone(s.last), incl: true}
		if s.spec.Desc {
			r.lo = edge
		} else {
			r.hi = edge
		}
	}
	reads.addRange(r)
}

// FinishPending records the ranges of statements whose rows were never closed, as if they had
// been read to their end without reaching the limit (the widest range).
func (db *DB) FinishPending() {
	for _, s := range db.pending {
		s.finish(db.reads, false)
	}
	db.pending = nil
}

func (db *DB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := db.prepare(ctx, sql); err != nil {
		return pgconn.CommandTag{}, err
	}
	sr, err := db.plan(sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	for _, s := range sr.ranges {
		s.rows, s.limit = 0, -1 // Exec returns no rows: the whole range counts
		s.finish(db.reads, true)
	}
	sr.finishKeys(db.reads, false) // no rows to take the keys from
	return db.tx.Exec(ctx, sql, args...)
}

func (db *DB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := db.prepare(ctx, sql); err != nil {
		return nil, err
	}
	sr, err := db.plan(sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := db.tx.Query(ctx, sql, args...)
	if err != nil {
		sr.finishKeys(db.reads, false)
		return rows, err
	}
	if sr.empty() {
		return rows, err
	}
	return &trackingRows{Rows: rows, db: db, sr: sr}, nil
}

func (db *DB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := db.prepare(ctx, sql); err != nil {
		return errRow{err}
	}
	sr, err := db.plan(sql, args)
	if err != nil {
		return errRow{err}
	}
	row := db.tx.QueryRow(ctx, sql, args...)
	if sr.empty() {
		return row
	}
	return &trackingRow{row: row, db: db, sr: sr}
}

// errRow is a pgx.Row that only fails.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type trackingRows struct {
	pgx.Rows
	db *DB
	sr *statementReads
	// rows is how many rows Next gave, scanned how many of them were scanned (once each), and
	// ended whether Next reported the end; skipped: some row was never scanned.
	rows, scanned  int
	ended, skipped bool
}

func (r *trackingRows) Scan(dest ...any) error {
	if err := r.Rows.Scan(dest...); err != nil {
		r.skipped = true
		return err
	}
	if r.scanned < r.rows {
		r.scanned = r.rows
	}
	r.db.recordRow(r.sr, dest)
	return nil
}

func (r *trackingRows) Next() bool {
	if r.Rows.Next() {
		if r.scanned < r.rows {
			r.skipped = true // the previous row was never scanned: its keys are unknown
		}
		r.rows++
		return true
	}
	if r.scanned < r.rows {
		r.skipped = true
	}
	r.ended = true
	r.finish()
	return false
}

func (r *trackingRows) Close() {
	r.Rows.Close()
	r.finish()
}

func (r *trackingRows) finish() {
	exhausted := r.Rows.Err() == nil
	for _, s := range r.sr.ranges {
		s.finish(r.db.reads, exhausted)
	}
	// ReadOutputKey counts only rows read to their end, each scanned, without an error.
	r.sr.finishKeys(r.db.reads, r.ended && exhausted && !r.skipped)
}

// Values and RawValues bypass Scan, so the returned keys cannot be recorded: the tables read
// through the output fall back to whole-table reads, and ranges to the whole range.
func (r *trackingRows) Values() ([]any, error) {
	r.wholeTables()
	return r.Rows.Values()
}

func (r *trackingRows) RawValues() [][]byte {
	r.wholeTables()
	return r.Rows.RawValues()
}

func (r *trackingRows) wholeTables() {
	for _, tr := range r.sr.outputs {
		r.db.reads.AddTable(tr.Table)
	}
	r.sr.finishKeys(r.db.reads, false)
	for _, s := range r.sr.ranges {
		s.rows, s.limit = 0, -1
		s.finish(r.db.reads, true)
	}
}

type trackingRow struct {
	row pgx.Row
	db  *DB
	sr  *statementReads
}

func (r *trackingRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if err == nil {
		r.db.recordRow(r.sr, dest)
	}
	// One row read at most: the caller saw that row, or learned there was none.
	for _, s := range r.sr.ranges {
		s.finish(r.db.reads, errors.Is(err, pgx.ErrNoRows))
	}
	// No row: no driving row, whatever the ReadOutputKey tables hold. One row: which one came
	// first may depend on them, and the rows after it are unknown.
	r.sr.finishKeys(r.db.reads, errors.Is(err, pgx.ErrNoRows))
	return err
}

func (db *DB) recordRow(sr *statementReads, dest []any) {
	for _, s := range sr.ranges {
		s.row(dest)
	}
	for _, tr := range sr.outputs {
		if tr.Output < 0 || tr.Output >= len(dest) {
			db.reads.AddTable(tr.Table)
			continue
		}
		v := reflect.ValueOf(dest[tr.Output])
		if v.Kind() != reflect.Pointer || v.IsNil() {
			db.reads.AddTable(tr.Table)
			continue
		}
		values, ok := keyValues(v.Elem().Interface())
		if !ok {
			db.reads.AddTable(tr.Table)
			continue
		}
		for _, val := range values {
			db.reads.AddKey(tr.Table, tr.Column, val)
		}
	}
	for _, tr := range sr.outputKeys {
		val, ok := scannedKey(dest, tr.Output)
		if !ok {
			db.reads.AddTable(tr.Table)
			continue
		}
		db.reads.AddKey(tr.Table, tr.Column, val)
	}
}

// scannedKey is the one key value scanned into dest[pos]. A NULL, an array or a value it cannot
// format is not a key: ReadOutputKey then reads the whole table.
func scannedKey(dest []any, pos int) (string, bool) {
	if pos < 0 || pos >= len(dest) {
		return "", false
	}
	v := reflect.ValueOf(dest[pos])
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return "", false
	}
	elem := v.Elem()
	if elem.Kind() == reflect.Slice || elem.Kind() == reflect.Array {
		return "", false
	}
	values, ok := keyValues(elem.Interface())
	if !ok || len(values) != 1 {
		return "", false
	}
	return values[0], true
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

package reactor

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// A pipe lets the query groups of a batch run at once on one snapshot connection: each group's
// goroutine sends its statements through its own pipeTx, and once every running group is
// waiting on a statement (or has finished) the pipe sends them all as one pipeline and hands
// each its rows. A batch's queries then cost as many round trips as its longest query has
// statements, not the sum over all of them: a new chat message re-runs a page and two
// conversation lists in two round trips instead of five, and a hundred groups in as few.
//
// Rows are read into memory before anyone sees them (the next round needs the connection).
// What a pipe cannot share, a group does on the connection alone, outside the rounds: a
// savepoint (isolate), and a statement that changes settings or a time limit other than the
// batch's (the Runner returns ErrNeedsOwnConnection and the reactor remembers the function).
type pipe struct {
	tx pgx.Tx
	// typeMu guards the connection's pgtype.Map, which caches plans as it encodes and scans and
	// is not safe for concurrent use: the groups scan their rows on their own goroutines while
	// a round encodes the next statements' arguments.
	typeMu sync.Mutex

	mu      sync.Mutex
	running int          // groups that have not finished
	queued  []*pipedStmt // this round's statements, one per waiting group
	failed  bool         // a statement failed: the transaction is aborted
}

// pipedStmt is one group's statement in a round, with its outcome once the round is read.
type pipedStmt struct {
	sql  string
	args []any
	exec bool

	done chan struct{}
	rows *memRows
	tag  pgconn.CommandTag
	err  error
	// culprit: this statement's own error aborted the transaction (the others in the round and
	// after it are collateral).
	culprit bool
}

// ErrNeedsOwnConnection is what a Runner returns for a query that must not share its snapshot
// connection with other queries at once: it wants a savepoint, changes settings, or needs a
// statement_timeout other than the batch's. The reactor runs that function alone from then on.
var ErrNeedsOwnConnection = errors.New("the query needs the snapshot connection to itself")

// ErrCollateral is what a Runner returns for a query whose statements failed only because
// another query sharing the pipeline aborted the transaction: the batch runs again, this query
// unchanged.
var ErrCollateral = errors.New("another query aborted the shared snapshot")

func newPipe(tx pgx.Tx, groups int) *pipe { return &pipe{tx: tx, running: groups} }

// handle is the pgx.Tx one group uses.
func (p *pipe) handle() *pipeTx { return &pipeTx{p: p} }

// finish tells the pipe a group ran its last statement; the others may be waiting for it.
func (p *pipe) finish(ctx context.Context) {
	p.mu.Lock()
	p.running--
	round := p.takeRoundLocked()
	p.mu.Unlock()
	p.send(ctx, round)
}

// submit queues st and waits for its round to be read.
func (p *pipe) submit(ctx context.Context, st *pipedStmt) {
	st.done = make(chan struct{})
	p.mu.Lock()
	p.queued = append(p.queued, st)
	round := p.takeRoundLocked()
	p.mu.Unlock()
	p.send(ctx, round)
	<-st.done
}

// takeRoundLocked takes the queued statements when every running group has one queued.
func (p *pipe) takeRoundLocked() []*pipedStmt {
	if len(p.queued) == 0 || len(p.queued) < p.running {
		return nil
	}
	round := p.queued
	p.queued = nil
	return round
}

// send runs a round as one pipeline and wakes its groups.
func (p *pipe) send(ctx context.Context, round []*pipedStmt) {
	if len(round) == 0 {
		return
	}
	defer func() {
		for _, st := range round {
			close(st.done)
		}
	}()
	p.mu.Lock()
	failed := p.failed
	p.mu.Unlock()
	if failed {
		for _, st := range round {
			st.err = ErrCollateral
		}
		return
	}
	b := &pgx.Batch{}
	for _, st := range round {
		b.Queue(st.sql, st.args...)
	}
	p.typeMu.Lock()
	br := p.tx.SendBatch(ctx, b)
	p.typeMu.Unlock()
	typeMap := p.tx.Conn().TypeMap()
	for _, st := range round {
		if failed {
			st.err = ErrCollateral
			continue
		}
		if st.exec {
			st.tag, st.err = br.Exec()
		} else {
			st.rows, st.err = readRows(br, typeMap, &p.typeMu)
		}
		if st.err != nil {
			failed, st.culprit = true, true
		}
	}
	if err := br.Close(); err != nil && !failed {
		// The connection broke after the results: everyone's statement is lost.
		failed = true
		for _, st := range round {
			st.err = err
		}
	}
	if failed {
		p.mu.Lock()
		p.failed = true
		p.mu.Unlock()
	}
}

// readRows reads one statement's rows from a batch into memory.
func readRows(br pgx.BatchResults, typeMap *pgtype.Map, typeMu *sync.Mutex) (*memRows, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := &memRows{typeMap: typeMap, typeMu: typeMu, pos: -1}
	m.fields = append([]pgconn.FieldDescription(nil), rows.FieldDescriptions()...)
	for rows.Next() {
		raw := rows.RawValues()
		row := make([][]byte, len(raw))
		for i, v := range raw {
			if v != nil {
				row[i] = append(make([]byte, 0, len(v)), v...)
			}
		}
		m.values = append(m.values, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	m.tag = rows.CommandTag()
	return m, nil
}

// pipeTx is one group's view of a pipe. Only its statements go through the pipe; what a pipe
// cannot share fails with ErrNeedsOwnConnection.
type pipeTx struct {
	p *pipe
	// collateral: a statement of this group failed because another group's aborted the
	// transaction, and none of its own did.
	collateral, culprit bool
}

var _ pgx.Tx = (*pipeTx)(nil)

func (t *pipeTx) run(ctx context.Context, sql string, args []any, exec bool) *pipedStmt {
	st := &pipedStmt{sql: sql, args: args, exec: exec}
	t.p.submit(ctx, st)
	switch {
	case st.culprit:
		t.culprit = true
	case errors.Is(st.err, ErrCollateral):
		t.collateral = true
	}
	return st
}

func (t *pipeTx) aborted() bool {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	return t.p.failed
}

// Collateral reports that the group's statements failed only because of another group's.
func (t *pipeTx) Collateral() bool { return t.collateral && !t.culprit }

func (t *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	st := t.run(ctx, sql, args, true)
	return st.tag, st.err
}

func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	st := t.run(ctx, sql, args, false)
	if st.err != nil {
		return &memRows{err: st.err, pos: -1}, st.err
	}
	return st.rows, nil
}

func (t *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, _ := t.Query(ctx, sql, args...)
	return memRow{rows.(*memRows)}
}

func (t *pipeTx) Begin(context.Context) (pgx.Tx, error) { return nil, ErrNeedsOwnConnection }
func (t *pipeTx) Commit(context.Context) error          { return nil }
func (t *pipeTx) Rollback(context.Context) error        { return nil }
func (t *pipeTx) Conn() *pgx.Conn                       { return t.p.tx.Conn() }
func (t *pipeTx) LargeObjects() pgx.LargeObjects        { return pgx.LargeObjects{} }

func (t *pipeTx) SendBatch(_ context.Context, b *pgx.Batch) pgx.BatchResults {
	return pgx.FailedBatchResults(b, ErrNeedsOwnConnection)
}

func (t *pipeTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, ErrNeedsOwnConnection
}

func (t *pipeTx) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, ErrNeedsOwnConnection
}

// memRows are a statement's rows, read already.
type memRows struct {
	typeMap *pgtype.Map
	typeMu  *sync.Mutex // held while typeMap is used
	fields  []pgconn.FieldDescription
	values  [][][]byte
	tag     pgconn.CommandTag
	pos     int
	err     error
	closed  bool
}

var _ pgx.Rows = (*memRows)(nil)

func (r *memRows) Close()                                       { r.closed = true }
func (r *memRows) Err() error                                   { return r.err }
func (r *memRows) CommandTag() pgconn.CommandTag                { return r.tag }
func (r *memRows) FieldDescriptions() []pgconn.FieldDescription { return r.fields }
func (r *memRows) Conn() *pgx.Conn                              { return nil }
func (r *memRows) TypeMap() *pgtype.Map                         { return r.typeMap }

func (r *memRows) Next() bool {
	if r.closed || r.err != nil || r.pos+1 >= len(r.values) {
		r.closed = true
		return false
	}
	r.pos++
	return true
}

func (r *memRows) current() ([][]byte, error) {
	if r.pos < 0 || r.pos >= len(r.values) {
		return nil, errors.New("no current row")
	}
	return r.values[r.pos], nil
}

func (r *memRows) Scan(dest ...any) error {
	values, err := r.current()
	if err != nil {
		return err
	}
	r.typeMu.Lock()
	err = pgx.ScanRow(r.typeMap, r.fields, values, dest...)
	r.typeMu.Unlock()
	if err != nil {
		r.err = err
		r.closed = true
		return err
	}
	return nil
}

func (r *memRows) Values() ([]any, error) {
	values, err := r.current()
	if err != nil {
		return nil, err
	}
	out := make([]any, len(values))
	r.typeMu.Lock()
	defer r.typeMu.Unlock()
	for i, v := range values {
		if v == nil {
			continue
		}
		fd := r.fields[i]
		if typ, ok := r.typeMap.TypeForOID(fd.DataTypeOID); ok {
			if out[i], err = typ.Codec.DecodeValue(r.typeMap, fd.DataTypeOID, fd.Format, v); err != nil {
				return nil, err
			}
			continue
		}
		if fd.Format == pgtype.TextFormatCode {
			out[i] = string(v)
		} else {
			out[i] = append([]byte(nil), v...)
		}
	}
	return out, nil
}

func (r *memRows) RawValues() [][]byte {
	values, _ := r.current()
	return values
}

// memRow is QueryRow's result, with pgx's semantics: the first row, or ErrNoRows.
type memRow struct{ rows *memRows }

func (r memRow) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	return r.rows.Scan(dest...)
}

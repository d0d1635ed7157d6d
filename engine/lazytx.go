package engine

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lazyTx is a mutation's transaction, begun by its first statement: BEGIN goes to Postgres in
// the same round trip as that statement (pgx's Batch.BeginTx), and COMMIT in the same round
// trip as the mutation log's insert (commitWith). A mutation whose function issues k statements
// so costs k + 1 round trips, not k + 3.
//
// It satisfies pgx.Tx for libraries that take one (River's InsertTx): the methods that cannot
// be pipelined begin the transaction on their own round trip first.
type lazyTx struct {
	conn *pgxpool.Conn
	opts pgx.TxOptions
	tx   pgx.Tx // nil until the first statement
	done bool   // committed by commitWith: nothing to roll back
}

var _ pgx.Tx = (*lazyTx)(nil)

func newLazyTx(conn *pgxpool.Conn, opts pgx.TxOptions) *lazyTx {
	return &lazyTx{conn: conn, opts: opts}
}

// begin begins the transaction on its own round trip, for the methods that cannot carry it.
func (t *lazyTx) begin(ctx context.Context) error {
	if t.tx != nil {
		return nil
	}
	tx, err := t.conn.Conn().BeginTx(ctx, t.opts)
	if err != nil {
		return err
	}
	t.tx = tx
	return nil
}

// beginWith sends BEGIN and sql in one batch. The caller reads sql's result from the returned
// batch and closes it.
func (t *lazyTx) beginWith(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.BeginTx(t.opts)
	b.Queue(sql, args...)
	br := t.conn.Conn().SendBatch(ctx, b)
	t.tx = br.Tx()
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.tx != nil {
		return t.tx.Exec(ctx, sql, args...)
	}
	br, err := t.beginWith(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.tx != nil {
		return t.tx.Query(ctx, sql, args...)
	}
	br, err := t.beginWith(ctx, sql, args)
	if err != nil {
		return errRows{err}, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return errRows{err}, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return rowOf{rows: rows, err: err}
}

func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.begin(ctx); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return t.tx.SendBatch(ctx, b)
}

func (t *lazyTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	return t.tx.CopyFrom(ctx, table, columns, src)
}

func (t *lazyTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.tx.Prepare(ctx, name, sql)
}

// Begin starts a savepoint (pgx's pseudo-nested transaction).
func (t *lazyTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.tx.Begin(ctx)
}

// LargeObjects has no context to begin with; it uses a background one.
func (t *lazyTx) LargeObjects() pgx.LargeObjects {
	if err := t.begin(context.Background()); err != nil {
		return pgx.LargeObjects{}
	}
	return t.tx.LargeObjects()
}

func (t *lazyTx) Conn() *pgx.Conn { return t.conn.Conn() }

// Commit commits what the function did; a transaction that never began has nothing to commit.
func (t *lazyTx) Commit(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	t.done = true
	if t.tx == nil {
		return nil
	}
	return t.tx.Commit(ctx)
}

// Rollback is safe after a commit, and costs nothing when no statement ran.
func (t *lazyTx) Rollback(ctx context.Context) error {
	if t.done || t.tx == nil {
		t.done = true
		return nil
	}
	t.done = true
	return t.tx.Rollback(ctx)
}

// commitWith runs sql (the mutation log's insert) and COMMIT in one round trip, beginning the
// transaction in it too when the function issued no statement. A failure of sql leaves the
// transaction aborted (Postgres skips the COMMIT after an error in the same pipeline), for the
// caller to roll back; a COMMIT answered with ROLLBACK is pgx.ErrTxCommitRollback, as
// pgx.Tx.Commit reports it.
func (t *lazyTx) commitWith(ctx context.Context, stmt recordedStatement, dest ...any) (sqlErr, commitErr error) {
	b := &pgx.Batch{}
	if t.tx == nil {
		b.BeginTx(t.opts)
	}
	b.Queue(stmt.sql, stmt.args...)
	b.Queue("commit")
	br := t.conn.Conn().SendBatch(ctx, b)
	if t.tx == nil {
		t.tx = br.Tx()
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	if err := br.QueryRow().Scan(dest...); err != nil {
		_ = br.Close()
		return err, nil
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	t.done = true
	if tag.String() == "ROLLBACK" {
		return nil, pgx.ErrTxCommitRollback
	}
	return nil, nil
}

// batchRows closes the batch that carried BEGIN once its rows are closed.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err = r.br.Close()
		r.br = nil
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

// errRows are the rows of a statement that could not be sent.
type errRows struct{ err error }

func (r errRows) Close()                                       {}
func (r errRows) Err() error                                   { return r.err }
func (r errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r errRows) Next() bool                                   { return false }
func (r errRows) Scan(...any) error                            { return r.err }
func (r errRows) Values() ([]any, error)                       { return nil, r.err }
func (r errRows) RawValues() [][]byte                          { return nil }
func (r errRows) Conn() *pgx.Conn                              { return nil }
func (r errRows) TypeMap() *pgtype.Map                         { return nil }

// rowOf is QueryRow's result over Query, with pgx's semantics: the first row, or ErrNoRows.
type rowOf struct {
	rows pgx.Rows
	err  error
}

func (r rowOf) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

package engine

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// statementsSent counts the statements this process's traced connections sent to Postgres,
// each statement of a pipelined batch counted once (BEGIN and COMMIT included): to the primary,
// and to the replicas (whose pools are traced when the primary's is). It is the figure `ripple
// bench chat` reports per message when pg_stat_statements is not loaded.
var statementsSent, replicaStatementsSent atomic.Int64

// StatementsSent is the number of statements sent on connections set up with TraceStatements,
// and on the replicas' connections of an engine whose pool is.
func StatementsSent() int64 { return statementsSent.Load() + replicaStatementsSent.Load() }

// TraceStatements makes every connection of a pool made from cfg count its statements into
// StatementsSent (and ripple_db_statements_total{server="primary"}); an engine on such a pool
// counts its replicas' statements too (server="replica"). A tracer already set keeps working:
// it is called first.
func TraceStatements(cfg *pgxpool.Config) {
	cfg.ConnConfig.Tracer = &statementTracer{next: cfg.ConnConfig.Tracer, count: &statementsSent}
}

// traceReplicaStatements counts a replica pool's statements when the primary's are counted.
func traceReplicaStatements(primary, replica *pgxpool.Config) {
	if _, traced := primary.ConnConfig.Tracer.(*statementTracer); traced {
		replica.ConnConfig.Tracer = &statementTracer{next: replica.ConnConfig.Tracer, count: &replicaStatementsSent}
	}
}

type statementTracer struct {
	next  pgx.QueryTracer
	count *atomic.Int64
}

func (t *statementTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	t.count.Add(1)
	if t.next != nil {
		return t.next.TraceQueryStart(ctx, conn, data)
	}
	return ctx
}

func (t *statementTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if t.next != nil {
		t.next.TraceQueryEnd(ctx, conn, data)
	}
}

func (t *statementTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	t.count.Add(int64(data.Batch.Len()))
	if bt, ok := t.next.(pgx.BatchTracer); ok {
		return bt.TraceBatchStart(ctx, conn, data)
	}
	return ctx
}

func (t *statementTracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	if bt, ok := t.next.(pgx.BatchTracer); ok {
		bt.TraceBatchQuery(ctx, conn, data)
	}
}

func (t *statementTracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if bt, ok := t.next.(pgx.BatchTracer); ok {
		bt.TraceBatchEnd(ctx, conn, data)
	}
}

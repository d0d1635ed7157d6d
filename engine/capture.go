package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

// DoNotCapture names tables that no query of the application reads: writes to them send no
// change notification (no capture triggers, no row images, no NOTIFY), which takes their cost
// off every write path that touches them. A work queue that only background jobs read is the
// typical case. A query that reads one of them fails with an internal error naming the table
// rather than going stale, so a mistake shows on its first run.
//
// The engine applies the list at Start (the capture triggers are reinstalled when it changed);
// processes of one deployment must agree on it.
func (r *Registry) DoNotCapture(tables ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range tables {
		if !slices.Contains(r.uncaptured, t) {
			r.uncaptured = append(r.uncaptured, t)
		}
	}
	slices.Sort(r.uncaptured)
}

// applyCaptureSkip makes the database's skip list the registry's, reinstalling the capture
// triggers only when it changed (the usual start reads one row set and writes nothing).
func (e *Engine) applyCaptureSkip(ctx context.Context) error {
	e.registry.mu.RLock()
	want := slices.Clone(e.registry.uncaptured)
	e.registry.mu.RUnlock()
	if want == nil {
		want = []string{}
	}
	q := dbsqlc.New()
	have, err := q.CaptureSkipList(ctx, e.pool)
	if err != nil {
		return fmt.Errorf("reading the capture skip list (is the schema migrated?): %w", err)
	}
	if slices.Equal(have, want) || (len(have) == 0 && len(want) == 0) {
		return nil
	}
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := q.CaptureSkipLock(ctx, tx); err != nil {
			return err
		}
		if err := q.CaptureSkipClear(ctx, tx); err != nil {
			return err
		}
		if err := q.CaptureSkipAdd(ctx, tx, want); err != nil {
			return err
		}
		return q.CaptureInstall(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("applying Registry.DoNotCapture: %w", err)
	}
	e.logger.Info("change capture reinstalled", "uncaptured", want)
	return nil
}

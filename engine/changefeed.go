package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine/internal/changefeed"
	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
	"github.com/ripplehq/ripple/engine/internal/reactor"
)

// The change feeds Config.ChangeFeed names.
const (
	ChangeFeedNotify  = changefeed.ModeNotify
	ChangeFeedLogical = changefeed.ModeLogical
)

// ErrChangeFeedMismatch is returned by Start when processes with the other change feed are
// connected to the database: one deployment runs one feed (stop them, or start this one with
// theirs).
var ErrChangeFeedMismatch = errors.New("engine: processes with another change feed are running on this database")

// changeFeed is what the engine needs of a change feed (the reactor needs only reactor.Feed).
type changeFeed interface {
	reactor.Feed
	Start(ctx context.Context) error
	Stop()
	Connected() bool
	Gaps() int64
	BackendPID() uint32
	Probe(ctx context.Context, send func(ctx context.Context, sql string, args ...any) error) error
}

func (e *Engine) newChangeFeed() changeFeed {
	conn := e.pool.Config().ConnConfig
	if e.config.ChangeFeed == ChangeFeedLogical {
		return changefeed.NewLogical(changefeed.LogicalConfig{ConnConfig: conn, Schema: e.config.Schema, Logger: e.logger})
	}
	return changefeed.New(changefeed.Config{ConnConfig: conn, Schema: e.config.Schema, Logger: e.logger})
}

// applyChangeFeed makes the database's change feed this process's. Each running process holds a
// shared advisory lock for its feed on its feed's connection, so the switch, which needs that
// lock exclusively for the feed being left, happens only when no process of that feed is
// connected; otherwise Start fails with ErrChangeFeedMismatch. A process of the old feed that
// was disconnected meanwhile finds the database switched when it reconnects, refuses to
// deliver, and says so in its log and /readyz (listener disconnected).
func (e *Engine) applyChangeFeed(ctx context.Context) error {
	want := e.config.ChangeFeed
	q := dbsqlc.New()
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := q.ChangeFeedSwitchLock(ctx, tx); err != nil {
			return err
		}
		have, err := q.ChangeFeedGet(ctx, tx)
		if err != nil {
			return fmt.Errorf("reading the change feed mode (is the schema migrated?): %w", err)
		}
		if have == want {
			return nil
		}
		free, err := q.ChangeFeedTryExclusive(ctx, tx, have)
		if err != nil {
			return err
		}
		if !free {
			return fmt.Errorf("%w: the database runs %q, this process is configured for %q", ErrChangeFeedMismatch, have, want)
		}
		if err := q.ChangeFeedSet(ctx, tx, want); err != nil {
			return fmt.Errorf("switching the change feed to %s: %w", want, err)
		}
		e.logger.Info("change feed switched", "from", have, "to", want)
		return nil
	})
}

// slotStatus is the logical feed's slot as /readyz reports it; nil with the NOTIFY feed.
func (e *Engine) slotStatus(ctx context.Context) (map[string]any, bool) {
	lf, ok := e.listener.(*changefeed.Logical)
	if !ok {
		return nil, false
	}
	name := lf.SlotName()
	out := map[string]any{"feed": ChangeFeedLogical, "slot": name}
	if name == "" {
		out["state"] = "disconnected"
		return out, true
	}
	slots, err := dbsqlc.New().SlotsList(ctx, e.pool)
	if err != nil {
		out["state"] = "unknown"
		return out, true
	}
	for _, s := range slots {
		if s.SlotName == name {
			out["behindBytes"] = s.BehindBytes
			out["retainedBytes"] = s.RetainedBytes
			out["state"] = "ok"
			if s.BehindBytes > e.config.SlotBehindBytes {
				out["state"] = "behind"
			}
			return out, true
		}
	}
	// Dropped under the feed (ripple slots drop): it reconnects with a new one.
	out["state"] = "missing"
	return out, true
}

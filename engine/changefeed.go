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

// slotBehind reports whether a slotStatus says the slot is past Config.SlotBehindBytes.
func slotBehind(status map[string]any) bool { return status["state"] == "behind" }

// Slot is one of Ripple's replication slots (the logical feed's, one per process).
type Slot struct {
	Name      string `json:"name"`
	Temporary bool   `json:"temporary"`
	Active    bool   `json:"active"`
	// ActivePID is the backend streaming from it (0 when none).
	ActivePID int `json:"activePid"`
	// RetainedBytes is the WAL Postgres keeps for it; BehindBytes how far what it confirmed
	// is behind the current WAL position.
	RetainedBytes int64  `json:"retainedBytes"`
	BehindBytes   int64  `json:"behindBytes"`
	WALStatus     string `json:"walStatus"`
}

// Slots lists Ripple's replication slots in the pool's database (`ripple slots`).
func Slots(ctx context.Context, pool dbsqlc.DBTX) ([]Slot, error) {
	rows, err := dbsqlc.New().SlotsList(ctx, pool)
	if err != nil {
		return nil, err
	}
	out := make([]Slot, 0, len(rows))
	for _, r := range rows {
		out = append(out, Slot{Name: r.SlotName, Temporary: r.Temporary, Active: r.Active, ActivePID: int(r.ActivePid),
			RetainedBytes: r.RetainedBytes, BehindBytes: r.BehindBytes, WALStatus: r.WalStatus})
	}
	return out, nil
}

// ErrNoSuchSlot: DropSlot was given a name that is not one of Ripple's slots.
var ErrNoSuchSlot = errors.New("no such Ripple replication slot")

// DropSlot drops one of Ripple's slots (`ripple slots drop`): an active one by ending the session
// streaming from it (its temporary slot goes with the session; the process reconnects with a
// new slot and re-runs every subscription), an inactive one directly. Ripple never drops a slot
// by itself: a slot past Config.SlotBehindBytes is only reported.
func DropSlot(ctx context.Context, pool dbsqlc.DBTX, name string) error {
	slots, err := Slots(ctx, pool)
	if err != nil {
		return err
	}
	for _, s := range slots {
		if s.Name != name {
			continue
		}
		q := dbsqlc.New()
		if s.Active {
			_, err := q.SlotTerminate(ctx, pool, name)
			return err
		}
		return q.SlotDrop(ctx, pool, name)
	}
	return fmt.Errorf("%w: %q", ErrNoSuchSlot, name)
}

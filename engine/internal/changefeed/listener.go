package changefeed

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the NOTIFY channel of a schema's capture triggers.
func Channel(schema string) string { return "ripple_changes:" + schema }

// MarkerPrefix starts the payload of a marker notification.
const MarkerPrefix = "marker:"

// ProbePrefix starts the payload of a Probe's notification.
const ProbePrefix = "probe:"

// Change is one statement's change to one table.
type Change struct {
	Table string
	Xid   uint64
	// All is set when the change may touch any row (TRUNCATE, or a payload too large to list).
	All bool
	// Keys maps each captured column to the distinct values (as text) of the affected rows.
	Keys map[string][]string
	// Columns and Rows are the old and new images of the affected rows, restricted to the
	// captured columns (timestamps as integer microseconds; nil for NULL). Rows is nil when the
	// statement touched too many rows to list: then only Keys is known.
	Columns []string
	Rows    [][]*string
	// Arrived is when the notification reached this process (for the invalidation-lag metric).
	Arrived time.Time
}

// EventKind says what an Event is.
type EventKind int

const (
	EventChange EventKind = iota
	EventMarker
	// EventReset: the connection was (re)established after a loss; changes may have been missed.
	EventReset
)

// Event is what the listener delivers, in commit order.
type Event struct {
	Kind   EventKind
	Change Change
	Marker string
}

// Config configures a Listener.
type Config struct {
	ConnConfig *pgx.ConnConfig
	Schema     string
	Logger     *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay.
	MinBackoff, MaxBackoff time.Duration
}

// Listener delivers Events until stopped.
type Listener struct {
	*lifecycle
	cfg Config
	// marks are Mark's payloads waiting to be sent on the connection; waitCancel interrupts
	// the loop's wait for a notification so it sends them.
	marksMu    sync.Mutex
	marks      []string
	waitCancel atomic.Pointer[context.CancelFunc]
}

// Mark sends a marker notification (payload after MarkerPrefix) on the listening connection
// itself, and returns without waiting: the marker arrives among the events, after every
// notification of a transaction that committed before it. A backend delivers its own
// notifications as it answers the statement that sent them, so a marker costs one round trip,
// where one sent from another connection also waits for Postgres to signal this one's backend.
// A marker lost with the connection is followed by EventReset.
func (l *Listener) Mark(marker string) {
	l.marksMu.Lock()
	l.marks = append(l.marks, MarkerPrefix+marker)
	l.marksMu.Unlock()
	if cancel := l.waitCancel.Load(); cancel != nil {
		(*cancel)()
	}
}

// sendMarks sends the queued markers on conn; notifications that arrive meanwhile are kept by
// pgx for the next wait.
func (l *Listener) sendMarks(ctx context.Context, conn *pgx.Conn) error {
	l.marksMu.Lock()
	marks := l.marks
	l.marks = nil
	l.marksMu.Unlock()
	for _, m := range marks {
		if _, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", Channel(l.cfg.Schema), m); err != nil {
			return err
		}
	}
	return nil
}

// Probe checks that the connection delivers: send (run on another connection) sends a
// notification to the listener's channel, and Probe waits for it until ctx ends.
func (l *Listener) Probe(ctx context.Context, send func(ctx context.Context, sql string, args ...any) error) error {
	return l.probe(ctx, ProbePrefix, func(payload string) error {
		return send(ctx, "SELECT pg_notify($1, $2)", Channel(l.cfg.Schema), payload)
	})
}

// New returns a listener; call Start.
func New(cfg Config) *Listener {
	l := &Listener{cfg: cfg}
	l.lifecycle = newLifecycle("change listener", cfg.Logger, cfg.MinBackoff, cfg.MaxBackoff, l.connect)
	return l
}

// listenConn is the Listener's LISTEN connection.
type listenConn struct {
	l    *Listener
	conn *pgx.Conn
}

func (l *Listener) connect(ctx context.Context) (conn, error) {
	c, err := pgx.ConnectConfig(ctx, l.cfg.ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if err := holdMode(ctx, c, ModeNotify); err != nil {
		c.Close(ctx)
		return nil, err
	}
	if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{Channel(l.cfg.Schema)}.Sanitize()); err != nil {
		c.Close(ctx)
		return nil, err
	}
	return &listenConn{l: l, conn: c}, nil
}

func (c *listenConn) pid() uint32     { return c.conn.PgConn().PID() }
func (c *listenConn) logAttrs() []any { return nil }

func (c *listenConn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.conn.Close(ctx)
}

func (c *listenConn) serve(ctx context.Context, healthy func()) error {
	l := c.l
	for {
		// The wait's cancel is published before the markers are looked at, so a Mark either
		// finds its marker taken here or interrupts the wait below.
		waitCtx, waitCancel := context.WithCancel(ctx)
		l.waitCancel.Store(&waitCancel)
		if err := l.sendMarks(ctx, c.conn); err != nil {
			waitCancel()
			return err
		}
		n, err := c.conn.WaitForNotification(waitCtx)
		waitCancel()
		if err != nil {
			if ctx.Err() == nil && !c.conn.IsClosed() {
				continue // interrupted by Mark: a timeout leaves the connection usable
			}
			return err
		}
		healthy()
		if strings.HasPrefix(n.Payload, ProbePrefix) {
			l.probeArrived(n.Payload)
			continue
		}
		if ev, ok := parse(n.Payload); ok {
			if err := l.deliver(ctx, ev); err != nil {
				return err
			}
		} else {
			l.logger.Warn("ignoring malformed change notification", "bytes", len(n.Payload))
		}
	}
}

type payload struct {
	Table   string               `json:"t"`
	Xid     string               `json:"x"`
	All     bool                 `json:"all"`
	Keys    map[string][]*string `json:"c"`
	Columns []string             `json:"k"`
	Rows    [][]*string          `json:"r"`
}

func parse(s string) (Event, bool) {
	if marker, ok := strings.CutPrefix(s, MarkerPrefix); ok {
		return Event{Kind: EventMarker, Marker: marker}, true
	}
	var p payload
	if err := json.Unmarshal([]byte(s), &p); err != nil || p.Table == "" {
		return Event{}, false
	}
	xid, err := strconv.ParseUint(p.Xid, 10, 64)
	if err != nil {
		return Event{}, false
	}
	c := Change{Table: p.Table, Xid: xid, All: p.All, Keys: make(map[string][]string, max(len(p.Keys), len(p.Columns)))}
	if len(p.Columns) > 0 {
		// Row images: the key lookups need the distinct values per column too.
		for _, row := range p.Rows {
			if len(row) != len(p.Columns) {
				return Event{Kind: EventChange, Change: Change{Table: p.Table, Xid: xid, All: true}}, true
			}
		}
		return Event{Kind: EventChange, Change: rowsChange(p.Table, xid, p.Columns, p.Rows)}, true
	}
	for col, vals := range p.Keys {
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			if v != nil {
				out = append(out, *v)
			}
		}
		c.Keys[col] = out
	}
	return Event{Kind: EventChange, Change: c}, true
}

// rowsChange is a change with row images; the key lookups need the distinct values per column
// too.
func rowsChange(table string, xid uint64, columns []string, rows [][]*string) Change {
	c := Change{Table: table, Xid: xid, Keys: make(map[string][]string, len(columns)), Columns: columns, Rows: rows}
	for i, col := range columns {
		seen := map[string]bool{}
		for _, row := range rows {
			if v := row[i]; v != nil && !seen[*v] {
				seen[*v] = true
				c.Keys[col] = append(c.Keys[col], *v)
			}
		}
	}
	return c
}

// Snapshot is a parsed pg_current_snapshot(): which transactions a snapshot sees.
type Snapshot struct {
	Xmin, Xmax uint64
	InProgress map[uint64]struct{}
}

// ParseSnapshot parses the text form "xmin:xmax:xip,xip,...". Like Postgres it refuses an
// xmin above xmax or an in-progress xid outside [xmin, xmax): Sees would contradict itself.
func ParseSnapshot(s string) (Snapshot, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Snapshot{}, false
	}
	xmin, err1 := strconv.ParseUint(parts[0], 10, 64)
	xmax, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil || xmin > xmax {
		return Snapshot{}, false
	}
	snap := Snapshot{Xmin: xmin, Xmax: xmax, InProgress: map[uint64]struct{}{}}
	if parts[2] != "" {
		for _, x := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil || v < xmin || v >= xmax {
				return Snapshot{}, false
			}
			snap.InProgress[v] = struct{}{}
		}
	}
	return snap, true
}

// Sees reports whether a committed transaction is visible in the snapshot.
func (s Snapshot) Sees(xid uint64) bool {
	if xid < s.Xmin {
		return true
	}
	if xid >= s.Xmax {
		return false
	}
	_, running := s.InProgress[xid]
	return !running
}

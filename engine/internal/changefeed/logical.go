package changefeed

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

// Modes of the change feed, as ripple_change_feed stores them.
const (
	ModeNotify  = "notify"
	ModeLogical = "logical"
)

// ErrModeMismatch: the database's change feed is not this process's (another process switched
// it, or this one was configured differently from the deployment).
var ErrModeMismatch = errors.New("the database's change feed mode is not this process's")

// SlotPrefix starts the name of every replication slot Ripple makes.
const SlotPrefix = "ripple_"

// holdMode takes the shared lock that says a process of mode runs on the connection's schema,
// and checks that the database is set up for that mode.
func holdMode(ctx context.Context, conn *pgx.Conn, mode string) error {
	q := dbsqlc.New()
	if err := q.ChangeFeedHoldShared(ctx, conn, mode); err != nil {
		return err
	}
	have, err := q.ChangeFeedGet(ctx, conn)
	if err != nil {
		return err
	}
	if have != mode {
		return fmt.Errorf("%w: the database's is %q, this process's %q", ErrModeMismatch, have, mode)
	}
	return nil
}

// messagePrefix is the prefix of the logical decoding messages (markers, probes) of a schema's
// feed: every slot of the database receives every message, so the schema tells them apart.
func messagePrefix(schema, kind string) string { return "ripple:" + kind + ":" + schema }

// LogicalConfig configures a Logical feed.
type LogicalConfig struct {
	// ConnConfig connects to the primary with the schema first on the search_path. The role
	// needs the REPLICATION attribute (or to be a superuser).
	ConnConfig *pgx.ConnConfig
	Schema     string
	Logger     *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay.
	MinBackoff, MaxBackoff time.Duration
	// StatusInterval is how often the feed confirms the position it has delivered, which lets
	// the slot release WAL. Default 1 s.
	StatusInterval time.Duration
}

// Logical is the change feed decoded from logical replication: a TEMPORARY slot with the
// pgoutput plugin over the schema's publication (ripple_capture_install_logical). It delivers
// the same Events as the NOTIFY Listener for the same writes; markers are transactional logical
// decoding messages committed after the batch's snapshot was taken (Mark).
type Logical struct {
	*lifecycle
	cfg  LogicalConfig
	slot atomic.Pointer[string]

	marksMu  sync.Mutex
	marks    []string
	markWake chan struct{}
}

// NewLogical returns a logical feed; call Start. Its Reconnect drops the connections and
// connects again with a new slot; Stop closes them, and Postgres drops the temporary slot with
// its session.
func NewLogical(cfg LogicalConfig) *Logical {
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = time.Second
	}
	l := &Logical{cfg: cfg, markWake: make(chan struct{}, 1)}
	l.lifecycle = newLifecycle("logical change feed", cfg.Logger, cfg.MinBackoff, cfg.MaxBackoff, l.connect)
	return l
}

// SlotName is the current replication slot's name ("" while disconnected).
func (l *Logical) SlotName() string {
	if p := l.slot.Load(); p != nil {
		return *p
	}
	return ""
}

// Mark commits a transactional logical decoding message carrying marker, synchronously (so its
// commit record is flushed and the walsender may send it), and returns without waiting. Its
// commit comes after every commit the caller's snapshot sees, and pgoutput sends transactions
// in commit order: when the marker arrives, every change the snapshot sees has (docs/engine.md,
// Change feeds). A marker lost with the connection is followed by EventReset.
func (l *Logical) Mark(marker string) {
	l.marksMu.Lock()
	l.marks = append(l.marks, marker)
	l.marksMu.Unlock()
	select {
	case l.markWake <- struct{}{}:
	default:
	}
}

// Probe checks that the feed delivers: send (run on another connection) commits a logical
// decoding message, and Probe waits for it to come back until ctx ends.
func (l *Logical) Probe(ctx context.Context, send func(ctx context.Context, sql string, args ...any) error) error {
	return l.probe(ctx, "", func(payload string) error {
		return send(ctx, "SELECT pg_logical_emit_message(true, $1, $2)", messagePrefix(l.cfg.Schema, "probe"), payload)
	})
}

// session is one pair of connections: sql (markers, catalog, the mode lock) and repl (the
// replication stream of one temporary slot).
type session struct {
	l     *Logical
	sqlMu sync.Mutex
	sql   *pgx.Conn
	repl  *pgconn.PgConn
	slot  string

	tables map[string]capturedTable
	rels   map[uint32]*relation
	// nextXid is the newest full transaction id known: the 32-bit xids pgoutput sends are
	// widened to the nearest full id (they are never 2^31 apart).
	nextXid  uint64
	inTxn    bool
	xid      uint64
	group    *group
	received pglogrepl.LSN // delivered up to here (confirmed at the next status update)
	reported pglogrepl.LSN
}

type capturedTable struct {
	rowColumns []string
	watched    map[string]bool
}

// relation maps a pgoutput relation's tuples to the captured row images.
type relation struct {
	table string
	// known is false for a table without captured columns or whose columns do not match the
	// capture list: its changes are table-wide.
	known   bool
	columns []string
	watched []bool
	pos     []int // each captured column's position in the tuple
	kind    []byte
	// keyed: every captured column is in the replica identity, so a key image has them all and
	// an update without an old image did not change them.
	keyed bool
}

const (
	kindPlain byte = iota
	kindTimestamptz
	kindBool
)

// OIDs of the types rendered differently from their text output.
const (
	oidBool        = 16
	oidTimestamptz = 1184
)

func (l *Logical) connect(ctx context.Context) (conn, error) {
	sql, err := pgx.ConnectConfig(ctx, l.cfg.ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	s := &session{l: l, sql: sql, rels: map[uint32]*relation{}}
	fail := func(err error) (conn, error) {
		s.close()
		return nil, err
	}
	if err := holdMode(ctx, sql, ModeLogical); err != nil {
		return fail(err)
	}
	if err := s.loadTables(ctx); err != nil {
		return fail(err)
	}
	pub, err := dbsqlc.New().ChangeFeedPublication(ctx, sql)
	if err != nil {
		return fail(err)
	}
	// The next xid, read without taking one.
	if err := sql.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").Scan(&s.nextXid); err != nil {
		return fail(err)
	}

	rc := l.cfg.ConnConfig.Config.Copy()
	rc.RuntimeParams["replication"] = "database"
	// Timestamps are decoded from their text output: ISO in UTC is the one form parsed here.
	rc.RuntimeParams["DateStyle"] = "ISO, YMD"
	rc.RuntimeParams["TimeZone"] = "UTC"
	rc.RuntimeParams["IntervalStyle"] = "postgres"
	if s.repl, err = pgconn.ConnectConfig(ctx, rc); err != nil {
		return fail(err)
	}
	s.slot = slotName(l.cfg.Schema)
	// A TEMPORARY slot belongs to the session: Postgres drops it when the connection ends,
	// however the process ends (kill -9 included), so slots cannot leak.
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, s.slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if err != nil {
		return fail(fmt.Errorf("creating replication slot (wal_level must be logical): %w", err))
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return fail(err)
	}
	quoted := strings.ReplaceAll(pgx.Identifier{pub}.Sanitize(), "'", "''")
	err = pglogrepl.StartReplication(ctx, s.repl, s.slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + quoted + "'", "messages 'true'"}})
	if err != nil {
		return fail(fmt.Errorf("starting replication: %w", err))
	}
	s.received, s.reported = start, start
	l.slot.Store(&s.slot)
	return s, nil
}

// slotName is unique per connection: ripple_<schema hash>_<random>.
func slotName(schema string) string {
	sum := sha256.Sum256([]byte(schema))
	var r [6]byte
	_, _ = rand.Read(r[:])
	return SlotPrefix + hex.EncodeToString(sum[:4]) + "_" + hex.EncodeToString(r[:])
}

func (s *session) pid() uint32     { return s.repl.PID() }
func (s *session) logAttrs() []any { return []any{"slot", s.slot} }

func (s *session) close() {
	s.l.slot.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.repl != nil {
		s.repl.Close(ctx)
	}
	s.sqlMu.Lock()
	s.sql.Close(ctx)
	s.sqlMu.Unlock()
}

// loadTables reads the capture catalog: which columns of which table the row images carry.
func (s *session) loadTables(ctx context.Context) error {
	s.sqlMu.Lock()
	defer s.sqlMu.Unlock()
	rows, err := dbsqlc.New().CaptureColumnsList(ctx, s.sql)
	if err != nil {
		return err
	}
	s.tables = make(map[string]capturedTable, len(rows))
	for _, r := range rows {
		t := capturedTable{rowColumns: r.RowColumns, watched: map[string]bool{}}
		for _, w := range r.Watched {
			t.watched[w] = true
		}
		s.tables[r.TableName] = t
	}
	return nil
}

// serve streams the slot, and sends the markers alongside, until either fails or ctx ends.
func (s *session) serve(ctx context.Context, healthy func()) error {
	healthy()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sendMarks(ctx, cancel)
	}()
	err := s.receive(ctx)
	cancel()
	wg.Wait()
	return err
}

// sendMarks commits the queued markers on the sql connection, several in one transaction when
// they queued up together. A failure drops the session (cancel): the marker is lost, and the
// reconnect's EventReset says so.
func (s *session) sendMarks(ctx context.Context, cancel context.CancelFunc) {
	prefix := messagePrefix(s.l.cfg.Schema, "marker")
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.l.markWake:
		}
		s.l.marksMu.Lock()
		marks := s.l.marks
		s.l.marks = nil
		s.l.marksMu.Unlock()
		if len(marks) == 0 {
			continue
		}
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		// The marker's commit must be flushed before the walsender sends it, whatever the
		// server's default: an asynchronous commit would wait for the WAL writer. Local: the
		// walsender needs the local flush only, not synchronous standbys.
		b.Queue("SET LOCAL synchronous_commit = local")
		for _, m := range marks {
			b.Queue("SELECT pg_logical_emit_message(true, $1, $2)", prefix, m)
		}
		b.Queue("COMMIT")
		s.sqlMu.Lock()
		err := s.sql.SendBatch(ctx, b).Close()
		s.sqlMu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				s.l.logger.Warn("logical change feed could not send a marker; reconnecting", "error", err)
			}
			cancel()
			return
		}
	}
}

// receive reads the replication stream until it fails or ctx ends.
func (s *session) receive(ctx context.Context) error {
	interval := s.l.cfg.StatusInterval
	nextStatus := time.Now().Add(interval)
	lastSent := time.Now()
	for {
		now := time.Now()
		if !now.Before(nextStatus) {
			// Confirm what was delivered; at least every 10 s as a keepalive.
			if s.received > s.reported || now.Sub(lastSent) >= 10*time.Second {
				err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: s.received})
				if err != nil {
					return err
				}
				s.reported, lastSent = s.received, now
			}
			nextStatus = now.Add(interval)
		}
		rctx, cancel := context.WithDeadline(ctx, nextStatus)
		msg, err := s.repl.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil && !s.repl.IsClosed() {
				continue
			}
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return err
				}
				// Between transactions, everything before the server's position was sent:
				// confirming it lets an idle slot release WAL that other schemas wrote.
				if !s.inTxn && k.ServerWALEnd > s.received {
					s.received = k.ServerWALEnd
				}
				if k.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return err
				}
				if err := s.handle(ctx, x.WALData); err != nil {
					return err
				}
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		}
	}
}

// handle decodes one pgoutput message.
func (s *session) handle(ctx context.Context, data []byte) error {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("decoding pgoutput: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		return s.relation(ctx, m)
	case *pglogrepl.BeginMessage:
		s.inTxn, s.xid = true, s.fullXid(m.Xid)
	case *pglogrepl.InsertMessage:
		return s.row(ctx, m.RelationID, 'i', 0, nil, m.Tuple)
	case *pglogrepl.UpdateMessage:
		return s.row(ctx, m.RelationID, 'u', m.OldTupleType, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		return s.row(ctx, m.RelationID, 'd', m.OldTupleType, m.OldTuple, nil)
	case *pglogrepl.TruncateMessage:
		if err := s.flush(ctx); err != nil {
			return err
		}
		for _, id := range m.RelationIDs {
			if rel := s.rels[id]; rel != nil {
				if err := s.l.deliver(ctx, Event{Kind: EventChange, Change: allChange(rel.table, s.xid)}); err != nil {
					return err
				}
			}
		}
	case *pglogrepl.LogicalDecodingMessage:
		if err := s.flush(ctx); err != nil {
			return err
		}
		switch m.Prefix {
		case messagePrefix(s.l.cfg.Schema, "marker"):
			return s.l.deliver(ctx, Event{Kind: EventMarker, Marker: string(m.Content)})
		case messagePrefix(s.l.cfg.Schema, "probe"):
			s.l.probeArrived(string(m.Content))
		}
	case *pglogrepl.CommitMessage:
		if err := s.flush(ctx); err != nil {
			return err
		}
		s.inTxn = false
		s.received = m.TransactionEndLSN
	}
	return nil
}

// fullXid widens a 32-bit xid to the full id nearest the newest one known.
func (s *session) fullXid(x uint32) uint64 {
	ref := s.nextXid
	full := ref&^0xffffffff | uint64(x)
	switch {
	case full > ref+1<<31 && full >= 1<<32:
		full -= 1 << 32
	case full+1<<31 < ref:
		full += 1 << 32
	}
	s.nextXid = max(s.nextXid, full)
	return full
}

func (s *session) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	if m.Namespace != s.l.cfg.Schema {
		// Another schema's table in the publication (not made by Ripple): not watched here.
		s.rels[m.RelationID] = &relation{table: m.Namespace + "." + m.RelationName}
		return nil
	}
	t, ok := s.tables[m.RelationName]
	if !ok {
		// A table created since the catalog was read.
		if err := s.loadTables(ctx); err != nil {
			return err
		}
		t, ok = s.tables[m.RelationName]
	}
	rel := &relation{table: m.RelationName}
	s.rels[m.RelationID] = rel
	if !ok || len(t.rowColumns) == 0 {
		return nil
	}
	byName := map[string]int{}
	for i, c := range m.Columns {
		byName[c.Name] = i
	}
	rel.keyed = true
	for _, c := range t.rowColumns {
		i, found := byName[c]
		if !found {
			return nil // the catalog and the relation disagree: table-wide changes
		}
		kind := kindPlain
		switch m.Columns[i].DataType {
		case oidTimestamptz:
			kind = kindTimestamptz
		case oidBool:
			kind = kindBool
		}
		rel.columns = append(rel.columns, c)
		rel.watched = append(rel.watched, t.watched[c])
		rel.pos = append(rel.pos, i)
		rel.kind = append(rel.kind, kind)
		if m.Columns[i].Flags&1 == 0 {
			rel.keyed = false
		}
	}
	rel.known = true
	return nil
}

// group gathers consecutive row changes of one table and kind within a transaction, as one
// statement's capture trigger would: old images first, then new ones.
type group struct {
	rel        *relation
	op         byte
	all        bool
	olds, news [][]*string
}

// The capture trigger's bounds: past 50 row images or about 7 KB, distinct keys; past 7 KB of
// keys, the whole table.
const (
	maxRowImages  = 50
	maxChangeSize = 7000
)

func (s *session) row(ctx context.Context, relID uint32, op, oldType byte, oldTuple, newTuple *pglogrepl.TupleData) error {
	rel := s.rels[relID]
	if rel == nil {
		return fmt.Errorf("pgoutput sent a change of relation %d before describing it", relID)
	}
	if g := s.group; g != nil && (g.rel != rel || g.op != op) {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	if s.group == nil {
		s.group = &group{rel: rel, op: op, all: !rel.known}
	}
	g := s.group
	if g.all {
		return nil
	}
	var oldImg, newImg []*string
	ok := true
	if newTuple != nil {
		newImg, ok = rel.image(newTuple, oldTuple, false)
	}
	if ok && op != 'i' {
		switch {
		case oldTuple != nil:
			oldImg, ok = rel.image(oldTuple, nil, oldType == 'K')
		case rel.keyed && newImg != nil:
			oldImg = newImg // the key, which holds every captured column, did not change
		default:
			ok = false
		}
	}
	if !ok {
		g.all = true
		g.olds, g.news = nil, nil
		return nil
	}
	if oldImg != nil {
		g.olds = append(g.olds, oldImg)
	}
	if newImg != nil {
		g.news = append(g.news, newImg)
	}
	return nil
}

// image is a tuple's captured columns as the capture trigger renders them. An unchanged TOASTed
// value is taken from fallback (the old tuple); a key image (keyOnly) has only the replica
// identity's columns. ok is false when a captured value is not known.
func (rel *relation) image(t, fallback *pglogrepl.TupleData, keyOnly bool) ([]*string, bool) {
	img := make([]*string, len(rel.columns))
	for i, p := range rel.pos {
		if p >= len(t.Columns) {
			return nil, false
		}
		c := t.Columns[p]
		if c.DataType == pglogrepl.TupleDataTypeToast {
			if fallback == nil || p >= len(fallback.Columns) || fallback.Columns[p].DataType != pglogrepl.TupleDataTypeText {
				return nil, false
			}
			c = fallback.Columns[p]
		}
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			if keyOnly && !rel.keyed {
				return nil, false
			}
		case pglogrepl.TupleDataTypeText:
			v, ok := render(string(c.Data), rel.kind[i])
			if !ok {
				return nil, false
			}
			img[i] = v
		default:
			return nil, false
		}
	}
	return img, true
}

// render turns a column's text output into the capture trigger's form: booleans as true/false,
// timestamps as integer microseconds since the epoch (nil when infinite).
func render(v string, kind byte) (*string, bool) {
	switch kind {
	case kindBool:
		switch v {
		case "t":
			v = "true"
		case "f":
			v = "false"
		}
	case kindTimestamptz:
		if v == "infinity" || v == "-infinity" {
			return nil, true
		}
		us, ok := parseTimestamptz(v)
		if !ok {
			return nil, false
		}
		v = strconv.FormatInt(us, 10)
	}
	return &v, true
}

// parseTimestamptz parses timestamptz output in DateStyle ISO and TimeZone UTC
// ("2026-12-07 01:02:03.123456+00", "0044-03-15 12:00:00+00 BC") to microseconds since the
// Unix epoch.
func parseTimestamptz(v string) (int64, bool) {
	bc := false
	if rest, ok := strings.CutSuffix(v, " BC"); ok {
		v, bc = rest, true
	}
	t, err := time.Parse("2006-01-02 15:04:05.999999Z07", v)
	if err != nil {
		// Years past 9999 have more digits than the layout.
		i := strings.IndexByte(v, '-')
		if i <= 4 {
			return 0, false
		}
		year, err := strconv.Atoi(v[:i])
		if err != nil {
			return 0, false
		}
		t, err = time.Parse("2006-01-02 15:04:05.999999Z07", "2000"+v[i:])
		if err != nil {
			return 0, false
		}
		t = t.AddDate(year-2000, 0, 0)
	}
	if bc {
		// 1 BC is year 0.
		t = t.AddDate(1-2*t.Year(), 0, 0)
	}
	return t.UnixMicro(), true
}

// flush emits the gathered group as one Change.
func (s *session) flush(ctx context.Context) error {
	g := s.group
	if g == nil {
		return nil
	}
	s.group = nil
	return s.l.deliver(ctx, Event{Kind: EventChange, Change: g.change(s.xid)})
}

func allChange(table string, xid uint64) Change {
	return Change{Table: table, Xid: xid, All: true, Keys: map[string][]string{}}
}

func (g *group) change(xid uint64) Change {
	table := g.rel.table
	if g.all {
		return allChange(table, xid)
	}
	rows := append(g.olds, g.news...)
	if len(rows) <= maxRowImages && imagesSize(table, xid, g.rel.columns, rows) <= maxChangeSize {
		return rowsChange(table, xid, g.rel.columns, rows)
	}
	// Distinct values per watched column, as the trigger sends past its bounds.
	c := Change{Table: table, Xid: xid, Keys: map[string][]string{}}
	size := 0
	for i, col := range g.rel.columns {
		if !g.rel.watched[i] {
			continue
		}
		seen := map[string]bool{}
		vals := []string{}
		for _, row := range rows {
			if v := row[i]; v != nil && !seen[*v] {
				seen[*v] = true
				vals = append(vals, *v)
				size += len(*v) + 4
			}
		}
		c.Keys[col] = vals
	}
	if len(c.Keys) == 0 || size > maxChangeSize {
		return allChange(table, xid)
	}
	return c
}

// imagesSize estimates the size of the trigger's payload for these images (jsonb's text form,
// with its spaces).
func imagesSize(table string, xid uint64, columns []string, rows [][]*string) int {
	buf, _ := json.Marshal(map[string]any{"t": table, "x": strconv.FormatUint(xid, 10), "k": columns, "r": rows})
	return len(buf) + 2*len(columns)*(len(rows)+1) + 8
}

// Package replicas runs reads on PostgreSQL hot standbys: a small pool per replica, a health
// loop that takes a replica that is down, lagging or promoted out of rotation and retries it
// with backoff, and the wait that makes a replica usable for a read: it must have replayed the
// primary's WAL up to a position read on the primary first (Set.Acquire).
//
// Why that wait is enough for freshness: every transaction visible on the primary when its WAL
// insert position L is read has its commit record before L, and a standby whose
// pg_last_wal_replay_lsn() has reached L has applied those commit records, so a snapshot taken
// on it afterwards sees them. Soundness of what a batch shows does not rest on it: the reactor
// takes the replica's exact snapshot (ExactSnapshot) and checks visibility by xid, as on the
// primary.
package replicas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures a Set.
type Config struct {
	// URLs are the replicas' connection strings.
	URLs []string
	// Primary is the primary's pool: its connections' settings (search_path, AfterConnect) are
	// copied to the replicas', and its WAL position is read there.
	Primary *pgxpool.Pool
	// MaxWait bounds how long a read waits for a replica to replay the primary's position
	// before it runs on the primary instead. Default 100 ms.
	MaxWait time.Duration
	// MaxConns is each replica pool's size. Default 8.
	MaxConns int32
	// CheckInterval is how often a replica in rotation is checked (state, lag). Default 1 s.
	CheckInterval time.Duration
	// MinBackoff and MaxBackoff bound the delay before a replica out of rotation is tried
	// again. Defaults 200 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	// Configure, when set, adjusts each replica pool's configuration before it is made (the
	// engine's statement counting).
	Configure func(*pgxpool.Config)
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.MaxWait == 0 {
		out.MaxWait = 100 * time.Millisecond
	}
	if out.MaxConns == 0 {
		out.MaxConns = 8
	}
	if out.CheckInterval == 0 {
		out.CheckInterval = time.Second
	}
	if out.MinBackoff == 0 {
		out.MinBackoff = 200 * time.Millisecond
	}
	if out.MaxBackoff == 0 {
		out.MaxBackoff = 5 * time.Second
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

// State is a replica's state as the health loop last saw it.
type State string

const (
	StateUp       State = "up"       // in rotation
	StateStarting State = "starting" // not checked yet
	StateDown     State = "down"     // unreachable, or a statement on it failed
	StateLagging  State = "lagging"  // did not replay the primary's position within MaxWait
	StatePromoted State = "promoted" // no longer in recovery: its data may have diverged
	StateUnusable State = "unusable" // answers, but cannot give its exact snapshot (pg_read_file refused)
)

// Replica is one standby.
type Replica struct {
	// Name is host:port, for /readyz and metrics (never the password).
	Name string
	pool *pgxpool.Pool

	mu       sync.Mutex
	state    State
	lastErr  string
	lagBytes int64
	backoff  time.Duration
	retryAt  time.Time
	checkAt  time.Time
}

// Status is a replica's state for /readyz and metrics.
type Status struct {
	Name     string `json:"name"`
	State    State  `json:"state"`
	LagBytes int64  `json:"lagBytes"`
	Error    string `json:"error,omitempty"`
}

// Status returns the replica's state, lag behind the primary (bytes of WAL, at the last check)
// and last error.
func (r *Replica) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{Name: r.Name, State: r.state, LagBytes: r.lagBytes, Error: r.lastErr}
}

func (r *Replica) inRotation() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == StateUp
}

// Set is the replicas of one engine.
type Set struct {
	cfg      Config
	replicas []*Replica
	next     atomic.Uint64
	// segSize is the primary's wal_segment_size (WAL positions at a segment's start skip its
	// header; see target).
	segSize int64

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New parses the replicas' URLs and makes their pools (which connect on first use).
func New(cfg Config) (*Set, error) {
	c := cfg.withDefaults()
	if c.Primary == nil {
		return nil, errors.New("replicas: the primary's pool is required")
	}
	s := &Set{cfg: c, segSize: 16 << 20}
	for _, u := range c.URLs {
		pc, err := PoolConfig(u, c.Primary.Config())
		if err != nil {
			return nil, err
		}
		pc.MaxConns = c.MaxConns
		if c.Configure != nil {
			c.Configure(pc)
		}
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			s.closePools()
			return nil, fmt.Errorf("replicas: %w", err)
		}
		s.replicas = append(s.replicas, &Replica{Name: net.JoinHostPort(pc.ConnConfig.Host, strconv.Itoa(int(pc.ConnConfig.Port))),
			pool: pool, state: StateStarting})
	}
	return s, nil
}

// PoolConfig parses a replica's URL and gives its connections the primary's settings: the
// same search_path and AfterConnect (types registered on each connection), so a query runs the
// same on either.
func PoolConfig(url string, primary *pgxpool.Config) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("replicas: %q is not a valid connection string: %w", redact(url), err)
	}
	if primary != nil {
		for k, v := range primary.ConnConfig.RuntimeParams {
			if _, set := pc.ConnConfig.RuntimeParams[k]; !set {
				pc.ConnConfig.RuntimeParams[k] = v
			}
		}
		pc.AfterConnect = primary.AfterConnect
		if pc.ConnConfig.ConnectTimeout == 0 {
			pc.ConnConfig.ConnectTimeout = primary.ConnConfig.ConnectTimeout
		}
	}
	return pc, nil
}

// redact hides a URL's password in an error.
func redact(url string) string {
	if cfg, err := pgconn.ParseConfig(url); err == nil {
		return cfg.User + "@" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	}
	return "(unparsable)"
}

// Replicas lists the replicas in the order configured.
func (s *Set) Replicas() []*Replica { return s.replicas }

// Start reads the primary's WAL segment size and starts the health loop, which puts each
// replica in rotation once it answers as a standby. It does not wait for the replicas: one
// that is down leaves reads on the primary.
func (s *Set) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return nil
	}
	var seg int64
	if err := s.cfg.Primary.QueryRow(ctx, "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'").Scan(&seg); err != nil {
		return fmt.Errorf("replicas: reading wal_segment_size: %w", err)
	}
	s.segSize = seg
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan struct{})
	go s.run(runCtx)
	return nil
}

// Stop ends the health loop and closes the pools. It is idempotent.
func (s *Set) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
		<-s.done
		s.cancel = nil
	}
	s.closePools()
}

func (s *Set) closePools() {
	for _, r := range s.replicas {
		r.pool.Close()
	}
}

// LSN is a WAL position.
type LSN uint64

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// ParseLSN parses the text form "X/Y".
func ParseLSN(s string) (LSN, error) {
	var hi, lo uint64
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("unreadable LSN %q", s)
	}
	return LSN(hi<<32 | lo), nil
}

// xlogBlock is PostgreSQL's WAL page size (XLOG_BLCKSZ, 8 kB unless built otherwise), and
// the page headers' sizes.
const (
	xlogBlock      = 8192
	shortPageHdr   = 24
	longPageHdr    = 40
	lsnTextColumns = "pg_current_wal_insert_lsn()::text"
)

// Target reads the primary's WAL insert position: every transaction visible on the primary
// now has its commit record before it. A position just past a page header is moved back to
// the page's start: a standby's replay position is the end of the last record it applied, which
// at a page boundary is the boundary, and the header alone is never "replayed".
func (s *Set) Target(ctx context.Context) (LSN, error) {
	var text string
	if err := s.cfg.Primary.QueryRow(ctx, "SELECT "+lsnTextColumns).Scan(&text); err != nil {
		return 0, err
	}
	l, err := ParseLSN(text)
	if err != nil {
		return 0, err
	}
	return s.pageStart(l), nil
}

func (s *Set) pageStart(l LSN) LSN {
	switch {
	case s.segSize > 0 && int64(l)%s.segSize == longPageHdr:
		return l - longPageHdr
	case l%xlogBlock == shortPageHdr && (s.segSize <= 0 || int64(l)%s.segSize != shortPageHdr):
		// Offset 24 in a page can only be the end of its short header: a record continued
		// from the previous page adds at least 8 bytes after it.
		return l - shortPageHdr
	}
	return l
}

// Lease is a connection on a replica that had replayed the target when it was handed out.
type Lease struct {
	Conn    *pgxpool.Conn
	Pool    *pgxpool.Pool
	Replica *Replica
	set     *Set
}

// Release returns the connection. With a non-nil err (a statement on it failed in a way that
// is the replica's trouble, or its connection broke), the replica leaves the rotation until a
// check finds it well again.
func (l *Lease) Release(err error) {
	if err == nil && l.Conn.Conn().IsClosed() {
		err = errors.New("the replica's connection broke")
	}
	l.Conn.Release()
	if err != nil {
		l.set.fail(l.Replica, err)
	}
}

// ErrNoReplica: no replica is in rotation.
var ErrNoReplica = errors.New("no replica in rotation")

// Acquire reads the primary's position and returns a connection on the next replica in
// rotation once it has replayed it, waiting at most MaxWait. A replica that does not get there
// in time leaves the rotation (and the error says why): the caller then runs on the primary.
// It costs one round trip on the primary and one on the replica (longer by the wait).
func (s *Set) Acquire(ctx context.Context) (*Lease, error) {
	r := s.pick()
	if r == nil {
		return nil, ErrNoReplica
	}
	target, err := s.Target(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the primary's WAL position: %w", err)
	}
	// Bounded: with every connection of the replica's pool in use, the primary serves sooner.
	acquireCtx, cancel := context.WithTimeout(ctx, s.cfg.MaxWait)
	conn, err := r.pool.Acquire(acquireCtx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && acquireCtx.Err() == nil {
			s.fail(r, err) // it could not connect
		}
		return nil, err
	}
	if err := waitReplay(ctx, conn.Conn(), target, s.cfg.MaxWait); err != nil {
		conn.Release()
		s.fail(r, err)
		return nil, err
	}
	return &Lease{Conn: conn, Pool: r.pool, Replica: r, set: s}, nil
}

// pick returns the next replica in rotation, round robin, or nil.
func (s *Set) pick() *Replica {
	n := len(s.replicas)
	start := s.next.Add(1)
	for i := range n {
		if r := s.replicas[(int(start)+i)%n]; r.inRotation() {
			return r
		}
	}
	return nil
}

// SQLSTATEs of waitReplay's own errors.
const (
	codeBehind   = "RPL01"
	codePromoted = "RPL02"
)

// waitReplay waits on the replica, in one round trip, until it has replayed target, for at
// most maxWait; it fails when the server is not (or no longer) a standby.
func waitReplay(ctx context.Context, conn *pgx.Conn, target LSN, maxWait time.Duration) error {
	// A DO block takes no parameters; both values are formatted here from numbers.
	sql := fmt.Sprintf(`DO $$DECLARE deadline timestamptz := clock_timestamp() + interval '%d microseconds'; BEGIN
  IF NOT pg_is_in_recovery() THEN RAISE EXCEPTION USING ERRCODE = '%s', MESSAGE = 'the replica is not in recovery (promoted)'; END IF;
  WHILE pg_last_wal_replay_lsn() < '%s'::pg_lsn LOOP
    IF clock_timestamp() > deadline THEN RAISE EXCEPTION USING ERRCODE = '%s', MESSAGE = 'the replica did not replay the primary''s position in time'; END IF;
    PERFORM pg_sleep(0.0005);
  END LOOP; END$$`, maxWait.Microseconds(), codePromoted, target, codeBehind)
	_, err := conn.Exec(ctx, sql)
	return err
}

// stateFor is the state a replica is put in after err.
func stateFor(err error) State {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeBehind:
			return StateLagging
		case codePromoted:
			return StatePromoted
		case "42501": // insufficient_privilege: pg_read_file (ExactSnapshot)
			return StateUnusable
		}
	}
	return StateDown
}

// fail takes a replica out of rotation after err, to be tried again after a backoff that
// doubles while it keeps failing.
func (s *Set) fail(r *Replica, err error) {
	state := stateFor(err)
	r.mu.Lock()
	was := r.state
	if r.backoff == 0 {
		r.backoff = s.cfg.MinBackoff
	} else if was != StateUp {
		r.backoff = min(r.backoff*2, s.cfg.MaxBackoff)
	}
	r.state, r.lastErr, r.retryAt = state, err.Error(), time.Now().Add(r.backoff)
	r.mu.Unlock()
	if was == StateUp || was == StateStarting {
		s.cfg.Logger.Warn("replica out of rotation", "replica", r.Name, "state", state, "error", err)
	}
}

// run checks the replicas until ctx ends: those in rotation every CheckInterval (state and
// lag), the others when their backoff has passed (a full probe; success puts them back).
func (s *Set) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(min(s.cfg.MinBackoff, s.cfg.CheckInterval) / 2)
	defer tick.Stop()
	for {
		now := time.Now()
		for _, r := range s.replicas {
			r.mu.Lock()
			due := (r.state == StateUp && !now.Before(r.checkAt)) || (r.state != StateUp && !now.Before(r.retryAt))
			r.mu.Unlock()
			if due {
				s.check(ctx, r)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check probes one replica the way a batch uses it: the primary's position, the wait for it,
// and the exact snapshot (ExactSnapshot) in a read-only transaction. It records the lag in
// bytes of WAL behind the primary.
func (s *Set) check(ctx context.Context, r *Replica) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := func() error {
		target, err := s.Target(ctx)
		if err != nil {
			return nil // the primary's trouble, not the replica's: nothing learned
		}
		conn, err := r.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		var replayed string
		if err := conn.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn()::text, '0/0')").Scan(&replayed); err != nil {
			return err
		}
		if l, err := ParseLSN(replayed); err == nil {
			r.mu.Lock()
			r.lagBytes = max(0, int64(target)-int64(l))
			r.mu.Unlock()
		}
		if err := waitReplay(ctx, conn.Conn(), target, s.cfg.MaxWait); err != nil {
			return err
		}
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		var current, exported string
		var recovering bool
		if err := tx.QueryRow(ctx, "SELECT "+SnapshotColumns).Scan(&current, &exported, &recovering); err != nil {
			return err
		}
		_, _, err = ExactSnapshot(current, exported, recovering)
		return err
	}()
	if ctx.Err() != nil && err != nil && errors.Is(err, context.Canceled) {
		return // stopping
	}
	if err != nil {
		s.fail(r, err)
		return
	}
	r.mu.Lock()
	if r.state != StateUp {
		s.cfg.Logger.Info("replica in rotation", "replica", r.Name)
	}
	r.state, r.lastErr, r.backoff, r.checkAt = StateUp, "", 0, time.Now().Add(s.cfg.CheckInterval)
	r.mu.Unlock()
}

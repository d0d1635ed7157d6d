package changefeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one connection of a feed, from connect until it fails: the Listener's LISTEN
// connection or the Logical feed's session.
type conn interface {
	// serve delivers events (through lifecycle.deliver) until the connection fails or ctx ends
	// (Reconnect, Stop). It calls healthy when the connection has shown that it works, which
	// resets the reconnect backoff.
	serve(ctx context.Context, healthy func()) error
	// pid is the backend's PID.
	pid() uint32
	// logAttrs describe the connection in the reconnect's log line.
	logAttrs() []any
	close()
}

// lifecycle is what both feeds share: Start and Stop, Reconnect, the events' channel, and the
// loop that serves a connection, reconnects with backoff when it fails, and delivers EventReset.
type lifecycle struct {
	name                   string // of the feed, in log lines
	logger                 *slog.Logger
	minBackoff, maxBackoff time.Duration
	// open connects; the loop serves what it returns.
	open func(ctx context.Context) (conn, error)

	events     chan Event
	connected  atomic.Bool
	gaps       atomic.Int64
	backendPID atomic.Uint32

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	// connCancel ends the current connection (Reconnect).
	connCancel atomic.Pointer[context.CancelFunc]
	// hold, while set, makes deliver wait (HoldDeliveries).
	hold atomic.Pointer[hold]
	// probes are the Probes waiting for their message to come back, by payload.
	probes  sync.Map // string -> chan struct{}
	probeID atomic.Uint64
}

func newLifecycle(name string, logger *slog.Logger, minBackoff, maxBackoff time.Duration, open func(ctx context.Context) (conn, error)) *lifecycle {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if minBackoff == 0 {
		minBackoff = 50 * time.Millisecond
	}
	if maxBackoff == 0 {
		// Short: live updates and mutation replies wait for the feed, and a refused connection
		// attempt costs next to nothing. At 5 s, updates stayed stalled for up to 5 s after
		// Postgres came back.
		maxBackoff = time.Second
	}
	// Unbounded buffering would hide a stuck consumer; a large buffer absorbs bursts.
	return &lifecycle{name: name, logger: logger, minBackoff: minBackoff, maxBackoff: maxBackoff, open: open,
		events: make(chan Event, 65536)}
}

// Events is the stream of events. It is never closed.
func (f *lifecycle) Events() <-chan Event { return f.events }

// Connected reports whether the feed's connection is up.
func (f *lifecycle) Connected() bool { return f.connected.Load() }

// Gaps counts connection losses since start.
func (f *lifecycle) Gaps() int64 { return f.gaps.Load() }

// BackendPID is the feed's connection's backend PID (tests terminate it).
func (f *lifecycle) BackendPID() uint32 { return f.backendPID.Load() }

// Reconnect drops the current connection and connects again, delivering EventReset. The
// reactor calls it when a marker it sent does not come back: a half-open TCP connection looks
// alive until keepalives give up, which can take many minutes.
func (f *lifecycle) Reconnect() {
	if cancel := f.connCancel.Load(); cancel != nil {
		(*cancel)()
	}
}

// Start connects (waiting for the first connection) and begins delivering events.
func (f *lifecycle) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done != nil {
		return nil
	}
	c, err := f.dial(ctx)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	f.done = make(chan struct{})
	go f.run(runCtx, c)
	return nil
}

// Stop closes the connection and waits for the loop to end. It is idempotent.
func (f *lifecycle) Stop() {
	f.mu.Lock()
	cancel, done := f.cancel, f.done
	f.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (f *lifecycle) dial(ctx context.Context) (conn, error) {
	c, err := f.open(ctx)
	if err != nil {
		return nil, err
	}
	f.backendPID.Store(c.pid())
	f.connected.Store(true)
	return c, nil
}

func (f *lifecycle) run(ctx context.Context, c conn) {
	defer close(f.done)
	backoff := f.minBackoff
	healthy := func() { backoff = f.minBackoff }
	for {
		connCtx, connCancel := context.WithCancel(ctx)
		f.connCancel.Store(&connCancel)
		err := c.serve(connCtx, healthy)
		connCancel()
		f.connected.Store(false)
		c.close()
		if ctx.Err() != nil {
			return
		}
		f.gaps.Add(1)
		f.logger.Warn(f.name+" lost its connection; reconnecting", "error", err)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, f.maxBackoff)
			connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err = f.dial(connectCtx)
			cancel()
			if err == nil {
				break
			}
			if errors.Is(err, ErrModeMismatch) {
				f.logger.Error(f.name+" cannot reconnect", "error", err)
			} else {
				f.logger.Warn(f.name+" reconnect failed", "error", err)
			}
		}
		f.logger.Info(f.name+" reconnected; re-running every subscription", c.logAttrs()...)
		select {
		case f.events <- Event{Kind: EventReset}:
		case <-ctx.Done():
			c.close()
			return
		}
	}
}

// deliver hands ev to the consumer, waiting while the channel is full, until ctx ends.
func (f *lifecycle) deliver(ctx context.Context, ev Event) error {
	if ev.Kind == EventChange {
		ev.Change.Arrived = time.Now()
	}
	if h := f.hold.Load(); h != nil {
		h.once.Do(func() { close(h.held) })
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case f.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrProbeNotSent wraps a Probe's failure to send its message (the pool busy, the database
// down): it says nothing about the feed.
var ErrProbeNotSent = errors.New("the probe notification could not be sent")

// probe sends a message with a new payload (starting with prefix) through send, and waits until
// ctx ends for the feed to see it come back (probeArrived). A half-open connection looks
// connected, and only a round trip shows that it no longer is.
func (f *lifecycle) probe(ctx context.Context, prefix string, send func(payload string) error) error {
	payload := prefix + strconv.FormatUint(f.probeID.Add(1), 10) + ":" + strconv.FormatInt(time.Now().UnixNano(), 36)
	arrived := make(chan struct{})
	f.probes.Store(payload, arrived)
	defer f.probes.Delete(payload)
	if err := send(payload); err != nil {
		return fmt.Errorf("%w: %w", ErrProbeNotSent, err)
	}
	select {
	case <-arrived:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probeArrived ends the wait of the probe whose payload came back.
func (f *lifecycle) probeArrived(payload string) {
	if ch, ok := f.probes.LoadAndDelete(payload); ok {
		close(ch.(chan struct{}))
	}
}

// hold is one HoldDeliveries.
type hold struct {
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

// HoldDeliveries makes the feed stop handing events on, as a consumer that stopped taking them
// (the channel full) would, until release is called: the next event waits, and held is closed
// once one does. The connection is not read meanwhile, so the logical feed's slot falls behind.
// Reconnect and Stop still end the wait. For tests (engine's export_test.go).
func (f *lifecycle) HoldDeliveries() (held <-chan struct{}, release func()) {
	h := &hold{held: make(chan struct{}), release: make(chan struct{})}
	f.hold.Store(h)
	var once sync.Once
	return h.held, func() {
		once.Do(func() {
			f.hold.CompareAndSwap(h, nil)
			close(h.release)
		})
	}
}

// Package session serves the sync protocol's WebSocket: one session per socket reads the client's
// messages, records query-set and identity changes for the reactor, runs the client's mutations
// one at a time in the order sent, runs its actions, and writes what the reactor and the
// replies queue, never blocking on a slow client (its queue is bounded in frames and bytes).
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/ripplehq/ripple/engine/internal/caller"
	"github.com/ripplehq/ripple/engine/internal/reactor"
	"github.com/ripplehq/ripple/engine/internal/wire"
)

// Backend is what sessions need from the engine.
type Backend interface {
	// Query resolves a query a client subscribes to. One that cannot run (unknown, internal, bad
	// arguments) comes back as a Query whose runs fail with that error.
	Query(path string, args json.RawMessage, identity caller.Identity) *reactor.Query
	// Mutation runs a client's mutation once: logKey and requestID name it in the mutation log,
	// so a resent one returns its first outcome; limitKey names an anonymous caller for the
	// rate limit.
	Mutation(ctx context.Context, path string, args json.RawMessage, identity caller.Identity, logKey string, requestID int64, limitKey string) wire.Result
	// Action runs a client's action; limitKey names an anonymous caller for rate limits.
	Action(ctx context.Context, path string, args json.RawMessage, identity caller.Identity, limitKey string) wire.Result
	// Authenticate verifies credentials; expires is when a user token ends (zero: unknown).
	Authenticate(ctx context.Context, tokenType, value string, impersonating json.RawMessage) (id caller.Identity, expires time.Time, err error)
}

// Config configures a Server.
type Config struct {
	Backend Backend
	Reactor *reactor.Reactor
	Logger  *slog.Logger
	// Limits, as the engine's Config documents them.
	MaxMessageBytes, SendQueueLength, SendQueueBytes, MaxQueriesPerSocket int
	WriteTimeout, PingInterval                                            time.Duration
	AllowedOrigins                                                        []string
}

// Server accepts sync sockets and runs a session for each.
type Server struct {
	cfg      Config
	mu       sync.Mutex
	ctx      context.Context // nil until Start, and after Stop
	wg       sync.WaitGroup
	sessions atomic.Int64
	// bytesSent counts the bytes of every frame written to a socket (for metrics).
	bytesSent atomic.Int64
}

// NewServer returns a server that accepts sockets once started.
func NewServer(cfg Config) *Server { return &Server{cfg: cfg} }

// Start accepts sockets until ctx ends or Stop; sessions end with ctx.
func (srv *Server) Start(ctx context.Context) {
	srv.mu.Lock()
	srv.ctx = ctx
	srv.mu.Unlock()
}

// Stop refuses new sockets and waits for the sessions to end (their context must have ended:
// Stop does not end them). It is idempotent.
func (srv *Server) Stop() {
	srv.mu.Lock()
	srv.ctx = nil
	srv.mu.Unlock()
	srv.wg.Wait()
}

// Sessions is how many sockets are open.
func (srv *Server) Sessions() int64 { return srv.sessions.Load() }

// BytesSent is how many bytes of frames were written to sockets.
func (srv *Server) BytesSent() int64 { return srv.bytesSent.Load() }

// session is one WebSocket of the sync protocol.
type session struct {
	srv    *Server
	cfg    *Config
	conn   *websocket.Conn
	out    *outbox
	ctx    context.Context
	cancel context.CancelFunc

	failed atomic.Bool // a FatalError was sent: read nothing more
	// lastWrite is when the last frame was written (or a ping queued), in unix nanoseconds.
	lastWrite atomic.Int64
	// mutations waits for the session's mutation runner, started when the first arrives and
	// ended when none is left (an idle socket keeps no goroutine for it).
	mutations struct {
		sync.Mutex
		queue   []*message
		running bool
	}
	actions chan struct{} // semaphore

	// Guarded by mu: state the reader changes and the reactor takes.
	mu              sync.Mutex
	sessionID       string
	querySetVersion int64
	identityVersion int64
	identity        caller.Identity // the newest identity (mutations and actions use it at once)
	expiry          *time.Timer
	pending         reactor.Pending
	queryIDs        map[int64]struct{} // the query set as the client last modified it
}

// message is a client message with the identity it runs as: the session's identity when it
// arrived, even if an Authenticate that came later is processed first.
type message struct {
	wire.ClientMessage
	identity caller.Identity
}

// TakePending returns and clears what the reactor must apply, with the newest identity.
func (s *session) TakePending() (reactor.Pending, caller.Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending
	s.pending = reactor.EmptyPending()
	return p, s.identity
}

// Behind reports whether the client is not reading fast enough to take more transitions.
func (s *session) Behind() bool { return s.out.halfFull() }

// send queues a message without blocking. A client too slow to drain its queue is disconnected
// (it reconnects and resynchronises) rather than holding up everyone else.
func (s *session) send(msg any) {
	buf, err := json.Marshal(msg)
	if err != nil {
		s.cfg.Logger.Error("encoding a server message", "error", err)
		return
	}
	s.Send(buf)
}

// Send queues frames back to back: senders on other goroutines (mutation and action replies,
// the reactor) never interleave with them.
func (s *session) Send(frames ...[]byte) {
	ok, start := s.out.push(frames...)
	if !ok {
		s.cfg.Logger.Warn("closing a session whose client cannot keep up")
		s.cancel()
		return
	}
	if start {
		go s.writer()
	}
}

func (s *session) fatal(msg string) {
	s.failed.Store(true)
	s.send(wire.FatalError{Type: "FatalError", Error: msg})
	s.cfg.Logger.Info("closing session after a protocol error", "session_id", s.sessionID, "error", msg)
	s.closeAfterFlush()
}

// closeAfterFlush closes the socket once the writer has had a moment to send what is queued.
func (s *session) closeAfterFlush() {
	go func() {
		select {
		case <-time.After(time.Second):
		case <-s.ctx.Done():
		}
		s.cancel()
	}()
}

// ServeHTTP accepts a sync socket.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	srv.mu.Lock()
	base := srv.ctx
	if base != nil {
		// Added under the lock, so Stop's Wait sees every session it did not refuse.
		srv.wg.Add(1)
	}
	srv.mu.Unlock()
	if base == nil {
		http.Error(w, "the engine is not running", http.StatusServiceUnavailable)
		return
	}
	cfg := &srv.cfg
	// Browsers send Origin: only this host's pages and Config.AllowedOrigins may open a socket
	// (another site's page would ride on the user's stored token). Clients without an Origin
	// (native apps, servers) are let through.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: cfg.AllowedOrigins, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		srv.wg.Done()
		return
	}
	conn.SetReadLimit(int64(cfg.MaxMessageBytes))
	ctx, cancel := context.WithCancel(base)
	s := &session{
		srv: srv, cfg: cfg, conn: conn, ctx: ctx, cancel: cancel,
		out:     newOutbox(cfg.SendQueueLength, cfg.SendQueueBytes),
		actions: make(chan struct{}, maxActions),
		pending: reactor.EmptyPending(),
	}
	s.lastWrite.Store(time.Now().UnixNano())
	// The socket is served on a goroutine of its own and the HTTP handler returns (a hijacked
	// connection is no longer net/http's): the handler's goroutine grew a large stack
	// accepting the request, which every idle socket would otherwise keep, and the request
	// with its headers is let go.
	go s.serve()
}

// serve runs the socket until it ends.
func (s *session) serve() {
	srv, conn := s.srv, s.conn
	defer srv.wg.Done()
	srv.sessions.Add(1)
	defer srv.sessions.Add(-1)
	s.cfg.Reactor.Add(s)
	defer s.cfg.Reactor.Remove(s)

	// The mutation runner, whenever it runs (started only by readLoop, so every Add happens
	// before Wait).
	var wg sync.WaitGroup
	err := s.readLoop(&wg)
	if s.failed.Load() {
		// Let the writer send the FatalError on the live context (closeAfterFlush bounds the
		// wait to a second) before cancelling: a closing socket's writer gets only 100 ms, which
		// a busy server can miss, and the client would not learn why it was closed.
		s.out.close()
		s.out.wait()
	}
	s.cancel()
	wg.Wait()
	// No more frames; the writer flushes what is queued (briefly: the session is closing).
	s.out.close()
	s.out.wait()
	s.mu.Lock()
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.mu.Unlock()
	if err != nil && websocket.CloseStatus(err) == -1 && !errors.Is(err, context.Canceled) {
		s.cfg.Logger.Debug("sync socket ended", "error", err)
	}
	conn.Close(websocket.StatusNormalClosure, "")
}

// writer writes queued frames until the queue is empty, then ends (Send starts another when
// something is queued again). A write that fails or takes longer than WriteTimeout ends the
// session.
func (s *session) writer() {
	defer s.out.writerDone()
	for {
		buf, ok := s.out.next()
		if !ok {
			// Caught up: the reactor may run what it parked for this client.
			s.cfg.Reactor.Poke()
			return
		}
		parent, timeout := s.ctx, s.cfg.WriteTimeout
		if s.ctx.Err() != nil {
			// Closing: still flush this message (a FatalError, say), briefly.
			parent, timeout = context.Background(), 100*time.Millisecond
		}
		wctx, cancel := context.WithTimeout(parent, timeout)
		err := s.conn.Write(wctx, websocket.MessageText, buf)
		cancel()
		if err != nil {
			s.cancel()
			s.out.close()
			for _, ok := s.out.next(); ok; _, ok = s.out.next() {
			}
			return
		}
		s.lastWrite.Store(time.Now().UnixNano())
		s.srv.bytesSent.Add(int64(len(buf)))
	}
}

// PingIfIdle queues a Ping when nothing was written for the ping interval: the client reconnects
// after a long silence.
func (s *session) PingIfIdle(now time.Time) {
	if now.UnixNano()-s.lastWrite.Load() >= int64(s.cfg.PingInterval) {
		s.lastWrite.Store(now.UnixNano()) // one ping per interval, even if the write is slow
		s.Send(pingFrame)
	}
}

var pingFrame = []byte(`{"type":"Ping"}`)

func (s *session) readLoop(wg *sync.WaitGroup) error {
	connected := false
	for {
		if s.failed.Load() {
			return errors.New("closed after a protocol error")
		}
		typ, data, err := s.conn.Read(s.ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
				s.cfg.Logger.Info("closing a sync socket that sent an oversize message")
			}
			return err
		}
		if typ != websocket.MessageText {
			s.fatal("binary messages are not part of the protocol")
			continue
		}
		var msg message
		if err := wire.DecodeClientMessage(data, &msg.ClientMessage); err != nil {
			s.fatal(err.Error())
			continue
		}
		if !connected && msg.Type != "Connect" {
			s.fatal("the first message must be Connect")
			continue
		}
		switch msg.Type {
		case "Connect":
			if msg.SessionID == "" {
				s.fatal("Connect needs a sessionId")
				continue
			}
			if connected {
				s.fatal("Connect was already sent on this socket")
				continue
			}
			s.mu.Lock()
			s.sessionID = msg.SessionID
			s.mu.Unlock()
			if ts, ok := wire.DecodeTS(msg.MaxObservedTimestamp); ok {
				// A client that saw a newer ts (from another process) must not see time go back.
				// Only a plausible one: ts values are wall-clock nanoseconds, so one far ahead
				// of this clock was not issued by any server and would push every later ts
				// (and through reconnecting tabs, a restarted server's) past what clients accept.
				if ts <= wire.MaxPlausibleTS() {
					s.cfg.Reactor.Observe(ts)
				} else {
					s.cfg.Logger.Warn("ignoring an implausible maxObservedTimestamp", "ts", ts)
				}
			}
			connected = true
		case "ModifyQuerySet":
			if err := s.modifyQuerySet(&msg); err != nil {
				s.fatal(err.Error())
			}
		case "Mutation":
			if msg.RequestID == nil {
				s.fatal("Mutation needs a requestId")
				continue
			}
			msg.identity, _ = s.currentIdentity()
			if !s.queueMutation(&msg, wg) {
				s.fatal("too many mutations in flight")
			}
		case "Action":
			if msg.RequestID == nil {
				s.fatal("Action needs a requestId")
				continue
			}
			msg.identity, _ = s.currentIdentity()
			s.startAction(&msg)
		case "Authenticate":
			s.authenticate(&msg)
		case "Event":
			// Client telemetry: accepted and ignored.
		default:
			s.fatal(fmt.Sprintf("unknown message type %q", msg.Type))
		}
	}
}

func (s *session) modifyQuerySet(msg *message) error {
	if err := s.applyQuerySet(msg); err != nil {
		return err
	}
	s.cfg.Reactor.MarkPending(s)
	return nil
}

// applyQuerySet records a ModifyQuerySet for the reactor's next batch.
func (s *session) applyQuerySet(msg *message) error {
	if msg.BaseVersion == nil || msg.NewVersion == nil {
		return errors.New("ModifyQuerySet needs baseVersion and newVersion")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if *msg.BaseVersion != s.querySetVersion {
		return fmt.Errorf("ModifyQuerySet baseVersion %d does not match the server's %d", *msg.BaseVersion, s.querySetVersion)
	}
	if *msg.NewVersion <= *msg.BaseVersion {
		return fmt.Errorf("ModifyQuerySet newVersion %d must be greater than baseVersion %d", *msg.NewVersion, *msg.BaseVersion)
	}
	// The socket closes on an error, so a rejected message may leave queryIDs half applied.
	if s.queryIDs == nil {
		s.queryIDs = map[int64]struct{}{}
	}
	for _, mod := range msg.Modifications {
		if mod.QueryID == nil {
			return errors.New("a query-set modification needs a queryId")
		}
		if mod.Type == "Remove" {
			delete(s.queryIDs, *mod.QueryID)
		} else {
			s.queryIDs[*mod.QueryID] = struct{}{}
		}
	}
	if len(s.queryIDs) > s.cfg.MaxQueriesPerSocket {
		return fmt.Errorf("a socket may hold at most %d queries", s.cfg.MaxQueriesPerSocket)
	}
	for _, mod := range msg.Modifications {
		if mod.QueryID == nil {
			return errors.New("a query-set modification needs a queryId")
		}
		switch mod.Type {
		case "Add":
			sub := &reactor.Subscription{QueryID: *mod.QueryID, Query: s.cfg.Backend.Query(mod.UDFPath, mod.Args, s.identity)}
			if mod.Journal != nil {
				sub.Journal = *mod.Journal
			}
			s.pending.Adds = append(s.pending.Adds, sub)
		case "Remove":
			// An add of the same query still waiting for the reactor is dropped with it.
			kept := s.pending.Adds[:0]
			for _, add := range s.pending.Adds {
				if add.QueryID != *mod.QueryID {
					kept = append(kept, add)
				}
			}
			s.pending.Adds = kept
			s.pending.Removes = append(s.pending.Removes, *mod.QueryID)
		default:
			return fmt.Errorf("unknown query-set modification %q", mod.Type)
		}
	}
	s.querySetVersion = *msg.NewVersion
	s.pending.QuerySet = *msg.NewVersion
	return nil
}

func (s *session) authenticate(msg *message) {
	if msg.BaseVersion == nil {
		s.fatal("Authenticate needs a baseVersion")
		return
	}
	identity, expires, err := s.cfg.Backend.Authenticate(s.ctx, msg.TokenType, msg.Value, msg.Impersonating)
	if err != nil && !errors.Is(err, caller.ErrAuth) {
		// Verifying failed, not the token (the database is unreachable, say): an AuthError would
		// make the client drop its token and sign the user out. Close instead; the client
		// reconnects with backoff and authenticates again.
		s.cfg.Logger.Warn("closing a sync socket whose credentials could not be verified", "error", err)
		s.cancel()
		return
	}
	if err != nil {
		s.send(wire.AuthError{Type: "AuthError", Error: err.Error(), BaseVersion: *msg.BaseVersion, AuthUpdateAttempted: true})
		return
	}
	s.mu.Lock()
	s.identity = identity
	s.identityVersion = *msg.BaseVersion + 1
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	if !expires.IsZero() {
		version := s.identityVersion
		s.expiry = time.AfterFunc(time.Until(expires), func() { s.expireIdentity(version) })
	}
	s.pending.IdentityChanged = true
	s.pending.IdentityVersion = s.identityVersion
	s.mu.Unlock()
	s.cfg.Reactor.MarkPending(s)
}

// expireIdentity ends an identity whose token expired without being replaced: nothing more
// runs as it, the client is told (it fetches a fresh token), and the socket closes so the client
// reconnects with that token rather than seeing anonymous results.
func (s *session) expireIdentity(version int64) {
	s.mu.Lock()
	current := s.identityVersion == version
	if current {
		s.identity = caller.Identity{}
		s.expiry = nil
	}
	s.mu.Unlock()
	if !current {
		return
	}
	// No more transitions: nothing may run as the expired identity, and re-running the queries
	// as anonymous would show the user a signed-out screen before the socket closes.
	s.cfg.Reactor.Remove(s)
	s.send(wire.AuthError{Type: "AuthError", Error: "the access token expired", BaseVersion: version - 1, AuthUpdateAttempted: false})
	s.closeAfterFlush()
}

func (s *session) currentIdentity() (caller.Identity, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identity, s.sessionID
}

// maxActions bounds the actions one socket may have running.
const maxActions = 16

// maxQueuedMutations bounds the mutations one socket may have waiting.
const maxQueuedMutations = 1024

// queueMutation queues a mutation for the session's runner, starting the runner if none is
// running. Mutations run one at a time, in the order they were sent.
func (s *session) queueMutation(msg *message, wg *sync.WaitGroup) bool {
	m := &s.mutations
	m.Lock()
	defer m.Unlock()
	if len(m.queue) >= maxQueuedMutations {
		return false
	}
	m.queue = append(m.queue, msg)
	if !m.running {
		m.running = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runMutations()
		}()
	}
	return true
}

// runMutations runs queued mutations until none is left or the session ends.
func (s *session) runMutations() {
	m := &s.mutations
	for {
		m.Lock()
		if len(m.queue) == 0 || s.ctx.Err() != nil {
			m.queue, m.running = nil, false
			m.Unlock()
			return
		}
		msg := m.queue[0]
		m.queue[0] = nil
		m.queue = m.queue[1:]
		m.Unlock()
		s.runMutation(msg)
	}
}

func (s *session) runMutation(msg *message) {
	_, sessionID := s.currentIdentity()
	// Logged under the identity too: another identity reusing a sessionId must neither get this
	// one's results nor have its own mutation skipped.
	logKey := msg.identity.Key() + "/" + sessionID
	res := s.cfg.Backend.Mutation(s.ctx, msg.UDFPath, msg.Args, msg.identity, logKey, *msg.RequestID, sessionID)
	reply := &wire.MutationResponse{Type: "MutationResponse", RequestID: *msg.RequestID, Outcome: res.Outcome()}
	if res.Err != nil {
		s.send(reply)
		return
	}
	// Read your writes: the reply waits in this session's reply queue for the first transition
	// whose snapshot includes the commit, and carries that transition's ts. On error the session
	// is closing; the client resends the mutation and gets its logged result.
	_ = s.cfg.Reactor.AwaitCovering(s.ctx, s, reply, res.Xid)
}

// startAction runs an action on a goroutine of its own, at most maxActions per socket at once.
// One more is refused at once rather than waited for: waiting would hold this socket's reader,
// and with it its mutations and Authenticate, for as long as an action may run.
func (s *session) startAction(msg *message) {
	select {
	case s.actions <- struct{}{}:
	default:
		res := wire.Failed(wire.CodeRateLimited, fmt.Sprintf("at most %d actions may run at once on one connection; try again when one has finished", cap(s.actions)))
		s.send(wire.ActionResponse{Type: "ActionResponse", RequestID: *msg.RequestID, Outcome: res.Outcome()})
		return
	}
	go func() {
		defer func() { <-s.actions }()
		_, sessionID := s.currentIdentity()
		res := s.cfg.Backend.Action(s.ctx, msg.UDFPath, msg.Args, msg.identity, sessionID)
		s.send(wire.ActionResponse{Type: "ActionResponse", RequestID: *msg.RequestID, Outcome: res.Outcome()})
	}()
}

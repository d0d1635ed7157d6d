package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// session is one WebSocket of the sync protocol.
type session struct {
	e      *Engine
	conn   *websocket.Conn
	out    *outbox
	ctx    context.Context
	cancel context.CancelFunc

	failed atomic.Bool // a FatalError was sent: read nothing more
	gone   atomic.Bool // removed from the reactor: no more transitions
	// lastWrite is when the last frame was written (or a ping queued), in unix nanoseconds.
	lastWrite atomic.Int64
	// mutations waits for the session's mutation runner, started when the first arrives and
	// ended when none is left (an idle socket keeps no goroutine for it).
	mutations struct {
		sync.Mutex
		queue   []*clientMessage
		running bool
	}
	actions chan struct{} // semaphore

	// Guarded by mu: state the reader changes and the reactor takes.
	mu              sync.Mutex
	sessionID       string
	querySetVersion int64
	identityVersion int64
	identity        Identity // the newest identity (mutations and actions use it at once)
	expiry          *time.Timer
	pending         sessionPending
	queryIDs        map[int64]struct{} // the query set as the client last modified it

	// Owned by the reactor goroutine.
	subs          map[int64]*subscription
	queryIdentity Identity // the identity the subscriptions last ran as
	sent          struct {
		querySet, identity int64
		ts                 uint64
	}
}

// sessionPending is what the reactor must apply to a session in its next batch.
type sessionPending struct {
	adds            []*subscription
	removes         []int64
	querySet        int64 // newest query-set version to answer; -1 when unchanged
	identityChanged bool
	identityVersion int64 // newest identity version to answer; -1 when unchanged
}

func (p *sessionPending) any() bool {
	return len(p.adds) > 0 || len(p.removes) > 0 || p.querySet >= 0 || p.identityChanged
}

func emptyPending() sessionPending { return sessionPending{querySet: -1, identityVersion: -1} }

func (s *session) takePending() (sessionPending, Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending
	s.pending = emptyPending()
	return p, s.identity
}

// behind reports whether the client is not reading fast enough to take more transitions.
func (s *session) behind() bool { return s.out.halfFull() }

// send queues a message without blocking. A client too slow to drain its queue is disconnected
// (it reconnects and resynchronises) rather than holding up everyone else.
func (s *session) send(msg any) {
	buf, err := json.Marshal(msg)
	if err != nil {
		s.e.logger.Error("encoding a server message", "error", err)
		return
	}
	s.sendRaw(buf)
}

// sendRaw queues frames back to back: senders on other goroutines (mutation and action
// replies, the reactor) never interleave with them.
func (s *session) sendRaw(frames ...[]byte) {
	ok, start := s.out.push(frames...)
	if !ok {
		s.e.logger.Warn("closing a session whose client cannot keep up")
		s.cancel()
		return
	}
	if start {
		go s.writer()
	}
}

// sendTransition is called by the reactor with the results of one batch.
func (s *session) sendTransition(ts uint64, p sessionPending, mods []modification) {
	// Identity is pinned here: the reactor ran this batch's queries as it.
	start := stateVersion{QuerySet: s.sent.querySet, Identity: s.sent.identity, TS: encodeTS(s.sent.ts)}
	if p.querySet >= 0 {
		s.sent.querySet = p.querySet
	}
	if p.identityVersion >= 0 {
		s.sent.identity = p.identityVersion
	}
	if ts > s.sent.ts {
		s.sent.ts = ts
	}
	end := stateVersion{QuerySet: s.sent.querySet, Identity: s.sent.identity, TS: encodeTS(s.sent.ts)}
	buf, err := encodeTransition(start, end, mods)
	if err != nil {
		s.e.logger.Error("encoding a transition", "error", err)
		s.cancel()
		return
	}
	limit := s.e.config.TransitionChunkBytes
	if len(buf) <= limit {
		s.sendRaw(buf)
		return
	}
	// Cut on UTF-8 boundaries (the client joins the chunks as strings), and queue every part
	// together so no other message lands between them.
	var pieces []string
	for start := 0; start < len(buf); {
		end := min(start+limit, len(buf))
		for end < len(buf) && end > start+1 && !utf8.RuneStart(buf[end]) {
			end--
		}
		pieces = append(pieces, string(buf[start:end]))
		start = end
	}
	id := newRequestID()
	frames := make([][]byte, len(pieces))
	for i, piece := range pieces {
		frames[i], _ = json.Marshal(transitionChunk{Type: "TransitionChunk", Chunk: piece, PartNumber: i, TotalParts: len(pieces), TransitionID: id})
	}
	s.sendRaw(frames...)
}

func (s *session) fatal(msg string) {
	s.failed.Store(true)
	s.send(fatalErrorMsg{Type: "FatalError", Error: msg})
	s.e.logger.Info("closing session after a protocol error", "session_id", s.sessionID, "error", msg)
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

func (e *Engine) serveSync(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
		http.Error(w, "the engine is not running", http.StatusServiceUnavailable)
		return
	}
	// Browsers send Origin: only this host's pages and Config.AllowedOrigins may open a socket
	// (another site's page would ride on the user's stored token). Clients without an Origin
	// (native apps, servers) are let through.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: e.config.AllowedOrigins, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	conn.SetReadLimit(int64(e.config.MaxMessageBytes))
	ctx, cancel := context.WithCancel(e.runCtx)
	s := &session{
		e: e, conn: conn, ctx: ctx, cancel: cancel,
		out:     newOutbox(e.config.SendQueueLength, e.config.SendQueueBytes),
		actions: make(chan struct{}, 16),
		pending: emptyPending(),
		subs:    map[int64]*subscription{},
	}
	s.lastWrite.Store(time.Now().UnixNano())
	// The socket is served on a goroutine of its own and the HTTP handler returns (a hijacked
	// connection is no longer net/http's): the handler's goroutine grew a large stack
	// accepting the request, which every idle socket would otherwise keep, and the request
	// with its headers is let go.
	e.sessionsWG.Add(1)
	go s.serve()
}

// serve runs the socket until it ends.
func (s *session) serve() {
	e, conn := s.e, s.conn
	defer e.sessionsWG.Done()
	e.metrics.sessions.Add(1)
	defer e.metrics.sessions.Add(-1)
	e.reactor.addSession(s)
	defer e.reactor.removeSession(s)

	// The mutation runner, whenever it runs (started only by readLoop, so every Add happens
	// before Wait).
	var wg sync.WaitGroup
	err := s.readLoop(&wg)
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
		e.logger.Debug("sync socket ended", "error", err)
	}
	conn.Close(websocket.StatusNormalClosure, "")
}

// writer writes queued frames until the queue is empty, then ends (sendRaw starts another when
// something is queued again). A write that fails or takes longer than WriteTimeout ends the
// session.
func (s *session) writer() {
	defer s.out.writerDone()
	for {
		buf, ok := s.out.next()
		if !ok {
			// Caught up: the reactor may run what it parked for this client.
			s.e.reactor.poke()
			return
		}
		parent, timeout := s.ctx, s.e.config.WriteTimeout
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
	}
}

// pingIfIdle queues a Ping when nothing was written for the ping interval: the client reconnects
// after a long silence.
func (s *session) pingIfIdle(now time.Time) {
	if now.UnixNano()-s.lastWrite.Load() >= int64(s.e.config.PingInterval) {
		s.lastWrite.Store(now.UnixNano()) // one ping per interval, even if the write is slow
		s.sendRaw(pingFrame)
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
				s.e.logger.Info("closing a sync socket that sent an oversize message")
			}
			return err
		}
		if typ != websocket.MessageText {
			s.fatal("binary messages are not part of the protocol")
			continue
		}
		var msg clientMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			s.fatal("malformed message: " + err.Error())
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
			if ts, ok := decodeTS(msg.MaxObservedTimestamp); ok {
				// A client that saw a newer ts (from another process) must not see time go back.
				// Only a plausible one: ts values are wall-clock nanoseconds, so one far ahead
				// of this clock was not issued by any server and would push every later ts
				// (and through reconnecting tabs, a restarted server's) past what clients accept.
				if ts <= maxPlausibleTS() {
					s.e.reactor.observe(ts)
				} else {
					s.e.logger.Warn("ignoring an implausible maxObservedTimestamp", "ts", ts)
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

func (s *session) modifyQuerySet(msg *clientMessage) error {
	if err := s.applyQuerySet(msg); err != nil {
		return err
	}
	s.e.reactor.markPending(s)
	return nil
}

// applyQuerySet records a ModifyQuerySet for the reactor's next batch.
func (s *session) applyQuerySet(msg *clientMessage) error {
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
	if len(s.queryIDs) > s.e.config.MaxQueriesPerSocket {
		return fmt.Errorf("a socket may hold at most %d queries", s.e.config.MaxQueriesPerSocket)
	}
	for _, mod := range msg.Modifications {
		if mod.QueryID == nil {
			return errors.New("a query-set modification needs a queryId")
		}
		switch mod.Type {
		case "Add":
			sub := &subscription{session: s, queryID: *mod.QueryID, argsKey: string(mod.Args)}
			if mod.Journal != nil {
				sub.journal = *mod.Journal
			}
			fn, err := s.e.resolve(mod.UDFPath, KindQuery, true, s.identity)
			if err == nil {
				sub.fn = fn
				sub.args, err = fn.decode(mod.Args, s.e.config.MaxArgBytes)
			}
			if err != nil {
				sub.fn = &function{path: mod.UDFPath, kind: KindQuery, query: func(*QueryCtx, any) (any, error) { return nil, err }}
			}
			s.pending.adds = append(s.pending.adds, sub)
		case "Remove":
			// An add of the same query still waiting for the reactor is dropped with it.
			kept := s.pending.adds[:0]
			for _, add := range s.pending.adds {
				if add.queryID != *mod.QueryID {
					kept = append(kept, add)
				}
			}
			s.pending.adds = kept
			s.pending.removes = append(s.pending.removes, *mod.QueryID)
		default:
			return fmt.Errorf("unknown query-set modification %q", mod.Type)
		}
	}
	s.querySetVersion = *msg.NewVersion
	s.pending.querySet = *msg.NewVersion
	return nil
}

func (s *session) authenticate(msg *clientMessage) {
	if msg.BaseVersion == nil {
		s.fatal("Authenticate needs a baseVersion")
		return
	}
	identity, expires, err := s.e.authenticateUntil(s.ctx, msg.TokenType, msg.Value, msg.Impersonating)
	if err != nil {
		s.send(authErrorMsg{Type: "AuthError", Error: err.Error(), BaseVersion: *msg.BaseVersion, AuthUpdateAttempted: true})
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
	s.pending.identityChanged = true
	s.pending.identityVersion = s.identityVersion
	s.mu.Unlock()
	s.e.reactor.markPending(s)
}

// expireIdentity ends an identity whose token expired without being replaced: nothing more
// runs as it, the client is told (it fetches a fresh token), and the socket closes so the client
// reconnects with that token rather than seeing anonymous results.
func (s *session) expireIdentity(version int64) {
	s.mu.Lock()
	current := s.identityVersion == version
	if current {
		s.identity = Identity{}
		s.expiry = nil
		s.pending.identityChanged = true
	}
	s.mu.Unlock()
	if !current {
		return
	}
	s.e.reactor.markPending(s)
	s.send(authErrorMsg{Type: "AuthError", Error: "the access token expired", BaseVersion: version - 1, AuthUpdateAttempted: false})
	s.closeAfterFlush()
}

func (s *session) currentIdentity() (Identity, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identity, s.sessionID
}

// maxQueuedMutations bounds the mutations one socket may have waiting.
const maxQueuedMutations = 1024

// queueMutation queues a mutation for the session's runner, starting the runner if none is
// running. Mutations run one at a time, in the order they were sent.
func (s *session) queueMutation(msg *clientMessage, wg *sync.WaitGroup) bool {
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

func (s *session) runMutation(msg *clientMessage) {
	_, sessionID := s.currentIdentity()
	identity := msg.identity
	reply := mutationResponse{Type: "MutationResponse", RequestID: *msg.RequestID}
	fn, err := s.e.resolve(msg.UDFPath, KindMutation, true, identity)
	if err == nil {
		err = s.e.limitMutation(identity, sessionID)
	}
	var res callResult
	if err == nil {
		var args any
		args, err = fn.decode(msg.Args, s.e.config.MaxArgBytes)
		if err == nil {
			// Keyed by identity too: another identity reusing a sessionId must neither get this
			// one's results nor have its own mutation skipped.
			key := &mutationKey{sessionID: identity.key() + "/" + sessionID, requestID: *msg.RequestID}
			res = s.e.runMutation(s.ctx, fn, args, identity, key)
		}
	}
	if err != nil {
		res = callResult{err: err, requestID: newRequestID()}
	}
	reply.outcome = res.outcome()
	if res.err != nil {
		s.send(reply)
		return
	}
	// Read your writes: the response is queued right before the first transition whose
	// snapshot includes the commit, and carries that transition's ts.
	_, _ = s.e.reactor.syncThen(s.ctx, s, func(ts uint64) {
		reply.TS = encodeTS(ts)
		s.send(reply)
	})
	// On error the session is closing; the client resends the mutation and gets its result.
}

func (s *session) startAction(msg *clientMessage) {
	select {
	case s.actions <- struct{}{}:
	case <-s.ctx.Done():
		return
	}
	go func() {
		defer func() { <-s.actions }()
		identity := msg.identity
		reply := actionResponse{Type: "ActionResponse", RequestID: *msg.RequestID}
		var res callResult
		fn, err := s.e.resolve(msg.UDFPath, KindAction, true, identity)
		if err == nil {
			res = s.e.call(s.ctx, fn, msg.Args, identity)
		} else {
			res = callResult{err: err, requestID: newRequestID()}
		}
		reply.outcome = res.outcome()
		s.send(reply)
	}()
}

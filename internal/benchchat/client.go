package benchchat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// client is one browser tab of the chat: one socket, one account, the app's subscriptions
// (users:me, conversations:list, and messages:list through a paginated-query state machine that
// behaves like convex@1.48's usePaginatedQuery: first page with cursor null, loadMore with the
// last page's continueCursor, and splitting a page that grew past 2×numItems).
type client struct {
	id       int
	acct     *account
	conn     *websocket.Conn
	pageSize int
	// onMessages is called (on the read goroutine) with the messages of every update of a
	// first page (cursor null): that is where a new message appears on screen.
	onMessages func(c *client, msgs []wireMessage, at time.Time)
	// markRead: when an update of a thread's first page brings another user's message as the
	// newest, this socket marks it read (conversations:markRead), as the web app does for the
	// thread on screen. Under mu.
	markRead bool
	// reads are the requestIds of read marks not answered yet (under mu); a failed one counts
	// as a protocol error.
	reads map[int64]struct{}

	wmu     sync.Mutex // serialises writes and guards qsVer and nextQID
	qsVer   int64
	nextQID int64
	nextReq atomic.Int64
	nextPag int64        // usePaginatedQuery's id counter
	qsSent  atomic.Int64 // qsVer, readable without wmu (waits run under mu)

	mu sync.Mutex // guards everything below
	// onResult, when set, is called (on the read goroutine, c.mu not held) with every new
	// result of a subscription other than a messages page.
	onResult func(qid int64, value json.RawMessage, at time.Time)
	queries  map[int64]*subState
	threads  []*thread
	mutWait  map[int64]chan mutationResult
	lastEnd  version
	identity int64
	querySet int64
	changed  chan struct{} // closed and replaced after every transition
	readErr  error

	protocolErrors atomic.Int64
	done           chan struct{}
	// soaker is the soak's population member this socket belongs to (nil elsewhere).
	soaker *soaker
}

type version struct {
	QuerySet int64  `json:"querySet"`
	Identity int64  `json:"identity"`
	TS       string `json:"ts"`
}

// subState is one subscription.
type subState struct {
	path   string
	page   *page // messages:list pages only
	result bool  // a result (or failure) arrived
	failed string
}

type thread struct {
	convID string
	pagID  int64
	pages  []*page // newest first, as the client shows them
	marked string  // the message this socket last marked read
}

type page struct {
	qid       int64
	thread    *thread
	cursor    *string
	endCursor *string
	res       *pageResult
	split     []*page // the two halves while a split is in progress
}

type pageResult struct {
	Page           []wireMessage `json:"page"`
	IsDone         bool          `json:"isDone"`
	ContinueCursor string        `json:"continueCursor"`
	SplitCursor    *string       `json:"splitCursor"`
	PageStatus     *string       `json:"pageStatus"`
}

type wireMessage struct {
	ID       string `json:"_id"`
	SenderID string `json:"senderId"`
	Body     string `json:"body"`
}

type mutationResult struct {
	ok     bool
	errMsg string
	at     time.Time
}

// dialer spreads sockets over loopback source addresses.
type dialer struct {
	wsURL   string
	clients []*http.Client
	next    atomic.Uint64
}

func newDialer(baseURL string, addrs *loopbackPool, n int) *dialer {
	d := &dialer{wsURL: "ws" + strings.TrimPrefix(baseURL, "http") + "/api/1.48.0/sync"}
	for range n {
		d.clients = append(d.clients, boundClient(addrs.take()))
	}
	return d
}

func (d *dialer) close() {
	for _, c := range d.clients {
		c.CloseIdleConnections()
	}
}

// connect dials, sends Connect and Authenticate, and subscribes as the chat app does with the
// account's conversation open. It returns once every subscription has its first result.
func (d *dialer) connect(ctx context.Context, id int, acct *account, pageSize int, onMessages func(*client, []wireMessage, time.Time), markRead bool) (*client, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := d.open(dctx, acct, func(c *client) { c.id, c.pageSize, c.onMessages, c.markRead = id, pageSize, onMessages, markRead })
	if err != nil {
		return nil, err
	}
	if err := c.subscribeApp(dctx); err != nil {
		c.close()
		return nil, err
	}
	if err := c.waitUntil(dctx, func() bool { return c.identity >= 1 && c.allAnswered() }); err != nil {
		c.close()
		return nil, fmt.Errorf("waiting for the first results: %w", err)
	}
	if f := c.firstFailure(); f != "" {
		c.close()
		return nil, fmt.Errorf("a subscription failed: %s", f)
	}
	return c, nil
}

// uuid is a random version-4 UUID, like the client's sessionId.
func uuid() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func (c *client) write(ctx context.Context, msg any) error {
	buf, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return c.conn.Write(ctx, websocket.MessageText, buf)
}

type addMod struct {
	Type    string `json:"type"`
	QueryID int64  `json:"queryId"`
	UDFPath string `json:"udfPath,omitempty"`
	Args    []any  `json:"args,omitempty"`
}

type paginationOpts struct {
	NumItems  int     `json:"numItems"`
	Cursor    *string `json:"cursor"`
	EndCursor *string `json:"endCursor,omitempty"`
	ID        int64   `json:"id"`
}

// modify sends one ModifyQuerySet; build is called with the write lock held to allocate ids.
func (c *client) modify(ctx context.Context, build func() []addMod) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	mods := build()
	msg := map[string]any{"type": "ModifyQuerySet", "baseVersion": c.qsVer, "newVersion": c.qsVer + 1, "modifications": mods}
	buf, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if err := c.conn.Write(ctx, websocket.MessageText, buf); err != nil {
		return err
	}
	c.qsVer++
	c.qsSent.Store(c.qsVer)
	return nil
}

// addQuery registers a subscription (write lock held).
func (c *client) addQuery(path string, args any, pg *page) addMod {
	qid := c.nextQID
	c.nextQID++
	c.mu.Lock()
	c.queries[qid] = &subState{path: path, page: pg}
	c.mu.Unlock()
	if pg != nil {
		pg.qid = qid
	}
	return addMod{Type: "Add", QueryID: qid, UDFPath: path, Args: []any{args}}
}

func (c *client) pageArgs(pg *page) map[string]any {
	return map[string]any{"conversationId": pg.thread.convID, "paginationOpts": paginationOpts{
		NumItems: c.pageSize, Cursor: pg.cursor, EndCursor: pg.endCursor, ID: pg.thread.pagID}}
}

// subscribeApp is the chat screen with the account's conversation open: users:me,
// conversations:list, and the first page of messages:list.
func (c *client) subscribeApp(ctx context.Context) error {
	return c.modify(ctx, func() []addMod {
		mods := []addMod{
			c.addQuery("users:me", map[string]any{}, nil),
			c.addQuery("conversations:list", map[string]any{}, nil),
		}
		if c.acct.convID != "" {
			c.nextPag++
			th := &thread{convID: c.acct.convID, pagID: c.nextPag}
			first := &page{thread: th}
			th.pages = []*page{first}
			c.mu.Lock()
			c.threads = append(c.threads, th)
			c.mu.Unlock()
			mods = append(mods, c.addQuery("messages:list", c.pageArgs(first), first))
		}
		return mods
	})
}

// loadAll loads older pages until the thread's last page says isDone, like a user scrolling to
// the top. It returns how many pages the thread holds.
func (c *client) loadAll(ctx context.Context, maxPages int) (int, error) {
	for {
		c.mu.Lock()
		th := c.threads[0]
		last := th.pages[len(th.pages)-1]
		res := last.res
		n := len(th.pages)
		c.mu.Unlock()
		if res == nil {
			return n, errors.New("the last page has no result")
		}
		if res.IsDone {
			return n, nil
		}
		if n >= maxPages {
			return n, fmt.Errorf("still not done after %d pages", n)
		}
		cursor := res.ContinueCursor
		next := &page{thread: th, cursor: &cursor}
		c.mu.Lock()
		th.pages = append(th.pages, next)
		c.mu.Unlock()
		if err := c.modify(ctx, func() []addMod { return []addMod{c.addQuery("messages:list", c.pageArgs(next), next)} }); err != nil {
			return n, err
		}
		if err := c.waitUntil(ctx, func() bool { return c.queries[next.qid].result }); err != nil {
			return n, err
		}
		if f := c.firstFailure(); f != "" {
			return n, fmt.Errorf("a page failed: %s", f)
		}
	}
}

// pageCount is how many message pages the client holds.
func (c *client) pageCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, th := range c.threads {
		n += len(th.pages)
	}
	return n
}

// send sends Mutation messages:send and returns a channel for its response.
func (c *client) send(ctx context.Context, body string) (<-chan mutationResult, error) {
	req := c.nextReq.Add(1)
	ch := make(chan mutationResult, 1)
	c.mu.Lock()
	if c.readErr != nil {
		c.mu.Unlock()
		return nil, c.readErr
	}
	c.mutWait[req] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err := c.write(ctx, map[string]any{"type": "Mutation", "requestId": req, "udfPath": "messages:send",
		"args": []any{map[string]string{"conversationId": c.acct.convID, "body": body}}})
	c.wmu.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(c.mutWait, req)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// readMark is one conversations:markRead a transition calls for.
type readMark struct{ convID, messageID string }

// markReadAsync sends a read mark without waiting for its reply (the web app does not wait
// either); the read loop counts a failure.
func (c *client) markReadAsync(mk readMark) {
	req := c.nextReq.Add(1)
	c.mu.Lock()
	if c.reads == nil {
		c.reads = map[int64]struct{}{}
	}
	c.reads[req] = struct{}{}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.wmu.Lock()
	err := c.write(ctx, map[string]any{"type": "Mutation", "requestId": req, "udfPath": "conversations:markRead",
		"args": []any{map[string]string{"conversationId": mk.convID, "messageId": mk.messageID}}})
	c.wmu.Unlock()
	if err != nil { // the socket is closing: nothing to count
		c.mu.Lock()
		delete(c.reads, req)
		c.mu.Unlock()
	}
}

// waitUntil waits for cond (evaluated with c.mu held) to hold after some transition.
func (c *client) waitUntil(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ok := cond()
		ch, err := c.changed, c.readErr
		c.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (c *client) allAnswered() bool {
	for _, q := range c.queries {
		if !q.result {
			return false
		}
	}
	return c.querySet >= c.qsSent.Load()
}

func (c *client) firstFailure() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.queries {
		if q.failed != "" {
			return q.path + ": " + q.failed
		}
	}
	return ""
}

func (c *client) close() {
	_ = c.conn.CloseNow()
	<-c.done
}

// ---------- reading ----------

type serverMessage struct {
	Type          string          `json:"type"`
	StartVersion  version         `json:"startVersion"`
	EndVersion    version         `json:"endVersion"`
	Modifications []modification  `json:"modifications"`
	RequestID     int64           `json:"requestId"`
	Success       bool            `json:"success"`
	Result        json.RawMessage `json:"result"`
	Error         string          `json:"error"`
	// TransitionChunk
	Chunk        string `json:"chunk"`
	PartNumber   int    `json:"partNumber"`
	TotalParts   int    `json:"totalParts"`
	TransitionID string `json:"transitionId"`
}

type modification struct {
	Type         string          `json:"type"`
	QueryID      int64           `json:"queryId"`
	Value        json.RawMessage `json:"value"`
	ErrorMessage string          `json:"errorMessage"`
}

func (c *client) readLoop() {
	defer close(c.done)
	var chunks []string
	for {
		_, data, err := c.conn.Read(context.Background())
		at := time.Now()
		if err != nil {
			c.mu.Lock()
			c.readErr = fmt.Errorf("socket closed: %w", err)
			for _, ch := range c.mutWait {
				ch <- mutationResult{errMsg: "socket closed", at: at}
			}
			c.mutWait = map[int64]chan mutationResult{}
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			return
		}
		var m serverMessage
		if err := json.Unmarshal(data, &m); err != nil {
			c.protocolErrors.Add(1)
			continue
		}
		if m.Type == "TransitionChunk" {
			chunks = append(chunks, m.Chunk)
			if m.PartNumber+1 < m.TotalParts {
				continue
			}
			joined := strings.Join(chunks, "")
			chunks = nil
			m = serverMessage{}
			if err := json.Unmarshal([]byte(joined), &m); err != nil {
				c.protocolErrors.Add(1)
				continue
			}
		}
		switch m.Type {
		case "Transition":
			c.transition(&m, at)
		case "MutationResponse":
			c.mu.Lock()
			ch := c.mutWait[m.RequestID]
			delete(c.mutWait, m.RequestID)
			if _, ok := c.reads[m.RequestID]; ok {
				delete(c.reads, m.RequestID)
				if !m.Success {
					c.protocolErrors.Add(1)
				}
			}
			c.mu.Unlock()
			if ch != nil {
				r := mutationResult{ok: m.Success, at: at}
				if !m.Success {
					r.errMsg = string(m.Result)
				}
				ch <- r
			}
		case "AuthError", "FatalError":
			c.protocolErrors.Add(1)
			c.mu.Lock()
			c.readErr = fmt.Errorf("%s: %s", m.Type, m.Error)
			c.mu.Unlock()
		}
	}
}

func (c *client) transition(m *serverMessage, at time.Time) {
	var firstPages [][]wireMessage
	var splits []*page
	type result struct {
		qid   int64
		value json.RawMessage
	}
	var results []result
	var marks []readMark
	c.mu.Lock()
	onResult := c.onResult
	if m.StartVersion != c.lastEnd {
		// The official client throws on a broken chain.
		c.protocolErrors.Add(1)
	}
	c.lastEnd = m.EndVersion
	c.identity, c.querySet = m.EndVersion.Identity, m.EndVersion.QuerySet
	for i := range m.Modifications {
		mod := &m.Modifications[i]
		q := c.queries[mod.QueryID]
		if q == nil {
			continue
		}
		switch mod.Type {
		case "QueryUpdated":
			q.result, q.failed = true, ""
			if q.page == nil {
				if onResult != nil {
					results = append(results, result{mod.QueryID, mod.Value})
				}
				continue
			}
			var res pageResult
			if err := json.Unmarshal(mod.Value, &res); err != nil {
				c.protocolErrors.Add(1)
				continue
			}
			update := q.page.res != nil // not the page's first result: something arrived
			q.page.res = &res
			if q.page.cursor == nil {
				firstPages = append(firstPages, res.Page)
				if th := q.page.thread; c.markRead && update && th != nil && len(res.Page) > 0 {
					// Pages list newest first.
					if newest := res.Page[0]; newest.SenderID != c.acct.userID && newest.ID != th.marked {
						th.marked = newest.ID
						marks = append(marks, readMark{th.convID, newest.ID})
					}
				}
			}
			// usePaginatedQuery splits a page the server recommends splitting, or one that grew
			// past twice the page size.
			if res.SplitCursor != nil && q.page.split == nil && (res.PageStatus != nil &&
				(*res.PageStatus == "SplitRecommended" || *res.PageStatus == "SplitRequired") || len(res.Page) > 2*c.pageSize) {
				splits = append(splits, q.page)
			}
		case "QueryFailed":
			q.result, q.failed = true, mod.ErrorMessage
			c.protocolErrors.Add(1)
		case "QueryRemoved":
			delete(c.queries, mod.QueryID)
		}
	}
	// A split completes when both halves have results: they replace the page, which is then
	// unsubscribed.
	var removes []int64
	for _, th := range c.threads {
		for i := 0; i < len(th.pages); i++ {
			p := th.pages[i]
			if p.split != nil && p.split[0].res != nil && p.split[1].res != nil {
				th.pages = append(th.pages[:i], append([]*page{p.split[0], p.split[1]}, th.pages[i+1:]...)...)
				removes = append(removes, p.qid)
				i++
			}
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()

	for _, r := range results {
		onResult(r.qid, r.value, at)
	}
	for _, mk := range marks {
		c.markReadAsync(mk)
	}
	if c.onMessages != nil {
		for _, msgs := range firstPages {
			c.onMessages(c, msgs, at)
		}
	}
	if len(splits) > 0 || len(removes) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.modify(ctx, func() []addMod {
			var mods []addMod
			for _, p := range splits {
				res := p.res
				cont := res.ContinueCursor
				a := &page{thread: p.thread, cursor: p.cursor, endCursor: res.SplitCursor}
				b := &page{thread: p.thread, cursor: res.SplitCursor, endCursor: &cont}
				c.mu.Lock()
				p.split = []*page{a, b}
				c.mu.Unlock()
				mods = append(mods, c.addQuery("messages:list", c.pageArgs(a), a), c.addQuery("messages:list", c.pageArgs(b), b))
			}
			for _, qid := range removes {
				mods = append(mods, addMod{Type: "Remove", QueryID: qid})
			}
			return mods
		})
		if err != nil {
			c.protocolErrors.Add(1)
		}
	}
}

// connectBare opens a socket that sends Connect and Authenticate and subscribes to nothing.
func (d *dialer) connectBare(ctx context.Context, acct *account) (*client, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return d.open(dctx, acct, func(c *client) { c.id = -1 })
}

// open dials a socket, starts its reader, and sends Connect and Authenticate as the official
// client does (it pauses its socket until the token fetcher answers, so Authenticate goes out
// before any query set). setup fills in the client's fields before the reader starts.
func (d *dialer) open(ctx context.Context, acct *account, setup func(*client)) (*client, error) {
	return d.openVia(ctx, d.clients[d.next.Add(1)%uint64(len(d.clients))], acct, setup)
}

// openVia is open through the HTTP client hc.
func (d *dialer) openVia(ctx context.Context, hc *http.Client, acct *account, setup func(*client)) (*client, error) {
	conn, _, err := websocket.Dial(ctx, d.wsURL, &websocket.DialOptions{HTTPClient: hc, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, fmt.Errorf("dialing the sync socket: %w", err)
	}
	conn.SetReadLimit(64 << 20)
	c := &client{
		acct: acct, conn: conn,
		queries: map[int64]*subState{}, mutWait: map[int64]chan mutationResult{},
		changed: make(chan struct{}), done: make(chan struct{}),
		lastEnd: version{TS: "AAAAAAAAAAA="},
	}
	setup(c)
	go c.readLoop()
	for _, m := range []map[string]any{
		{"type": "Connect", "sessionId": uuid(), "connectionCount": 0, "lastCloseReason": "InitialConnect", "clientTs": time.Now().UnixMilli()},
		{"type": "Authenticate", "tokenType": "User", "value": acct.token, "baseVersion": 0},
	} {
		if err := c.write(ctx, m); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

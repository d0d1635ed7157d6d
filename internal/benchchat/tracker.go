package benchchat

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tracker follows one phase's messages from send to delivery. Each message body carries the
// phase tag, a sequence number and the send time ("bench <tag> #<seq> sent <unix ns>"), so the
// receiving socket recognises it in whatever page it shows up.
type tracker struct {
	prefix string
	start  time.Time
	n      int

	sentAt   []atomic.Int64 // monotonic ns since start, +1 (0: not sent)
	latency  []atomic.Int64 // ns, +1 (0: not delivered)
	receiver []atomic.Int32 // client id that must see it, +1; for multi trackers, unused
	ack      []atomic.Int64 // ns from send to the sender's MutationResponse, +1

	// multi: every client of the receiving account counts (devices); seen per (client, seq).
	multi     bool
	multiAcct *account
	// accept, when set, decides which sockets a multi tracker's message must reach (the group
	// scenario: every other member's) instead of multiAcct's.
	accept    func(c *client, seq int) bool
	mu        sync.Mutex
	seen      map[[2]int]bool
	multiLat  []time.Duration
	multiLast []time.Duration // per seq: the slowest device so far

	delivered atomic.Int64
	expected  atomic.Int64
	committed atomic.Int64
	failed    atomic.Int64
	firstErr  atomic.Pointer[string]
	all       chan struct{}
	allOnce   sync.Once
}

func newTracker(tag string, n int) *tracker {
	return &tracker{
		prefix: "bench " + tag + " #", start: time.Now(), n: n,
		sentAt: make([]atomic.Int64, n), latency: make([]atomic.Int64, n), receiver: make([]atomic.Int32, n),
		ack: make([]atomic.Int64, n),
		all: make(chan struct{}),
	}
}

func newMultiTracker(tag string, n int, acct *account) *tracker {
	t := newTracker(tag, n)
	t.multi, t.multiAcct, t.seen = true, acct, map[[2]int]bool{}
	t.multiLast = make([]time.Duration, n)
	return t
}

// body is the text of message seq.
func (t *tracker) body(seq int) string {
	return t.prefix + strconv.Itoa(seq) + " sent " + strconv.FormatInt(time.Now().UnixNano(), 10)
}

// send sends message seq from c to receiver, and counts the mutation's outcome.
func (t *tracker) send(ctx context.Context, c *client, seq int, receiver *client) (<-chan mutationResult, error) {
	if receiver != nil {
		t.receiver[seq].Store(int32(receiver.id) + 1)
	}
	body := t.body(seq)
	sent := time.Since(t.start)
	t.sentAt[seq].Store(int64(sent) + 1)
	ch, err := c.send(ctx, body)
	if err != nil {
		t.fail(err.Error())
		return nil, err
	}
	out := make(chan mutationResult, 1)
	go func() {
		r := <-ch
		if r.ok {
			t.ack[seq].Store(int64(r.at.Sub(t.start)-sent) + 1)
			t.committed.Add(1)
		} else {
			t.fail(r.errMsg)
		}
		out <- r
	}()
	return out, nil
}

func (t *tracker) fail(msg string) {
	t.failed.Add(1)
	t.firstErr.CompareAndSwap(nil, &msg)
}

func (t *tracker) expect(n int) {
	if t.expected.Add(int64(n)) <= t.delivered.Load() {
		t.allOnce.Do(func() { close(t.all) })
	}
}

func (t *tracker) seq(body string) (int, bool) {
	rest, ok := strings.CutPrefix(body, t.prefix)
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= t.n {
		return 0, false
	}
	return n, true
}

// observe is called with every first-page update a client receives.
func (t *tracker) observe(c *client, msgs []wireMessage, at time.Time) {
	now := int64(at.Sub(t.start))
	for i := range msgs {
		seq, ok := t.seq(msgs[i].Body)
		if !ok {
			continue
		}
		sent := t.sentAt[seq].Load()
		if sent == 0 {
			continue
		}
		lat := now - (sent - 1)
		if t.multi {
			if t.accept != nil && !t.accept(c, seq) || t.accept == nil && c.acct != t.multiAcct {
				continue
			}
			key := [2]int{c.id, seq}
			t.mu.Lock()
			if t.seen[key] {
				t.mu.Unlock()
				continue
			}
			t.seen[key] = true
			t.multiLat = append(t.multiLat, time.Duration(lat))
			t.multiLast[seq] = max(t.multiLast[seq], time.Duration(lat))
			t.mu.Unlock()
		} else {
			if t.receiver[seq].Load() != int32(c.id)+1 || !t.latency[seq].CompareAndSwap(0, lat+1) {
				continue
			}
		}
		if d := t.delivered.Add(1); d >= t.expected.Load() && t.expected.Load() > 0 {
			t.allOnce.Do(func() { close(t.all) })
		}
	}
}

// wait waits until every expected delivery happened, or timeout.
func (t *tracker) wait(ctx context.Context, timeout time.Duration) {
	select {
	case <-t.all:
	case <-ctx.Done():
	case <-time.After(timeout):
	}
}

func (t *tracker) latencies() []time.Duration {
	if t.multi {
		t.mu.Lock()
		defer t.mu.Unlock()
		return append([]time.Duration(nil), t.multiLat...)
	}
	var out []time.Duration
	for i := range t.latency {
		if v := t.latency[i].Load(); v > 0 {
			out = append(out, time.Duration(v-1))
		}
	}
	return out
}

func (t *tracker) sentCount() int {
	n := 0
	for i := range t.sentAt {
		if t.sentAt[i].Load() > 0 {
			n++
		}
	}
	return n
}

// fill copies the tracker's counts into r.
func (t *tracker) fill(r *Result) {
	r.Messages = t.sentCount()
	r.Committed = int(t.committed.Load())
	r.Delivered = int(t.delivered.Load())
	r.Expected = int(t.expected.Load())
	r.Latency = percentiles(t.latencies())
	var acks []time.Duration
	for i := range t.ack {
		if v := t.ack[i].Load(); v > 0 {
			acks = append(acks, time.Duration(v-1))
		}
	}
	r.AckLatency = percentiles(acks)
	if f := t.failed.Load(); f > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d sends failed; first: %s", f, *t.firstErr.Load()))
	}
}

package engine

import "sync"

// outbox is one socket's queue of frames waiting to be written, bounded both in frames and in
// bytes: a client that stops reading must not make the server hold its results without limit.
// It allocates nothing until something is queued, so an idle socket costs a few words.
type outbox struct {
	maxFrames, maxBytes int

	mu     sync.Mutex
	frames [][]byte
	bytes  int
	ready  chan struct{} // one token: frames were queued since the writer last looked
}

func newOutbox(maxFrames, maxBytes int) *outbox {
	return &outbox{maxFrames: maxFrames, maxBytes: maxBytes, ready: make(chan struct{}, 1)}
}

// push queues frames together, or queues nothing and returns false when they would pass a
// bound. An empty queue takes any one message, however large, so a big result still gets
// through to a client that reads.
func (o *outbox) push(frames ...[]byte) bool {
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	o.mu.Lock()
	if len(o.frames) > 0 && (len(o.frames)+len(frames) > o.maxFrames || o.bytes+size > o.maxBytes) {
		o.mu.Unlock()
		return false
	}
	o.frames = append(o.frames, frames...)
	o.bytes += size
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
	return true
}

// pop takes the oldest frame.
func (o *outbox) pop() ([]byte, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.frames) == 0 {
		return nil, false
	}
	f := o.frames[0]
	o.frames[0] = nil
	o.frames = o.frames[1:]
	o.bytes -= len(f)
	if len(o.frames) == 0 {
		o.frames = nil // let a burst's backing array go
	}
	return f, true
}

// halfFull reports whether the queue holds more than half of either bound.
func (o *outbox) halfFull() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.frames) > o.maxFrames/2 || o.bytes > o.maxBytes/2
}

func (o *outbox) empty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.frames) == 0
}

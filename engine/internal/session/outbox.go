package session

import "sync"

// outbox is one socket's queue of frames waiting to be written, bounded both in frames and in
// bytes: a client that stops reading must not make the server hold its results without limit.
// It allocates nothing until something is queued, and its writer runs only while there is
// something to write, so an idle socket costs a few words and no goroutine.
type outbox struct {
	maxFrames, maxBytes int

	mu      sync.Mutex
	frames  [][]byte
	bytes   int
	writing bool // a writer is draining the queue
	closed  bool // the socket is going: nothing more is queued
	// writers counts the writer goroutines; Add happens under mu, before close, so wait after
	// close cannot miss one.
	writers sync.WaitGroup
}

func newOutbox(maxFrames, maxBytes int) *outbox {
	return &outbox{maxFrames: maxFrames, maxBytes: maxBytes}
}

// push queues frames together, or queues nothing and returns ok false when they would pass a
// bound. An empty queue takes any one message, however large, so a big result still gets
// through to a client that reads. startWriter says the caller must start a writer (one that
// calls next until it reports the queue empty).
func (o *outbox) push(frames ...[]byte) (ok, startWriter bool) {
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return true, false
	}
	if len(o.frames) > 0 && (len(o.frames)+len(frames) > o.maxFrames || o.bytes+size > o.maxBytes) {
		return false, false
	}
	o.frames = append(o.frames, frames...)
	o.bytes += size
	startWriter = !o.writing
	if startWriter {
		o.writing = true
		o.writers.Add(1)
	}
	return true, startWriter
}

// writerDone is called by a writer as it ends.
func (o *outbox) writerDone() { o.writers.Done() }

// wait waits for the writers; call it after close.
func (o *outbox) wait() { o.writers.Wait() }

// next takes the oldest frame for the writer. When the queue is empty it reports false, and the
// writer must stop: the next push starts a new one.
func (o *outbox) next() ([]byte, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.frames) == 0 {
		o.writing = false
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

// close stops the queue taking frames; what is queued stays for a last flush.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

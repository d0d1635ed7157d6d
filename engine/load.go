package engine

import "time"

// idleLoad is the reactor load below which the engine counts as idle for WaitForIdle.
const idleLoad = 0.5

// WaitForIdle lets background work give way to live updates: it returns at once while the
// reactor spends less than half its time delivering, and otherwise waits, polling every 10 ms,
// until it does, at most max. A job that embeds, indexes or cleans up in chunks calls it
// between chunks, so a burst of messages is delivered first and the job catches up after it;
// the bound keeps it moving under a load that never ends. It returns the context's error if the
// action is cancelled meanwhile.
func (c *ActionCtx) WaitForIdle(max time.Duration) error {
	deadline := time.Now().Add(max)
	for c.engine.reactor.Load() >= idleLoad && time.Now().Before(deadline) {
		select {
		case <-c.Done():
			return c.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return c.Err()
}

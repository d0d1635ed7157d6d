package engine

// HoldChangeFeed makes the engine's change feed stop handing events to the reactor, as if the
// reactor had stopped taking them, until release is called: the feed stops reading its
// connection, so the logical feed's slot falls behind. held is closed once an event waits.
func HoldChangeFeed(e *Engine) (held <-chan struct{}, release func()) {
	return e.listener.(interface {
		HoldDeliveries() (<-chan struct{}, func())
	}).HoldDeliveries()
}

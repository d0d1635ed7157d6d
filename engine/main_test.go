package engine_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it starts: engines, listeners, sessions, timers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

package engine_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ripplehq/ripple/internal/pglocal"
)

// logicalPG is the private server (wal_level = logical) of the tests that run the logical
// change feed; started by the first of them.
var logicalPG pglocal.Shared

// Every test stops what it starts: engines, listeners, sessions, timers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(stopping{m})
}

// stopping stops the logical server after the tests, before goleak looks.
type stopping struct{ m *testing.M }

func (s stopping) Run() int {
	defer logicalPG.Close()
	return s.m.Run()
}

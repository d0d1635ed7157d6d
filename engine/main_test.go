package engine_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/ripplehq/ripple/internal/pglocal"
)

// logicalPG is the private server (wal_level = logical) of the tests that run the logical
// change feed; started by the first of them.
var logicalPG pglocal.Shared

// Every test stops what it starts: engines, listeners, sessions, timers. The runnable examples
// share one schema (example_app_test.go) and the logical-feed tests one server; both are gone
// before the check.
func TestMain(m *testing.M) {
	code := m.Run()
	dropExampleDB()
	logicalPG.Close()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

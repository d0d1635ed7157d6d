package engine_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it starts: engines, listeners, sessions, timers. The runnable examples
// share one schema (example_app_test.go), dropped before the check.
func TestMain(m *testing.M) {
	code := m.Run()
	dropExampleDB()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

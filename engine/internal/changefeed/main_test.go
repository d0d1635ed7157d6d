package changefeed_test

import (
	"os"
	"testing"

	"github.com/ripplehq/ripple/internal/pglocal"
)

// logicalPG is the private server (wal_level = logical) the logical feed's tests share.
var logicalPG pglocal.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	logicalPG.Close()
	os.Exit(code)
}

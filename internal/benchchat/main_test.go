package benchchat_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it starts: servers, sockets, HTTP connections.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

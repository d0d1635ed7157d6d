package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBenchChatFlags(t *testing.T) {
	t.Parallel()
	res := runBinary(t, nil, "bench", "chat", "-h")
	assert.Equal(t, 0, res.code)
	assert.Contains(t, res.stdout, "-statements")
	assert.Contains(t, res.stdout, "-metrics-url")

	// The metrics address of a server the bench starts is its own to choose.
	res = runBinary(t, map[string]string{"DATABASE_URL": unreachableURL}, "bench", "chat", "--metrics-url", "http://127.0.0.1:9100/metrics")
	assert.Equal(t, 2, res.code)
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "--metrics-url need --url")

	// The soak's sizes are checked before anything starts.
	for _, args := range [][]string{{"--soak-clients", "3"}, {"--token-ttl", "1s"}, {"--retention", "5s"}, {"--duration", "1m", "--warm-up", "2m"}} {
		res = runBinary(t, map[string]string{"DATABASE_URL": unreachableURL}, append([]string{"bench", "chat", "--scenario", "soak"}, args...)...)
		assert.Equal(t, 2, res.code, args)
		assert.Contains(t, requireOneErrorLine(t, res.stderr), "soak ", args)
	}
}

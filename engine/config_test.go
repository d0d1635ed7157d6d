package engine

import (
	"testing"
	"time"
)

func TestConfigJobRescueFollowsTimeout(t *testing.T) {
	t.Parallel()
	c := (&Config{}).WithDefaults()
	if c.JobTimeout != time.Minute || c.RescueStuckJobsAfter != 2*time.Minute {
		t.Fatalf("defaults: timeout %s, rescue %s", c.JobTimeout, c.RescueStuckJobsAfter)
	}
	c = (&Config{JobTimeout: 5 * time.Minute}).WithDefaults()
	if c.RescueStuckJobsAfter != 6*time.Minute {
		t.Fatalf("rescue %s for a 5 min timeout", c.RescueStuckJobsAfter)
	}
	bad := (&Config{JobTimeout: 5 * time.Minute, RescueStuckJobsAfter: time.Minute}).WithDefaults()
	if err := bad.validate(); err == nil {
		t.Fatal("a rescue before the timeout was accepted")
	}
}

package engine

import (
	"strings"
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

func TestConfigReplicas(t *testing.T) {
	t.Parallel()
	c := (&Config{ReplicaURLs: []string{"postgres://ripple@replica-1:5432/ripple"}}).WithDefaults()
	if c.ReplicaMaxWait != 100*time.Millisecond {
		t.Fatalf("default ReplicaMaxWait %s", c.ReplicaMaxWait)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*Config{
		{ReplicaURLs: []string{"postgres://ripple:secret@replica-1:notaport/ripple"}},
		{ReplicaMaxWait: -time.Millisecond},
		{ReplicaMaxWait: time.Minute},
	} {
		err := bad.WithDefaults().validate()
		if err == nil {
			t.Fatalf("accepted %+v", bad)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
}

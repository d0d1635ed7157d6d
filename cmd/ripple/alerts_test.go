package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/ripplehq/ripple/internal/testdb"
)

// alertRulesPath is the Prometheus rules file of docs/engine.md's alerting guide.
const alertRulesPath = "../../docs/alerts.yml"

// TestAlertRulesPromtool checks docs/alerts.yml with Prometheus's own checker. CI installs
// promtool (scripts/promtool.sh, run by make test-go); elsewhere the test is skipped without it.
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (scripts/promtool.sh installs it)")
		}
		t.Skip("promtool is not installed (scripts/promtool.sh installs it; CI runs this)")
	}
	out, err := exec.Command(promtool, "check", "rules", alertRulesPath).CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", out)
	require.Contains(t, string(out), "SUCCESS")
}

// alertRules reads docs/alerts.yml: each rule's name and expression.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(alertRulesPath)
	require.NoError(t, err)
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &file))
	rules := map[string]string{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert)
			require.NotEmpty(t, r.Expr, r.Alert)
			rules[r.Alert] = r.Expr
		}
	}
	require.NotEmpty(t, rules)
	return rules
}

var (
	ruleMetricName = regexp.MustCompile(`\bripple_[a-z0-9_]+`)
	// A sample line of the text format: the series name, then its labels or value.
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]`)
)

// TestAlertRulesNameExportedMetrics scrapes a real `ripple serve` (with a replica configured,
// so the replica series exist: the primary itself, which the engine reports as promoted) and
// checks that every metric a rule names is exported, and that the job and queue gauges have
// their zero series before any work.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	rules := alertRules(t)
	db := testdb.NewSchema(t)
	metricsAddr := freeAddr(t)
	startServe(t, map[string]string{"DATABASE_URL": db.URL, "DATABASE_REPLICA_URLS": db.URL}, db.Schema, "", "--metrics-addr", metricsAddr)
	code, body := get(t, "http://"+metricsAddr+"/metrics", "")
	require.Equal(t, 200, code, body)

	exported := map[string]bool{}
	values := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if m := sampleLine.FindStringSubmatch(line); m != nil {
			exported[m[1]] = true
			series, value, _ := strings.Cut(line, " ")
			values[series] = value
		}
	}
	for name, expr := range rules {
		names := ruleMetricName.FindAllString(expr, -1)
		require.NotEmpty(t, names, "%s names no ripple_ metric: %s", name, expr)
		for _, m := range names {
			require.True(t, exported[m], "alert %s uses %s, which the server does not export", name, m)
		}
	}

	// Every state of every known job kind, 0 before anything was queued (the housekeeping job
	// may already be queued or running: its own series can be 1).
	for _, kind := range []string{"ripple.function", "ripple.housekeeping"} {
		for _, state := range []string{"available", "scheduled", "retryable", "running", "pending", "discarded"} {
			series := `ripple_jobs{kind="` + kind + `",state="` + state + `"}`
			v, ok := values[series]
			require.True(t, ok, "%s is not exported", series)
			if kind == "ripple.function" || !slices.Contains([]string{"available", "running", "scheduled"}, state) {
				require.Equal(t, "0", v, series)
			}
		}
	}
	require.Equal(t, "0", values["ripple_embedding_queue"])
	require.Equal(t, "0", values[`ripple_jobs_finished_total{function="",kind="ripple.housekeeping",outcome="discarded"}`])
	require.Contains(t, values, `ripple_db_pool_connections{state="acquired"}`)
	replicaSeries := false
	for series := range values {
		replicaSeries = replicaSeries || strings.HasPrefix(series, "ripple_replica_lag_bytes{replica=")
	}
	require.True(t, replicaSeries, "no ripple_replica_lag_bytes series with a replica configured")
}

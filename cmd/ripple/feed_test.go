package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/pglocal"
)

// feedStatus is /readyz's changeFeed entry.
type feedStatus struct {
	Slot  string `json:"slot"`
	State string `json:"state"`
}

func readFeedStatus(base string) (feedStatus, int) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return feedStatus{State: "unreachable"}, 0
	}
	defer resp.Body.Close()
	var body struct {
		ChangeFeed feedStatus `json:"changeFeed"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.ChangeFeed, resp.StatusCode
}

// slotsNow runs `ripple slots --json` against the database.
func slotsNow(t *testing.T, dbURL string) []map[string]any {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"slots", "--json"}, &out, &errOut, func(k string) string {
		if k == envDatabaseURL {
			return dbURL
		}
		return ""
	})
	require.Equal(t, exitOK, code, errOut.String())
	var slots []map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &slots))
	return slots
}

// The logical change feed in `ripple serve`, with a streaming replica in use: deliveries with
// read-your-writes; a write from psql goes live; `ripple slots` shows the process's one slot and
// `ripple slots drop` makes it re-run everything on a new slot (/readyz says which); the
// primary restarted under it: deliveries resume and nothing is missed; the server killed -9 and
// restarted: its slot does not outlive it. Throughout, no subscriber's result loses a message
// it showed or skips one.
func TestLogicalFeedServe(t *testing.T) {
	t.Parallel()
	primary := pglocal.ForTest(t)
	replica := pglocal.StandbyForTest(t, primary)
	replicaURL := replica.URL()
	metricsAddr := freeAddr(t)
	vars := map[string]string{"DATABASE_URL": primary.URL(), "DATABASE_REPLICA_URLS": replicaURL,
		"RIPPLE_CHANGE_FEED": "logical", "RIPPLE_LOG_LEVEL": "warn"}
	srv := startServe(t, vars, "public", "", "--metrics-addr", metricsAddr)
	metrics := "http://" + metricsAddr + "/metrics"
	ada, bob := signUpPair(t, srv.base(), "feed")
	chat := openLiveChat(t, srv.base(), ada, bob)
	send := chat.send
	for range 10 {
		send()
	}

	// psql writes, without Ripple: live all the same.
	db, err := pgx.Connect(context.Background(), primary.URL())
	require.NoError(t, err)
	var adaID int64
	require.NoError(t, db.QueryRow(context.Background(), "SELECT id FROM users WHERE email = $1", ada.email).Scan(&adaID))
	db.Close(context.Background())
	chat.sent++
	psql := exec.Command(pglocal.Bin+"psql", "-X", "-v", "ON_ERROR_STOP=1", primary.URL(), "-c",
		fmt.Sprintf("INSERT INTO messages (sender_id, conversation_id, body) VALUES (%d, %s, 'replica message %d')", adaID, ada.conv, chat.sent))
	out, err := psql.CombinedOutput()
	require.NoError(t, err, "%s", out)
	chat.showAll(false, "to the reader after a write from psql")

	// One slot, this process's; dropped by command: everything re-runs on a new slot.
	slots := slotsNow(t, primary.URL())
	require.Len(t, slots, 1)
	first := slots[0]["name"].(string)
	st, code := readFeedStatus(srv.base())
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, feedStatus{Slot: first, State: "ok"}, st)
	gaps := metricValue(t, metrics, "ripple_listener_gaps_total")
	var dropOut, dropErr bytes.Buffer
	code = run(context.Background(), []string{"slots", "drop", first}, &dropOut, &dropErr, func(k string) string {
		if k == envDatabaseURL {
			return primary.URL()
		}
		return ""
	})
	require.Equal(t, exitOK, code, dropErr.String())
	require.Eventually(t, func() bool {
		st, code := readFeedStatus(srv.base())
		return code == http.StatusOK && st.State == "ok" && st.Slot != first && st.Slot != ""
	}, time.Minute, 20*time.Millisecond, "no new slot after the drop")
	require.Greater(t, metricValue(t, metrics, "ripple_listener_gaps_total"), gaps, "the drop did not count as a gap (re-run everything)")
	for range 5 {
		send()
	}
	chat.showAll(false, "to the reader after the slot was dropped")

	// The primary restarted under the feed and the replica.
	require.NoError(t, primary.Restart(context.Background()))
	require.Eventually(t, func() bool {
		st, code := readFeedStatus(srv.base())
		return code == http.StatusOK && st.State == "ok"
	}, 2*time.Minute, 50*time.Millisecond, "the server did not recover after the primary restarted")
	for range 10 {
		send()
	}
	chat.showAll(false, "to the reader after the primary restarted")

	// Killed and restarted: the old slot goes with its connection.
	srv.kill()
	require.Eventually(t, func() bool { return len(slotsNow(t, primary.URL())) == 0 }, time.Minute, 50*time.Millisecond,
		"the killed process's slot outlived it")
	srv = startServe(t, vars, "public", "")
	require.Len(t, slotsNow(t, primary.URL()), 1)
	chat.reconnect(srv.base())
	chat.showAll(true, "to a subscription after the restart")
	for range 5 {
		send()
	}
	chat.showAll(false, "to the reader after the server restarted")
	t.Logf("%d messages delivered through the logical feed", chat.sent)
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/testdb"
)

func TestFunctionsCommand(t *testing.T) {
	t.Parallel()
	res := runBinary(t, nil, "functions")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Regexp(t, `(?m)^messages:send\s+mutation\s+public\s+-\s+\{ conversationId: string; body: string; \}$`, res.stdout)
	// Periodic functions show their schedule.
	assert.Regexp(t, `(?m)^messages:embedDue\s+action\s+internal\s+@every 1s\s`, res.stdout)
	assert.Regexp(t, `(?m)^messages:searchVectors\s+query\s+internal\s+-\s+\{ conversationId: string; vector\?: number\[\]; model\?: string; limit: number; \}$`, res.stdout)

	res = runBinary(t, nil, "functions", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var list []functionDescription
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &list))
	byPath := map[string]functionDescription{}
	for _, f := range list {
		byPath[f.Path] = f
	}
	assert.Equal(t, functionDescription{Path: "users:me", Kind: "query", Visibility: "public", Args: "Record<string, never>", Result: "{ _id: string; name: string; email: string; } | null"}, byPath["users:me"])
	assert.Equal(t, "internal", byPath["messages:embedDue"].Visibility)
	assert.Equal(t, "action", byPath["messages:embedDue"].Kind)
	assert.Equal(t, "@every 1s", byPath["messages:embedDue"].Schedule)
}

// chatServer is a `ripple serve` with an admin key and two signed-up users.
type chatServer struct {
	db       *testdb.Bundle
	url      string
	vars     map[string]string // DATABASE_URL and RIPPLE_ADMIN_KEY
	ann, bob string            // emails
}

func newChatServer(t *testing.T) *chatServer {
	t.Helper()
	db := testdb.NewSchema(t)
	srv := startServe(t, map[string]string{"DATABASE_URL": db.URL}, db.Schema, "")
	c := &chatServer{db: db, url: "http://" + srv.addr, vars: map[string]string{"DATABASE_URL": db.URL}}
	key := runBinary(t, c.vars, "admin-key", "--schema", db.Schema)
	require.Equal(t, 0, key.code, key.stderr)
	c.vars["RIPPLE_ADMIN_KEY"] = strings.TrimSpace(key.stdout)
	c.ann, c.bob = signUpUser(t, c.url, "Ann"), signUpUser(t, c.url, "Bob")
	return c
}

func signUpUser(t *testing.T, url, name string) string {
	t.Helper()
	email := strings.ToLower(name) + "@example.com"
	status, out := post(t, url+"/api/auth/signup", "", map[string]string{"email": email, "password": "correct horse battery staple", "name": name})
	require.Equal(t, http.StatusOK, status, "%v", out)
	return email
}

// run runs `ripple run` against the server with the given arguments.
func (c *chatServer) run(t *testing.T, args ...string) result {
	t.Helper()
	return runBinary(t, c.vars, append([]string{"run", "--url", c.url, "--schema", c.db.Schema}, args...)...)
}

// runOK runs `ripple run` and decodes its JSON result into out.
func (c *chatServer) runOK(t *testing.T, out any, args ...string) {
	t.Helper()
	res := c.run(t, args...)
	require.Equal(t, 0, res.code, "ripple run %v: %s", args, res.stderr)
	require.NoError(t, json.Unmarshal([]byte(res.stdout), out), res.stdout)
}

func TestRunFunctions(t *testing.T) {
	t.Parallel()
	c := newChatServer(t)

	// As a user (--as, before or after the function), public and internal functions alike.
	var me struct{ Name string }
	c.runOK(t, &me, "users:me", "--as", c.ann)
	assert.Equal(t, "Ann", me.Name)
	var nobody *struct{}
	c.runOK(t, &nobody, "users:me") // the admin alone is no user
	assert.Nil(t, nobody)

	var convID string
	c.runOK(t, &convID, "--as", c.ann, "conversations:getOrCreateDirect", fmt.Sprintf(`{"email": %q}`, c.bob))
	var msgID string
	c.runOK(t, &msgID, "messages:send", fmt.Sprintf(`{"conversationId": %q, "body": "from the command line"}`, convID), "--as", c.ann)
	var page struct {
		Page []struct{ ID, Body, SenderID string } `json:"page"`
	}
	c.runOK(t, &page, "messages:list", fmt.Sprintf(`{"conversationId": %q, "paginationOpts": {"numItems": 10, "cursor": null}}`, convID), "--as", c.bob)
	require.Len(t, page.Page, 1)
	assert.Equal(t, "from the command line", page.Page[0].Body)
	var hits []any
	c.runOK(t, &hits, "messages:searchVectors", fmt.Sprintf(`{"conversationId": %q, "limit": 5}`, convID), "--as", c.bob)
	assert.Empty(t, hits)

	// Mistakes: one line on stderr each, exit 2 for the command line's, 1 for the rest.
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		code int
		want string
	}{
		{"unknown function", []string{"mesages:sendd", "{}"}, nil, 2, `unknown function "mesages:sendd"; did you mean messages:send`},
		{"bad JSON", []string{"messages:send", "{body:"}, nil, 2, "not valid JSON"},
		{"wrong arguments", []string{"messages:send", `{"conversationId": "1", "body": 3}`, "--as", c.ann}, nil, 2, `messages:send: INVALID_ARGUMENT: `},
		{"missing argument", []string{"messages:send", `{"conversationId": "1"}`, "--as", c.ann}, nil, 2, `argument "body" is required`},
		{"function's error", []string{"messages:send", fmt.Sprintf(`{"conversationId": %q, "body": "x"}`, convID)}, nil, 1, "messages:send: UNAUTHENTICATED: "},
		{"unknown user", []string{"users:me", "--as", "nobody@example.com"}, nil, 1, `no user with email "nobody@example.com"`},
		{"watch needs a query", []string{"messages:send", "{}", "--watch"}, nil, 2, "--watch needs a query"},
		{"no admin key", []string{"users:me"}, map[string]string{"RIPPLE_ADMIN_KEY": ""}, 2, "no admin key"},
		{"refused admin key", []string{"users:me"}, map[string]string{"RIPPLE_ADMIN_KEY": "not-a-key"}, 1, "the server refused the admin key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			for k, v := range c.vars {
				vars[k] = v
			}
			for k, v := range tc.vars {
				vars[k] = v
			}
			res := runBinary(t, vars, append([]string{"run", "--url", c.url, "--schema", c.db.Schema}, tc.args...)...)
			assert.Equal(t, tc.code, res.code, res.stderr)
			assert.Contains(t, requireOneErrorLine(t, res.stderr), tc.want)
			assert.Empty(t, res.stdout)
		})
	}

	t.Run("unreachable server", func(t *testing.T) {
		res := runBinary(t, c.vars, "run", "--url", "http://"+freeAddr(t), "users:me")
		assert.Equal(t, 1, res.code)
		assert.Contains(t, requireOneErrorLine(t, res.stderr), "cannot reach the server at http://")
	})
}

func TestRunWatch(t *testing.T) {
	t.Parallel()
	c := newChatServer(t)
	var convID string
	c.runOK(t, &convID, "conversations:getOrCreateDirect", fmt.Sprintf(`{"email": %q}`, c.bob), "--as", c.ann)

	cmd := newCmd(t, c.vars, "run", "--url", c.url, "--schema", c.db.Schema, "--as", c.bob, "--watch", "conversations:list")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer // written by the process while failure messages read it
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	type conversation struct {
		ID          string `json:"_id"`
		LastMessage *struct{ Body string }
	}
	next := func() []conversation {
		t.Helper()
		select {
		case line, ok := <-lines:
			require.True(t, ok, "watch ended early; stderr: %s", stderr.String())
			var list []conversation
			require.NoError(t, json.Unmarshal([]byte(line), &list), line)
			return list
		case <-time.After(time.Minute):
			t.Fatalf("no result within a minute; stderr: %s", stderr.String())
			return nil
		}
	}

	first := next()
	require.Len(t, first, 1)
	assert.Equal(t, convID, first[0].ID)
	assert.Nil(t, first[0].LastMessage)

	// Each write that changes the result prints a new line.
	for i := range 2 {
		body := "message " + strconv.Itoa(i)
		var id string
		c.runOK(t, &id, "messages:send", fmt.Sprintf(`{"conversationId": %q, "body": %q}`, convID, body), "--as", c.ann)
		got := next()
		require.Len(t, got, 1)
		require.NotNil(t, got[0].LastMessage)
		assert.Equal(t, body, got[0].LastMessage.Body)
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-exited:
		require.NoError(t, err, "watch should exit 0 when interrupted; stderr: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not exit within 30s of SIGINT")
	}
	assert.Empty(t, stderr.String())
}

func TestRunScheduled(t *testing.T) {
	t.Parallel()
	c := newChatServer(t)
	var convID string
	c.runOK(t, &convID, "conversations:getOrCreateDirect", fmt.Sprintf(`{"email": %q}`, c.bob), "--as", c.ann)
	sendArgs := func(body string) string {
		return fmt.Sprintf(`{"conversationId": %q, "body": %q}`, convID, body)
	}

	// Later: listed until cancelled.
	var laterID int64
	c.runOK(t, &laterID, "messages:send", sendArgs("in an hour"), "--as", c.ann, "--after", "1h")
	// The embedding sweep runs as a periodic job beside it, and is never listed: nobody
	// scheduled it.
	scheduled := func() []map[string]any {
		t.Helper()
		res := runBinary(t, c.vars, "scheduled", "--schema", c.db.Schema, "--json")
		require.Equal(t, 0, res.code, res.stderr)
		var list []map[string]any
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &list), res.stdout)
		return list
	}
	list := scheduled()
	require.Len(t, list, 1)
	assert.EqualValues(t, laterID, list[0]["id"])
	assert.Equal(t, "messages:send", list[0]["path"])
	assert.Equal(t, "scheduled", list[0]["state"])
	assert.Equal(t, map[string]any{"conversationId": convID, "body": "in an hour"}, list[0]["args"])
	table := runBinary(t, c.vars, "scheduled", "--schema", c.db.Schema)
	assert.Regexp(t, fmt.Sprintf(`(?m)^%d\s+\S+\s+scheduled\s+messages:send\s+1\s+`, laterID), table.stdout)

	res := runBinary(t, c.vars, "scheduled", "--schema", c.db.Schema, "--cancel", strconv.FormatInt(laterID, 10))
	require.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, fmt.Sprintf("cancelled %d\n", laterID), res.stdout)
	assert.Empty(t, scheduled())
	res = runBinary(t, c.vars, "scheduled", "--schema", c.db.Schema, "--cancel", strconv.FormatInt(laterID, 10))
	assert.Equal(t, 1, res.code)
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "already finished (cancelled)")

	// Now: the serving engine runs it, as Ann.
	var nowID int64
	c.runOK(t, &nowID, "messages:send", sendArgs("scheduled now"), "--as", c.ann, "--at", time.Now().UTC().Format(time.RFC3339))
	deadline := time.Now().Add(time.Minute)
	for {
		var page struct {
			Page []struct {
				Body     string `json:"body"`
				SenderID string `json:"senderId"`
			} `json:"page"`
		}
		c.runOK(t, &page, "messages:list", fmt.Sprintf(`{"conversationId": %q, "paginationOpts": {"numItems": 10, "cursor": null}}`, convID), "--as", c.bob)
		if len(page.Page) == 1 {
			assert.Equal(t, "scheduled now", page.Page[0].Body)
			assert.Equal(t, "1", page.Page[0].SenderID)
			break
		}
		require.True(t, time.Now().Before(deadline), "the scheduled send did not run within a minute; pending: %v", scheduled())
		time.Sleep(50 * time.Millisecond)
	}
	// River records the job's completion just after the function committed.
	for len(scheduled()) > 0 {
		require.True(t, time.Now().Before(deadline), "the scheduled send is still pending: %v", scheduled())
		time.Sleep(50 * time.Millisecond)
	}

	// Mistakes are reported before anything is scheduled.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"users:me", "{}", "--after", "1m"}, "only mutations and actions can be scheduled"},
		{[]string{"messages:send", `{"body": 1}`, "--after", "1m"}, "INVALID_ARGUMENT"},
		{[]string{"messages:send", "{}", "--at", "tomorrow"}, "is not an RFC 3339 time"},
		{[]string{"messages:send", "{}", "--at", "2026-01-02T15:04:05Z", "--after", "1m"}, "not both"},
	} {
		res := c.run(t, tc.args...)
		assert.Equal(t, 2, res.code, "%v: %s", tc.args, res.stderr)
		assert.Contains(t, requireOneErrorLine(t, res.stderr), tc.want)
	}
	assert.Empty(t, scheduled())
}

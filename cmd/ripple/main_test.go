package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/internal/testlog"
)

// binary is the ripple command, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ripple-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "ripple")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ripple:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// unreachableURL refuses connections at once (nothing listens on port 1).
const unreachableURL = "postgres://x:y@127.0.0.1:1/db?connect_timeout=2"

// newCmd returns the binary with args and an environment whose Ripple variables are exactly
// vars.
func newCmd(t *testing.T, vars map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" || strings.HasPrefix(name, "RIPPLE_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

type result struct {
	code           int
	stdout, stderr string
}

// runBinary runs the binary to completion within a minute.
func runBinary(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	cmd := newCmd(t, vars, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("ripple %v did not exit within a minute; stderr:\n%s", args, stderr.String())
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// requireOneErrorLine checks that stderr is exactly one "ripple: ..." line and returns it.
func requireOneErrorLine(t *testing.T, stderr string) string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	require.Len(t, lines, 1, "stderr should be one line, got:\n%s", stderr)
	require.True(t, strings.HasPrefix(lines[0], "ripple: "), "stderr line %q should start with \"ripple: \"", lines[0])
	require.NotContains(t, stderr, "panic")
	require.NotContains(t, stderr, "goroutine ")
	return lines[0]
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestServeUnreachableDatabase(t *testing.T) {
	t.Parallel()
	start := time.Now()
	res := runBinary(t, map[string]string{"DATABASE_URL": unreachableURL}, "serve", "--addr", "127.0.0.1:0")
	assert.Equal(t, 1, res.code)
	line := requireOneErrorLine(t, res.stderr)
	assert.Contains(t, line, "database")
	assert.Contains(t, line, "127.0.0.1:1")
	assert.NotContains(t, line, "y@", "the password must not be printed")
	assert.Less(t, time.Since(start), 30*time.Second)
}

func TestMigrateUnreachableDatabase(t *testing.T) {
	t.Parallel()
	res := runBinary(t, map[string]string{"DATABASE_URL": unreachableURL}, "migrate")
	assert.Equal(t, 1, res.code)
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "database")
}

func TestMissingDatabaseURL(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"serve", "migrate"} {
		res := runBinary(t, nil, sub)
		assert.Equal(t, 1, res.code, sub)
		assert.Contains(t, requireOneErrorLine(t, res.stderr), "DATABASE_URL is not set", sub)
	}
}

func TestBadFlag(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "--bogus"},
		{"migrate", "--schema"},
		{"serve", "extra-arg"},
		{"frobnicate"},
		{},
	} {
		res := runBinary(t, map[string]string{"DATABASE_URL": unreachableURL}, args...)
		assert.Equal(t, 2, res.code, "%v", args)
		requireOneErrorLine(t, res.stderr)
		assert.Empty(t, res.stdout, "%v", args)
	}
}

func TestBadLogLevel(t *testing.T) {
	t.Parallel()
	res := runBinary(t, map[string]string{"DATABASE_URL": unreachableURL, "RIPPLE_LOG_LEVEL": "loud"}, "serve")
	assert.Equal(t, 1, res.code)
	assert.Contains(t, requireOneErrorLine(t, res.stderr), "RIPPLE_LOG_LEVEL")
}

// On a network address, serve refuses to keep signing keys under the public development key.
func TestServeNeedsAKeyOffLoopback(t *testing.T) {
	t.Parallel()
	res := runBinary(t, map[string]string{"DATABASE_URL": unreachableURL}, "serve", "--addr", "0.0.0.0:0")
	assert.Equal(t, 1, res.code)
	line := requireOneErrorLine(t, res.stderr)
	assert.Contains(t, line, "RIPPLE_KEY_ENCRYPTION_KEY is required")
}

func TestServePortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	addr := ln.Addr().String()
	res := runBinary(t, map[string]string{"DATABASE_URL": unreachableURL}, "serve", "--addr", addr)
	assert.Equal(t, 1, res.code)
	line := requireOneErrorLine(t, res.stderr)
	assert.Contains(t, line, addr)
	assert.Contains(t, line, "in use")
}

func TestHelp(t *testing.T) {
	t.Parallel()
	res := runBinary(t, nil, "help")
	assert.Equal(t, 0, res.code)
	assert.Contains(t, res.stdout, "serve")
	assert.Contains(t, res.stdout, "migrate")
	assert.Empty(t, res.stderr)

	res = runBinary(t, nil, "serve", "-h")
	assert.Equal(t, 0, res.code)
	assert.Contains(t, res.stdout, "-no-migrate")
}

// syncBuffer collects output written concurrently.
type syncBuffer = testlog.Buffer

func TestServeAndGracefulShutdown(t *testing.T) {
	t.Parallel()
	db := testdb.NewSchema(t)
	srv := startServe(t, map[string]string{"DATABASE_URL": db.URL}, db.Schema, "")
	addr, cmd, exited, stderr := srv.addr, srv.cmd, srv.exited, srv.stderr

	client := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		waitForOK(t, client, "http://"+addr+path)
	}
	// The app and the API come with headers that keep other sites from framing or sniffing them.
	for _, path := range []string{"/", "/healthz"} {
		resp, err := client.Get("http://" + addr + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
		require.NoError(t, *srv.waitErr, "ripple serve should exit 0 after SIGTERM; stderr:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("ripple serve did not exit within 30s of SIGTERM; stderr:\n%s", stderr.String())
	}
	assert.Equal(t, 0, cmd.ProcessState.ExitCode())
	assert.NotContains(t, stderr.String(), "level=ERROR")

	// The port is free again.
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	_ = ln.Close()
}

// waitForOK polls url until it answers 200, for at most 30 s.
func waitForOK(t *testing.T, client *http.Client, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: not 200 within 30s; last: %s", url, last)
		case <-tick.C:
		}
	}
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmptySchema(t)
	vars := map[string]string{"DATABASE_URL": db.URL}

	first := runBinary(t, vars, "migrate", "--schema", db.Schema)
	require.Equal(t, 0, first.code, "stderr:\n%s", first.stderr)
	assert.Contains(t, first.stdout, "applied migration engine/0001_engine")
	assert.NotContains(t, first.stdout, "already up to date")

	second := runBinary(t, vars, "migrate", "--schema", db.Schema)
	require.Equal(t, 0, second.code, "stderr:\n%s", second.stderr)
	assert.Equal(t, "schema "+db.Schema+": already up to date\n", second.stdout)
	assert.Empty(t, second.stderr)
}

// In-process tests of the parts that need no binary.

func TestRunUsage(t *testing.T) {
	t.Parallel()
	getenv := func(string) string { return "" }
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command given"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"help", "nope"}, 2, `unknown command "nope"`},
		{[]string{"serve", "-addr"}, 2, "flag needs an argument"},
		{[]string{"migrate", "--schema", ""}, 2, "--schema must not be empty"},
		{[]string{"serve"}, 1, "DATABASE_URL is not set"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr, getenv)
		assert.Equal(t, c.code, code, "%v", c.args)
		assert.Contains(t, stderr.String(), c.want, "%v", c.args)
		assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "%v: %q", c.args, stderr.String())
	}
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	in := "failed to connect to `user=x database=db`:\n\t127.0.0.1:1: refused\n\t127.0.0.1:1: refused\n"
	assert.Equal(t, "failed to connect to `user=x database=db`: 127.0.0.1:1: refused", oneLine(in))
	assert.Equal(t, "a; b", oneLine("a\nb"))
}

// served is a `ripple serve` started by startServe.
type served struct {
	addr    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr *error        // cmd.Wait's error, once exited is closed
	stderr  *syncBuffer
}

// base is the server's address as a URL.
func (s *served) base() string { return "http://" + s.addr }

// kill ends the process at once, as a crash would.
func (s *served) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// startServe starts `ripple serve` with the environment vars over schemaName, on addr (a free
// loopback port when empty) with any further flags, and returns once /readyz answers. The
// process gets SIGTERM when the test ends, if it still runs (SIGKILL if it does not stop), and
// its stderr is logged when the test failed.
func startServe(t *testing.T, vars map[string]string, schemaName, addr string, flags ...string) *served {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	cmd := newCmd(t, vars, append([]string{"serve", "--addr", addr, "--schema", schemaName}, flags...)...)
	srv := &served{addr: addr, cmd: cmd, exited: make(chan struct{}), waitErr: new(error), stderr: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = io.Discard, srv.stderr
	require.NoError(t, cmd.Start())
	go func() {
		*srv.waitErr = cmd.Wait()
		close(srv.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-srv.exited:
		case <-time.After(30 * time.Second):
			srv.kill()
		}
		if t.Failed() {
			t.Logf("ripple serve on %s:\n%s", addr, srv.stderr.String())
		}
	})

	// Wait for /readyz (whatever the log level, so not for the "serving on" line), or for the
	// process to give up.
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get(srv.base() + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-srv.exited:
			t.Fatalf("ripple serve exited early (%v); stderr:\n%s", *srv.waitErr, srv.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ripple serve was not ready within a minute; stderr:\n%s", srv.stderr.String())
		}
	}
	return srv
}

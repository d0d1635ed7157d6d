package devserver_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripplehq/ripple/internal/devserver"
	"github.com/ripplehq/ripple/internal/testdb"
)

// Generous bounds for a busy machine: they only stop a hung test, they measure nothing.
const (
	firstBuild = 10 * time.Minute
	rebuild    = 5 * time.Minute
)

// lines is what a process writes, line by line, for waiting on.
type lines chan string

func readLines(r io.Reader) lines {
	ch := make(lines, 1024)
	go func() {
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			ch <- s.Text()
		}
		close(ch)
	}()
	return ch
}

// waitFor returns the first line containing want, failing after timeout or when the lines end.
func (l lines) waitFor(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-l:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			t.Log(line)
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("no %q within %s", want, timeout)
		}
	}
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	_, err := os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	return root
}

// copyApp copies testdata/app into a module of its own that uses this checkout of Ripple.
func copyApp(t *testing.T, root string) string {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS("testdata/app")))
	require.NoError(t, os.Remove(filepath.Join(dir, "subscribe.mjs")))
	gomod := "module devapp\n\ngo 1.26.8\n\nrequire github.com/ripplehq/ripple v0.0.0\n\nreplace github.com/ripplehq/ripple => " + root + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))
	// The dev server builds with GOPROXY=off (nothing fetched behind the developer's back), and
	// the app's module graph needs go.mod files Ripple's own build never reads (pgpassfile's
	// pre-pruning requirements, say): fetch them now, with the machine's proxy, as a
	// developer's first `go build` of a new app would.
	build := exec.Command("go", "build", "-o", os.DevNull, ".")
	build.Dir, build.Env = dir, append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "resolving the app's modules: %s", out)
	return dir
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// subscriber runs Ripple's TypeScript client (Node) subscribed to greeting:get.
func subscriber(t *testing.T, root, addr string) lines {
	client := filepath.Join(root, "node_modules", "@ripplehq", "client", "dist", "index.js")
	if _, err := os.Stat(client); err != nil {
		out, err := exec.Command("npm", "run", "build", "--prefix", filepath.Join(root, "client-ts")).CombinedOutput()
		require.NoError(t, err, "building @ripplehq/client (run `npm ci` at the root first): %s", out)
	}
	cmd := exec.Command("node", "testdata/app/subscribe.mjs", "http://"+addr)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	return readLines(stdout)
}

func edit(t *testing.T, path, old, new string) {
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(src), old)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(src), old, new, 1)), 0o644))
}

func TestDevRebuildsAndClientsFollow(t *testing.T) {
	root := repoRoot(t)
	app := copyApp(t, root)
	db := testdb.NewEmptySchema(t)
	addr := freeAddr(t)

	out, outW := io.Pipe()
	output := readLines(out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- devserver.Run(ctx, &devserver.Config{
			Dir: app, Main: ".", Addr: addr, ServeArgs: []string{"--schema", db.Schema},
			Env: append(os.Environ(), "DATABASE_URL="+db.URL, "GOFLAGS=-mod=mod", "GOWORK=off", "GOPROXY=off"),
			Out: outW,
		})
		outW.Close()
	}()
	defer func() {
		cancel()
		// Drain the output so Run's writes never block while it stops the server.
		go func() {
			for range output {
			}
		}()
		require.NoError(t, <-done)
	}()

	output.waitFor(t, "serving on http://"+addr+" (build 1)", firstBuild)
	greetings := subscriber(t, root, addr)
	greetings.waitFor(t, `"hello v1"`, time.Minute)

	// A new behaviour: the server restarts and the subscribed client, which reconnects and
	// resubscribes on its own, receives the new result.
	main := filepath.Join(app, "main.go")
	edit(t, main, `"hello v1"`, `"hello v2"`)
	output.waitFor(t, "main.go changed; rebuilding", rebuild)
	output.waitFor(t, "(build 2)", rebuild)
	greetings.waitFor(t, `"hello v2"`, rebuild)

	// A build error is shown, and the last good server keeps serving.
	edit(t, main, `"hello v2", nil`, `"hello v3" nil`)
	output.waitFor(t, "build failed; the last good build keeps serving", rebuild)
	output.waitFor(t, "main.go", time.Minute) // the compiler's message names the file
	resp, err := http.Post("http://"+addr+"/api/query", "application/json", strings.NewReader(`{"path":"greeting:get","args":{}}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), `"hello v2"`)

	// Fixed: served again, and the client follows.
	edit(t, main, `"hello v3" nil`, `"hello v3", nil`)
	output.waitFor(t, "serving on http://"+addr, rebuild)
	greetings.waitFor(t, `"hello v3"`, rebuild)
}

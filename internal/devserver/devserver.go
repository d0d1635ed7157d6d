package devserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config configures Run.
type Config struct {
	// Dir is the application's root: generate and build run there, and its files are watched.
	// Default ".".
	Dir string
	// Main is the Go package of the server binary, relative to Dir. Default "./cmd/ripple".
	Main string
	// Addr is where the server listens, passed as `serve --addr Addr`. Default 127.0.0.1:3210.
	Addr string
	// ServeArgs follow `serve --addr Addr` on the server's command line.
	ServeArgs []string
	// Generate is a shell command run in Dir before each build (sqlc, readsetgen, codegen).
	// Empty: none.
	Generate string
	// Env is the server's and the commands' environment. Default os.Environ().
	Env []string
	// Poll is how often the tree is scanned; Debounce how long it must stay unchanged before a
	// rebuild. Defaults 250 ms and 300 ms.
	Poll, Debounce time.Duration
	// ReadyTimeout bounds waiting for a new server's /healthz. Default 2 min.
	ReadyTimeout time.Duration
	// StopTimeout bounds a server's shutdown after SIGINT; then it is killed. Default 15 s.
	StopTimeout time.Duration
	// Out receives ripple dev's own lines and the server's output. Default os.Stderr.
	Out io.Writer
}

// WithDefaults returns a copy with every unset field at its default.
func (c *Config) WithDefaults() *Config {
	out := *c
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&out.Dir, ".")
	def(&out.Main, "./cmd/ripple")
	def(&out.Addr, "127.0.0.1:3210")
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	dur(&out.Poll, 250*time.Millisecond)
	dur(&out.Debounce, 300*time.Millisecond)
	dur(&out.ReadyTimeout, 2*time.Minute)
	dur(&out.StopTimeout, 15*time.Second)
	if out.Env == nil {
		out.Env = os.Environ()
	}
	if out.Out == nil {
		out.Out = os.Stderr
	}
	return &out
}

func (c *Config) validate() error {
	if c.Poll < 0 || c.Debounce < 0 || c.ReadyTimeout < 0 || c.StopTimeout < 0 {
		return errors.New("devserver: durations must not be negative")
	}
	if st, err := os.Stat(c.Dir); err != nil || !st.IsDir() {
		return fmt.Errorf("devserver: %s is not a directory", c.Dir)
	}
	return nil
}

// Run builds and serves the application, then rebuilds and restarts it on every change until
// ctx ends, when it stops the server and returns nil. It fails only on a bad Config or when the
// tree cannot be read.
func Run(ctx context.Context, cfg *Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ripple-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	d := &dev{cfg: cfg, tmp: tmp}
	defer d.stopServer()

	seen, err := scan(cfg.Dir)
	if err != nil {
		return err
	}
	// A first build that fails is reported like any other; the next change tries again.
	_ = d.rebuild(ctx)
	for {
		changed, next, err := d.waitForChange(ctx, seen)
		if err != nil {
			if ctx.Err() != nil {
				d.logf("stopping")
				return nil
			}
			return err
		}
		seen = next
		d.logf("%s changed; rebuilding", describe(changed))
		if err := d.rebuild(ctx); err != nil && ctx.Err() == nil {
			// Reported already; the last good server (if any) keeps serving.
			continue
		}
	}
}

type dev struct {
	cfg *Config
	tmp string
	// good is the last binary that built and served; server is the running one.
	good     string
	server   *exec.Cmd
	exited   chan struct{}
	builds   int
	lastFail string
}

func (d *dev) logf(format string, args ...any) {
	fmt.Fprintf(d.cfg.Out, "ripple dev: "+format+"\n", args...)
}

// rebuild regenerates, builds and swaps the server. Its failures are shown once: the same
// output again (nothing relevant fixed yet) is only mentioned.
func (d *dev) rebuild(ctx context.Context) error {
	if d.cfg.Generate != "" {
		if out, err := d.command(ctx, "sh", "-c", d.cfg.Generate); err != nil {
			return d.failed("generate ("+d.cfg.Generate+")", out, err)
		}
	}
	d.builds++
	bin := filepath.Join(d.tmp, fmt.Sprintf("server-%d", d.builds))
	if out, err := d.command(ctx, "go", "build", "-o", bin, d.cfg.Main); err != nil {
		return d.failed("build", out, err)
	}
	d.lastFail = ""
	d.stopServer()
	if err := d.startServer(ctx, bin); err != nil {
		d.logf("the new server did not start: %v", err)
		if d.good == "" {
			return err
		}
		d.logf("starting the last good build again")
		if err2 := d.startServer(ctx, d.good); err2 != nil {
			d.logf("the last good build did not start either: %v", err2)
		}
		return err
	}
	if d.good != "" && d.good != bin {
		os.Remove(d.good)
	}
	d.good = bin
	d.logf("serving on http://%s (build %d)", d.cfg.Addr, d.builds)
	return nil
}

func (d *dev) failed(step string, out []byte, err error) error {
	msg := strings.TrimSpace(string(out))
	if msg == "" {
		msg = err.Error()
	}
	keeping := "nothing is serving yet"
	if d.good != "" {
		keeping = "the last good build keeps serving"
	}
	if msg == d.lastFail {
		d.logf("%s still fails (same errors as above); %s", step, keeping)
	} else {
		d.lastFail = msg
		d.logf("%s failed; %s:\n%s", step, keeping, indent(msg))
	}
	return fmt.Errorf("%s failed: %w", step, err)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func (d *dev) command(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = d.cfg.Dir
	cmd.Env = d.cfg.Env
	return cmd.CombinedOutput()
}

// startServer runs bin and waits until its /healthz answers, it exits, or ReadyTimeout passes.
func (d *dev) startServer(ctx context.Context, bin string) error {
	args := append([]string{"serve", "--addr", d.cfg.Addr}, d.cfg.ServeArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = d.cfg.Dir
	cmd.Env = d.cfg.Env
	cmd.Stdout, cmd.Stderr = d.cfg.Out, d.cfg.Out
	cmd.SysProcAttr = serverProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	d.server, d.exited = cmd, exited

	url := "http://" + d.cfg.Addr + "/healthz"
	deadline := time.NewTimer(d.cfg.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			d.server = nil
			return fmt.Errorf("it exited (%v)", cmd.ProcessState)
		case <-deadline.C:
			d.stopServer()
			return fmt.Errorf("no answer on %s within %s", url, d.cfg.ReadyTimeout)
		case <-ctx.Done():
			d.stopServer()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// stopServer interrupts the running server and waits for it, killing it after StopTimeout.
func (d *dev) stopServer() {
	if d.server == nil {
		return
	}
	cmd, exited := d.server, d.exited
	d.server = nil
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(d.cfg.StopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// waitForChange polls until the tree differs from seen and then stays unchanged for Debounce.
func (d *dev) waitForChange(ctx context.Context, seen map[string]stamp) ([]string, map[string]stamp, error) {
	tick := time.NewTicker(d.cfg.Poll)
	defer tick.Stop()
	var changed []string
	var lastChange time.Time
	cur := seen
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-d.exitedChan():
			d.server = nil
			d.logf("the server exited on its own; waiting for a change to rebuild")
		case <-tick.C:
		}
		next, err := scan(d.cfg.Dir)
		if err != nil {
			return nil, nil, err
		}
		if diff := differences(cur, next); len(diff) > 0 {
			changed = append(changed, diff...)
			lastChange = time.Now()
			cur = next
			continue
		}
		if len(changed) > 0 && time.Since(lastChange) >= d.cfg.Debounce {
			return changed, cur, nil
		}
	}
}

func (d *dev) exitedChan() <-chan struct{} {
	if d.server == nil {
		return nil
	}
	return d.exited
}

func describe(files []string) string {
	if len(files) == 1 {
		return files[0]
	}
	return fmt.Sprintf("%s and %d more", files[0], len(files)-1)
}

type stamp struct {
	mod  time.Time
	size int64
}

// skipDirs are never the application's server source.
var skipDirs = map[string]bool{"node_modules": true, "testdata": true, "dist": true, "vendor": true}

// scan stamps the watched files under dir: Go files other than tests, and SQL (queries and
// migrations). Generated files (sqlc's, readsetgen's) are left out: the generate step writes
// them, and watching them would rebuild again after every rebuild.
func scan(dir string) (map[string]stamp, error) {
	out := map[string]stamp{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if path != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		name := e.Name()
		if e.IsDir() {
			if path != dir && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || skipDirs[name]) {
				return filepath.SkipDir
			}
			return nil
		}
		watched := strings.HasSuffix(name, ".sql") || (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go"))
		if !watched || strings.HasSuffix(name, ".sql.go") || strings.HasSuffix(name, ".gen.go") {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		if strings.HasSuffix(name, ".go") && generated(path) {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = stamp{mod: info.ModTime(), size: info.Size()}
		return nil
	})
	return out, err
}

// generated reports whether a Go file carries Go's "Code generated ... DO NOT EDIT." line.
func generated(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	for _, line := range bytes.Split(head[:n], []byte("\n")) {
		if bytes.HasPrefix(line, []byte("// Code generated ")) && bytes.HasSuffix(bytes.TrimSpace(line), []byte("DO NOT EDIT.")) {
			return true
		}
	}
	return false
}

func differences(a, b map[string]stamp) []string {
	var out []string
	for p, s := range b {
		if old, ok := a[p]; !ok || old != s {
			out = append(out, p)
		}
	}
	for p := range a {
		if _, ok := b[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

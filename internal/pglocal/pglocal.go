// Package pglocal starts PostgreSQL servers of the process's own (initdb into a temporary
// directory, run as the postgres user), and streaming standbys of them (pg_basebackup -R): for
// tests that need settings the shared server does not have (wal_level = logical takes a
// restart), and for `ripple bench chat --replicas / --change-feed logical`. It needs root, as
// the project's machines and CI run tests, and PostgreSQL 15's binaries with pgvector.
//
// Each server's temporary directory names the process that made it; Start and StartStandby
// first stop and remove the servers of processes that are gone (a test binary killed by its
// timeout or ^C never runs its Stop), so killed runs do not pile up postgres processes.
package pglocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bin is where PostgreSQL 15's programs are.
const Bin = "/usr/lib/postgresql/15/bin/"

// Server is a private PostgreSQL server.
type Server struct {
	Dir  string // the data directory, also holding the socket
	Port int
	base string
	// settings are the -c options it runs with.
	settings string
}

// Options are settings for Start.
type Options struct {
	// StatStatements preloads pg_stat_statements and creates the extension (bench chat's
	// statement counts).
	StatStatements bool
}

// URL is the server's postgres database as the ripple superuser.
func (s *Server) URL() string {
	return "postgres://ripple@127.0.0.1:" + strconv.Itoa(s.Port) + "/postgres?sslmode=disable"
}

// Available says why a private server cannot run here ("" when it can).
func Available() string {
	if os.Geteuid() != 0 {
		return "a private PostgreSQL needs root (to run it as the postgres user)"
	}
	if _, err := os.Stat(Bin + "initdb"); err != nil {
		return fmt.Sprintf("no PostgreSQL 15 binaries: %v", err)
	}
	return ""
}

// Start makes and starts a server with wal_level = logical (and room for replication slots
// and WAL senders), fsync off. Stop it with Stop.
func Start(ctx context.Context, opts ...Options) (*Server, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if why := Available(); why != "" {
		return nil, fmt.Errorf("%s", why)
	}
	settings := "-c wal_level=logical -c max_replication_slots=100 -c max_wal_senders=100 -c max_connections=300"
	if o.StatStatements {
		settings += " -c shared_preload_libraries=pg_stat_statements"
	}
	s, err := newServer(ctx, primaryPrefix, settings, Bin+"initdb", "--username", "ripple", "--auth", "trust")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		s.Stop()
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		s.Stop()
		return nil, err
	}
	if o.StatStatements {
		if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

// StartStandby makes a hot standby of primary with pg_basebackup -R (streaming replication)
// and starts it.
func StartStandby(ctx context.Context, primary *Server) (*Server, error) {
	// A hot standby refuses to start with fewer WAL senders (and the like) than its primary.
	// initdb's pg_hba.conf lets local replication connections in (trust); -R writes
	// primary_conninfo and standby.signal.
	return newServer(ctx, standbyPrefix, primary.settings, Bin+"pg_basebackup", "--write-recovery-conf", "--wal-method", "stream",
		"--host", "127.0.0.1", "--port", strconv.Itoa(primary.Port), "--username", "ripple")
}

// The temporary directories of servers, by kind: where removeOrphans looks.
const (
	primaryPrefix = "ripple-pg-"
	standbyPrefix = "ripple-standby-"
)

// ownerFile, in a server's base directory, holds the pid of the process that made it.
const ownerFile = "owner.pid"

// newServer makes a server's directories, owned by this process, fills its data directory with
// the command fill (initdb or pg_basebackup, given the data directory and --no-sync) and starts
// it. It first stops and removes the servers of processes that are gone.
func newServer(ctx context.Context, prefix, settings, fill string, args ...string) (*Server, error) {
	removeOrphans(ctx)
	base, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: filepath.Join(base, "data"), base: base, settings: settings}
	if err := s.prepare(ctx, fill, args); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) prepare(ctx context.Context, fill string, args []string) error {
	// The owner first: a directory without one is never taken for an orphan.
	if err := os.WriteFile(filepath.Join(s.base, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(s.base, 0o755); err != nil {
		return err
	}
	var err error
	if s.Port, err = freePort(); err != nil {
		return err
	}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "chown", "postgres:postgres", s.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("chown: %v: %s", err, out)
	}
	if err := asPostgres(ctx, fill, append([]string{"--pgdata", s.Dir, "--no-sync"}, args...)...); err != nil {
		return err
	}
	return s.Restart(ctx)
}

// removeOrphans stops and removes the servers under the temporary directory whose owning
// process is gone: a test binary killed by its timeout or ^C never ran its Stop.
func removeOrphans(ctx context.Context) {
	for _, prefix := range []string{primaryPrefix, standbyPrefix} {
		bases, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
		for _, base := range bases {
			if ownerGone(base) {
				orphan := &Server{Dir: filepath.Join(base, "data"), base: base}
				orphan.stop(ctx)
			}
		}
	}
}

// ownerGone says whether the process named in base's owner file no longer exists. Without a
// readable owner (a directory being made, or not pglocal's) it says no.
func ownerGone(base string) bool {
	raw, err := os.ReadFile(filepath.Join(base, ownerFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// Restart starts the server (stopping it first, fast, when it runs).
func (s *Server) Restart(ctx context.Context) error {
	_ = s.Shutdown(ctx)
	return asPostgres(ctx, Bin+"pg_ctl", "--pgdata", s.Dir, "--wait", "--log", filepath.Join(s.Dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off %s", s.Port, s.Dir, s.settings), "start")
}

// Shutdown stops the server the way a restart does (fast: sessions are disconnected), keeping
// its files: Restart starts it again.
func (s *Server) Shutdown(ctx context.Context) error {
	return asPostgres(ctx, Bin+"pg_ctl", "--pgdata", s.Dir, "--wait", "--mode", "fast", "stop")
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	s.stop(context.Background())
}

func (s *Server) stop(ctx context.Context) {
	_ = asPostgres(ctx, Bin+"pg_ctl", "--pgdata", s.Dir, "--mode", "immediate", "stop")
	_ = os.RemoveAll(s.base)
}

func asPostgres(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ForTest starts a server of the test's own (Start), stopped and removed when the test ends. It
// skips the test, with the reason, where none can run.
func ForTest(t testing.TB, opts ...Options) *Server {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip(why)
	}
	return forTest(t, func(ctx context.Context) (*Server, error) { return Start(ctx, opts...) })
}

// StandbyForTest starts a standby of primary (StartStandby), stopped and removed when the test
// ends.
func StandbyForTest(t testing.TB, primary *Server) *Server {
	t.Helper()
	return forTest(t, func(ctx context.Context) (*Server, error) { return StartStandby(ctx, primary) })
}

func forTest(t testing.TB, start func(context.Context) (*Server, error)) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := start(ctx)
	if err != nil {
		t.Fatalf("starting a private PostgreSQL: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Shared is one logical server per test binary, started on first use and stopped by Close (call
// it from TestMain): tests make schemas of their own on it (testdb.NewSchemaAt).
type Shared struct {
	once   sync.Once
	server *Server
	err    error
}

// Get returns the shared server, skipping the test (with the reason) when none can run here.
func (sh *Shared) Get(t testing.TB) *Server {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip(why)
	}
	sh.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sh.server, sh.err = Start(ctx)
	})
	if sh.err != nil {
		t.Fatalf("starting a private PostgreSQL with wal_level=logical: %v", sh.err)
	}
	return sh.server
}

// Close stops the server if it was started.
func (sh *Shared) Close() {
	if sh.server != nil {
		sh.server.Stop()
	}
}

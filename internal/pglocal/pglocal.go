// Package pglocal starts PostgreSQL servers of the process's own (initdb into a temporary
// directory, run as the postgres user), and streaming standbys of them (pg_basebackup -R): for
// tests that need settings the shared server does not have (wal_level = logical takes a
// restart), and for `ripple bench chat --replicas / --change-feed logical`. It needs root, as
// the project's machines and CI run tests, and PostgreSQL 15's binaries with pgvector.
package pglocal

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
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
	base, err := os.MkdirTemp("", "ripple-pg-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return nil, err
	}
	s := &Server{Dir: filepath.Join(base, "data"), base: base,
		settings: "-c wal_level=logical -c max_replication_slots=100 -c max_wal_senders=100 -c max_connections=300"}
	if o.StatStatements {
		s.settings += " -c shared_preload_libraries=pg_stat_statements"
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return nil, err
	}
	if out, err := exec.Command("chown", "postgres:postgres", s.Dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown: %v: %s", err, out)
	}
	if err := asPostgres(Bin+"initdb", "--pgdata", s.Dir, "--username", "ripple", "--auth", "trust", "--no-sync"); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.Restart(ctx); err != nil {
		s.Stop()
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
	base, err := os.MkdirTemp("", "ripple-standby-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return nil, err
	}
	// A hot standby refuses to start with fewer WAL senders (and the like) than its primary.
	s := &Server{Dir: filepath.Join(base, "data"), base: base, settings: primary.settings}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return nil, err
	}
	if out, err := exec.Command("chown", "postgres:postgres", s.Dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown: %v: %s", err, out)
	}
	if err := asPostgres(Bin+"pg_basebackup", "--pgdata", s.Dir, "--write-recovery-conf", "--wal-method", "stream",
		"--host", "127.0.0.1", "--port", strconv.Itoa(primary.Port), "--username", "ripple", "--no-sync"); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.Restart(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Restart starts the server (stopping it first, fast, when it runs).
func (s *Server) Restart(ctx context.Context) error {
	_ = asPostgres(Bin+"pg_ctl", "--pgdata", s.Dir, "--wait", "--mode", "fast", "stop")
	return asPostgres(Bin+"pg_ctl", "--pgdata", s.Dir, "--wait", "--log", filepath.Join(s.Dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off %s", s.Port, s.Dir, s.settings), "start")
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	_ = asPostgres(Bin+"pg_ctl", "--pgdata", s.Dir, "--mode", "immediate", "stop")
	_ = os.RemoveAll(s.base)
}

func asPostgres(name string, args ...string) error {
	out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...).CombinedOutput()
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

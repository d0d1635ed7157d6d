package benchchat

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is the server under test.
type Server struct {
	// URL is its base address, http://127.0.0.1:port.
	URL string
	// PID is its process id for CPU and RSS figures; 0 when unknown.
	PID int
	// AppName is the application_name of its Postgres connections; empty means "every client
	// backend of the database except the bench's own".
	AppName string
	// MetricsURL is where its Prometheus metrics can be read without credentials (serve
	// --metrics-addr), for the engine's statement counter; empty: not read.
	MetricsURL string
	// Stop stops it and removes what it created (its schema). Nil: nothing to do.
	Stop func(ctx context.Context) error
	// WALSenders: the database server's WAL senders count as the server's Postgres backends.
	WALSenders bool
	// AdminKey is an admin key of the server, for the soak's operator traffic; empty: none.
	AdminKey string
	// GC collects the server's garbage, so the soak's heap samples are of live memory; nil: not
	// possible.
	GC func(ctx context.Context) error
}

// Launcher starts a fresh server (its own schema) for one scenario.
type Launcher func(ctx context.Context) (*Server, error)

// ExistingServer targets a server that is already running: nothing is started or dropped.
// metricsURL is its /metrics without credentials (serve --metrics-addr), or empty.
func ExistingServer(baseURL string, pid int, metricsURL string) Launcher {
	return func(ctx context.Context) (*Server, error) {
		if err := waitReady(ctx, baseURL, 30*time.Second); err != nil {
			return nil, err
		}
		return &Server{URL: strings.TrimRight(baseURL, "/"), PID: pid, MetricsURL: metricsURL}, nil
	}
}

// ChildServer starts `<binary> serve --addr 127.0.0.1:<free port> --schema <fresh>` against
// databaseURL, as production runs it (River jobs and the local embedding provider included),
// and drops the schema when stopped. Its Postgres connections carry application_name = the
// schema name, so their backends can be told apart from everyone else's.
func ChildServer(binary, databaseURL string, logTail *tailBuffer, env ...string) Launcher {
	return childServer(binary, databaseURL, logTail, env, false)
}

// childServer is ChildServer with extra environment variables and, when soak is set, a
// profiler port (whose heap profile with gc=1 collects garbage) and an admin key.
func childServer(binary, databaseURL string, logTail *tailBuffer, extraEnv []string, soak bool) Launcher {
	return func(ctx context.Context) (*Server, error) {
		name := "benchchat_" + randomHex(6)
		admin, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			return nil, fmt.Errorf("connecting to the database: %w", err)
		}
		defer admin.Close(context.WithoutCancel(ctx))
		if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("creating schema %s: %w", name, err)
		}
		drop := func() error {
			dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conn, err := pgx.Connect(dctx, databaseURL)
			if err != nil {
				return fmt.Errorf("dropping schema %s: %w", name, err)
			}
			defer conn.Close(dctx)
			if _, err := conn.Exec(dctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
				return fmt.Errorf("dropping schema %s: %w", name, err)
			}
			return nil
		}
		addr, err := freeLoopbackAddr()
		if err != nil {
			_ = drop()
			return nil, err
		}
		// The main port serves /metrics to admin keys only; this one, on loopback, to the bench.
		metricsAddr, err := freeLoopbackAddr()
		if err != nil {
			_ = drop()
			return nil, err
		}
		appURL, err := withApplicationName(databaseURL, name)
		if err != nil {
			_ = drop()
			return nil, err
		}
		args := []string{"serve", "--addr", addr, "--schema", name, "--metrics-addr", metricsAddr}
		var pprofAddr string
		if soak {
			if pprofAddr, err = freeLoopbackAddr(); err != nil {
				_ = drop()
				return nil, err
			}
			args = append(args, "--pprof-addr", pprofAddr)
		}
		// Not CommandContext: the server is stopped with SIGTERM and given time to drain.
		cmd := exec.Command(binary, args...)
		cmd.Env = append(append(os.Environ(), "DATABASE_URL="+appURL, "PGAPPNAME="+name, "RIPPLE_LOG_LEVEL=warn"), extraEnv...)
		if logTail != nil {
			cmd.Stdout, cmd.Stderr = logTail, logTail
		}
		if err := cmd.Start(); err != nil {
			_ = drop()
			return nil, fmt.Errorf("starting %s serve: %w", binary, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var once sync.Once
		var stopErr error
		stop := func(ctx context.Context) error {
			once.Do(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
				stopErr = drop()
			})
			return stopErr
		}
		srv := &Server{URL: "http://" + addr, PID: cmd.Process.Pid, AppName: name, MetricsURL: "http://" + metricsAddr + "/metrics", Stop: stop}
		readyCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-exited:
				cancel()
			case <-readyCtx.Done():
			}
		}()
		err = waitReady(readyCtx, srv.URL, 2*time.Minute)
		cancel()
		if err != nil {
			_ = stop(ctx)
			if logTail != nil {
				return nil, fmt.Errorf("server did not become ready: %w; its last output: %s", err, logTail.String())
			}
			return nil, fmt.Errorf("server did not become ready: %w", err)
		}
		if soak {
			key := exec.CommandContext(ctx, binary, "admin-key", "--schema", name)
			key.Env = cmd.Env
			out, err := key.Output()
			if err != nil {
				_ = stop(ctx)
				return nil, fmt.Errorf("creating an admin key: %w", err)
			}
			srv.AdminKey = strings.TrimSpace(string(out))
			srv.GC = func(ctx context.Context) error {
				return fetchDiscard(ctx, "http://"+pprofAddr+"/debug/pprof/heap?gc=1")
			}
		}
		return srv, nil
	}
}

// waitReady polls /readyz until it answers 200.
func waitReady(ctx context.Context, baseURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// withApplicationName sets application_name in a URL or keyword/value connection string.
func withApplicationName(databaseURL, name string) (string, error) {
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		u, err := url.Parse(databaseURL)
		if err != nil {
			return "", fmt.Errorf("DATABASE_URL is not a valid URL: %w", err)
		}
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return databaseURL + " application_name=" + name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last bytes a child wrote, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-4<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(bytes.ReplaceAll(t.buf, []byte("\n"), []byte(" | "))))
}

// ---------- CPU and memory from /proc ----------

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU is utime+stime of a process.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after the last ')' are fixed.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	// f[0] is field 3 (state): utime is field 14, stime 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed stat")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procRSS is VmRSS in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// meter samples the server's and its Postgres backends' CPU, and the statements they ran.
type meter struct {
	srv  *Server
	conn *pgx.Conn // the bench's own connection, for pg_stat_activity and pg_stat_statements
	own  ownStatements
	// pgss is how pg_stat_statements counts; nil when it cannot be read, pgssWhy says why.
	pgss    *pgssInfo
	pgssWhy string
	http    *http.Client
}

func newMeter(ctx context.Context, srv *Server, databaseURL string) (*meter, error) {
	m := &meter{srv: srv, http: &http.Client{Transport: &http.Transport{}}}
	if databaseURL != "" {
		cc, err := pgx.ParseConfig(databaseURL)
		if err != nil {
			return nil, fmt.Errorf("parsing the database URL: %w", err)
		}
		cc.Tracer = &m.own
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			return nil, fmt.Errorf("connecting to the database for pg_stat_activity: %w", err)
		}
		m.conn = conn
		m.pgss, m.pgssWhy = probePGSS(ctx, conn)
	} else {
		m.pgssWhy = "no database connection"
	}
	return m, nil
}

func (m *meter) close() {
	if m.conn != nil {
		_ = m.conn.Close(context.Background())
	}
	m.http.CloseIdleConnections()
}

// sample is one reading.
type sample struct {
	at        time.Time
	serverCPU time.Duration
	serverOK  bool
	backends  map[int]time.Duration // nil: not measurable
}

func (m *meter) sample(ctx context.Context) sample {
	s := sample{at: time.Now()}
	if m.srv.PID > 0 {
		if cpu, err := procCPU(m.srv.PID); err == nil {
			s.serverCPU, s.serverOK = cpu, true
		}
	}
	if m.conn == nil {
		return s
	}
	var rows pgx.Rows
	var err error
	if m.srv.AppName != "" {
		rows, err = m.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 OR ($2 AND backend_type = 'walsender')", m.srv.AppName, m.srv.WALSenders)
	} else {
		rows, err = m.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = $1 AND pid <> pg_backend_pid()", "client backend")
	}
	if err != nil {
		return s
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return s
	}
	s.backends = map[int]time.Duration{}
	for _, pid := range pids {
		cpu, err := procCPU(int(pid))
		if err != nil {
			// Postgres on another machine (or the backend just ended): not measurable.
			if errors.Is(err, os.ErrNotExist) && len(s.backends) == 0 && !processVisible(int(pid)) {
				s.backends = nil
				return s
			}
			continue
		}
		s.backends[int(pid)] = cpu
	}
	return s
}

func processVisible(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// cpuDelta is the CPU spent between two samples; a backend that appeared in between counts
// from zero (it is new), one that vanished is lost (pools keep their connections).
type cpuDelta struct {
	server, postgres     time.Duration
	serverOK, postgresOK bool
	wall                 time.Duration
}

func delta(a, b sample) cpuDelta {
	d := cpuDelta{wall: b.at.Sub(a.at)}
	if a.serverOK && b.serverOK {
		d.server, d.serverOK = b.serverCPU-a.serverCPU, true
	}
	if a.backends != nil && b.backends != nil {
		d.postgresOK = true
		for pid, cpu := range b.backends {
			d.postgres += cpu - a.backends[pid]
		}
	}
	return d
}

// perMessage fills the CPU-per-delivered-message figures of r.
func (d cpuDelta) perMessage(r *Result, delivered int) {
	if delivered == 0 {
		return
	}
	if d.serverOK {
		r.ServerCPUMsPerMsg = fptr(ms(d.server) / float64(delivered))
	}
	if d.postgresOK {
		r.PostgresCPUMsPerMsg = fptr(ms(d.postgres) / float64(delivered))
	}
}

func (m *meter) rss() int64 {
	if m.srv.PID <= 0 {
		return 0
	}
	v, _ := procRSS(m.srv.PID)
	return v
}

// fetchDiscard GETs url and reads the body to its end.
func fetchDiscard(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/ripplehq/ripple/engine/internal/auth"
	"github.com/ripplehq/ripple/engine/internal/replicas"
)

// Config configures an Engine. The zero value plus WithDefaults is a working configuration.
type Config struct {
	// Schema is the Postgres schema holding the application's tables (and River's). The pool's
	// search_path must name it first. Default "public".
	Schema string

	// Logger receives the engine's logs. Default: discard.
	Logger *slog.Logger

	// Auth verifies access tokens and admin keys. Nil: every caller is anonymous and admin keys
	// are refused.
	Auth Authenticator

	// MaxArgBytes bounds one call's encoded arguments. Default 1 MiB.
	MaxArgBytes int
	// MaxMessageBytes bounds one WebSocket message from a client; a larger one closes the socket
	// with status 1009. Default 8 MiB.
	MaxMessageBytes int
	// TransitionChunkBytes is the size above which a transition is sent as TransitionChunks.
	// Default 4 MiB.
	TransitionChunkBytes int
	// SendQueueLength bounds each socket's queue of outgoing messages. A client whose queue is
	// half full gets no new transitions computed until it catches up; one whose queue is full is
	// disconnected. Default 256.
	SendQueueLength int
	// QueryWorkers is how many connections one batch may run its queries on, all sharing its
	// snapshot. Default: the number of CPUs, at most 4.
	QueryWorkers int
	// MutationsPerSecond and MutationBurst bound how fast one signed-in user (or one anonymous
	// socket or address) may run mutations in this process: a token bucket refilled at
	// MutationsPerSecond holding at most MutationBurst. A mutation over it fails with
	// RATE_LIMITED and errorData.retryAfterMs. Admins, jobs and actions are not limited.
	// Defaults 30 and 100; a negative MutationsPerSecond turns the limit off.
	MutationsPerSecond float64
	MutationBurst      int
	// AllowedOrigins are the web origins, besides the server's own host, whose pages may open
	// sync sockets: host patterns as path.Match takes them ("app.example.org",
	// "*.school.example"). Requests without an Origin header (not from a browser) are accepted.
	AllowedOrigins []string
	// ClientAddress is the address an anonymous HTTP caller is rate limited under. Default: the
	// TCP peer's host (IPv6 grouped by /64); behind reverse proxies, ClientAddressBehind reads
	// the address they forward.
	ClientAddress func(r *http.Request) string
	// MaxQueriesPerSocket bounds the queries one socket may subscribe to at once; a
	// ModifyQuerySet that passes it is a protocol error. Default 1,000.
	MaxQueriesPerSocket int
	// SendQueueBytes bounds the same queue in bytes, the same way. Default 16 MiB.
	SendQueueBytes int
	// WriteTimeout bounds writing one message to a socket; a client that takes longer is
	// disconnected. Default 10 s.
	WriteTimeout time.Duration
	// PingInterval is how long a socket may be idle before the server sends Ping. The client gives
	// up after 60 s of silence. Default 15 s.
	PingInterval time.Duration

	// QueryTimeout, MutationTimeout and ActionTimeout bound one run of a function of each kind
	// unless its FunctionOpts say otherwise. Defaults 10 s, 10 s, 2 min.
	QueryTimeout, MutationTimeout, ActionTimeout time.Duration
	// SlowQueryAfter is how long a batch of re-runs waits for its slowest queries. Past it,
	// everyone else gets their results and mutation replies at once, and only the clients
	// subscribed to the queries still running wait for them (each still gets every result of a
	// transition from one snapshot). A query that outlasted it once runs on a connection of its
	// own from then on. Default 100 ms; negative: batches wait for every query.
	SlowQueryAfter time.Duration
	// MutationMaxRetries bounds the attempts of a mutation that keeps failing serialization.
	// Default 10.
	MutationMaxRetries int

	// Housekeeping are clean-ups (an auth service's Prune, say) run with the engine's own (the
	// mutation log's) as a River periodic job every HousekeepingInterval, by one process at a
	// time. Default interval 5 min.
	Housekeeping         []func(context.Context) error
	HousekeepingInterval time.Duration

	// MutationLogRetention is how long a mutation's outcome is kept to answer a client that
	// resends it after reconnecting; housekeeping deletes older ones. Default 24 h.
	MutationLogRetention time.Duration
	// HousekeepingBatchSize bounds the rows one housekeeping statement deletes, so none holds
	// its locks long; it is repeated until a batch comes back short. Default 1,000.
	HousekeepingBatchSize int

	// CompletedJobRetention, CancelledJobRetention and DiscardedJobRetention are how long
	// River keeps a finished job's row (its job cleaner, run by the leader every 30 s, deletes
	// older ones in batches). -1 keeps them for ever. Defaults River's: 24 h, 24 h and 7 days
	// (discarded jobs, those that used up their retries, stay longer for `ripple jobs --state
	// discarded` to show them).
	CompletedJobRetention, CancelledJobRetention, DiscardedJobRetention time.Duration

	// JobWorkers is how many scheduled functions run at once. Default 10.
	JobWorkers int
	// JobTimeout bounds one run of a scheduled or periodic function. Default 1 min.
	JobTimeout time.Duration
	// RescueStuckJobsAfter is how long a job may stay "running" before River takes it for dead
	// (its process was killed) and runs it again. It must exceed JobTimeout. Default JobTimeout
	// plus 1 min: River's own default, an hour, left a killed process's work undone that long,
	// and held back every run of an exclusive periodic function meanwhile.
	RescueStuckJobsAfter time.Duration
	// DisableJobs turns off River's job processing in this process (jobs can still be scheduled;
	// another process runs them).
	DisableJobs bool
	// PeriodicFunctions run on an interval or a cron schedule (River periodic jobs).
	PeriodicFunctions []PeriodicFunction

	// ReplicaURLs name streaming replicas (hot standbys) of the database. Query re-runs and
	// one-shot queries run on one that has replayed the primary's WAL up to where it was when
	// they began, waiting at most ReplicaMaxWait; otherwise on the primary. Mutations always run
	// on the primary. The role needs pg_read_file on the replicas (a superuser has it; else
	// GRANT EXECUTE ON FUNCTION pg_read_file(text), on the primary): a standby's exact snapshot
	// is read from its exported snapshot file (docs/engine.md, Replicas).
	ReplicaURLs []string
	// ReplicaMaxWait bounds that wait. Default 100 ms.
	ReplicaMaxWait time.Duration

	// ChangeFeed is how the engine learns of commits: ChangeFeedNotify (the default; capture
	// triggers send NOTIFY) or ChangeFeedLogical (logical replication decoded with pgoutput: the
	// write path carries no triggers and takes no notify lock; needs wal_level = logical and a
	// role with REPLICATION). Every process of a deployment must use the same: a process starts
	// only when no process of the other kind is connected, and switches the database over if
	// it must (docs/engine.md, Change feeds).
	ChangeFeed string
	// SlotBehindBytes is how far (bytes of WAL) the logical feed's replication slot may fall
	// behind the primary before /readyz and /metrics report it as behind. Default 1 GiB.
	SlotBehindBytes int64

	// HTTPActions configures the application's HTTP routes (AddHTTPAction): their prefix, body
	// limit and CORS.
	HTTPActions HTTPActionsConfig
}

// PeriodicFunction runs a mutation or action every Interval, or on a Cron schedule: exactly
// one of the two. Runs may overlap (a slow one with the next, or one in a process that died,
// which River takes for running until it rescues it); an action that must run alone wraps its
// work in ActionCtx.Exclusive, whose lock dies with its holder.
type PeriodicFunction struct {
	Path     string
	Args     any
	Interval time.Duration
	// Cron is a cron expression: "0 3 * * *" (minute hour day-of-month month day-of-week), six
	// fields with seconds first ("*/10 * * * * *"), or a descriptor ("@daily", "@every 90s"),
	// optionally prefixed with "CRON_TZ=Europe/Paris "; without a zone, the server's local time.
	Cron       string
	RunOnStart bool
}

// WithDefaults returns a copy with every unset field at its default.
func (c *Config) WithDefaults() *Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Schema == "" {
		out.Schema = "public"
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&out.MaxArgBytes, 1<<20)
	setDefault(&out.MaxMessageBytes, 8<<20)
	setDefault(&out.TransitionChunkBytes, 4<<20)
	setDefault(&out.SendQueueLength, 256)
	setDefault(&out.SendQueueBytes, 16<<20)
	setDefault(&out.MaxQueriesPerSocket, 1000)
	out.HTTPActions.withDefaults()
	if out.MutationsPerSecond == 0 {
		out.MutationsPerSecond = 30
	}
	setDefault(&out.MutationBurst, 100)
	if out.ClientAddress == nil {
		out.ClientAddress = auth.RemoteAddrHost
	}
	setDefault(&out.QueryWorkers, min(runtime.NumCPU(), 4))
	setDefault(&out.PingInterval, 15*time.Second)
	setDefault(&out.WriteTimeout, 10*time.Second)
	setDefault(&out.QueryTimeout, 10*time.Second)
	setDefault(&out.SlowQueryAfter, 100*time.Millisecond)
	setDefault(&out.MutationTimeout, 10*time.Second)
	setDefault(&out.ActionTimeout, 2*time.Minute)
	setDefault(&out.MutationMaxRetries, 10)
	setDefault(&out.JobWorkers, 10)
	setDefault(&out.JobTimeout, time.Minute)
	setDefault(&out.RescueStuckJobsAfter, out.JobTimeout+time.Minute)
	setDefault(&out.MutationLogRetention, 24*time.Hour)
	setDefault(&out.HousekeepingBatchSize, 1000)
	setDefault(&out.CompletedJobRetention, 24*time.Hour)
	setDefault(&out.CancelledJobRetention, 24*time.Hour)
	setDefault(&out.DiscardedJobRetention, 7*24*time.Hour)
	setDefault(&out.HousekeepingInterval, 5*time.Minute)
	setDefault(&out.ReplicaMaxWait, 100*time.Millisecond)
	if out.ChangeFeed == "" {
		out.ChangeFeed = ChangeFeedNotify
	}
	setDefault(&out.SlotBehindBytes, 1<<30)
	return &out
}

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

func (c *Config) validate() error {
	switch {
	case c.MaxArgBytes < 0, c.MaxMessageBytes < 0, c.TransitionChunkBytes < 0:
		return errors.New("engine: size limits must not be negative")
	case c.SendQueueBytes < 1024:
		return errors.New("engine: SendQueueBytes must be at least 1024")
	case c.SendQueueLength < 4:
		return errors.New("engine: SendQueueLength must be at least 4")
	case c.PingInterval > 30*time.Second:
		return errors.New("engine: PingInterval must be at most 30s (clients give up after 60s of silence)")
	case c.RescueStuckJobsAfter <= c.JobTimeout:
		return errors.New("engine: RescueStuckJobsAfter must be greater than JobTimeout")
	case c.MutationLogRetention < 0, c.HousekeepingBatchSize < 1:
		return errors.New("engine: MutationLogRetention must not be negative, HousekeepingBatchSize must be at least 1")
	case c.CompletedJobRetention < -1, c.CancelledJobRetention < -1, c.DiscardedJobRetention < -1:
		return errors.New("engine: job retentions must not be negative, except -1 (for ever)")
	case c.MutationMaxRetries < 1:
		return errors.New("engine: MutationMaxRetries must be at least 1")
	case c.ReplicaMaxWait < 0, c.ReplicaMaxWait > 5*time.Second:
		// Every batch may wait that long before falling back to the primary.
		return errors.New("engine: ReplicaMaxWait must be between 0 and 5s")
	case c.ChangeFeed != ChangeFeedNotify && c.ChangeFeed != ChangeFeedLogical:
		return fmt.Errorf("engine: ChangeFeed must be %q or %q, not %q", ChangeFeedNotify, ChangeFeedLogical, c.ChangeFeed)
	case c.SlotBehindBytes < 0:
		return errors.New("engine: SlotBehindBytes must not be negative")
	case !c.HTTPActions.prefixIsOwn():
		return errors.New("engine: HTTPActions.Prefix must be a path of its own, not / nor under /api/ or /admin/")
	}
	for _, u := range c.ReplicaURLs {
		if _, err := replicas.PoolConfig(u, nil); err != nil {
			return fmt.Errorf("engine: ReplicaURLs: %w", err)
		}
	}
	for _, p := range c.PeriodicFunctions {
		if _, err := p.schedule(); err != nil {
			return err
		}
	}
	return nil
}

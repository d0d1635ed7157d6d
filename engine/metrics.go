package engine

import (
	"context"
	"encoding/json"
	"github.com/ripplehq/ripple/engine/internal/reactor"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"

	"github.com/ripplehq/ripple/engine/internal/replicas"
)

// Metrics are exported in Prometheus's text format at GET /metrics (behind the admin key) or
// through MetricsHandler on an address of the operator's choosing. Each Engine has a registry
// of its own, so several engines in one process (tests) never collide. Most values are atomic
// counters the services keep, read only when scraped (GaugeFunc and CounterFunc); the hot path
// pays an atomic add per transition, subscription change and frame written, a clock read per
// change notification, and a histogram observation (atomic too) per function run.

// metricsNamespace prefixes every metric the engine exports.
const metricsNamespace = "ripple"

// metricSet is an engine's Prometheus registry and the collectors observed as things happen.
type metricSet struct {
	registry *prometheus.Registry
	// durations holds each function's duration histogram, made in New for the functions
	// registered then: an immutable map, read without a lock. A path a client made up gets no
	// series, so clients cannot grow the label set.
	durations map[*function]prometheus.Observer
	// httpDurations holds each HTTP action's, by pattern, the same way.
	httpDurations map[string]prometheus.Observer
	lag           prometheus.Histogram
	jobs          *prometheus.CounterVec
	// phases holds the write path's phase histograms (ripple_phase_duration_seconds), one per
	// phase, all made up front.
	phases map[reactor.Phase]prometheus.Observer
}

// The mutation's own phases; the reactor names the batch's and the reply's (reactor.Phase).
const (
	// phaseFunction: the mutation function with its statements (the first carries BEGIN).
	phaseFunction reactor.Phase = "mutation.function"
	// phaseCommit: the mutation log's insert with COMMIT, a durable flush.
	phaseCommit reactor.Phase = "mutation.commit"
)

// writePhases are the phases of ripple_phase_duration_seconds, in the order a message takes.
var writePhases = []reactor.Phase{phaseFunction, phaseCommit, reactor.PhaseReplyWait,
	reactor.PhaseSnapshot, reactor.PhaseQueries, reactor.PhaseDeliver}

// phaseBuckets span 0.1 ms to about 6.5 s: the phases of a quiet write path are a fraction of a
// millisecond to a few.
var phaseBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)

// durationBuckets span 0.5 ms to about 16 s.
var durationBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

func (e *Engine) newMetrics() *metricSet {
	m := &metricSet{registry: prometheus.NewRegistry(), durations: map[*function]prometheus.Observer{},
		httpDurations: map[string]prometheus.Observer{}}
	reg := m.registry
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "function_duration_seconds",
		Help: "How long one run of a function took (a mutation's includes its retries; a query's, one run in a batch or one HTTP call; " +
			"kind http: one request of an HTTP action, by pattern).",
		Buckets: durationBuckets,
	}, []string{"path", "kind"})
	e.registry.mu.RLock()
	for _, fn := range e.registry.functions {
		m.durations[fn] = durations.WithLabelValues(fn.path, string(fn.kind))
	}
	for _, a := range e.registry.httpActions {
		m.httpDurations[a.pattern] = durations.WithLabelValues(a.pattern, "http")
	}
	e.registry.mu.RUnlock()
	m.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "invalidation_lag_seconds",
		Help: "Per batch that sent transitions: from the arrival of the oldest change it applied on the change listener " +
			"to its transitions being queued on the sockets (commit time is not known to the engine).",
		Buckets: durationBuckets,
	})
	phases := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "phase_duration_seconds",
		Help: "Where a write's time goes, by phase: mutation.function (the function and its statements), mutation.commit " +
			"(log insert with COMMIT), mutation.reply_wait (commit to the reply queued with its covering transition), " +
			"batch.snapshot, batch.queries (re-runs and the drain to the marker), batch.deliver (compare and queue transitions).",
		Buckets: phaseBuckets,
	}, []string{"phase"})
	m.phases = map[reactor.Phase]prometheus.Observer{}
	for _, p := range writePhases {
		m.phases[p] = phases.WithLabelValues(string(p))
	}
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "jobs_finished_total",
		Help: "Job runs this process finished, by River kind, function (for scheduled functions) and outcome " +
			"(completed, failed: will retry, discarded: gave up, cancelled, snoozed, interrupted).",
	}, []string{"kind", "function", "outcome"})
	// The housekeeping job's and each periodic function's outcomes start at 0, so a rate or
	// increase over them is defined before the first run (a failure is then a step from 0).
	outcomes := []string{"completed", "failed", "discarded", "cancelled", "snoozed", "interrupted"}
	for _, o := range outcomes {
		m.jobs.WithLabelValues(housekeepingArgs{}.Kind(), "", o)
	}
	for _, p := range append(slices.Clone(e.config.PeriodicFunctions), e.registry.periodicFunctions()...) {
		if e.registry.lookup(p.Path) == nil {
			continue
		}
		for _, o := range outcomes {
			m.jobs.WithLabelValues(functionJobArgs{}.Kind(), p.Path, o)
		}
	}
	reg.MustRegister(durations, phases, m.lag, m.jobs, &jobQueueCollector{e: e}, &poolCollector{e: e})

	gauge := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metricsNamespace, Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	rs := e.reactor.Stats
	reg.MustRegister(
		gauge("sockets", "Open sync WebSockets.", e.sessions.Sessions),
		gauge("subscriptions", "Live query subscriptions over all sockets.", func() int64 { return rs().Subscriptions }),
		counter("transitions_total", "Transitions sent to sockets.", func() int64 { return rs().Transitions }),
		counter("sent_bytes_total", "Bytes of frames written to sync sockets.", e.sessions.BytesSent),
		counter("batches_total", "Reactor batches run.", func() int64 { return rs().Batches }),
		counter("query_executions_total", "Query runs in batches, after identical subscriptions were merged.", func() int64 { return rs().Executions }),
		counter("reruns_total", "Subscriptions re-run after their first result.", func() int64 { return rs().Reruns }),
		counter("reruns_changed_total", "Re-runs whose result changed; precision is this over ripple_reruns_total.", func() int64 { return rs().ChangedReruns }),
		counter("changes_skipped_total", "Committed changes that matched no live subscription.", func() int64 { return rs().SkippedChanges }),
		counter("mutation_retries_total", "Mutation attempts retried after a serialization failure or deadlock.", e.metrics.mutationRetries.Load),
		counter("mutation_giveups_total", "Mutations that failed after their last retry.", e.metrics.mutationGiveUps.Load),
		counter("listener_gaps_total", "Times the change listener lost its connection (every subscription re-runs).", e.listener.Gaps),
	)
	byServer := func(name, help, server string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metricsNamespace, Name: name, Help: help,
			ConstLabels: prometheus.Labels{"server": server}}, func() float64 { return float64(f()) })
	}
	const batchesHelp = "Reactor batches by the server their snapshot and queries ran on (replica: a streaming replica, Config.ReplicaURLs)."
	const queriesHelp = "One-shot queries (HTTP, actions) by the server they ran on."
	const statementsHelp = "Statements sent to Postgres by connections set up with engine.TraceStatements (ripple serve's pool, " +
		"its marker and change feed connections; server=replica: the replicas' pools), each statement of a pipeline counted once."
	reg.MustRegister(
		byServer("batches_by_server_total", batchesHelp, "primary", func() int64 { return rs().PrimaryBatches }),
		byServer("batches_by_server_total", batchesHelp, "replica", func() int64 { return rs().ReplicaBatches }),
		byServer("oneshot_queries_by_server_total", queriesHelp, "primary", e.metrics.primaryQueries.Load),
		byServer("oneshot_queries_by_server_total", queriesHelp, "replica", e.metrics.replicaQueries.Load),
		byServer("db_statements_total", statementsHelp, "primary", statementsSent.Load),
		byServer("db_statements_total", statementsHelp, "replica", replicaStatementsSent.Load),
		&replicaCollector{e: e},
		&slotCollector{e: e},
	)
	return m
}

// slotCollector reports the logical feed's replication slot when scraped.
type slotCollector struct{ e *Engine }

var slotBehindDesc = prometheus.NewDesc(metricsNamespace+"_change_feed_slot_behind_bytes",
	"Bytes of WAL between the primary's position and what the logical change feed's slot confirmed (state: ok, or behind "+
		"past Config.SlotBehindBytes).", []string{"slot", "state"}, nil)

func (c *slotCollector) Describe(ch chan<- *prometheus.Desc) { ch <- slotBehindDesc }

func (c *slotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, ok := c.e.slotStatus(ctx)
	if !ok {
		return
	}
	behind, ok := st["behindBytes"].(int64)
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(slotBehindDesc, prometheus.GaugeValue, float64(behind), st["slot"].(string), st["state"].(string))
}

// replicaCollector reports each replica's state and lag when scraped.
type replicaCollector struct{ e *Engine }

var (
	replicaUpDesc = prometheus.NewDesc(metricsNamespace+"_replica_in_rotation",
		"1 when the replica takes reads; 0 when it is down, lagging, promoted or unusable (state label).",
		[]string{"replica", "state"}, nil)
	replicaLagDesc = prometheus.NewDesc(metricsNamespace+"_replica_lag_bytes",
		"Bytes of WAL the replica had still to replay behind the primary at its last check.", []string{"replica"}, nil)
)

func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- replicaUpDesc
	ch <- replicaLagDesc
}

func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	set := c.e.replicas.Load()
	if set == nil {
		return
	}
	for _, r := range set.Replicas() {
		st := r.Status()
		up := 0.0
		if st.State == replicas.StateUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(replicaUpDesc, prometheus.GaugeValue, up, st.Name, string(st.State))
		ch <- prometheus.MustNewConstMetric(replicaLagDesc, prometheus.GaugeValue, float64(st.LagBytes), st.Name)
	}
}

// observe records one run of fn that started at start.
func (m *metricSet) observe(fn *function, start time.Time) {
	if o := m.durations[fn]; o != nil {
		o.Observe(time.Since(start).Seconds())
	}
}

// observePhase records how long one phase of the write path took.
func (m *metricSet) observePhase(p reactor.Phase, d time.Duration) {
	if o := m.phases[p]; o != nil {
		o.Observe(d.Seconds())
	}
}

// observeHTTP records one request of the HTTP action with the pattern.
func (m *metricSet) observeHTTP(pattern string, start time.Time) {
	if o := m.httpDurations[pattern]; o != nil {
		o.Observe(time.Since(start).Seconds())
	}
}

// MetricsRegistry is the engine's Prometheus registry: an application may register its own
// collectors on it, to be served with the engine's.
func (e *Engine) MetricsRegistry() *prometheus.Registry { return e.prom.registry }

// MetricsHandler serves the engine's metrics without asking for credentials, for a listener on
// a private network (`ripple serve --metrics-addr`). Handler serves the same behind the admin
// key at GET /metrics.
func (e *Engine) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(e.prom.registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{e}, Timeout: 10 * time.Second})
}

// slogPrinter hands promhttp's errors to the engine's logger.
type slogPrinter struct{ e *Engine }

func (p slogPrinter) Println(v ...any) { p.e.logger.Warn("serving metrics", "error", v) }

// jobQueueCollector reports River's jobs by state and kind when scraped: one grouped count over
// the states that are not final, and discarded (retries used up, kept for an operator). Every
// state of every kind this process runs is exported, 0 when there are none, so an alert on a
// state sees 0 rather than no data.
type jobQueueCollector struct{ e *Engine }

var jobQueueDesc = prometheus.NewDesc(metricsNamespace+"_jobs",
	"River jobs by state and kind: not yet finished (available, scheduled, retryable, running, pending) "+
		"and discarded (gave up; kept for Config.DiscardedJobRetention). 0 for every state of a known kind.",
	[]string{"state", "kind"}, nil)

// jobGaugeStates are the states ripple_jobs reports. Completed and cancelled jobs are left out:
// they are many, and counting them would make every scrape scan them.
var jobGaugeStates = []string{"available", "scheduled", "retryable", "running", "pending", "discarded"}

// knownJobKinds are the kinds whose states are always exported.
var knownJobKinds = []string{functionJobArgs{}.Kind(), housekeepingArgs{}.Kind()}

func (c *jobQueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobQueueDesc }

func (c *jobQueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts := map[[2]string]int64{}
	for _, kind := range knownJobKinds {
		for _, state := range jobGaugeStates {
			counts[[2]string{state, kind}] = 0
		}
	}
	rows, err := c.e.pool.Query(ctx, `SELECT state::text, kind, count(*) FROM river_job
		WHERE state = ANY($1::river_job_state[]) GROUP BY 1, 2`, jobGaugeStates)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobQueueDesc, err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var state, kind string
		var n int64
		if err := rows.Scan(&state, &kind, &n); err != nil {
			ch <- prometheus.NewInvalidMetric(jobQueueDesc, err)
			return
		}
		counts[[2]string{state, kind}] = n
	}
	if err := rows.Err(); err != nil {
		ch <- prometheus.NewInvalidMetric(jobQueueDesc, err)
		return
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(jobQueueDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// poolCollector reports the engine's connection pool when scraped.
type poolCollector struct{ e *Engine }

var (
	poolConnsDesc = prometheus.NewDesc(metricsNamespace+"_db_pool_connections",
		"Connections of the engine's Postgres pool by state (idle, acquired: in use, constructing).", []string{"state"}, nil)
	poolMaxDesc = prometheus.NewDesc(metricsNamespace+"_db_pool_max_connections",
		"The pool's size limit (pool_max_conns).", nil, nil)
	poolWaitsDesc = prometheus.NewDesc(metricsNamespace+"_db_pool_acquire_waits_total",
		"Acquires that had to wait for a connection (the pool was fully in use).", nil, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConnsDesc
	ch <- poolMaxDesc
	ch <- poolWaitsDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(st.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(st.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(st.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolWaitsDesc, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
}

// countJobOutcomes counts the jobs this process finishes, from River's event stream, until ctx
// ends. River drops events when the channel is full; the counts are then a little low.
func (e *Engine) countJobOutcomes(ctx context.Context) {
	events, cancel := e.river.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
		river.EventKindJobCancelled, river.EventKindJobSnoozed, river.EventKindJobInterrupted)
	e.reactorWG.Add(1)
	go func() {
		defer e.reactorWG.Done()
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					return
				}
				if ev.Job != nil {
					e.prom.jobs.WithLabelValues(ev.Job.Kind, e.jobFunction(ev.Job.Kind, ev.Job.EncodedArgs), jobOutcome(ev)).Inc()
				}
			}
		}
	}()
}

// jobFunction is the registered function a ripple.function job runs ("" for other kinds, and
// "unregistered" for a path this process does not know, so old jobs cannot grow the labels).
func (e *Engine) jobFunction(kind string, encodedArgs []byte) string {
	if kind != (functionJobArgs{}).Kind() {
		return ""
	}
	var args functionJobArgs
	if json.Unmarshal(encodedArgs, &args) != nil || e.registry.lookup(args.Path) == nil {
		return "unregistered"
	}
	return args.Path
}

func jobOutcome(ev *river.Event) string {
	switch ev.Kind {
	case river.EventKindJobCompleted:
		return "completed"
	case river.EventKindJobCancelled:
		return "cancelled"
	case river.EventKindJobSnoozed:
		return "snoozed"
	case river.EventKindJobInterrupted:
		return "interrupted"
	}
	if ev.Job.State == "discarded" {
		return "discarded"
	}
	return "failed"
}

package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/internal/benchchat"
	"github.com/ripplehq/ripple/internal/pglocal"
)

// benchCluster is bench chat's own primary and streaming standbys (--replicas, --change-feed
// logical): the shared server cannot be restarted with wal_level = logical, and replicas of it
// would be everyone's.
type benchCluster struct {
	e        *env
	primary  *pglocal.Server
	standbys []*pglocal.Server
}

func startBenchCluster(ctx context.Context, e *env, n int) (*benchCluster, error) {
	if why := pglocal.Available(); why != "" {
		return nil, fmt.Errorf("bench chat: --replicas and --change-feed logical need a private PostgreSQL: %s", why)
	}
	primary, err := pglocal.Start(ctx, pglocal.Options{StatStatements: true})
	if err != nil {
		return nil, fmt.Errorf("starting a private primary: %w", err)
	}
	c := &benchCluster{e: e, primary: primary}
	for range n {
		s, err := pglocal.StartStandby(ctx, primary)
		if err != nil {
			return c, fmt.Errorf("starting a standby: %w", err)
		}
		c.standbys = append(c.standbys, s)
	}
	return c, nil
}

func (c *benchCluster) stop() {
	for _, s := range c.standbys {
		s.Stop()
	}
	c.primary.Stop()
}

func (c *benchCluster) standbyURLs() []string {
	var out []string
	for _, s := range c.standbys {
		out = append(out, s.URL())
	}
	return out
}

// launcher wraps a launcher: while each server runs, the replicas' lag is sampled every 100 ms
// (reported when it stops), and with pause the first replica's replay is paused.
func (c *benchCluster) launcher(inner benchchat.Launcher, pause bool) benchchat.Launcher {
	return func(ctx context.Context) (*benchchat.Server, error) {
		srv, err := inner(ctx)
		if err != nil || len(c.standbys) == 0 {
			return srv, err
		}
		if pause {
			if err := execOn(ctx, c.standbys[0].URL(), "SELECT pg_wal_replay_pause()"); err != nil {
				_ = srv.Stop(ctx)
				return nil, fmt.Errorf("pausing replay: %w", err)
			}
		}
		lagCtx, stopLag := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.sampleLag(lagCtx)
		}()
		stop := srv.Stop
		srv.Stop = func(ctx context.Context) error {
			stopLag()
			wg.Wait()
			if pause {
				_ = execOn(ctx, c.standbys[0].URL(), "SELECT pg_wal_replay_resume()")
			}
			return stop(ctx)
		}
		return srv, nil
	}
}

// sampleLag reads the standbys' replay lag on the primary (pg_stat_replication: bytes of WAL
// not replayed, and replay_lag) until ctx ends, and prints its maximum and median.
func (c *benchCluster) sampleLag(ctx context.Context) {
	conn, err := pgx.Connect(ctx, c.primary.URL())
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	var bytes []int64
	var millis []float64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if len(bytes) == 0 {
				return
			}
			slices.Sort(bytes)
			slices.Sort(millis)
			fmt.Fprintf(c.e.stdout, "replica lag over the scenario (%d samples every 100 ms): bytes median %d max %d; replay_lag ms median %.1f max %.1f\n",
				len(bytes), bytes[len(bytes)/2], bytes[len(bytes)-1], millis[len(millis)/2], millis[len(millis)-1])
			return
		case <-tick.C:
		}
		var b int64
		var ms float64
		err := conn.QueryRow(ctx, `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint,
			coalesce(max(extract(epoch FROM replay_lag) * 1000), 0)::float8
			FROM pg_stat_replication WHERE application_name = 'walreceiver'`).Scan(&b, &ms)
		if err == nil {
			bytes, millis = append(bytes, b), append(millis, ms)
		}
	}
}

func execOn(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

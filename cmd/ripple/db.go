package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/schema"
)

// connectTimeout bounds connecting to and pinging the database at start-up, and each new
// connection afterwards unless the URL's connect_timeout says otherwise.
const connectTimeout = 10 * time.Second

// defaultMaxConns is the pool size when DATABASE_URL does not set pool_max_conns.
const defaultMaxConns = 20

// openPool connects to the database, with every connection's search_path on schemaName, and
// pings it so that an unreachable server is reported before anything else happens.
func openPool(ctx context.Context, databaseURL, schemaName string) (*pgxpool.Pool, error) {
	cfg, err := schema.PoolConfig(databaseURL, schemaName)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid connection string: %w", envDatabaseURL, err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		// pgxpool's default (the number of CPUs, at least 4) is too few for mutations, the
		// reactor's query workers and River's job workers at once.
		cfg.MaxConns = defaultMaxConns
	}
	engine.TraceStatements(cfg)
	pingCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(pingCtx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		if ctx.Err() != nil {
			return nil, errors.New("interrupted while connecting to the database")
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("cannot reach the database at %s:%d within %s",
				cfg.ConnConfig.Host, cfg.ConnConfig.Port, connectTimeout)
		}
		return nil, fmt.Errorf("cannot reach the database: %w", err)
	}
	return pool, nil
}

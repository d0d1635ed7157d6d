package engine

import (
	"context"
	"fmt"
	"time"
)

// lockReleaseTimeout bounds giving an Exclusive lock back.
const lockReleaseTimeout = 5 * time.Second

// Exclusive runs fn while holding the lock called name, shared by every process on the
// database (and schema), and reports false without running fn when another holder has it.
//
// The lock is a session-level advisory lock on a connection kept for fn's duration, so when
// the process dies Postgres releases it with the connection: unlike a flag in a table or a
// job's "running" state, a crash never leaves it held. Inside fn the caller knows it is alone,
// so it may, say, take back work a dead holder had claimed.
func (c *ActionCtx) Exclusive(name string, fn func() error) (bool, error) {
	e := c.engine
	conn, err := e.pool.Acquire(c)
	if err != nil {
		return false, fmt.Errorf("exclusive %s: %w", name, err)
	}
	key := e.config.Schema + ":" + name
	var held bool
	if err := conn.QueryRow(c, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key).Scan(&held); err != nil || !held {
		conn.Release()
		if err != nil {
			return false, fmt.Errorf("exclusive %s: %w", name, err)
		}
		return false, nil
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c), lockReleaseTimeout)
		defer cancel()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key); err != nil {
			// A connection whose unlock failed may still hold the lock: close it, never pool it.
			_ = conn.Conn().Close(ctx)
		}
		conn.Release()
	}()
	return true, fn()
}

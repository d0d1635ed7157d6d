// Command testserver serves a handful of test functions over a fresh, migrated Postgres schema,
// for client conformance tests (client-ts runs the official Convex client against it).
//
// It prints "listening on http://HOST:PORT" as its first stdout line once it accepts
// connections, and drops its schema when it gets SIGINT/SIGTERM or its stdin reaches EOF.
//
// It also serves Ripple's accounts (/api/auth/signup|signin|refresh|signout and
// /.well-known/jwks.json) and accepts their access tokens; --access-token-ttl shortens their
// lifetime so that tests can watch a client refresh its token mid-session.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/internal/testdb"
	"github.com/ripplehq/ripple/schema"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	verbose := flag.Bool("v", false, "log engine activity to stderr")
	ttl := flag.Duration("access-token-ttl", 15*time.Minute, "lifetime of the access tokens the auth routes issue (at least 1s)")
	flag.Parse()
	if err := run(*addr, *verbose, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
}

func run(addr string, verbose bool, accessTokenTTL time.Duration) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = testdb.URL()
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Stdin EOF also means "stop": the parent process died or closed our stdin.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()

	name, pool, err := createSchema(ctx, url)
	if err != nil {
		return err
	}
	defer dropSchema(url, name, pool)

	var senderID int64
	if err := pool.QueryRow(ctx, "INSERT INTO users (name, email) VALUES ('Ann', 'ann@example.com') RETURNING id").Scan(&senderID); err != nil {
		return fmt.Errorf("inserting sender: %w", err)
	}
	// Accounts. Every test signs up from 127.0.0.1, so the per-address limits are raised. The
	// signing keys live in the throwaway schema under the development key-encryption key, whose
	// warning is only noise here (it shows with -v).
	authLogger := logger
	if !verbose {
		authLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	accounts, err := engine.NewAuthService(pool, &engine.AuthConfig{
		AccessTokenTTL:           accessTokenTTL,
		SignUpsPerAddress:        100_000,
		SignInFailuresPerAddress: 100_000,
		Logger:                   authLogger,
	})
	if err != nil {
		return err
	}
	if err := accounts.Start(ctx); err != nil {
		return err
	}

	reg := engine.NewRegistry()
	registerFunctions(reg, senderID)
	e, err := engine.New(pool, reg, &engine.Config{Schema: name, DisableJobs: true, Logger: logger, Auth: accounts.Authenticator()})
	if err != nil {
		return err
	}
	if err := e.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Stop(sctx); err != nil {
			logger.Warn("stopping engine", "err", err)
		}
	}()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	accounts.Routes(mux)
	api := e.Handler()
	mux.Handle("/api/", api)
	mux.Handle("GET /healthz", api)
	mux.Handle("GET /readyz", api)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on http://%s\n", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	// WebSockets are hijacked, so Shutdown does not wait for them; Close drops listeners and
	// idle connections, and Stop (deferred) ends the sessions.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return nil
}

func createSchema(ctx context.Context, url string) (string, *pgxpool.Pool, error) {
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "t_" + hex.EncodeToString(suffix[:])

	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(cctx, url)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to %s (run `make db` or set DATABASE_URL): %w", url, err)
	}
	_, err = admin.Exec(cctx, "CREATE SCHEMA "+name)
	_ = admin.Close(cctx)
	if err != nil {
		return "", nil, err
	}
	cfg, err := schema.PoolConfig(url, name)
	if err != nil {
		dropSchema(url, name, nil)
		return "", nil, err
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err != nil {
		dropSchema(url, name, nil)
		return "", nil, err
	}
	if _, err := schema.Migrate(cctx, pool, &schema.MigrateOpts{Schema: name}); err != nil {
		dropSchema(url, name, pool)
		return "", nil, fmt.Errorf("migrating: %w", err)
	}
	return name, pool, nil
}

func dropSchema(url, name string, pool *pgxpool.Pool) {
	if pool != nil {
		pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testserver: dropping schema %s: %v\n", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
		fmt.Fprintf(os.Stderr, "testserver: dropping schema %s: %v\n", name, err)
	}
}

// Test functions, with hand-written SQL in sqlc's shape (a `-- name:` header) and hand-written
// read specs, as in engine/harness_test.go.

const (
	sqlMessagesByConversation = `-- name: TestMessageList :many
SELECT id, body FROM messages WHERE conversation_id = $1 ORDER BY created_at, id`
	sqlMessageCount = `-- name: TestMessageCount :one
SELECT count(*) FROM messages WHERE conversation_id = $1`
	sqlMessageInsert = `-- name: TestMessageInsert :one
INSERT INTO messages (sender_id, conversation_id, body) VALUES ($1, $2, $3) RETURNING id`
	sqlConversationInsert = `-- name: TestConversationInsert :one
INSERT INTO conversations (type) VALUES ('group') RETURNING id`
	sqlSleep = `-- name: TestSleep :exec
SELECT pg_sleep($1::float8)`
)

var readSpecs = map[string]engine.ReadSpec{
	"TestMessageList":  {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadParam, Column: "conversation_id", Param: 1}}},
	"TestMessageCount": {Tables: []engine.TableRead{{Table: "messages", Kind: engine.ReadParam, Column: "conversation_id", Param: 1}}},
}

type convArgs struct {
	ConversationID string `json:"conversationId"`
}

type sendArgs struct {
	ConversationID string `json:"conversationId"`
	Body           string `json:"body"`
}

type slowSendArgs struct {
	ConversationID string  `json:"conversationId"`
	Body           string  `json:"body"`
	DelayMs        float64 `json:"delayMs"`
}

type message struct {
	ID   string `json:"_id"`
	Body string `json:"body"`
}

func parseID(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, engine.InvalidArgument("conversationId %q is not an id", s)
	}
	return n, nil
}

func registerFunctions(reg *engine.Registry, senderID int64) {
	reg.AddReadSpecs(readSpecs)

	engine.AddQuery(reg, "messages:list", func(ctx *engine.QueryCtx, args convArgs) ([]message, error) {
		conv, err := parseID(args.ConversationID)
		if err != nil {
			return nil, err
		}
		rows, err := ctx.DB().Query(ctx, sqlMessagesByConversation, conv)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := []message{}
		for rows.Next() {
			var id int64
			var body string
			if err := rows.Scan(&id, &body); err != nil {
				return nil, err
			}
			out = append(out, message{ID: strconv.FormatInt(id, 10), Body: body})
		}
		return out, rows.Err()
	}, nil)

	engine.AddQuery(reg, "messages:count", func(ctx *engine.QueryCtx, args convArgs) (int64, error) {
		conv, err := parseID(args.ConversationID)
		if err != nil {
			return 0, err
		}
		var n int64
		err = ctx.DB().QueryRow(ctx, sqlMessageCount, conv).Scan(&n)
		return n, err
	}, nil)

	insert := func(ctx *engine.MutationCtx, conversationID, body string) (string, error) {
		if strings.TrimSpace(body) == "" {
			return "", engine.InvalidArgument("body must not be empty")
		}
		conv, err := parseID(conversationID)
		if err != nil {
			return "", err
		}
		var id int64
		err = ctx.DB().QueryRow(ctx, sqlMessageInsert, senderID, conv, body).Scan(&id)
		return strconv.FormatInt(id, 10), err
	}

	engine.AddMutation(reg, "messages:send", func(ctx *engine.MutationCtx, args sendArgs) (string, error) {
		return insert(ctx, args.ConversationID, args.Body)
	}, nil)

	engine.AddMutation(reg, "messages:slowSend", func(ctx *engine.MutationCtx, args slowSendArgs) (string, error) {
		if args.DelayMs < 0 || args.DelayMs > 5000 {
			return "", engine.InvalidArgument("delayMs must be between 0 and 5000")
		}
		if _, err := ctx.DB().Exec(ctx, sqlSleep, args.DelayMs/1000); err != nil {
			return "", err
		}
		return insert(ctx, args.ConversationID, args.Body)
	}, nil)

	// actions:wait returns after delayMs, or when its context ends: an action that is surely
	// still running when a test drops the client's connection.
	engine.AddAction(reg, "actions:wait", func(ctx *engine.ActionCtx, args struct {
		DelayMs int `json:"delayMs"`
	}) (string, error) {
		if args.DelayMs < 0 || args.DelayMs > 60_000 {
			return "", engine.InvalidArgument("delayMs must be between 0 and 60000")
		}
		select {
		case <-time.After(time.Duration(args.DelayMs) * time.Millisecond):
			return "waited", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}, nil)

	engine.AddMutation(reg, "conversations:create", func(ctx *engine.MutationCtx, _ struct{}) (string, error) {
		var id int64
		err := ctx.DB().QueryRow(ctx, sqlConversationInsert).Scan(&id)
		return strconv.FormatInt(id, 10), err
	}, nil)

	// auth:whoami depends only on the caller's identity: the signed-in user's id, or null.
	engine.AddQuery(reg, "auth:whoami", func(ctx *engine.QueryCtx, _ struct{}) (*string, error) {
		id := ctx.Identity()
		if id.UserID == "" {
			return nil, nil
		}
		return &id.UserID, nil
	}, nil)

	// auth:send posts a message as the signed-in user; anonymous callers get UNAUTHENTICATED.
	engine.AddMutation(reg, "auth:send", func(ctx *engine.MutationCtx, args sendArgs) (string, error) {
		userID, err := engine.RequireAuth(ctx)
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(args.Body) == "" {
			return "", engine.InvalidArgument("body must not be empty")
		}
		conv, err := parseID(args.ConversationID)
		if err != nil {
			return "", err
		}
		sender, err := strconv.ParseInt(userID, 10, 64)
		if err != nil {
			return "", engine.Unauthenticated("user id %q is not an id", userID)
		}
		var id int64
		err = ctx.DB().QueryRow(ctx, sqlMessageInsert, sender, conv, args.Body).Scan(&id)
		return strconv.FormatInt(id, 10), err
	}, nil)
}

// Command questions serves the question board: `questions serve` (migrates, then serves the
// API, accounts and the web app), `questions migrate`, and `questions codegen` (writes the web
// app's typed client, web/src/generated/api.ts). `ripple dev --main ./examples/questions/cmd/questions`
// rebuilds and restarts it on every change.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/codegen"
	"github.com/ripplehq/ripple/engine/ripplemigrate"
	"github.com/ripplehq/ripple/examples/questions"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "questions:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: questions serve|migrate|codegen [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:3220", "`host:port` to listen on")
	// Not "public": a database shared with the chat (make db's) keeps the two apart.
	schema := fs.String("schema", "questions", "Postgres `schema` of the board's tables")
	static := fs.String("static", "examples/questions/web/dist", "`directory` of the built web app (empty: none)")
	out := fs.String("out", "examples/questions/web/src/generated", "`directory` codegen writes api.ts into")
	archiveAfter := fs.Duration("archive-after", time.Hour, "how long an answered question stays on the board")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg := &questions.Config{ArchiveAfter: *archiveAfter}
	switch args[0] {
	case "codegen":
		reg := engine.NewRegistry()
		if err := questions.Register(reg, cfg); err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(*out, "api.ts"), codegen.TypeScriptAPI(reg.Signatures()), 0o644)
	case "migrate":
		pool, err := openPool(ctx, *schema)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = ripplemigrate.Migrate(ctx, pool, &ripplemigrate.Opts{Schema: *schema, App: questions.Migrations()})
		return err
	case "serve":
		return serve(ctx, *addr, *schema, *static, cfg)
	}
	return fmt.Errorf("unknown command %q (serve, migrate or codegen)", args[0])
}

// openPool connects to DATABASE_URL with the schema first on the search_path, where sqlc's
// unqualified SQL finds the board's tables.
func openPool(ctx context.Context, schema string) (*pgxpool.Pool, error) {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize() + ", public"
	return pgxpool.NewWithConfig(ctx, cfg)
}

func serve(ctx context.Context, addr, schema, static string, cfg *questions.Config) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	pool, err := openPool(ctx, schema)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := ripplemigrate.Migrate(ctx, pool, &ripplemigrate.Opts{Schema: schema, App: questions.Migrations(), Logger: logger}); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}

	// Accounts: sign-up and sign-in with email and password, tokens the engine verifies. Without
	// RIPPLE_KEY_ENCRYPTION_KEY the signing keys are stored under the public development key.
	authCfg := &engine.AuthConfig{Logger: logger}
	if v := os.Getenv(engine.KeyEncryptionKeyEnv); v != "" {
		if authCfg.KeyEncryptionKey, err = engine.ParseKeyEncryptionKey(v); err != nil {
			return err
		}
	}
	auth, err := engine.NewAuthService(pool, authCfg)
	if err != nil {
		return err
	}
	if err := auth.Start(ctx); err != nil {
		return err
	}

	reg := engine.NewRegistry()
	if err := questions.Register(reg, cfg); err != nil {
		return err
	}
	eng, err := engine.New(pool, reg, &engine.Config{Schema: schema, Logger: logger, Auth: auth.Authenticator(),
		Housekeeping: []func(context.Context) error{auth.Prune}})
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}

	mux := http.NewServeMux()
	auth.Routes(mux)
	api := eng.Handler()
	mux.Handle("/api/", api)
	mux.Handle("GET /healthz", api)
	mux.Handle("GET /readyz", api)
	mux.Handle(eng.HTTPActionPrefix(), api)
	if static != "" {
		mux.Handle("/", http.FileServer(http.Dir(static)))
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("serving on http://" + ln.Addr().String())

	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(stopCtx)
	if stopErr := eng.Stop(stopCtx); err == nil {
		err = stopErr
	}
	return err
}

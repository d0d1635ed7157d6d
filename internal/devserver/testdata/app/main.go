// A tiny Ripple application for devserver's test: one query, greeting:get, whose text the
// test edits while `ripple dev` serves it.
package main

import (
	"context"
	"embed"
	"flag"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/ripplemigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

func greeting(ctx *engine.QueryCtx, _ struct{}) (string, error) {
	return "hello v1", nil
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		log.Fatal("usage: app serve --addr ADDR --schema NAME")
	}
	fset := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fset.String("addr", "", "")
	schema := fset.String("schema", "", "")
	_ = fset.Parse(os.Args[2:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{*schema}.Sanitize() + ", public"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	app, _ := fs.Sub(migrations, "migrations")
	if _, err := ripplemigrate.Migrate(ctx, pool, &ripplemigrate.Opts{Schema: *schema, App: app}); err != nil {
		log.Fatal(err)
	}
	reg := engine.NewRegistry()
	engine.AddQuery(reg, "greeting:get", greeting, nil)
	e, err := engine.New(pool, reg, &engine.Config{Schema: *schema})
	if err != nil {
		log.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *addr, Handler: e.Handler()}
	go func() { _ = srv.ListenAndServe() }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = e.Stop(sctx)
}

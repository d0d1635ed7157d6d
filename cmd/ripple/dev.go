package main

import (
	"context"
	"flag"
	"os"
	"strings"

	"github.com/ripplehq/ripple/internal/devserver"
)

func devFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	addrDefault := defaultAddr
	if v := strings.TrimSpace(e.getenv(envAddr)); v != "" {
		addrDefault = v
	}
	dir := fs.String("dir", ".", "the application's root `directory`: watched, and where generate and build run")
	mainPkg := fs.String("main", "./cmd/ripple", "Go `package` of the server binary (it must take `serve --addr ADDR`)")
	addr := fs.String("addr", addrDefault, "`host:port` the server listens on, kept across restarts")
	generate := fs.String("generate", "make generate", "shell `command` that regenerates code before each build (sqlc, read sets, api.ts); empty for none")
	return fs, func(ctx context.Context, args []string) error {
		env := os.Environ()
		if strings.TrimSpace(e.getenv(envDatabaseURL)) == "" {
			// `make db`'s server, as `make run` uses.
			env = append(env, envDatabaseURL+"=postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable")
		}
		return devserver.Run(ctx, &devserver.Config{
			Dir: *dir, Main: *mainPkg, Addr: *addr, Generate: *generate, ServeArgs: args, Env: env, Out: e.stderr,
		})
	}
}

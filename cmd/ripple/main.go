// Command ripple is Ripple's one binary: it migrates the database, serves the engine, and runs,
// schedules and lists the application's functions.
//
//	ripple serve    [--addr 127.0.0.1:3210] [--schema public] [--no-migrate]
//	ripple migrate  [--schema public]
//	ripple bench chat [--scenario latency|knee|idle|devices|throughput|all] [--json FILE]
//	ripple functions [--json]
//	ripple run      <module:function> ['<json args>'] [--as EMAIL] [--watch] [--at TIME|--after DURATION] [--url URL]
//	ripple scheduled [--cancel ID] [--json]
//	ripple codegen  [--out DIR]
//	ripple dev      [--dir .] [--main ./cmd/ripple] [--addr 127.0.0.1:3210] [--generate "make generate"] [-- serve flags]
//	ripple slots    [--json] [drop NAME]
//	ripple help     [command]
//
// Every error is reported as one line, "ripple: <cause>", on stderr. The exit code is 2 for a
// mistake on the command line and 1 for anything else.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default behaviour so a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

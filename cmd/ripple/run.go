package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command could not do its job
	exitUsage = 2 // the command line was wrong
)

// Environment variables the binary reads (the embedding and auth ones are read by the packages
// that use them).
const (
	envDatabaseURL = "DATABASE_URL"
	envAddr        = "RIPPLE_ADDR"
	envLogLevel    = "RIPPLE_LOG_LEVEL"
	// envAllowedOrigins lists, comma-separated, the web origins besides the server's own whose
	// pages may open sync sockets (engine.Config.AllowedOrigins).
	envAllowedOrigins = "RIPPLE_ALLOWED_ORIGINS"
	// envDevKeys=1 lets serve keep signing keys under the public development key on a
	// non-loopback address.
	envDevKeys = "RIPPLE_DEV_KEYS"
	// envTrustedProxies lists, comma-separated, the reverse proxies (addresses or CIDR prefixes)
	// whose X-Forwarded-For gives the client's address for rate limits.
	envTrustedProxies = "RIPPLE_TRUSTED_PROXIES"
	// envDatabaseReplicaURLs lists, comma-separated, streaming replicas that query re-runs and
	// one-shot queries may run on (engine.Config.ReplicaURLs).
	envDatabaseReplicaURLs = "DATABASE_REPLICA_URLS"
	// envChangeFeed is notify (the default) or logical (engine.Config.ChangeFeed).
	envChangeFeed = "RIPPLE_CHANGE_FEED"
	// Retention and token timings (durations like 90s or 24h; unset keeps the defaults in
	// docs/engine.md, Retention). The soak scenario of `ripple bench chat` shortens them so
	// that every clean-up runs, and every token expires, many times within one run.
	envAccessTokenTTL        = "RIPPLE_ACCESS_TOKEN_TTL"        // AuthConfig.AccessTokenTTL
	envMutationLogRetention  = "RIPPLE_MUTATION_LOG_RETENTION"  // Config.MutationLogRetention
	envHousekeepingInterval  = "RIPPLE_HOUSEKEEPING_INTERVAL"   // Config.HousekeepingInterval
	envCompletedJobRetention = "RIPPLE_COMPLETED_JOB_RETENTION" // Config.CompletedJobRetention
	envSpentTokenRetention   = "RIPPLE_SPENT_TOKEN_RETENTION"   // AuthConfig.SpentTokenRetention
)

const defaultAddr = "127.0.0.1:3210"

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// env is what a command receives besides its flags.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	name    string
	args    string // what follows the flags in the usage line, e.g. "<dir>"
	summary string
	// flags returns the command's flag set and the function that runs it once they are parsed.
	flags func(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error)
}

func commands() []command {
	return []command{
		{name: "serve", summary: "migrate the database, then serve the engine over HTTP and WebSocket", flags: serveFlags},
		{name: "migrate", summary: "apply every outstanding migration and exit", flags: migrateFlags},
		{name: "admin-key", summary: "create an admin key (printed once) for Authorization: Convex <key>", flags: adminKeyFlags},
		{name: "bench", summary: "`bench chat`: the chat's real path under load (latency, knee, idle, devices, throughput); `bench search`: vector search latency and recall; plain `bench`: raw write-to-subscriber latency", flags: benchFlags},
		{name: "export", args: "<dir>", summary: "write every application table to <dir> as JSON Lines, with a manifest, from one snapshot", flags: exportFlags},
		{name: "import", args: "<dir> | --convex <snapshot.zip | dir>", summary: "restore an export from <dir> into an empty, migrated database (--replace: one holding data); --convex: move a Convex deployment's chat and accounts in", flags: importFlags},
		{name: "jobs", summary: "list River's jobs (--state failed), or --retry / --cancel one by id", flags: jobsFlags},
		{name: "functions", summary: "list the registered functions: kind, visibility (public or internal) and argument shape (--json)", flags: functionsFlags},
		{name: "run", summary: "run a function on a running server as the admin or a user, print its result as JSON (--watch, --as, --at/--after)", flags: runFlags},
		{name: "scheduled", summary: "list the scheduled functions that have not run yet, or cancel one (--cancel ID)", flags: scheduledFlags},
		{name: "dev", args: "[-- serve flags]", summary: "build and serve the application, rebuilding and restarting it on the same address when its Go, queries or migrations change; open clients reconnect by themselves", flags: devFlags},
		{name: "codegen", summary: "write api.ts, typed references to the public functions for @ripplehq/client (--out DIR)", flags: codegenFlags},
		{name: "slots", args: "[drop NAME]", summary: "list the logical change feed's replication slots and the WAL each holds back, or drop one", flags: slotsFlags},
		{name: "reembed", summary: "rebuild message embeddings after the embedding provider, model or dimensions changed", flags: reembedFlags},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// run is the whole process but for signals and os.Exit: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: getenv}
	err := dispatch(ctx, e, args)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "ripple: "+oneLine(err.Error()))
		return exitUsage
	default:
		fmt.Fprintln(stderr, "ripple: "+oneLine(err.Error()))
		return exitError
	}
}

func dispatch(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef(`no command given; run "ripple help"`)
	}
	if isBenchChat(args) { // `bench` parses its own flags; `bench chat` has its own set
		return benchChat(ctx, e, args[2:])
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return help(e, rest)
	}
	cmd, ok := findCommand(name)
	if !ok {
		return usagef(`unknown command %q; run "ripple help"`, name)
	}
	fs, runCmd := cmd.flags(e)
	fs.SetOutput(io.Discard) // errors are reported as one line by run
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(e.stdout, cmd)
			return nil
		}
		return usagef("%s: %v (see \"ripple help %s\")", name, err, name)
	}
	return runCmd(ctx, fs.Args())
}

func help(e *env, args []string) error {
	switch len(args) {
	case 0:
		printHelp(e.stdout)
		return nil
	case 1:
		cmd, ok := findCommand(args[0])
		if !ok {
			return usagef("help: unknown command %q", args[0])
		}
		printCommandHelp(e.stdout, cmd)
		return nil
	default:
		return usagef("help: takes at most one command")
	}
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "Ripple is a self-hosted reactive backend on PostgreSQL.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: ripple <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "help", "show this help, or a command's flags")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Environment:")
	fmt.Fprintln(w, "  DATABASE_URL      PostgreSQL connection string (required by every command that uses the database)")
	fmt.Fprintln(w, "  RIPPLE_ADDR       serve's default --addr (default "+defaultAddr+")")
	fmt.Fprintln(w, "  RIPPLE_LOG_LEVEL  debug, info (default), warn or error")
	fmt.Fprintln(w, "  RIPPLE_URL        the server `run` calls (default http:// and RIPPLE_ADDR)")
	fmt.Fprintln(w, "  RIPPLE_ADMIN_KEY  the admin key `run` presents (see admin-key)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "ripple help <command>" for a command's flags.`)
}

func printCommandHelp(w io.Writer, cmd command) {
	fs, _ := cmd.flags(&env{getenv: func(string) string { return "" }})
	usage := "ripple " + cmd.name + " [flags]"
	if cmd.args != "" {
		usage += " " + cmd.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n\nFlags:\n", usage, capitalize(cmd.summary))
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// oneLine folds a multi-line error message (the driver reports each connection attempt on a
// line of its own) onto one line, dropping repeated lines.
func oneLine(s string) string {
	var b strings.Builder
	prev := ""
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		if line == "" || line == prev {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(prev, ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(line)
		prev = line
	}
	return b.String()
}

// newLogger is a text logger on stderr at RIPPLE_LOG_LEVEL.
func newLogger(e *env) (*slog.Logger, error) {
	level := slog.LevelInfo
	if s := strings.TrimSpace(e.getenv(envLogLevel)); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return nil, fmt.Errorf("%s=%q: want debug, info, warn or error", envLogLevel, s)
		}
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})), nil
}

// databaseURL returns $DATABASE_URL, or an error that says how to set it.
// loggerAndDatabaseURL is the prologue of every command that talks to the database.
func loggerAndDatabaseURL(e *env) (*slog.Logger, string, error) {
	logger, err := newLogger(e)
	if err != nil {
		return nil, "", err
	}
	dbURL, err := databaseURL(e)
	return logger, dbURL, err
}

func databaseURL(e *env) (string, error) {
	u := strings.TrimSpace(e.getenv(envDatabaseURL))
	if u == "" {
		return "", fmt.Errorf("%s is not set; point it at a PostgreSQL server with pgvector, "+
			"e.g. postgres://ripple:ripple@127.0.0.1:5432/ripple?sslmode=disable (`make run` sets it)", envDatabaseURL)
	}
	return u, nil
}

func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q (see \"ripple help %s\")", cmd, args[0], cmd)
	}
	return nil
}

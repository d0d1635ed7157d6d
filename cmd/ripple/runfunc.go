package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/queries"
)

const (
	envURL      = "RIPPLE_URL"
	envAdminKey = "RIPPLE_ADMIN_KEY"
	// callTimeout bounds one function call over HTTP (a slow action included).
	callTimeout = 5 * time.Minute
)

// adminFlags are the flags of commands that reach a running server or its database as the admin.
type adminFlags struct {
	url, adminKey, schema *string
}

func addAdminFlags(fs *flag.FlagSet, e *env) adminFlags {
	urlDefault := strings.TrimSpace(e.getenv(envURL))
	if urlDefault == "" {
		addr := strings.TrimSpace(e.getenv(envAddr))
		if addr == "" {
			addr = defaultAddr
		}
		urlDefault = "http://" + addr
	}
	return adminFlags{
		url:      fs.String("url", urlDefault, "`URL` of the running server ($"+envURL+", else http:// and $"+envAddr+")"),
		adminKey: fs.String("admin-key", "", "admin `key` for the server (default $"+envAdminKey+"; `ripple admin-key` makes one)"),
		schema:   fs.String("schema", "public", "`name` of the Postgres schema, for --as, --at and --after (which use $"+envDatabaseURL+")"),
	}
}

func runFlags(e *env) (*flag.FlagSet, func(ctx context.Context, args []string) error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	admin := addAdminFlags(fs, e)
	as := fs.String("as", "", "run as the user with this `email` instead of the admin alone")
	watch := fs.Bool("watch", false, "keep a query subscribed and print each new result on its own line until interrupted")
	at := fs.String("at", "", "schedule the mutation or action for this `time` (RFC 3339, e.g. 2026-01-02T15:04:05Z) instead of running it")
	after := fs.Duration("after", 0, "schedule the mutation or action to run after this `duration` (e.g. 10m) instead of running it")
	return fs, func(ctx context.Context, args []string) error {
		// Flags may follow the function and its arguments: ripple run f '{}' --watch.
		pos, err := interspersed(fs, args)
		if err != nil {
			return usagef("run: %v (see \"ripple help run\")", err)
		}
		if len(pos) < 1 || len(pos) > 2 {
			return usagef(`run: want a function and optional JSON arguments, e.g. ripple run messages:list '{"conversationId": "1"}'`)
		}
		reg, err := appRegistry()
		if err != nil {
			return err
		}
		sig, err := findFunction(reg.Signatures(), pos[0])
		if err != nil {
			return err
		}
		rawArgs := json.RawMessage("{}")
		if len(pos) == 2 {
			if !json.Valid([]byte(pos[1])) {
				return usagef("run: the arguments are not valid JSON: %s", pos[1])
			}
			rawArgs = json.RawMessage(pos[1])
		}
		schedule := *at != "" || *after != 0
		switch {
		case *at != "" && *after != 0:
			return usagef("run: give --at or --after, not both")
		case *after < 0:
			return usagef("run: --after must not be negative")
		case schedule && *watch:
			return usagef("run: --watch subscribes to a query; it cannot be scheduled")
		case *watch && sig.Kind != engine.KindQuery:
			return usagef("run: --watch needs a query; %s is a %s", sig.Path, sig.Kind)
		case schedule && sig.Kind == engine.KindQuery:
			return usagef("run: only mutations and actions can be scheduled; %s is a query", sig.Path)
		}
		if schedule {
			when := time.Now().Add(*after)
			if *at != "" {
				if when, err = time.Parse(time.RFC3339, *at); err != nil {
					return usagef("run: --at %q is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", *at)
				}
			}
			return scheduleFunction(ctx, e, *admin.schema, sig.Path, rawArgs, *as, when)
		}

		key, err := admin.key(e)
		if err != nil {
			return err
		}
		actingAs := ""
		if *as != "" {
			if actingAs, err = userIDByEmail(ctx, e, *admin.schema, *as); err != nil {
				return err
			}
		}
		base, err := serverURL(*admin.url)
		if err != nil {
			return err
		}
		if *watch {
			return watchQuery(ctx, e, base, key, actingAs, sig.Path, rawArgs)
		}
		value, err := callFunction(ctx, base, key, actingAs, sig.Path, rawArgs)
		if err != nil {
			return err
		}
		return writeJSONLine(e.stdout, value, "  ")
	}
}

func (a adminFlags) key(e *env) (string, error) {
	key := strings.TrimSpace(*a.adminKey)
	if key == "" {
		key = strings.TrimSpace(e.getenv(envAdminKey))
	}
	if key == "" {
		return "", usagef("no admin key: pass --admin-key or set %s (`ripple admin-key` creates one)", envAdminKey)
	}
	return key, nil
}

// interspersed parses flags wherever they are among the positional arguments, which it returns.
func interspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// findFunction looks a path up among the registered functions; an unknown one is a usage error
// naming the nearest paths.
func findFunction(sigs []engine.FunctionSignature, path string) (engine.FunctionSignature, error) {
	for _, s := range sigs {
		if s.Path == path {
			return s, nil
		}
	}
	type scored struct {
		path string
		d    int
	}
	var near []scored
	for _, s := range sigs {
		if d := editDistance(strings.ToLower(path), strings.ToLower(s.Path)); d <= max(3, len(path)/3) {
			near = append(near, scored{s.Path, d})
		}
	}
	sort.SliceStable(near, func(i, j int) bool { return near[i].d < near[j].d })
	hint := ` (see "ripple functions")`
	if len(near) > 0 {
		names := make([]string, 0, 3)
		for _, n := range near[:min(3, len(near))] {
			names = append(names, n.path)
		}
		hint = "; did you mean " + strings.Join(names, ", ") + "?"
	}
	if !strings.Contains(path, ":") {
		hint = " (a function is module:function, e.g. messages:send)" + hint
	}
	return engine.FunctionSignature{}, usagef("unknown function %q%s", path, hint)
}

// editDistance is the Levenshtein distance between a and b, for "did you mean".
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func serverURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--url %q is not an http(s) URL of a Ripple server", raw)
	}
	return u, nil
}

// userIDByEmail finds the account to act as; the server takes a user id, people know emails.
func userIDByEmail(ctx context.Context, e *env, schemaName, email string) (string, error) {
	dbURL, err := databaseURL(e)
	if err != nil {
		return "", fmt.Errorf("--as looks the user up in the database: %w", err)
	}
	pool, err := openPool(ctx, dbURL, schemaName)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	u, err := queries.New().UserGetByEmail(ctx, pool, email)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("--as: no user with email %q in schema %q", email, schemaName)
	}
	if err != nil {
		return "", fmt.Errorf("--as: looking up %q: %w", email, err)
	}
	return strconv.FormatInt(u.ID, 10), nil
}

// functionError is a function's failure as the server reported it.
type functionError struct {
	path, code, message string
}

func (f *functionError) Error() string {
	if f.code == "" {
		return f.path + ": " + f.message
	}
	return fmt.Sprintf("%s: %s: %s", f.path, f.code, f.message)
}

// callFunction runs a function through the server's HTTP API (POST /api/function) with the
// admin key, acting as actingAs (a user id) when set.
func callFunction(ctx context.Context, base *url.URL, key, actingAs, path string, args json.RawMessage) (json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"path": path, "args": args, "format": "json"})
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath("api", "function").String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Convex "+key)
	if actingAs != "" {
		req.Header.Set("X-Ripple-Acting-As", actingAs)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, unreachable(base, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", base, err)
	}
	var answer struct {
		Status       string          `json:"status"`
		Value        json.RawMessage `json:"value"`
		ErrorMessage string          `json:"errorMessage"`
		ErrorData    struct {
			Code string `json:"code"`
		} `json:"errorData"`
		// The 401 of a refused admin key.
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return nil, fmt.Errorf("%s answered %s, not a Ripple function result: %.200s", base, res.Status, raw)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("the server refused the admin key: %s", answer.Message)
	case answer.Status == "success":
		return answer.Value, nil
	case answer.Status == "error":
		fe := &functionError{path: path, code: answer.ErrorData.Code, message: answer.ErrorMessage}
		if fe.code == string(engine.CodeInvalidArgument) {
			return nil, usageError{fe} // the arguments on the command line were wrong
		}
		return nil, fe
	}
	return nil, fmt.Errorf("%s answered %s: %.200s", base, res.Status, raw)
}

func unreachable(base *url.URL, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("cannot reach the server at %s (is `ripple serve` running? --url or %s sets the address): %v", base, envURL, err)
}

// writeJSONLine writes v (JSON) on its own line(s): indented, or compact when indent is "".
func writeJSONLine(w io.Writer, v json.RawMessage, indent string) error {
	var b bytes.Buffer
	var err error
	if indent == "" {
		err = json.Compact(&b, v)
	} else {
		err = json.Indent(&b, v, "", indent)
	}
	if err != nil {
		return fmt.Errorf("the server's result is not valid JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err = w.Write(b.Bytes())
	return err
}

package engine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ripplehq/ripple/engine/internal/ratelimit"
	"github.com/ripplehq/ripple/engine/internal/readset"
	"github.com/ripplehq/ripple/engine/internal/values"
)

// FunctionKind is query, mutation or action.
type FunctionKind string

const (
	KindQuery    FunctionKind = "query"
	KindMutation FunctionKind = "mutation"
	KindAction   FunctionKind = "action"
)

// FunctionOpts are optional settings of one registered function.
type FunctionOpts struct {
	// Internal functions can be called only by other functions, scheduled jobs and admin keys;
	// a client calling one gets the same error as for an unknown function.
	Internal bool
	// Timeout bounds one run. Zero means the Config default for the kind.
	Timeout time.Duration
	// RateLimit, when set, bounds how often one caller (a signed-in user, else an anonymous
	// socket or address) may call this function from a client, on top of Config's limit on all
	// mutations: for a function that is costly (it calls a paid provider) or that tells
	// something with each call (whether an email has an account). A call over it fails with
	// RATE_LIMITED and errorData.retryAfterMs. Admins, other functions and jobs are not limited.
	// Kept per process, like Config's limit.
	RateLimit *RateLimit
}

// RateLimit is a token bucket per caller: Burst calls at once, then one more every Every.
type RateLimit struct {
	Every time.Duration
	Burst int
}

type function struct {
	path     string
	kind     FunctionKind
	limit    *ratelimit.Limiter // FunctionOpts.RateLimit; nil for none
	internal bool
	timeout  time.Duration

	decode   func(raw json.RawMessage, maxBytes int) (any, error)
	argsType reflect.Type // A of AddX[A, R]: a Go caller holding one skips JSON
	result   reflect.Type // R of AddX[A, R], for Signatures
	query    func(*QueryCtx, any) (any, error)
	// access is a shared query's access check (AddSharedQuery); query is then its result,
	// computed without an identity.
	access   func(*QueryCtx, any) error
	mutation func(*MutationCtx, any) (any, error)
	action   func(*ActionCtx, any) (any, error)
}

// Registry holds an application's functions and the read-set analysis of its SQL.
type Registry struct {
	mu        sync.RWMutex
	functions map[string]*function
	readSpecs readset.Specs
	periodic  []PeriodicFunction
	// httpActions are the application's HTTP routes (httpaction.go).
	httpActions []*httpAction
	// uncaptured are the tables named by DoNotCapture, sorted.
	uncaptured []string
}

// AddPeriodic makes the engine run a registered mutation or action on an interval or a cron
// schedule and panics on a bad one; see AddPeriodicSafely.
func AddPeriodic(r *Registry, p PeriodicFunction) {
	if err := AddPeriodicSafely(r, p); err != nil {
		panic(err)
	}
}

// AddPeriodicSafely makes the engine run a registered mutation or action on an interval or a
// cron schedule (a River periodic job), as Config.PeriodicFunctions does; an application
// registers it beside its functions, so every process that serves them runs it (River's leader
// enqueues it once).
func AddPeriodicSafely(r *Registry, p PeriodicFunction) error {
	if _, err := p.schedule(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.periodic = append(r.periodic, p)
	return nil
}

func (r *Registry) periodicFunctions() []PeriodicFunction {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.periodic)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{functions: map[string]*function{}}
}

var pathPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$`)

func (r *Registry) add(fn *function, opts *FunctionOpts) error {
	if !pathPattern.MatchString(fn.path) {
		return fmt.Errorf("function path %q is not of the form module:function", fn.path)
	}
	if opts != nil {
		fn.internal = opts.Internal
		fn.timeout = opts.Timeout
		if rl := opts.RateLimit; rl != nil {
			if rl.Every <= 0 || rl.Burst < 1 {
				return fmt.Errorf("function %q: RateLimit needs a positive Every and Burst", fn.path)
			}
			fn.limit = ratelimit.New(float64(time.Second)/float64(rl.Every), rl.Burst)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.functions[fn.path]; dup {
		return fmt.Errorf("function %q is registered twice", fn.path)
	}
	r.functions[fn.path] = fn
	return nil
}

func (r *Registry) lookup(path string) *function {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.functions[path]
}

// FunctionInfo describes one registered function (for codegen and admin tooling).
type FunctionInfo struct {
	Path     string
	Kind     FunctionKind
	Internal bool
}

// Functions lists the registered functions sorted by path.
func (r *Registry) Functions() []FunctionInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]FunctionInfo, 0, len(r.functions))
	for _, fn := range r.functions {
		out = append(out, FunctionInfo{Path: fn.path, Kind: fn.kind, Internal: fn.internal})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// AddReadSpecs registers the generated read-set analysis of sqlc statements, keyed by the name
// in each statement's `-- name:` header. A statement without a spec is treated as reading
// everything, which is safe but re-runs its queries on every change.
func (r *Registry) AddReadSpecs(specs map[string]ReadSpec) { r.readSpecs.Add(specs) }

// The generated read-set analysis (tools/readsetgen writes these; engine/internal/readset reads
// them).
type (
	// ReadSpec is the analysis of one sqlc statement: how it reads each table.
	ReadSpec = readset.Spec
	// TableRead is one table's part of a ReadSpec.
	TableRead = readset.TableRead
	// ReadKind says how one statement reads one table.
	ReadKind = readset.ReadKind
	// RangeSpec describes a statement that reads one index range of a table.
	RangeSpec = readset.RangeSpec
	// EqParam is `Column = $Param` in a RangeSpec.
	EqParam = readset.EqParam
	// RangeBound is one tuple comparison bounding a RangeSpec.
	RangeBound = readset.RangeBound
)

// The ReadKinds.
const (
	ReadTable  = readset.ReadTable
	ReadParam  = readset.ReadParam
	ReadOutput = readset.ReadOutput
	ReadRange  = readset.ReadRange
	// ReadOutputKey: see readset.ReadOutputKey.
	ReadOutputKey = readset.ReadOutputKey
)

// decoderFor decodes a function's wire arguments into A and runs A's Validate, if it has one.
func decoderFor[A any]() func(json.RawMessage, int) (any, error) {
	return func(raw json.RawMessage, maxBytes int) (any, error) {
		args, err := values.Decode[A](raw, maxBytes)
		if err != nil {
			return nil, InvalidArgument("%s", err.Error())
		}
		if err := validateArgs(&args); err != nil {
			return nil, err
		}
		return args, nil
	}
}

// validateArgs runs the arguments' Validate method, if they have one (ptr points to them).
func validateArgs(ptr any) error {
	v, ok := ptr.(interface{ Validate() error })
	if !ok {
		return nil
	}
	if err := v.Validate(); err != nil {
		if _, user := AsError(err); user {
			return err
		}
		return InvalidArgument("%v", err)
	}
	return nil
}

// AddQuery registers a query and panics on a bad or duplicate path; see AddQuerySafely.
func AddQuery[A, R any](r *Registry, path string, fn func(*QueryCtx, A) (R, error), opts *FunctionOpts) {
	if err := AddQuerySafely(r, path, fn, opts); err != nil {
		panic(err)
	}
}

// AddQuerySafely registers a query. Queries read through ctx.DB() in a read-only snapshot; what
// they read decides when a subscription re-runs.
func AddQuerySafely[A, R any](r *Registry, path string, fn func(*QueryCtx, A) (R, error), opts *FunctionOpts) error {
	return r.add(&function{
		path: path, kind: KindQuery, decode: decoderFor[A](), argsType: reflect.TypeFor[A](), result: reflect.TypeFor[R](),
		query: func(ctx *QueryCtx, args any) (any, error) { return fn(ctx, args.(A)) },
	}, opts)
}

// SharedQuery is a query whose result, once the caller may see it, is the same for every caller:
// a conversation's page is the same for each of its members. Access decides per caller; Result
// is computed once per change for all the callers Access admitted.
//
// The rule that makes sharing sound: Result must not depend on who asks. Its QueryCtx carries no
// identity (Identity is the zero value, RequireAuth fails), so it cannot, and everything that
// decides who may see it belongs in Access. Access reads through ctx.DB() like any query: its
// verdict is kept per caller and re-run only when something it read changes (a membership row,
// say), so a new message re-runs Result once, not the check of every member.
type SharedQuery[A, R any] struct {
	// Access returns nil when the caller may see the result, else the error the caller gets
	// instead (FORBIDDEN, UNAUTHENTICATED, INVALID_ARGUMENT...).
	Access func(ctx *QueryCtx, args A) error
	// Result computes the result for every admitted caller.
	Result func(ctx *QueryCtx, args A) (R, error)
}

// AddSharedQuery registers a shared query and panics on a bad or duplicate path; see
// AddSharedQuerySafely.
func AddSharedQuery[A, R any](r *Registry, path string, q SharedQuery[A, R], opts *FunctionOpts) {
	if err := AddSharedQuerySafely(r, path, q, opts); err != nil {
		panic(err)
	}
}

// AddSharedQuerySafely registers a shared query (see SharedQuery). Clients call and subscribe
// to it like any query; subscriptions with the same arguments (and journal) share one run of
// Result per change, each subscriber's Access verdict kept apart.
func AddSharedQuerySafely[A, R any](r *Registry, path string, q SharedQuery[A, R], opts *FunctionOpts) error {
	if q.Access == nil || q.Result == nil {
		return fmt.Errorf("shared query %q needs both Access and Result", path)
	}
	return r.add(&function{
		path: path, kind: KindQuery, decode: decoderFor[A](), argsType: reflect.TypeFor[A](), result: reflect.TypeFor[R](),
		access: func(ctx *QueryCtx, args any) error { return q.Access(ctx, args.(A)) },
		query:  func(ctx *QueryCtx, args any) (any, error) { return q.Result(ctx, args.(A)) },
	}, opts)
}

// AddMutation registers a mutation and panics on a bad or duplicate path.
func AddMutation[A, R any](r *Registry, path string, fn func(*MutationCtx, A) (R, error), opts *FunctionOpts) {
	if err := AddMutationSafely(r, path, fn, opts); err != nil {
		panic(err)
	}
}

// AddMutationSafely registers a mutation. It runs in a SERIALIZABLE transaction that is retried
// on serialization failure, so it must not have side effects outside the database.
func AddMutationSafely[A, R any](r *Registry, path string, fn func(*MutationCtx, A) (R, error), opts *FunctionOpts) error {
	return r.add(&function{
		path: path, kind: KindMutation, decode: decoderFor[A](), argsType: reflect.TypeFor[A](), result: reflect.TypeFor[R](),
		mutation: func(ctx *MutationCtx, args any) (any, error) { return fn(ctx, args.(A)) },
	}, opts)
}

// AddAction registers an action and panics on a bad or duplicate path.
func AddAction[A, R any](r *Registry, path string, fn func(*ActionCtx, A) (R, error), opts *FunctionOpts) {
	if err := AddActionSafely(r, path, fn, opts); err != nil {
		panic(err)
	}
}

// AddActionSafely registers an action: it runs outside any transaction, may call the network,
// and reaches the database only through RunQuery and RunMutation.
func AddActionSafely[A, R any](r *Registry, path string, fn func(*ActionCtx, A) (R, error), opts *FunctionOpts) error {
	return r.add(&function{
		path: path, kind: KindAction, decode: decoderFor[A](), argsType: reflect.TypeFor[A](), result: reflect.TypeFor[R](),
		action: func(ctx *ActionCtx, args any) (any, error) { return fn(ctx, args.(A)) },
	}, opts)
}

package engine

import (
	"reflect"
	"sort"
)

// FunctionSignature is a registered function with the Go types of its arguments and result,
// for code generators (`ripple codegen`) and admin tools (`ripple functions`): the JSON shapes
// clients send and receive follow from these types and their json tags.
type FunctionSignature struct {
	FunctionInfo
	// Args is A of AddQuery[A, R] (and the mutation and action forms).
	Args reflect.Type
	// Result is R.
	Result reflect.Type
}

// Signatures lists the registered functions with their types, sorted by path.
func (r *Registry) Signatures() []FunctionSignature {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]FunctionSignature, 0, len(r.functions))
	for _, fn := range r.functions {
		out = append(out, FunctionSignature{
			FunctionInfo: FunctionInfo{Path: fn.path, Kind: fn.kind, Internal: fn.internal},
			Args:         fn.argsType,
			Result:       fn.result,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

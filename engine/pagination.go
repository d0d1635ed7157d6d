package engine

// PaginationOpts are the pagination options Convex's clients send with a paginated query
// (usePaginatedQuery; docs/protocol.md, Pagination). A query takes them as a field named
// paginationOpts and returns a PaginationResult; `ripple codegen` types both for the client.
type PaginationOpts struct {
	NumItems  int     `json:"numItems"`
	Cursor    *string `json:"cursor"`
	EndCursor *string `json:"endCursor,omitempty"`
	// ID and MaximumRowsRead are sent by some clients; Ripple's queries may ignore them.
	ID              *int64 `json:"id,omitempty"`
	MaximumRowsRead *int   `json:"maximumRowsRead,omitempty"`
}

// PaginationResult is one page of a paginated query, as Convex's clients expect it.
// ContinueCursor is where the next page starts; a live first page keeps its end across re-runs
// through the subscription's journal (QueryCtx.SetJournal), so new rows grow it rather than
// push rows onto the next page.
type PaginationResult[T any] struct {
	Page           []T     `json:"page"`
	IsDone         bool    `json:"isDone"`
	ContinueCursor string  `json:"continueCursor"`
	SplitCursor    *string `json:"splitCursor,omitempty"`
	PageStatus     *string `json:"pageStatus,omitempty"`
}

// Package functions is the school chat's server functions: one file per domain, registered
// through Register.
package functions

import (
	"github.com/ripplehq/ripple/engine"
	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/queries"
)

// Deps are the services the chat's functions use.
type Deps struct {
	// Embedder makes the vectors of messages and search queries.
	Embedder embedding.Provider
	// QueryVectors bounds the caches of search query vectors (zero: the defaults).
	QueryVectors QueryVectorConfig
	// QueryVectorCounts, when set, counts where search query vectors came from (a provider
	// call, or a cache).
	QueryVectorCounts *QueryVectorCounts
}

// Register adds every chat function, the chat's HTTP actions and the read-set analysis of the
// chat's SQL to reg.
func Register(reg *engine.Registry, deps *Deps) {
	reg.AddReadSpecs(queries.ReadSpecs)
	// Only the embedding sweep reads these: a send's queue row and the sweep's leases and
	// failures need no change notification.
	reg.DoNotCapture("message_embedding_queue", "message_embedding_failures")
	registerUsers(reg)
	registerBlocks(reg)
	registerConversations(reg)
	registerMessages(reg)
	registerSearch(reg, deps)
	registerExport(reg)
}

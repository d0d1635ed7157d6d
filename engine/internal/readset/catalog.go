package readset

import (
	"context"
	"fmt"
	"sync"

	"github.com/ripplehq/ripple/engine/internal/dbsqlc"
)

// LoadCatalog reads what the capture triggers watch from the migrated schema db points at.
func LoadCatalog(ctx context.Context, db dbsqlc.DBTX) (*Catalog, error) {
	rows, err := dbsqlc.New().CaptureColumnsList(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("reading the capture catalog (is the schema migrated?): %w", err)
	}
	c := &Catalog{watched: map[string]map[string]bool{}, pk: map[string][]string{},
		captured: map[string]map[string]bool{}, ordered: map[string]map[string]bool{}}
	set := func(cols []string) map[string]bool {
		m := make(map[string]bool, len(cols))
		for _, col := range cols {
			m[col] = true
		}
		return m
	}
	for _, r := range rows {
		c.watched[r.TableName] = set(r.Watched)
		c.captured[r.TableName] = set(r.RowColumns)
		c.ordered[r.TableName] = set(r.Ordered)
		c.pk[r.TableName] = r.PrimaryKey
	}
	skipped, err := dbsqlc.New().CaptureSkipList(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("reading the capture skip list: %w", err)
	}
	for _, t := range skipped {
		if c.uncaptured == nil {
			c.uncaptured = map[string]bool{}
		}
		c.uncaptured[t] = true
	}
	return c, nil
}

// Specs holds the generated analyses of an application's statements, by the name in each
// statement's `-- name:` header. A statement without one reads "everything".
type Specs struct {
	mu    sync.RWMutex
	specs map[string]Spec
}

// Add registers analyses, replacing any of the same name.
func (s *Specs) Add(specs map[string]Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.specs == nil {
		s.specs = make(map[string]Spec, len(specs))
	}
	for name, spec := range specs {
		s.specs[name] = spec
	}
}

// Get returns the analysis of the named statement.
func (s *Specs) Get(name string) (Spec, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	spec, ok := s.specs[name]
	return spec, ok
}

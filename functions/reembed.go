package functions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/ripplehq/ripple/engine/embedding"
	"github.com/ripplehq/ripple/queries"
)

// Re-embedding (`ripple reembed`). Vectors of different models are not comparable, so when the
// embedding provider, model or dimensions change, every stored vector of another model is
// deleted first and then each message is embedded again with the configured provider. Search
// stays correct throughout (it may only miss messages not yet re-embedded), and the run is
// resumable: it only ever embeds messages that have no embedding.

// ReembedOpts configures Reembed.
type ReembedOpts struct {
	// Apply deletes and re-embeds. Without it Reembed is a dry run: it only counts.
	Apply bool
	// BatchSize is the number of messages per provider call; the provider's MaxBatch when zero.
	BatchSize int
	// Progress, when set, is called after every batch with the running result.
	Progress func(ReembedResult)
	// RetryWait is the first wait after a transient provider error or a rate limit without
	// Retry-After (doubling up to 30 s). Default 1 s.
	RetryWait time.Duration
	// MaxRetries bounds the attempts at one batch that keeps failing transiently or keeps being
	// rate limited. Default 8.
	MaxRetries int
}

// ModelCount is the number of stored embeddings of one model.
type ModelCount struct {
	Model string
	Count int64
}

// ReembedResult says what Reembed found and did.
type ReembedResult struct {
	// Model is the configured provider's Model(): the one every embedding ends up with.
	Model string
	// BatchSize is the batch size used.
	BatchSize int
	// Before counts the embeddings per model when the run started.
	Before []ModelCount
	// Stale is the number of embeddings of other models (deleted when applying).
	Stale int64
	// Missing is the number of messages without an embedding of Model when the run started
	// (embedded when applying).
	Missing int64
	// DryRun is set when nothing was changed.
	DryRun bool

	// Deleted, Embedded and Failed count what the run did: Failed messages were refused by the
	// provider as permanently unembeddable and recorded in message_embedding_failures.
	Deleted  int64
	Embedded int64
	Failed   int64
	Batches  int
	// After counts the embeddings per model when the run ended (when applying).
	After []ModelCount
}

// OtherModels is the number of embeddings in counts whose model is not r.Model.
func (r ReembedResult) OtherModels(counts []ModelCount) int64 {
	var n int64
	for _, c := range counts {
		if c.Model != r.Model {
			n += c.Count
		}
	}
	return n
}

// ErrDimensionMismatch is returned (wrapped) when the provider's vectors do not fit the
// embedding column.
var ErrDimensionMismatch = errors.New("embedding dimensions do not match the database column")

// Reembed makes every message's embedding come from provider: it deletes embeddings of any other
// model, then embeds every message lacking an embedding in batches, storing the vectors with
// provider.Model(). It runs outside the engine, on pool, and may run while servers serve (they
// should already use the new provider, or they keep storing vectors of the old model for new
// messages: After then still shows them, and running Reembed again clears them).
//
// On error the result says what was done so far; running again resumes.
func Reembed(ctx context.Context, pool *pgxpool.Pool, provider embedding.Provider, opts ReembedOpts) (ReembedResult, error) {
	res := ReembedResult{Model: provider.Model(), BatchSize: opts.BatchSize, DryRun: !opts.Apply}
	if res.BatchSize <= 0 {
		res.BatchSize = max(1, provider.MaxBatch())
	}
	if opts.RetryWait <= 0 {
		opts.RetryWait = time.Second
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 8
	}
	q := queries.New()

	dims, err := q.ReembedColumnDimensions(ctx, pool)
	if err != nil {
		return res, fmt.Errorf("reading the embedding column (is the schema migrated?): %w", err)
	}
	if dims > 0 && int(dims) != provider.Dimensions() {
		return res, fmt.Errorf("%w: %s makes %d-dimensional vectors, but message_embeddings.embedding is vector(%d); "+
			"change the column with a migration first (or configure %d dimensions)",
			ErrDimensionMismatch, res.Model, provider.Dimensions(), dims, dims)
	}

	if res.Before, err = modelCounts(ctx, pool); err != nil {
		return res, err
	}
	res.Stale = res.OtherModels(res.Before)
	if res.Missing, err = q.ReembedMissingCount(ctx, pool, res.Model); err != nil {
		return res, fmt.Errorf("counting messages to embed: %w", err)
	}
	if !opts.Apply {
		return res, nil
	}

	// Delete first, so that no search ever compares vectors of two models.
	if res.Deleted, err = q.EmbeddingDeleteOtherModels(ctx, pool, res.Model); err != nil {
		return res, fmt.Errorf("deleting embeddings of other models: %w", err)
	}

	var after int64
	for {
		page, err := q.ReembedMissingPage(ctx, pool, queries.ReembedMissingPageParams{ID: after, Limit: int32(res.BatchSize)})
		if err != nil {
			return res, fmt.Errorf("listing messages to embed: %w", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		stored, failed, err := reembedBatch(ctx, pool, provider, opts, res.Model, page)
		if err != nil {
			return res, err
		}
		res.Embedded += stored
		res.Failed += failed
		res.Batches++
		if opts.Progress != nil {
			opts.Progress(res)
		}
	}

	if res.After, err = modelCounts(ctx, pool); err != nil {
		return res, err
	}
	return res, nil
}

func modelCounts(ctx context.Context, pool *pgxpool.Pool) ([]ModelCount, error) {
	rows, err := queries.New().EmbeddingModelCounts(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("counting embeddings per model: %w", err)
	}
	out := make([]ModelCount, len(rows))
	for i, r := range rows {
		out[i] = ModelCount{Model: r.Model, Count: r.Count}
	}
	return out, nil
}

// reembedBatch embeds one page of messages and stores the vectors (and the failures) in one
// transaction. It returns how many embeddings were stored and how many messages failed.
func reembedBatch(ctx context.Context, pool *pgxpool.Pool, provider embedding.Provider, opts ReembedOpts, model string, page []queries.ReembedMissingPageRow) (stored, failedN int64, err error) {
	// Texts no provider accepts (Postgres's btrim and Go's TrimSpace disagree on some spaces)
	// fail without a call.
	var todo []queries.ReembedMissingPageRow
	var failed []failedEmbedding
	for _, m := range page {
		if strings.TrimSpace(m.Body) == "" {
			failed = append(failed, failedEmbedding{leasedMessage: leasedMessage{MessageID: formatID(m.ID)}, Reason: "message body is blank"})
		} else {
			todo = append(todo, m)
		}
	}
	texts := make([]string, len(todo))
	for i, m := range todo {
		texts[i] = m.Body
	}
	vectors, err := embedWithRetry(ctx, provider, opts, texts)
	if errors.Is(err, embedding.ErrPermanent) {
		// One bad text fails the whole call: find it by embedding the texts one at a time. When
		// none of them can be embedded, the configuration is at fault (a bad key, an unknown
		// model), not the messages: stop without recording anything.
		vectors = make([][]float32, len(texts))
		var ok int
		var firstErr error
		for i, text := range texts {
			v, err := embedWithRetry(ctx, provider, opts, []string{text})
			switch {
			case err == nil:
				vectors[i] = v[0]
				ok++
			case errors.Is(err, embedding.ErrPermanent):
				if firstErr == nil {
					firstErr = err
				}
				failed = append(failed, failedEmbedding{leasedMessage: leasedMessage{MessageID: formatID(todo[i].ID)}, Reason: err.Error()})
			default:
				return 0, 0, fmt.Errorf("embedding message %d: %w", todo[i].ID, err)
			}
		}
		if ok == 0 && len(texts) > 0 {
			return 0, 0, fmt.Errorf("the provider refused every message of a batch (check its configuration): %w", firstErr)
		}
		err = nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("embedding messages %d..%d: %w", page[0].ID, page[len(page)-1].ID, err)
	}

	// Store: the same rows as messages:storeEmbeddings writes (an existing embedding is left
	// alone), in one transaction per batch; a deadlock with a concurrent job storing the same
	// messages is retried.
	for attempt := 1; ; attempt++ {
		stored, err = storeBatch(ctx, pool, model, todo, vectors, failed)
		if err == nil || !retryableTx(err) || attempt >= opts.MaxRetries {
			break
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("storing embeddings: %w", err)
	}
	return stored, int64(len(failed)), nil
}

func storeBatch(ctx context.Context, pool *pgxpool.Pool, model string, msgs []queries.ReembedMissingPageRow, vectors [][]float32, failed []failedEmbedding) (int64, error) {
	var stored int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := queries.New()
		for i, m := range msgs {
			if vectors[i] == nil {
				continue // failed
			}
			n, err := q.ReembedStore(ctx, tx, queries.ReembedStoreParams{MessageID: m.ID, Embedding: pgvector.NewVector(vectors[i]), Model: model})
			if err != nil {
				return err
			}
			if n > 0 {
				if err := q.EmbeddingFailureDelete(ctx, tx, m.ID); err != nil {
					return err
				}
			}
			stored += n
		}
		for _, f := range failed {
			id, err := parseID("messageId", f.MessageID)
			if err != nil {
				return err
			}
			if err := q.EmbeddingFailureInsert(ctx, tx, queries.EmbeddingFailureInsertParams{MessageID: id, Reason: f.Reason}); err != nil {
				return err
			}
		}
		return nil
	})
	return stored, err
}

func retryableTx(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// embedWithRetry calls the provider, waiting out rate limits and retrying transient errors.
func embedWithRetry(ctx context.Context, provider embedding.Provider, opts ReembedOpts, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	wait := opts.RetryWait
	for attempt := 1; ; attempt++ {
		vectors, err := provider.Embed(ctx, texts, embedding.InputDocument)
		if err == nil {
			if len(vectors) != len(texts) {
				return nil, fmt.Errorf("the provider returned %d vectors for %d texts", len(vectors), len(texts))
			}
			return vectors, nil
		}
		if errors.Is(err, embedding.ErrPermanent) || ctx.Err() != nil || attempt >= opts.MaxRetries {
			return nil, err
		}
		sleep := wait
		var limited *embedding.RateLimitedError
		if errors.As(err, &limited) && limited.RetryAfter > 0 {
			sleep = limited.RetryAfter
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(sleep):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

package embedding

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cohereRequest is what Cohere's POST /v2/embed receives.
type cohereRequest struct {
	Model           string   `json:"model"`
	InputType       string   `json:"input_type"`
	OutputDimension int      `json:"output_dimension"`
	EmbeddingTypes  []string `json:"embedding_types"`
	Texts           []string `json:"texts"`
}

// fakeCohere speaks Cohere's v2 embed API. Each text must be a decimal number n; its embedding
// is [n, n+0.5, 0, 0, ...] of the requested output dimension, so tests can check ordering.
type fakeCohere struct {
	t *testing.T

	mu       sync.Mutex
	requests []cohereRequest
	// fail, when set, answers the request instead.
	fail func(w http.ResponseWriter) bool
}

func (f *fakeCohere) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2/embed" {
		http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer test-key" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"invalid api token"}`))
		return
	}
	var req cohereRequest
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	fail := f.fail
	f.mu.Unlock()
	if fail != nil && fail(w) {
		return
	}
	if len(req.Texts) > 96 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"message":"too many texts"}`))
		return
	}
	floats := make([][]float64, len(req.Texts))
	for i, text := range req.Texts {
		n, err := strconv.Atoi(text)
		if err != nil {
			n = -1
		}
		v := make([]float64, req.OutputDimension)
		v[0], v[1] = float64(n), float64(n)+0.5
		floats[i] = v
	}
	w.Header().Set("Content-Type", "application/json")
	assert.NoError(f.t, json.NewEncoder(w).Encode(map[string]any{
		"id":         "emb-1",
		"embeddings": map[string]any{"float": floats},
		"texts":      req.Texts,
		"meta": map[string]any{
			"api_version":  map[string]any{"version": "2"},
			"billed_units": map[string]any{"input_tokens": len(req.Texts)},
		},
		"response_type": "embeddings_by_type",
	}))
}

func (f *fakeCohere) seen() []cohereRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func newFakeCohere(t *testing.T, fail func(w http.ResponseWriter) bool) (*fakeCohere, Provider) {
	t.Helper()
	f := &fakeCohere{t: t, fail: fail}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	p, err := New(Config{Provider: "cohere", APIKey: "test-key", BaseURL: srv.URL, HTTPClient: srv.Client()})
	require.NoError(t, err)
	return f, p
}

func numbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

func TestCohereEmbed(t *testing.T) {
	t.Parallel()
	f, p := newFakeCohere(t, nil)
	require.Equal(t, "cohere/embed-v4.0@1536", p.Model())
	require.Equal(t, 1536, p.Dimensions())
	require.Equal(t, 96, p.MaxBatch())

	vecs, err := p.Embed(context.Background(), []string{"7", "3"}, InputDocument)
	require.NoError(t, err)
	require.Len(t, vecs, 2)
	require.Len(t, vecs[0], 1536)
	require.Equal(t, []float32{7, 7.5}, vecs[0][:2])
	require.Equal(t, []float32{3, 3.5}, vecs[1][:2])

	_, err = p.Embed(context.Background(), []string{"1"}, InputQuery)
	require.NoError(t, err)

	reqs := f.seen()
	require.Len(t, reqs, 2)
	require.Equal(t, cohereRequest{
		Model: "embed-v4.0", InputType: "search_document", OutputDimension: 1536,
		EmbeddingTypes: []string{"float"}, Texts: []string{"7", "3"},
	}, reqs[0])
	require.Equal(t, "search_query", reqs[1].InputType)
}

func TestCohereBatches(t *testing.T) {
	t.Parallel()
	f, p := newFakeCohere(t, nil)
	vecs, err := p.Embed(context.Background(), numbers(200), InputDocument)
	require.NoError(t, err)
	require.Len(t, vecs, 200)
	for i, v := range vecs {
		require.Equal(t, float32(i), v[0], "vector %d out of order", i)
	}
	var sizes []int
	for _, r := range f.seen() {
		sizes = append(sizes, len(r.Texts))
	}
	require.Equal(t, []int{96, 96, 8}, sizes)
}

func TestCohereErrors(t *testing.T) {
	t.Parallel()
	respond := func(status int, header, value, body string) func(w http.ResponseWriter) bool {
		return func(w http.ResponseWriter) bool {
			if header != "" {
				w.Header().Set(header, value)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
			return true
		}
	}

	t.Run("429 with Retry-After", func(t *testing.T) {
		t.Parallel()
		f, p := newFakeCohere(t, respond(429, "Retry-After", "7", `{"message":"trial key rate limit"}`))
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		var rl *RateLimitedError
		require.ErrorAs(t, err, &rl)
		require.Equal(t, 7*time.Second, rl.RetryAfter)
		require.Contains(t, err.Error(), "trial key rate limit")
		require.NotErrorIs(t, err, ErrPermanent)
		require.Len(t, f.seen(), 1, "the SDK must not retry by itself")
	})
	t.Run("429 without Retry-After", func(t *testing.T) {
		t.Parallel()
		_, p := newFakeCohere(t, respond(429, "", "", `{"message":"slow down"}`))
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		var rl *RateLimitedError
		require.ErrorAs(t, err, &rl)
		require.Zero(t, rl.RetryAfter)
	})
	t.Run("500 is retryable", func(t *testing.T) {
		t.Parallel()
		f, p := newFakeCohere(t, respond(500, "", "", `{"message":"internal error"}`))
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
		var rl *RateLimitedError
		require.False(t, errors.As(err, &rl))
		require.Contains(t, err.Error(), "500")
		require.Len(t, f.seen(), 1, "the SDK must not retry by itself")
	})
	t.Run("503 is retryable", func(t *testing.T) {
		t.Parallel()
		_, p := newFakeCohere(t, respond(503, "", "", `upstream unavailable`))
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})
	t.Run("400 is permanent", func(t *testing.T) {
		t.Parallel()
		_, p := newFakeCohere(t, respond(400, "", "", `{"message":"invalid request: texts must not be empty"}`))
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.ErrorIs(t, err, ErrPermanent)
		require.Contains(t, err.Error(), "texts must not be empty")
	})
	t.Run("401 bad key is permanent", func(t *testing.T) {
		t.Parallel()
		f := &fakeCohere{t: t}
		srv := httptest.NewServer(f)
		t.Cleanup(srv.Close)
		p, err := New(Config{Provider: "cohere", APIKey: "wrong", BaseURL: srv.URL, HTTPClient: srv.Client()})
		require.NoError(t, err)
		_, err = p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.ErrorIs(t, err, ErrPermanent)
		require.Contains(t, err.Error(), "invalid api token")
	})
	t.Run("wrong dimension is permanent", func(t *testing.T) {
		t.Parallel()
		_, p := newFakeCohere(t, respond(200, "", "", `{"id":"x","embeddings":{"float":[[0.1,0.2]]},"texts":["1"],"meta":{}}`))
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.ErrorIs(t, err, ErrPermanent)
		require.Contains(t, err.Error(), "2-dimensional")
	})
	t.Run("missing embeddings is retryable", func(t *testing.T) {
		t.Parallel()
		_, p := newFakeCohere(t, respond(200, "", "", `{"id":"x","embeddings":{"float":[]},"texts":["1"],"meta":{}}`))
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})
	t.Run("blank text never reaches the network", func(t *testing.T) {
		t.Parallel()
		f, p := newFakeCohere(t, nil)
		_, err := p.Embed(context.Background(), []string{"1", " "}, InputDocument)
		require.ErrorIs(t, err, ErrPermanent)
		require.Empty(t, f.seen())
	})
	t.Run("network error is retryable", func(t *testing.T) {
		t.Parallel()
		p, err := New(Config{Provider: "cohere", APIKey: "k", BaseURL: "http://embed.invalid", HTTPClient: unreachable()})
		require.NoError(t, err)
		_, err = p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})
	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()
		f, p := newFakeCohere(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.Embed(ctx, []string{"1"}, InputDocument)
		require.ErrorIs(t, err, context.Canceled)
		require.Empty(t, f.seen())
	})
}

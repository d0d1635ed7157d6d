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

type openAIReq struct {
	Model      string   `json:"model"`
	Input      []string `json:"input"`
	Dimensions *int     `json:"dimensions"`
}

// fakeOpenAI speaks the OpenAI embeddings API. Each input must be a decimal number n; its
// embedding has n in element 0 and is `dims` long. It answers in reverse index order, as a
// server is allowed to.
type fakeOpenAI struct {
	t    *testing.T
	dims int
	key  string // required bearer token, if set

	mu       sync.Mutex
	requests []openAIReq
	paths    []string
	fail     func(w http.ResponseWriter) bool
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.Error(w, `{"error":{"message":"no route"}}`, http.StatusNotFound)
		return
	}
	if f.key != "" && r.Header.Get("Authorization") != "Bearer "+f.key {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}`))
		return
	}
	if f.key == "" && r.Header.Get("Authorization") != "" {
		http.Error(w, "unexpected Authorization header", http.StatusBadRequest)
		return
	}
	assert.Equal(f.t, "application/json", r.Header.Get("Content-Type"))
	var req openAIReq
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
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
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	data := make([]item, 0, len(req.Input))
	for i := len(req.Input) - 1; i >= 0; i-- {
		n, _ := strconv.Atoi(req.Input[i])
		v := make([]float32, f.dims)
		v[0] = float32(n)
		data = append(data, item{Object: "embedding", Index: i, Embedding: v})
	}
	w.Header().Set("Content-Type", "application/json")
	assert.NoError(f.t, json.NewEncoder(w).Encode(map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": 1, "total_tokens": 1},
	}))
}

func (f *fakeOpenAI) seen() []openAIReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func newFakeOpenAI(t *testing.T, f *fakeOpenAI, cfg Config) (*httptest.Server, Provider) {
	t.Helper()
	f.t = t
	if f.dims == 0 {
		f.dims = 1536
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg.Provider = "openai"
	if cfg.BaseURL == "" {
		cfg.BaseURL = srv.URL
	}
	cfg.HTTPClient = srv.Client()
	p, err := New(cfg)
	require.NoError(t, err)
	return srv, p
}

func TestOpenAIEmbed(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{key: "sk-test"}
	_, p := newFakeOpenAI(t, f, Config{APIKey: "sk-test"})
	require.Equal(t, "openai/text-embedding-3-small@1536", p.Model())
	require.Equal(t, 1536, p.Dimensions())
	require.Positive(t, p.MaxBatch())

	vecs, err := p.Embed(context.Background(), []string{"5", "9", "2"}, InputQuery)
	require.NoError(t, err)
	require.Len(t, vecs, 3)
	for i, want := range []float32{5, 9, 2} {
		require.Len(t, vecs[i], 1536)
		require.Equal(t, want, vecs[i][0], "results must follow input order, not response order")
	}
	reqs := f.seen()
	require.Len(t, reqs, 1)
	require.Equal(t, "text-embedding-3-small", reqs[0].Model)
	require.Equal(t, []string{"5", "9", "2"}, reqs[0].Input)
	require.Nil(t, reqs[0].Dimensions, "dimensions is sent only when configured explicitly")
}

func TestOpenAIExplicitDimensionsAndModel(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{dims: 768}
	// A trailing /v1/ on the base URL is tolerated; no key means no Authorization header.
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.t = t
	p, err := New(Config{Provider: "openai", BaseURL: srv.URL + "/v1/", Model: "nomic-embed-text",
		Dimensions: 768, HTTPClient: srv.Client()})
	require.NoError(t, err)
	require.Equal(t, "openai/nomic-embed-text@768", p.Model())
	vecs, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
	require.NoError(t, err)
	require.Len(t, vecs[0], 768)
	reqs := f.seen()
	require.Len(t, reqs, 1)
	require.NotNil(t, reqs[0].Dimensions)
	require.Equal(t, 768, *reqs[0].Dimensions)
	require.Equal(t, "nomic-embed-text", reqs[0].Model)
}

func TestOpenAIBatches(t *testing.T) {
	t.Parallel()
	f := &fakeOpenAI{}
	_, p := newFakeOpenAI(t, f, Config{})
	vecs, err := p.Embed(context.Background(), numbers(70), InputDocument)
	require.NoError(t, err)
	require.Len(t, vecs, 70)
	for i, v := range vecs {
		require.Equal(t, float32(i), v[0])
	}
	var sizes []int
	for _, r := range f.seen() {
		sizes = append(sizes, len(r.Input))
	}
	require.Equal(t, []int{32, 32, 6}, sizes)
}

func TestOpenAIErrors(t *testing.T) {
	t.Parallel()
	respond := func(status int, header, value, body string) func(w http.ResponseWriter) bool {
		return func(w http.ResponseWriter) bool {
			if header != "" {
				w.Header().Set(header, value)
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
			return true
		}
	}
	embed := func(t *testing.T, fail func(w http.ResponseWriter) bool) error {
		t.Helper()
		_, p := newFakeOpenAI(t, &fakeOpenAI{fail: fail}, Config{})
		_, err := p.Embed(context.Background(), []string{"1", "2"}, InputDocument)
		return err
	}

	t.Run("429 with Retry-After", func(t *testing.T) {
		t.Parallel()
		err := embed(t, respond(429, "Retry-After", "20", `{"error":{"message":"Rate limit reached for requests","type":"requests"}}`))
		var rl *RateLimitedError
		require.ErrorAs(t, err, &rl)
		require.Equal(t, 20*time.Second, rl.RetryAfter)
		require.Equal(t, "openai", rl.Provider)
		require.Contains(t, err.Error(), "Rate limit reached")
		require.NotErrorIs(t, err, ErrPermanent)
	})
	t.Run("500 is retryable", func(t *testing.T) {
		t.Parallel()
		err := embed(t, respond(500, "", "", `{"error":{"message":"The server had an error"}}`))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
		var rl *RateLimitedError
		require.False(t, errors.As(err, &rl))
		require.Contains(t, err.Error(), "The server had an error")
	})
	t.Run("408 is retryable", func(t *testing.T) {
		t.Parallel()
		err := embed(t, respond(408, "", "", `timeout`))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})
	t.Run("400 is permanent", func(t *testing.T) {
		t.Parallel()
		err := embed(t, respond(400, "", "", `{"error":{"message":"This model's maximum context length is 8192 tokens"}}`))
		require.ErrorIs(t, err, ErrPermanent)
		require.Contains(t, err.Error(), "maximum context length")
	})
	t.Run("404 unknown model is permanent", func(t *testing.T) {
		t.Parallel()
		err := embed(t, respond(404, "", "", `{"error":"model \"nope\" not found, try pulling it first"}`))
		require.ErrorIs(t, err, ErrPermanent)
		require.Contains(t, err.Error(), "try pulling it first")
	})
	t.Run("401 is permanent", func(t *testing.T) {
		t.Parallel()
		_, p := newFakeOpenAI(t, &fakeOpenAI{key: "right"}, Config{APIKey: "wrong"})
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.ErrorIs(t, err, ErrPermanent)
		require.Contains(t, err.Error(), "Incorrect API key")
	})
	t.Run("dimension mismatch is permanent", func(t *testing.T) {
		t.Parallel()
		_, p := newFakeOpenAI(t, &fakeOpenAI{dims: 768}, Config{Model: "nomic-embed-text"})
		_, err := p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.ErrorIs(t, err, ErrPermanent)
		require.ErrorContains(t, err, "768-dimensional")
		require.ErrorContains(t, err, "configured for 1536")
		require.ErrorContains(t, err, EnvDimensions)
	})
	t.Run("wrong count is retryable", func(t *testing.T) {
		t.Parallel()
		err := embed(t, respond(200, "", "", `{"data":[{"index":0,"embedding":[1]}]}`))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})
	t.Run("repeated index", func(t *testing.T) {
		t.Parallel()
		v := make([]float32, 1536)
		b, err := json.Marshal(map[string]any{"data": []map[string]any{
			{"index": 0, "embedding": v}, {"index": 0, "embedding": v},
		}})
		require.NoError(t, err)
		err = embed(t, respond(200, "", "", string(b)))
		require.ErrorContains(t, err, "index 0")
	})
	t.Run("garbled body is retryable", func(t *testing.T) {
		t.Parallel()
		err := embed(t, respond(200, "", "", `{"data":[{"ind`))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})
	t.Run("network error is retryable", func(t *testing.T) {
		t.Parallel()
		p, err := New(Config{Provider: "openai", APIKey: "k", BaseURL: "http://embed.invalid", HTTPClient: unreachable()})
		require.NoError(t, err)
		_, err = p.Embed(context.Background(), []string{"1"}, InputDocument)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrPermanent)
	})
	t.Run("blank text never reaches the network", func(t *testing.T) {
		t.Parallel()
		f := &fakeOpenAI{}
		_, p := newFakeOpenAI(t, f, Config{})
		_, err := p.Embed(context.Background(), []string{"\t"}, InputDocument)
		require.ErrorIs(t, err, ErrPermanent)
		require.Empty(t, f.seen())
	})
}

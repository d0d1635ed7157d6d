package embedding

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// openAIMaxBatch is how many texts go in one request. OpenAI itself takes far more, but
// text-embeddings-inference's default --max-client-batch-size is 32.
const openAIMaxBatch = 32

// maxResponseBody bounds a successful embeddings response (a 32 × 4096-float answer is ~3 MB).
const maxResponseBody = 64 << 20

type openAIProvider struct {
	http     *http.Client
	endpoint string
	apiKey   string
	model    string
	dims     int
	sendDims bool
}

func newOpenAI(cfg Config, sendDims bool) *openAIProvider {
	base := strings.TrimRight(cfg.BaseURL, "/")
	base = strings.TrimSuffix(base, "/v1")
	return &openAIProvider{
		http:     cfg.HTTPClient,
		endpoint: base + "/v1/embeddings",
		apiKey:   cfg.APIKey,
		model:    cfg.Model,
		dims:     cfg.Dimensions,
		sendDims: sendDims,
	}
}

func (p *openAIProvider) Model() string   { return modelID(ProviderOpenAI, p.model, p.dims) }
func (p *openAIProvider) Dimensions() int { return p.dims }
func (p *openAIProvider) MaxBatch() int   { return openAIMaxBatch }

func (p *openAIProvider) Embed(ctx context.Context, texts []string, input InputType) ([][]float32, error) {
	if err := checkInput(texts, input); err != nil {
		return nil, err
	}
	// The OpenAI API has no query/document distinction; InputType is ignored.
	return batches(ctx, texts, openAIMaxBatch, p.embedBatch)
}

type openAIRequest struct {
	Model      string   `json:"model"`
	Input      []string `json:"input"`
	Dimensions int      `json:"dimensions,omitempty"`
}

type openAIResponse struct {
	Data []struct {
		Index     *int      `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

func (p *openAIProvider) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	reqBody := openAIRequest{Model: p.model, Input: texts}
	if p.sendDims {
		reqBody.Dimensions = p.dims
	}
	body, err := json.Marshal(reqBody)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding request: %w", ErrPermanent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: building request: %w", ErrPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if p.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+p.apiKey)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("embedding: openai: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, classify(readStatusError(ProviderOpenAI, resp), time.Now())
	}

	var decoded openAIResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(&decoded); err != nil {
		// A truncated or garbled body may be a proxy hiccup: transient.
		return nil, fmt.Errorf("embedding: openai: decoding response: %w", err)
	}
	if len(decoded.Data) != len(texts) {
		return nil, fmt.Errorf("embedding: openai: got %d embeddings for %d inputs", len(decoded.Data), len(texts))
	}
	out := make([][]float32, len(texts))
	for i, d := range decoded.Data {
		idx := i // servers that omit index answer in input order
		if d.Index != nil {
			idx = *d.Index
		}
		if idx < 0 || idx >= len(texts) || out[idx] != nil {
			return nil, fmt.Errorf("embedding: openai: bad or repeated index %d in response", idx)
		}
		if len(d.Embedding) != p.dims {
			return nil, fmt.Errorf("%w: openai-compatible endpoint returned a %d-dimensional vector for model %q, configured for %d; "+
				"choose a model that produces %d dimensions or set %s to match",
				ErrPermanent, len(d.Embedding), p.model, p.dims, p.dims, EnvDimensions)
		}
		out[idx] = d.Embedding
	}
	return out, nil
}

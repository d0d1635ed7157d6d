package embedding

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	cohere "github.com/cohere-ai/cohere-go/v2"
	"github.com/cohere-ai/cohere-go/v2/core"
	"github.com/cohere-ai/cohere-go/v2/option"
	cohereclient "github.com/cohere-ai/cohere-go/v2/v2"
)

// cohereMaxBatch is Cohere's limit on texts per embed call.
const cohereMaxBatch = 96

type cohereProvider struct {
	client *cohereclient.Client
	model  string
	dims   int
}

func newCohere(cfg Config) *cohereProvider {
	opts := []option.RequestOption{
		option.WithToken(cfg.APIKey),
		// The SDK would otherwise retry 429 and 5xx itself, sleeping in between; retries belong
		// to the caller's job queue. statusClient also turns every non-2xx answer into an error
		// before the SDK's retrier sees it, keeping the Retry-After header.
		option.WithMaxAttempts(1),
		option.WithHTTPClient(statusClient{inner: cfg.HTTPClient}),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	return &cohereProvider{
		client: cohereclient.NewClient(opts...),
		model:  cfg.Model,
		dims:   cfg.Dimensions,
	}
}

func (p *cohereProvider) Model() string   { return modelID(ProviderCohere, p.model, p.dims) }
func (p *cohereProvider) Dimensions() int { return p.dims }
func (p *cohereProvider) MaxBatch() int   { return cohereMaxBatch }

func (p *cohereProvider) Embed(ctx context.Context, texts []string, input InputType) ([][]float32, error) {
	if err := checkInput(texts, input); err != nil {
		return nil, err
	}
	inputType := cohere.EmbedInputTypeSearchDocument
	if input == InputQuery {
		inputType = cohere.EmbedInputTypeSearchQuery
	}
	return batches(ctx, texts, cohereMaxBatch, func(ctx context.Context, chunk []string) ([][]float32, error) {
		return p.embedBatch(ctx, chunk, inputType)
	})
}

func (p *cohereProvider) embedBatch(ctx context.Context, texts []string, inputType cohere.EmbedInputType) ([][]float32, error) {
	dims := p.dims
	resp, err := p.client.Embed(ctx, &cohere.V2EmbedRequest{
		Model:           p.model,
		Texts:           texts,
		InputType:       inputType,
		OutputDimension: &dims,
		EmbeddingTypes:  []cohere.EmbeddingType{cohere.EmbeddingTypeFloat},
	})
	if err != nil {
		return nil, cohereError(err)
	}
	floats := resp.GetEmbeddings().GetFloat()
	if len(floats) != len(texts) {
		return nil, fmt.Errorf("embedding: cohere returned %d float embeddings for %d texts", len(floats), len(texts))
	}
	out := make([][]float32, len(floats))
	for i, f := range floats {
		if len(f) != p.dims {
			return nil, fmt.Errorf("%w: cohere returned a %d-dimensional vector, configured for %d (model %q)",
				ErrPermanent, len(f), p.dims, p.model)
		}
		v := make([]float32, len(f))
		for j, x := range f {
			v[j] = float32(x)
		}
		out[i] = v
	}
	return out, nil
}

// cohereError maps an error from the SDK onto the package's error contract.
func cohereError(err error) error {
	var se *statusError
	if errors.As(err, &se) {
		return classify(se, time.Now())
	}
	// Should statusClient ever be bypassed, the SDK's own typed errors carry the status code.
	var apiErr *core.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode != 0 {
		return classify(&statusError{provider: ProviderCohere, status: apiErr.StatusCode, message: shorten(apiErr.Error())}, time.Now())
	}
	return fmt.Errorf("embedding: cohere: %w", err)
}

// statusClient is the HTTP client handed to the Cohere SDK: it returns non-2xx answers as a
// *statusError instead of a response, so the SDK neither retries nor loses the headers.
type statusClient struct {
	inner *http.Client
}

func (c statusClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.inner.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readStatusError(ProviderCohere, resp)
}

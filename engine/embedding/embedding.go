package embedding

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// InputType tells a provider what a text is for. Asymmetric models (Cohere) embed documents and
// queries differently; the local provider ignores it.
type InputType int

const (
	// InputDocument is a text to be stored and searched (a chat message).
	InputDocument InputType = iota
	// InputQuery is a search query compared against stored documents.
	InputQuery
)

func (t InputType) String() string {
	switch t {
	case InputDocument:
		return "document"
	case InputQuery:
		return "query"
	default:
		return "InputType(" + strconv.Itoa(int(t)) + ")"
	}
}

func (t InputType) valid() bool { return t == InputDocument || t == InputQuery }

// Provider turns texts into vectors. Implementations are safe for concurrent use.
type Provider interface {
	// Model identifies the provider, model and dimensions, e.g. "cohere/embed-v4.0@1536" or
	// "local/ngram-v1@1536". It is stored with every embedding row: vectors with different Model
	// values are not comparable.
	Model() string
	// Dimensions is the length of every vector Embed returns.
	Dimensions() int
	// MaxBatch is the number of texts the provider sends in one request upstream. Embed accepts
	// any number of texts and splits them itself; callers use MaxBatch to size their own batches.
	MaxBatch() int
	// Embed returns one vector per text, in the order of texts. No text may be blank
	// (strings.TrimSpace(text) == ""): a blank text fails the whole call with ErrPermanent, so
	// callers skip blank texts before calling. An empty texts slice returns an empty result.
	//
	// Errors: *RateLimitedError when the upstream answered 429 (snooze and retry);
	// an error wrapping ErrPermanent for invalid input, bad configuration, and 4xx answers other
	// than 408/429 (never retry); any other error (5xx, network, timeouts, a malformed answer) is
	// transient and may be retried.
	Embed(ctx context.Context, texts []string, input InputType) ([][]float32, error)
}

// ErrPermanent is wrapped by errors that retrying cannot fix: blank or invalid input, a
// configuration the upstream rejects (bad key, unknown model, wrong dimensions), and HTTP 4xx
// answers other than 408 and 429. Test with errors.Is.
var ErrPermanent = errors.New("embedding: permanent error")

// RateLimitedError is returned when the upstream answered HTTP 429. RetryAfter comes from the
// Retry-After header (seconds or an HTTP date) and is zero when the header was absent or
// unreadable, in which case the caller picks its own backoff. Test with errors.As and a
// *RateLimitedError target.
type RateLimitedError struct {
	RetryAfter time.Duration
	// Provider is the provider name ("cohere", "openai") and Message the upstream's explanation,
	// for logs.
	Provider string
	Message  string
}

func (e *RateLimitedError) Error() string {
	var b strings.Builder
	b.WriteString("embedding: ")
	if e.Provider != "" {
		b.WriteString(e.Provider)
		b.WriteString(": ")
	}
	b.WriteString("rate limited")
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Provider names accepted in Config.Provider.
const (
	ProviderLocal  = "local"
	ProviderCohere = "cohere"
	ProviderOpenAI = "openai"
)

// Defaults applied by Config.WithDefaults.
const (
	DefaultDimensions  = 1536
	DefaultCohereModel = "embed-v4.0"
	DefaultOpenAIModel = "text-embedding-3-small"
	DefaultOpenAIURL   = "https://api.openai.com"
	DefaultLocalModel  = "ngram-v1"
	DefaultHTTPTimeout = 60 * time.Second
)

// Config chooses and configures a provider. The zero value is the local provider with 1536
// dimensions.
type Config struct {
	// Provider is "local" (the default; no network), "cohere" or "openai" (any
	// OpenAI-compatible /v1/embeddings endpoint: OpenAI, Ollama, text-embeddings-inference, vLLM).
	Provider string
	// APIKey is sent as a bearer token. Required for cohere; optional for openai (local servers
	// usually need none); unused by local.
	APIKey string
	// BaseURL overrides the upstream's address. cohere: the SDK's default
	// (https://api.cohere.com) when empty. openai: defaults to DefaultOpenAIURL; requests go to
	// BaseURL + "/v1/embeddings" (a trailing "/" or "/v1" on BaseURL is tolerated).
	BaseURL string
	// Model is the upstream model name: DefaultCohereModel, DefaultOpenAIModel or
	// DefaultLocalModel (the only local model) when empty.
	Model string
	// Dimensions is the vector length; DefaultDimensions when zero. cohere accepts 256, 512,
	// 1024 or 1536 and always sends it as output_dimension. openai sends it as "dimensions" only
	// when set explicitly (models without Matryoshka support reject the field); either way a
	// returned vector of another length is an ErrPermanent error. Ripple's pgvector column is
	// vector(1536), so anything else needs a matching schema.
	Dimensions int
	// HTTPClient is used for cohere and openai requests; a client with DefaultHTTPTimeout when
	// nil.
	HTTPClient *http.Client

	// envErr records a malformed environment variable seen by ConfigFromEnv; New reports it.
	envErr error
}

// String describes the configuration without the API key, so a Config can be logged.
func (c Config) String() string {
	key := "unset"
	if c.APIKey != "" {
		key = "set"
	}
	return fmt.Sprintf("embedding.Config{Provider:%q Model:%q Dimensions:%d BaseURL:%q APIKey:%s}",
		c.Provider, c.Model, c.Dimensions, c.BaseURL, key)
}

// WithDefaults returns c with empty fields filled in for its provider.
func (c Config) WithDefaults() Config {
	c.Provider = strings.ToLower(strings.TrimSpace(c.Provider))
	if c.Provider == "" {
		c.Provider = ProviderLocal
	}
	if c.Dimensions == 0 {
		c.Dimensions = DefaultDimensions
	}
	if c.Model == "" {
		switch c.Provider {
		case ProviderCohere:
			c.Model = DefaultCohereModel
		case ProviderOpenAI:
			c.Model = DefaultOpenAIModel
		case ProviderLocal:
			c.Model = DefaultLocalModel
		}
	}
	if c.BaseURL == "" && c.Provider == ProviderOpenAI {
		c.BaseURL = DefaultOpenAIURL
	}
	if c.HTTPClient == nil && c.Provider != ProviderLocal {
		c.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	return c
}

// validate checks a configuration that has been through WithDefaults.
func (c Config) validate() error {
	if c.envErr != nil {
		return c.envErr
	}
	if c.Dimensions <= 0 {
		return fmt.Errorf("embedding: dimensions must be positive, got %d", c.Dimensions)
	}
	switch c.Provider {
	case ProviderLocal:
		if c.Model != DefaultLocalModel {
			return fmt.Errorf("embedding: unknown local model %q (the only one is %q)", c.Model, DefaultLocalModel)
		}
	case ProviderCohere:
		if c.APIKey == "" {
			return errors.New("embedding: the cohere provider needs an API key (COHERE_API_KEY)")
		}
		switch c.Dimensions {
		case 256, 512, 1024, 1536:
		default:
			return fmt.Errorf("embedding: cohere output dimension must be 256, 512, 1024 or 1536, got %d", c.Dimensions)
		}
	case ProviderOpenAI:
		if !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
			return fmt.Errorf("embedding: openai base URL must start with http:// or https://, got %q", c.BaseURL)
		}
	default:
		return fmt.Errorf("embedding: unknown provider %q (want %q, %q or %q)",
			c.Provider, ProviderLocal, ProviderCohere, ProviderOpenAI)
	}
	return nil
}

// Environment variables read by ConfigFromEnv.
const (
	EnvProvider   = "RIPPLE_EMBEDDING_PROVIDER"
	EnvAPIKey     = "RIPPLE_EMBEDDING_API_KEY"
	EnvCohereKey  = "COHERE_API_KEY"
	EnvOpenAIKey  = "OPENAI_API_KEY"
	EnvBaseURL    = "RIPPLE_EMBEDDING_BASE_URL"
	EnvModel      = "RIPPLE_EMBEDDING_MODEL"
	EnvDimensions = "RIPPLE_EMBEDDING_DIMENSIONS"
)

// ConfigFromEnv reads a Config through getenv (os.Getenv in production):
//
//	RIPPLE_EMBEDDING_PROVIDER    local (default) | cohere | openai
//	RIPPLE_EMBEDDING_API_KEY     API key for any provider; else COHERE_API_KEY (cohere) or
//	                             OPENAI_API_KEY (openai)
//	RIPPLE_EMBEDDING_BASE_URL    upstream address
//	RIPPLE_EMBEDDING_MODEL       upstream model name
//	RIPPLE_EMBEDDING_DIMENSIONS  vector length (default 1536)
//
// Unset variables leave fields empty for WithDefaults. A malformed RIPPLE_EMBEDDING_DIMENSIONS
// is reported by New.
func ConfigFromEnv(getenv func(string) string) Config {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	c := Config{
		Provider: strings.ToLower(get(EnvProvider)),
		APIKey:   get(EnvAPIKey),
		BaseURL:  get(EnvBaseURL),
		Model:    get(EnvModel),
	}
	if c.APIKey == "" {
		switch c.Provider {
		case ProviderCohere:
			c.APIKey = get(EnvCohereKey)
		case ProviderOpenAI:
			c.APIKey = get(EnvOpenAIKey)
		}
	}
	if s := get(EnvDimensions); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			c.envErr = fmt.Errorf("embedding: %s must be a positive integer, got %q", EnvDimensions, s)
		} else {
			c.Dimensions = n
		}
	}
	return c
}

// New builds the provider cfg describes, after applying WithDefaults. It makes no network calls.
func New(cfg Config) (Provider, error) {
	explicitDims := cfg.Dimensions != 0
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	switch cfg.Provider {
	case ProviderCohere:
		return newCohere(cfg), nil
	case ProviderOpenAI:
		return newOpenAI(cfg, explicitDims), nil
	default:
		return newLocal(cfg.Dimensions), nil
	}
}

func modelID(provider, model string, dims int) string {
	return provider + "/" + model + "@" + strconv.Itoa(dims)
}

// checkInput rejects calls that no provider can serve.
func checkInput(texts []string, input InputType) error {
	if !input.valid() {
		return fmt.Errorf("%w: invalid input type %d", ErrPermanent, int(input))
	}
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("%w: text %d is blank", ErrPermanent, i)
		}
	}
	return nil
}

// batches calls fn for consecutive chunks of at most size texts and concatenates the results.
func batches(ctx context.Context, texts []string, size int, fn func(ctx context.Context, chunk []string) ([][]float32, error)) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+size, len(texts))
		vecs, err := fn(ctx, texts[start:end])
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

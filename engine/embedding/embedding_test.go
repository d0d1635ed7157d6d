package embedding

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	require.Equal(t, Config{}, ConfigFromEnv(env(nil)))

	c := ConfigFromEnv(env(map[string]string{
		EnvProvider:   " Cohere ",
		EnvCohereKey:  "co-key",
		EnvOpenAIKey:  "sk-ignored",
		EnvBaseURL:    "http://proxy:8080",
		EnvModel:      "embed-v4.0",
		EnvDimensions: "1024",
	}))
	require.Equal(t, Config{Provider: "cohere", APIKey: "co-key", BaseURL: "http://proxy:8080",
		Model: "embed-v4.0", Dimensions: 1024}, c)

	c = ConfigFromEnv(env(map[string]string{EnvProvider: "openai", EnvOpenAIKey: "sk-1"}))
	require.Equal(t, "sk-1", c.APIKey)

	c = ConfigFromEnv(env(map[string]string{EnvProvider: "openai", EnvOpenAIKey: "sk-1", EnvAPIKey: "generic"}))
	require.Equal(t, "generic", c.APIKey, "RIPPLE_EMBEDDING_API_KEY wins")

	c = ConfigFromEnv(env(map[string]string{EnvCohereKey: "co-key"}))
	require.Empty(t, c.APIKey, "local needs no key")

	for _, bad := range []string{"lots", "-5", "0", "1.5"} {
		_, err := New(ConfigFromEnv(env(map[string]string{EnvDimensions: bad})))
		require.ErrorContains(t, err, EnvDimensions, bad)
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	require.Equal(t, Config{Provider: "local", Model: "ngram-v1", Dimensions: 1536}, c)

	c = Config{Provider: "cohere", APIKey: "k"}.WithDefaults()
	require.Equal(t, "embed-v4.0", c.Model)
	require.Equal(t, 1536, c.Dimensions)
	require.Empty(t, c.BaseURL, "the SDK's default")
	require.NotNil(t, c.HTTPClient)
	require.Equal(t, DefaultHTTPTimeout, c.HTTPClient.Timeout)

	c = Config{Provider: "OpenAI"}.WithDefaults()
	require.Equal(t, "openai", c.Provider)
	require.Equal(t, "text-embedding-3-small", c.Model)
	require.Equal(t, DefaultOpenAIURL, c.BaseURL)

	own := &http.Client{}
	c = Config{Provider: "openai", BaseURL: "http://ollama:11434", Model: "m", Dimensions: 8, HTTPClient: own}.WithDefaults()
	require.Equal(t, Config{Provider: "openai", BaseURL: "http://ollama:11434", Model: "m", Dimensions: 8, HTTPClient: own}, c)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Provider: "bert"}, `unknown provider "bert"`},
		{Config{Provider: "cohere"}, "COHERE_API_KEY"},
		{Config{Provider: "cohere", APIKey: "k", Dimensions: 1000}, "256, 512, 1024 or 1536"},
		{Config{Dimensions: -1}, "dimensions must be positive"},
		{Config{Model: "other"}, `unknown local model "other"`},
		{Config{Provider: "openai", BaseURL: "localhost:11434"}, "must start with http"},
	} {
		_, err := New(tc.cfg)
		require.ErrorContains(t, err, tc.want, "%v", tc.cfg)
	}
	for _, cfg := range []Config{
		{},
		{Provider: "local", Dimensions: 64},
		{Provider: "cohere", APIKey: "k", Dimensions: 512},
		{Provider: "openai"},
		{Provider: "openai", BaseURL: "http://localhost:11434", Model: "nomic-embed-text", Dimensions: 768},
	} {
		_, err := New(cfg)
		require.NoError(t, err, "%v", cfg)
	}
}

func TestConfigStringHidesKey(t *testing.T) {
	t.Parallel()
	c := Config{Provider: "cohere", APIKey: "super-secret"}
	for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%+v", c)} {
		require.NotContains(t, s, "super-secret")
		require.Contains(t, s, "APIKey:set")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		" 2 ":                           2 * time.Second,
		"0.5":                           500 * time.Millisecond,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"999999999":                     0, // absurd: let the caller choose
		"Sun, 01 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 11:59:00 GMT": 0, // in the past
	} {
		require.Equal(t, want, parseRetryAfter(in, now), "%q", in)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for status, want := range map[int]string{
		400: "permanent", 401: "permanent", 403: "permanent", 404: "permanent", 422: "permanent",
		498: "permanent", 408: "transient", 499: "transient", 429: "rate", 500: "transient",
		502: "transient", 503: "transient", 504: "transient",
	} {
		err := classify(&statusError{provider: "x", status: status, message: "m"}, now)
		var rl *RateLimitedError
		got := "transient"
		switch {
		case errors.As(err, &rl):
			got = "rate"
		case errors.Is(err, ErrPermanent):
			got = "permanent"
		}
		require.Equal(t, want, got, "HTTP %d", status)
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a", errorMessage([]byte(`{"message":"a"}`)))
	require.Equal(t, "b", errorMessage([]byte(`{"error":{"message":"b","type":"x"}}`)))
	require.Equal(t, "c", errorMessage([]byte(`{"error":"c"}`)))
	require.Equal(t, "plain text", errorMessage([]byte("  plain text\n")))
	long := errorMessage([]byte(strings.Repeat("x", 500)))
	require.Less(t, len(long), 310)
}

func TestInputTypeString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "document", InputDocument.String())
	require.Equal(t, "query", InputQuery.String())
	require.Equal(t, "InputType(9)", InputType(9).String())
}

func TestRateLimitedErrorMessage(t *testing.T) {
	t.Parallel()
	e := &RateLimitedError{RetryAfter: 3 * time.Second, Provider: "cohere", Message: "slow down"}
	require.Equal(t, "embedding: cohere: rate limited (retry after 3s): slow down", e.Error())
	require.Equal(t, "embedding: rate limited", (&RateLimitedError{}).Error())
}

// unreachable is an HTTP client whose every request fails as a connection would.
func unreachable() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("dial tcp: connection refused")
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

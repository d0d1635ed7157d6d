package embedding

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxErrorBody bounds how much of an error response is read and quoted in an error message.
const maxErrorBody = 2048

// statusError is a non-2xx HTTP answer, before classification.
type statusError struct {
	provider   string
	status     int
	retryAfter string // the raw Retry-After header
	message    string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("embedding: %s: HTTP %d", e.provider, e.status)
	if e.message != "" {
		msg += ": " + e.message
	}
	return msg
}

// readStatusError reads (a bounded prefix of) a non-2xx response's body into a statusError.
// It does not close the body.
func readStatusError(provider string, resp *http.Response) *statusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &statusError{
		provider:   provider,
		status:     resp.StatusCode,
		retryAfter: resp.Header.Get("Retry-After"),
		message:    errorMessage(body),
	}
}

// classify maps a statusError onto the package's error contract: 429 becomes
// *RateLimitedError, 408/499 and 5xx stay transient, any other 4xx wraps ErrPermanent.
func classify(e *statusError, now time.Time) error {
	switch {
	case e.status == http.StatusTooManyRequests:
		return &RateLimitedError{
			RetryAfter: parseRetryAfter(e.retryAfter, now),
			Provider:   e.provider,
			Message:    e.message,
		}
	case e.status == http.StatusRequestTimeout || e.status == 499:
		// 499: the upstream saw the client go away; nothing about the input is wrong.
		return e
	case e.status >= 400 && e.status < 500:
		return fmt.Errorf("%w: %w", ErrPermanent, e)
	default:
		return e
	}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date. It returns zero for
// an absent, malformed or past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || secs > 24*60*60 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// errorMessage extracts a human message from an error body: the "message" field of Cohere's
// {"message": ...} or OpenAI's {"error": {"message": ...}} shape, else the body itself, shortened.
func errorMessage(body []byte) string {
	var shaped struct {
		Message string          `json:"message"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &shaped) == nil {
		if shaped.Message != "" {
			return shorten(shaped.Message)
		}
		var nested struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(shaped.Error, &nested) == nil && nested.Message != "" {
			return shorten(nested.Message)
		}
		var plain string
		if json.Unmarshal(shaped.Error, &plain) == nil && plain != "" {
			return shorten(plain)
		}
	}
	return shorten(strings.TrimSpace(string(body)))
}

func shorten(s string) string {
	const limit = 300
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

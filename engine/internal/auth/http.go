package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes bounds an auth request body.
const maxBodyBytes = 64 << 10

// apiError is a client-visible error: JSON {"code", "message", "retryAfterMs"?}.
type apiError struct {
	status       int
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func invalidArgument(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, Code: "INVALID_ARGUMENT", Message: msg}
}

func errRateLimited(retry time.Duration) *apiError {
	ms := max(retry.Milliseconds(), 1)
	return &apiError{status: http.StatusTooManyRequests, Code: "RATE_LIMITED", Message: "too many attempts; try again later", RetryAfterMs: ms}
}

// Routes registers the auth endpoints on mux:
//
//	POST /api/auth/signup    {email, password, name} → {accessToken, refreshToken, expiresAt, user}
//	POST /api/auth/signin    {email, password}       → the same
//	POST /api/auth/refresh   {refreshToken}          → the same, with a new pair
//	POST /api/auth/signout   {refreshToken}          → {}
//	GET  /.well-known/jwks.json
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/auth/signup", func(w http.ResponseWriter, r *http.Request) {
		var req signUpRequest
		if !s.decode(w, r, &req) {
			return
		}
		resp, err := s.signUp(r.Context(), s.cfg.ClientAddress(r), req)
		s.respond(w, r, resp, err)
	})
	mux.HandleFunc("POST /api/auth/signin", func(w http.ResponseWriter, r *http.Request) {
		var req signInRequest
		if !s.decode(w, r, &req) {
			return
		}
		resp, err := s.signIn(r.Context(), s.cfg.ClientAddress(r), req)
		s.respond(w, r, resp, err)
	})
	mux.HandleFunc("POST /api/auth/refresh", func(w http.ResponseWriter, r *http.Request) {
		var req refreshRequest
		if !s.decode(w, r, &req) {
			return
		}
		resp, err := s.refresh(r.Context(), req.RefreshToken)
		s.respond(w, r, resp, err)
	})
	mux.HandleFunc("POST /api/auth/signout", func(w http.ResponseWriter, r *http.Request) {
		var req refreshRequest
		if !s.decode(w, r, &req) {
			return
		}
		err := s.signOut(r.Context(), req.RefreshToken)
		s.respond(w, r, struct{}{}, err)
	})
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
}

type refreshRequest struct {
	RefreshToken string `json:"refreshToken"`
}

// decode reads one JSON object strictly: at most 64 KB, no unknown fields, nothing after it.
func (s *Service) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("request body must hold a single JSON object")
		}
	}
	if err != nil {
		s.writeError(w, r, invalidArgument(describeDecodeError(err)))
		return false
	}
	return true
}

func describeDecodeError(err error) string {
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &maxErr):
		return fmt.Sprintf("request body larger than %d bytes", maxBodyBytes)
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return "request body must be a JSON object"
		}
		return fmt.Sprintf("field %q must be a %s", typeErr.Field, typeErr.Type.Kind())
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return "request body is not valid JSON"
	case errors.Is(err, io.EOF):
		return "request body is empty"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "request body must hold a single JSON object"
	}
}

func (s *Service) respond(w http.ResponseWriter, r *http.Request, resp any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		id := randomString(8)
		s.logger.Error("auth: internal error", "request_id", id, "path", r.URL.Path, "error", err)
		ae = &apiError{status: http.StatusInternalServerError, Code: "INTERNAL", Message: "internal error (request id " + id + ")"}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if ae.status == http.StatusTooManyRequests {
		secs := (ae.RetryAfterMs + 999) / 1000
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(ae.status)
	_ = json.NewEncoder(w).Encode(ae)
}

package engine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ripplehq/ripple/engine/internal/wire"
)

// ErrorCode classifies a user-facing error. It reaches the client in errorData.code.
type ErrorCode string

const (
	CodeUnauthenticated ErrorCode = "UNAUTHENTICATED"
	CodeForbidden       ErrorCode = "FORBIDDEN"
	CodeNotFound        ErrorCode = "NOT_FOUND"
	CodeInvalidArgument ErrorCode = wire.CodeInvalidArgument
	CodeConflict        ErrorCode = "CONFLICT"
	CodeRateLimited     ErrorCode = wire.CodeRateLimited
	// CodeUnavailable: the database could not be reached; nothing was done, and the same call
	// may succeed shortly. Clients can show "offline" instead of a server error.
	CodeUnavailable ErrorCode = wire.CodeUnavailable
	CodeInternal    ErrorCode = wire.CodeInternal
)

// Error is an error a function means the client to see: its message and code are sent as they
// are (the client raises ConvexError with data {code, ...Data}). Any other error returned by a
// function is internal: it is logged with a request id, and the client sees only that id.
type Error struct {
	Code    ErrorCode
	Message string
	// Data is merged into errorData next to "code". Keys must not start with "$".
	Data map[string]any
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// errorData is what goes on the wire as errorData.
func (e *Error) errorData() map[string]any {
	data := make(map[string]any, len(e.Data)+1)
	for k, v := range e.Data {
		data[k] = v
	}
	data["code"] = string(e.Code)
	return data
}

// NewError makes a user-facing error with a formatted message.
func NewError(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unauthenticated, Forbidden, NotFound and InvalidArgument are shorthands for NewError.
func Unauthenticated(format string, args ...any) *Error {
	return NewError(CodeUnauthenticated, format, args...)
}
func Forbidden(format string, args ...any) *Error { return NewError(CodeForbidden, format, args...) }
func NotFound(format string, args ...any) *Error  { return NewError(CodeNotFound, format, args...) }
func InvalidArgument(format string, args ...any) *Error {
	return NewError(CodeInvalidArgument, format, args...)
}

// AsError reports whether err is (or wraps) a user-facing *Error.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// errUnavailable is what a caller sees when the database cannot be reached.
func errUnavailable() *Error {
	err := NewError(CodeUnavailable, "the database is unavailable; try again shortly")
	// The listener retries at most a second apart, so a second is when trying again makes sense.
	err.Data = map[string]any{"retryAfterMs": 1000}
	return err
}

// isUnavailable reports whether err means the database could not be reached or went away (it
// was restarting, say), rather than that the function is wrong.
func isUnavailable(err error) bool {
	var connect *pgconn.ConnectError
	var op *net.OpError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connect), errors.As(err, &op):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	case errors.As(err, &pgErr):
		// 08: connection exception; 57P01-03: the server is shutting down or starting.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return false
}

package engine

import (
	"errors"
	"fmt"
)

// ErrorCode classifies a user-facing error. It reaches the client in errorData.code.
type ErrorCode string

const (
	CodeUnauthenticated ErrorCode = "UNAUTHENTICATED"
	CodeForbidden       ErrorCode = "FORBIDDEN"
	CodeNotFound        ErrorCode = "NOT_FOUND"
	CodeInvalidArgument ErrorCode = "INVALID_ARGUMENT"
	CodeConflict        ErrorCode = "CONFLICT"
	CodeRateLimited     ErrorCode = "RATE_LIMITED"
	CodeInternal        ErrorCode = "INTERNAL"
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

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Errors from a database that cannot be reached are told apart from the function's own.
func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = pgx.Connect(ctx, "postgres://nobody@"+addr+"/x?connect_timeout=2")
	if err == nil || !isUnavailable(err) {
		t.Fatalf("a refused connection: %v", err)
	}
	for _, err := range []error{
		&pgconn.PgError{Code: "57P01"},
		&pgconn.PgError{Code: "08006"},
		fmt.Errorf("reading: %w", io.ErrUnexpectedEOF),
	} {
		if !isUnavailable(err) {
			t.Errorf("%v should mean unavailable", err)
		}
	}
	for _, err := range []error{&pgconn.PgError{Code: "22012"}, errors.New("bug"), InvalidArgument("x")} {
		if isUnavailable(err) {
			t.Errorf("%v should not mean unavailable", err)
		}
	}
}

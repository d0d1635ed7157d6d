package benchchat

import (
	"context"
	"errors"
)

func (e *env) knee(ctx context.Context) ([]Result, float64, error) {
	return nil, 0, errors.New("not yet")
}
func (e *env) idle(ctx context.Context) ([]Result, error)       { return nil, errors.New("not yet") }
func (e *env) devices(ctx context.Context) ([]Result, error)    { return nil, errors.New("not yet") }
func (e *env) throughput(ctx context.Context) ([]Result, error) { return nil, errors.New("not yet") }

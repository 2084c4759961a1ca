package harness

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultTimeout and DefaultInterval are what tests use unless they have a
// reason not to. The apiserver picks up a new webhook configuration through an
// informer (milliseconds here), so the timeout is generous only for slow,
// shared machines.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultInterval = 50 * time.Millisecond
)

// Poll calls cond every interval until it returns true, returns an error
// (which stops the wait), or timeout passes. On timeout the error wraps the
// last non-nil "not yet" reason cond reported through notYet, so a failing
// test says what it was waiting for.
func Poll(ctx context.Context, timeout, interval time.Duration, cond func(ctx context.Context) (done bool, notYet error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		done, why := cond(ctx)
		if done {
			return nil
		}
		var stop *StopError
		if errors.As(why, &stop) {
			return stop.Err
		}
		if why != nil {
			last = why
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("not done after %s: %w", timeout, last)
			}
			return fmt.Errorf("not done after %s", timeout)
		case <-t.C:
		}
	}
}

// Eventually is Poll with DefaultTimeout and DefaultInterval.
func Eventually(ctx context.Context, cond func(ctx context.Context) (done bool, notYet error)) error {
	return Poll(ctx, DefaultTimeout, DefaultInterval, cond)
}

// StopError, returned by a Poll condition, ends the wait at once with Err.
type StopError struct{ Err error }

func (e *StopError) Error() string { return e.Err.Error() }

// Stop wraps err so that Poll returns it immediately.
func Stop(err error) error { return &StopError{Err: err} }

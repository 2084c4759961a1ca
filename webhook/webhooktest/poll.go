package webhooktest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Poll calls cond at once and then every interval until it reports done,
// returns an error made by StopPolling, or timeout passes (or ctx ends). Any
// other error from cond means "not yet, and this is what I saw": the last one
// goes into the error Poll returns with what it waited for, so a test that
// gives up says why. The loop is apimachinery's; this adds the message.
func Poll(ctx context.Context, what string, timeout, interval time.Duration, cond func(ctx context.Context) (done bool, notYet error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		done, notYet := cond(ctx)
		if stop := (*stopPolling)(nil); errors.As(notYet, &stop) {
			return false, stop
		}
		if notYet != nil && ctx.Err() == nil { // not the end of the wait cutting cond short
			last = notYet
		}
		return done, nil
	})
	if stop := (*stopPolling)(nil); errors.As(err, &stop) {
		return stop.err
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("timed out after %s waiting for %s", timeout, what)
	} else {
		err = fmt.Errorf("waiting for %s: %w", what, err)
	}
	if last != nil {
		return fmt.Errorf("%w; last: %w", err, last)
	}
	return err
}

// StopPolling wraps err so that Poll, given it by its condition, returns err
// at once (a process the wait depends on died, say).
func StopPolling(err error) error { return &stopPolling{err: err} }

type stopPolling struct{ err error }

func (e *stopPolling) Error() string { return e.err.Error() }
func (e *stopPolling) Unwrap() error { return e.err }

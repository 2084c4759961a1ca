package webhooktest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestPollReturnsOnceDone(t *testing.T) {
	n := 0
	if err := Poll(t.Context(), "three calls", time.Minute, time.Millisecond, func(context.Context) (bool, error) {
		n++
		return n == 3, nil
	}); err != nil || n != 3 {
		t.Errorf("Poll: %v after %d calls, want nil after 3", err, n)
	}
}

func TestPollTimeoutSaysWhatAndLastState(t *testing.T) {
	calls := 0
	err := Poll(t.Context(), "the answer", 30*time.Millisecond, time.Millisecond, func(context.Context) (bool, error) {
		calls++
		if calls == 1 {
			return false, os.ErrNotExist
		}
		return false, nil // a "not yet" without a reason keeps the last one
	})
	if err == nil || !errors.Is(err, os.ErrNotExist) ||
		!strings.Contains(err.Error(), "timed out after 30ms waiting for the answer") {
		t.Errorf("Poll = %v, want a timeout naming what it waited for and wrapping the last reason", err)
	}
}

func TestPollKeepsTheLastStateSeenBeforeTheDeadline(t *testing.T) {
	calls := 0
	err := Poll(t.Context(), "the answer", 30*time.Millisecond, time.Millisecond, func(ctx context.Context) (bool, error) {
		calls++
		if calls == 1 {
			return false, os.ErrNotExist
		}
		<-ctx.Done() // a request the deadline cuts short
		return false, ctx.Err()
	})
	if !errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "last: context deadline exceeded") {
		t.Errorf("Poll = %v, want the state seen before the deadline, not the deadline's error", err)
	}
}

func TestPollStopsAtOnce(t *testing.T) {
	start := time.Now()
	err := Poll(t.Context(), "nothing", time.Minute, time.Millisecond, func(context.Context) (bool, error) {
		return false, StopPolling(os.ErrPermission)
	})
	if err != os.ErrPermission || time.Since(start) > 10*time.Second {
		t.Errorf("Poll = %v after %s, want os.ErrPermission at once", err, time.Since(start))
	}
}

func TestPollEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := Poll(ctx, "a cancelled wait", time.Minute, time.Millisecond, func(context.Context) (bool, error) {
		return false, nil
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for a cancelled wait") {
		t.Errorf("Poll = %v, want context.Canceled naming the wait", err)
	}
}

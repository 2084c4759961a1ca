package harness

import (
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"

	"context"
	"fmt"
	"sync"
	"time"

	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

// Healer is heal.Run (what `serve` runs next to the webhook) in this
// process, keeping every pass's Report, so that a test waits on passes
// instead of sleeping.
type Healer struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error

	mu      sync.Mutex
	reports []heal.Report
}

// StartHealer runs heal.Run with o until Stop. o.AfterPass is chained.
func StartHealer(o heal.Options) *Healer {
	h := &Healer{done: make(chan struct{})}
	next := o.AfterPass
	o.AfterPass = func(r heal.Report) {
		h.mu.Lock()
		h.reports = append(h.reports, r)
		h.mu.Unlock()
		if next != nil {
			next(r)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		h.err = heal.Run(ctx, o)
	}()
	return h
}

// Reports are the passes so far, oldest first.
func (h *Healer) Reports() []heal.Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]heal.Report(nil), h.reports...)
}

// Passes is the number of passes so far.
func (h *Healer) Passes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reports)
}

// WaitPasses waits until n passes have finished in all, within timeout.
func (h *Healer) WaitPasses(ctx context.Context, n int, timeout time.Duration) error {
	return webhooktest.Poll(ctx, fmt.Sprintf("%d heal passes", n), timeout, DefaultInterval, func(context.Context) (bool, error) {
		select {
		case <-h.done:
			return false, webhooktest.StopPolling(fmt.Errorf("heal.Run returned: %v", h.err))
		default:
		}
		if got := h.Passes(); got < n {
			return false, fmt.Errorf("%d of %d heal passes", got, n)
		}
		return true, nil
	})
}

// Stop cancels heal.Run and waits for it to return.
func (h *Healer) Stop() error {
	h.cancel()
	select {
	case <-h.done:
		return h.err
	case <-time.After(DefaultTimeout):
		return fmt.Errorf("heal.Run did not return within %s of its context being cancelled", DefaultTimeout)
	}
}

package harness

import (
	"context"
	"time"

	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// DefaultTimeout and DefaultInterval are what tests use unless they have a
// reason not to. The apiserver picks up a new webhook configuration through an
// informer (milliseconds here), so the timeout is generous only for slow,
// shared machines.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultInterval = 50 * time.Millisecond
)

// Eventually is webhooktest.Poll (the one poll loop of every test) with
// DefaultTimeout and DefaultInterval.
func Eventually(ctx context.Context, what string, cond func(ctx context.Context) (done bool, notYet error)) error {
	return webhooktest.Poll(ctx, what, DefaultTimeout, DefaultInterval, cond)
}

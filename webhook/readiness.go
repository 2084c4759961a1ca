package webhook

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// Readiness answers what /readyz answers, for code in the same process: the
// healer restarts Agent pods only while their replacements would be patched.
// Run fills it in; until then it reports that the server has not started.
type Readiness struct {
	checks atomic.Pointer[map[string]healthz.Checker]
}

// Check runs every readiness check and returns the first failure, named.
func (r *Readiness) Check() error {
	checks := r.checks.Load()
	if checks == nil {
		return errors.New("the webhook server has not started")
	}
	for _, name := range slices.Sorted(maps.Keys(*checks)) {
		if err := (*checks)[name](nil); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (r *Readiness) set(checks map[string]healthz.Checker) {
	if r != nil {
		r.checks.Store(&checks)
	}
}

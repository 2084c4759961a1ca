//go:build e2e

// The build tag keeps a plain `go test ./...` from starting a cluster.

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canary-tagger/canary-tagger/test/e2e/cluster"
	"github.com/canary-tagger/canary-tagger/test/e2e/scenario"
)

// tNarrator tells the story into the test log.
type tNarrator struct{ t *testing.T }

func (n tNarrator) Step(i int, title string) { n.t.Helper(); n.t.Logf("== step %d: %s", i, title) }
func (n tNarrator) Say(f string, a ...any)   { n.t.Helper(); n.t.Logf(f, a...) }
func (n tNarrator) Check(f string, a ...any) { n.t.Helper(); n.t.Logf("ok: "+f, a...) }
func (n tNarrator) Show(title, body string) {
	n.t.Helper()
	n.t.Logf("%s\n    %s", title, strings.ReplaceAll(body, "\n", "\n    "))
}

// selectedSteps reads E2E_STEPS ("1,7,14-17"): the steps to run while
// iterating on some of them. The steps build on each other, so the list
// must include what the chosen ones need (step 1 the seed's Rollout, step 7
// the analysis set-up, ...). Unset or empty: every step.
func selectedSteps() (func(int) bool, error) {
	spec := strings.TrimSpace(os.Getenv("E2E_STEPS"))
	if spec == "" {
		return func(int) bool { return true }, nil
	}
	want := map[int]bool{}
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || b < a {
			return nil, fmt.Errorf("E2E_STEPS=%q: %q is not a step number or range", spec, part)
		}
		for i := a; i <= b; i++ {
			want[i] = true
		}
	}
	return func(i int) bool { return want[i] }, nil
}

func TestSeedScenario(t *testing.T) {
	selected, err := selectedSteps()
	if err != nil {
		t.Fatal(err)
	}
	if m, err := cluster.MissingTools(); err != nil {
		t.Fatal(err)
	} else if len(m) > 0 {
		t.Fatalf("e2e tools not built: %s\nbuild them with `make tools` (hack/tools.sh e2e)", strings.Join(m, ", "))
	}

	// Ctrl-C or SIGTERM cancels the run; the cleanup below still stops every process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if d, ok := t.Deadline(); ok {
		// Leave time to stop the processes before go test's -timeout panics.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}

	start := time.Now()
	c, err := cluster.Up(ctx, cluster.Options{
		Binary: filepath.Join(t.TempDir(), "canary-tagger"),
		Logf:   func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range c.Processes() {
				t.Logf("last lines of %s:\n%s", p.LogPath, p.Tail(20))
			}
		}
		if err := c.Down(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	t.Logf("cluster up in %s", time.Since(start).Round(100*time.Millisecond))

	s, err := scenario.New(c.ScenarioEnv())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for _, st := range s.Steps() {
		if !selected(st.N) {
			t.Logf("== step %d: %s (not in E2E_STEPS)", st.N, st.Title)
			continue
		}
		ok := t.Run(fmt.Sprintf("%d", st.N), func(t *testing.T) {
			n := tNarrator{t}
			n.Step(st.N, st.Title)
			stepStart := time.Now()
			if err := st.Run(ctx, n); err != nil {
				t.Fatal(err)
			}
			t.Logf("step %d passed in %s", st.N, time.Since(stepStart).Round(100*time.Millisecond))
		})
		if !ok {
			t.FailNow() // the steps build on each other
		}
	}
}

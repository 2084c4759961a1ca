package scenario

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// stepDoctor runs `canary-tagger doctor` as a person would after the story: the
// webhook configuration, its caBundle and server, every Rollout and agent
// pod, pods left canary after a promotion. It must find nothing to do.
func (s *Scenario) stepDoctor(ctx context.Context, n Narrator) error {
	if s.env.CanaryTagger == "" {
		return errors.New("the doctor step needs Env.CanaryTagger")
	}
	args := []string{"doctor", "--kubeconfig", s.env.Kubeconfig}
	cmd := exec.CommandContext(ctx, s.env.CanaryTagger, args...)
	out, err := cmd.CombinedOutput()
	n.Show("$ canary-tagger doctor", strings.TrimRight(string(out), "\n"))
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return fmt.Errorf("canary-tagger doctor exited %d, want 0 (nothing to do)", exit.ExitCode())
	case err != nil:
		return fmt.Errorf("canary-tagger doctor: %w", err)
	}
	if !strings.Contains(string(out), "All is well") {
		return errors.New("canary-tagger doctor exited 0 without saying all is well")
	}
	n.Check("canary-tagger doctor: exit 0, all is well")
	return nil
}

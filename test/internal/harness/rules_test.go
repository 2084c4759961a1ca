package harness

import (
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

func TestServeRules(t *testing.T) {
	rules, err := ServeRules()
	if err != nil {
		t.Fatal(err)
	}
	if r := rules.Rollout; r.LabelKey != config.DefaultLabelKey || r.StableValue != config.DefaultStableValue || r.CanaryValue != config.DefaultCanaryValue || r.BlueGreen {
		t.Errorf("default Rollout rule %+v, want the contract's defaults without blue-green", r)
	}
	if a := rules.AgentPod; a.LabelKey != config.DefaultLabelKey || a.TagName != config.DefaultTagName || rules.AgentSelector != config.DefaultAgentSelector {
		t.Errorf("default agent-pod rule %+v (selector %q), want the contract's defaults", a, rules.AgentSelector)
	}
	if rules, err := ServeRules("--blue-green", "--canary-value=trial"); err != nil || !rules.Rollout.BlueGreen || rules.Rollout.CanaryValue != "trial" {
		t.Errorf("ServeRules(--blue-green, --canary-value=trial) = %+v, %v", rules.Rollout, err)
	}
	if _, err := ServeRules("--stable-value=canary"); err == nil || !strings.Contains(err.Error(), "stable-value") {
		t.Errorf("equal values: %v, want serve's refusal naming the flag", err)
	}
	if _, err := ServeRules("--no-such-flag"); err == nil {
		t.Error("an unknown flag was accepted")
	}
}

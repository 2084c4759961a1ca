package bench

import (
	"k8s.io/client-go/discovery"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// ShippedPolicy is canary-tagger's policy install as users get it: the
// chart rendered with rollouts.admission=policy, agentPods.enabled=false and
// the default settings, for api's Kubernetes version, in opt-in mode (so
// that it selects only the namespace the benchmark labels).
func ShippedPolicy(repo string, api *APIServer) (*harness.PolicyRender, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(api.Config)
	if err != nil {
		return nil, err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return nil, err
	}
	rules, err := config.Flags{
		LabelKey: config.DefaultLabelKey, StableValue: config.DefaultStableValue, CanaryValue: config.DefaultCanaryValue,
		TagName: config.DefaultTagName, AgentSelector: config.DefaultAgentSelector,
	}.Validate()
	if err != nil {
		return nil, err
	}
	return harness.RenderPolicy(repo, harness.ModeNamespaceOptIn, rules, false, v.GitVersion)
}

package doctor

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// checks is doctor: every check, in the order it runs and is printed. A
// category's checks stand together (docs/doctor.md's table follows this
// order).
var checks = []check{
	{name: "webhook-configuration", category: Webhook, needs: []input{webhookRegistration}, run: checkRegistration},
	{name: "webhook-service", category: Webhook, needs: []input{webhookRegistration}, run: checkServices},
	{name: "webhook-ca-bundle", category: Webhook, needs: []input{webhookRegistration}, run: checkCABundles},
	{name: "excluded-namespaces", category: Namespaces, needs: []input{webhookRegistration, namespaceLabels}, run: checkExcludedNamespaces},
	{name: "heal", category: Heal, needs: []input{healState}, run: checkHealing},
	{name: "rollout-labels", category: Rollout, needs: []input{webhookRegistration, namespaceLabels, storedRollouts, healState}, run: checkRollouts},
	{name: "promoted-canary-pods", category: PromotedCanary, needs: []input{storedRollouts}, run: checkPromoted},
	{name: "agent-pod-mapping", category: AgentPod, needs: []input{webhookRegistration, namespaceLabels, healState}, run: checkAgentPods},
	{name: "argo-rollouts-version", category: ArgoRollouts, needs: []input{storedDeployments}, run: checkArgoController},
}

// A check is one entry of the list: what it reads and how it decides.
type check struct {
	// name identifies it (tests, earlierFindings); the report prints the category.
	name     string
	category Category
	// needs are the inputs it reads; it sees every other one empty.
	needs []input
	// run returns its findings, each of its category.
	run func(ctx context.Context, c *cluster, in inputs) []Finding
}

// cluster is what every check reads the cluster through.
type cluster struct {
	opts Options
	core kubernetes.Interface
	dyn  dynamic.Interface
}

// An input is something checks share: made once, by a step or by the
// runner, never by another check.
type input string

const (
	namespaceLabels     input = "every namespace's labels"
	webhookRegistration input = "the webhook configuration and its two webhooks"
	storedRollouts      input = "the Rollouts, as stored"
	storedDeployments   input = "every Deployment, as stored"
	healState           input = "how the install heals: serve's flags, the heal scope, the Lease"
	earlierFindings     input = "the findings of the checks before, by check name"
)

// inputs holds them.
type inputs struct {
	namespaces   map[string]labels.Set
	registration registration
	rollouts     rolloutList
	deployments  deploymentList
	healing      healing
	earlier      map[string][]Finding
}

// steps make the inputs, in this order, before the first check. An error is
// fatal: the report cannot be made without it.
var steps = []struct {
	makes input
	load  func(ctx context.Context, c *cluster, in *inputs) error
}{
	{namespaceLabels, loadNamespaces},
	{webhookRegistration, loadRegistration},
	{storedRollouts, loadRollouts},
	{storedDeployments, loadDeployments},
	{healState, loadHealing},
}

// only is the view a check with these needs gets.
func (in inputs) only(needs []input) inputs {
	var view inputs
	for _, n := range needs {
		switch n {
		case namespaceLabels:
			view.namespaces = in.namespaces
		case webhookRegistration:
			view.registration = in.registration
		case storedRollouts:
			view.rollouts = in.rollouts
		case storedDeployments:
			view.deployments = in.deployments
		case healState:
			view.healing = in.healing
		case earlierFindings:
			view.earlier = maps.Clone(in.earlier)
		}
	}
	return view
}

// load makes every input, in the steps' order.
func load(ctx context.Context, c *cluster) (inputs, error) {
	var in inputs
	for _, s := range steps {
		if err := s.load(ctx, c, &in); err != nil {
			return inputs{}, err
		}
	}
	return in, nil
}

// runChecks runs the list in order, each check on the inputs it needs; a
// finding is stamped with its check's category.
func runChecks(ctx context.Context, c *cluster, in inputs, list []check) []Finding {
	in.earlier = map[string][]Finding{}
	var all []Finding
	for _, chk := range list {
		found := chk.run(ctx, c, in.only(chk.needs))
		for i := range found {
			found[i].Category = chk.category
		}
		in.earlier[chk.name] = slices.Clone(found)
		all = append(all, found...)
	}
	return all
}

// errorFinding: the check could not be made.
func errorFinding(object string, err error, format string, args ...any) Finding {
	return Finding{Status: Error, Object: object, Message: fmt.Sprintf(format, args...) + ": " + err.Error()}
}

package main

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

var (
	rolloutsResource = schema.GroupVersionResource{Group: rollout.Group, Version: "v1alpha1", Resource: "rollouts"}
	podsResource     = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// listPage is the page size of the checks' LISTs.
const listPage = 500

// each calls fn with every object of resource in namespace (all
// namespaces if "") matching selector, as stored, page by page.
func (c *cluster) each(ctx context.Context, resource schema.GroupVersionResource, namespace, selector string, fn func(map[string]any)) error {
	opts := metav1.ListOptions{LabelSelector: selector, Limit: listPage}
	for {
		list, err := c.dyn.Resource(resource).Namespace(namespace).List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range list.Items {
			fn(list.Items[i].Object)
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			return nil
		}
	}
}

// count is how many objects a check read and how many of them the rule
// would still change.
type count struct{ objects, missing int }

// rolloutsMissing reads every Rollout of namespace and asks the Rollout
// rule, as the webhook would, whether it would still add something: a
// Rollout it would change is one admitted without its labels.
func (c *cluster) rolloutsMissing(ctx context.Context, namespace string) (count, error) {
	var n count
	err := c.each(ctx, rolloutsResource, namespace, "", func(o map[string]any) {
		n.objects++
		if _, res := rollout.Mutate(o, c.rules.Rollout, nil); res.Outcome != outcome.Present {
			n.missing++
		}
	})
	return n, err
}

// podsMissing reads every pod of namespace matching selector and asks the
// agent-pod rule whether it would still change one: a pod whose containers
// do not all map the label already was admitted without the mapping.
func (c *cluster) podsMissing(ctx context.Context, namespace, selector string) (count, error) {
	var n count
	err := c.each(ctx, podsResource, namespace, selector, func(o map[string]any) {
		n.objects++
		if _, res := agentpod.MutatePod(o, c.rules.AgentPod); res.Outcome != outcome.Present {
			n.missing++
		}
	})
	return n, err
}

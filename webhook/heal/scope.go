// Package heal writes what admission would have written to objects that were
// admitted without canary-tagger (the webhook was unreachable, or the object
// predates the install). A pass reads the installed webhook configuration for
// its scope, LISTs in pages, asks the same rule the webhook asks, and patches
// only what the rule adds, guarded by the object's resourceVersion.
// docs/heal.md explains the design.
package heal

import (
	"context"
	"fmt"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

// Resource is what a webhook must be called for to give a pass its scope.
type Resource struct {
	schema.GroupVersionResource
	// Operations: the webhook must be called for at least one of them.
	Operations []admissionv1.OperationType
}

func (r Resource) String() string { return r.GroupResource().String() }

// Rollouts: the Rollout webhook is called on CREATE and UPDATE of rollouts.
var Rollouts = Resource{
	GroupVersionResource: schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"},
	Operations:           []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
}

// LeaseName is the Lease the replicas of one install elect the healer on:
// named after the install's webhook configuration, so that two installs in
// one namespace never share it.
func LeaseName(webhookConfigName string) string { return webhookConfigName + "-heal" }

// Scope is what the installed webhook configuration sends to canary-tagger
// for one resource: a pass heals exactly the objects the apiserver would
// have sent to the webhook.
type Scope struct {
	// Config and Webhook name the configuration and its webhook.
	Config, Webhook string
	// Namespaces and Objects are the webhook's namespaceSelector and
	// objectSelector (everything when absent). Nil when there is no such
	// webhook or a selector does not parse.
	Namespaces, Objects labels.Selector
	// NotHealed says why nothing is healed (no configuration, no webhook
	// for the resource, a selector that does not parse); "" when healing.
	NotHealed string
}

// Heals reports whether the pass heals anything.
func (s Scope) Heals() bool { return s.NotHealed == "" }

// Covers reports whether an object with objLabels in a namespace with
// nsLabels is in scope.
func (s Scope) Covers(nsLabels, objLabels map[string]string) bool {
	return s.Heals() && s.Namespaces.Matches(labels.Set(nsLabels)) && s.Objects.Matches(labels.Set(objLabels))
}

func (s Scope) String() string {
	if !s.Heals() {
		return "nothing healed: " + s.NotHealed
	}
	describe := func(sel labels.Selector) string {
		if sel.Empty() {
			return "all"
		}
		return sel.String()
	}
	return fmt.Sprintf("webhook %s of MutatingWebhookConfiguration %s: namespaces %s, objects %s",
		s.Webhook, s.Config, describe(s.Namespaces), describe(s.Objects))
}

// ReadScope GETs the MutatingWebhookConfiguration named webhookConfigName
// and returns the scope of its first webhook called for r. A configuration
// or webhook that is missing is not an error: the Scope says why nothing is
// healed. Errors are the API's (e.g. forbidden).
func ReadScope(ctx context.Context, c kubernetes.Interface, webhookConfigName string, r Resource) (Scope, error) {
	cfg, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhookConfigName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Missing(webhookConfigName), nil
	}
	if err != nil {
		return Scope{}, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", webhookConfigName, err)
	}
	return ScopeOf(cfg, r), nil
}

// Missing is the scope when the configuration named webhookConfigName does
// not exist.
func Missing(webhookConfigName string) Scope {
	return Scope{Config: webhookConfigName, NotHealed: fmt.Sprintf("MutatingWebhookConfiguration %s not found", webhookConfigName)}
}

// ScopeOf is ReadScope on a configuration already read.
func ScopeOf(cfg *admissionv1.MutatingWebhookConfiguration, r Resource) Scope {
	s := Scope{Config: cfg.Name}
	i := slices.IndexFunc(cfg.Webhooks, func(w admissionv1.MutatingWebhook) bool { return calledFor(w, r) })
	if i < 0 {
		s.NotHealed = fmt.Sprintf("MutatingWebhookConfiguration %s has no webhook called for %s %s",
			cfg.Name, strings.Join(operations(r.Operations), " or "), r)
		return s
	}
	w := cfg.Webhooks[i]
	s.Webhook = w.Name
	var err error
	if s.Namespaces, err = selector(w.NamespaceSelector); err != nil {
		s.Namespaces, s.NotHealed = nil, fmt.Sprintf("webhook %s: namespaceSelector: %v", w.Name, err)
		return s
	}
	if s.Objects, err = selector(w.ObjectSelector); err != nil {
		s.Namespaces, s.Objects, s.NotHealed = nil, nil, fmt.Sprintf("webhook %s: objectSelector: %v", w.Name, err)
		return s
	}
	// CEL matchConditions would need the apiserver's evaluator; healing
	// what the webhook might not have been asked about is the one mistake
	// the healer must not make. The selectors stay: doctor still reads
	// what the webhook is sent by them.
	if len(w.MatchConditions) > 0 {
		s.NotHealed = fmt.Sprintf("webhook %s has matchConditions, which the healer does not evaluate", w.Name)
	}
	return s
}

// selector: an absent selector matches everything, as the apiserver reads it.
func selector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// calledFor reports whether the apiserver calls w for one of r's operations
// on r (not a subresource), at r's version, in a namespace.
func calledFor(w admissionv1.MutatingWebhook, r Resource) bool {
	for _, rule := range w.Rules {
		if rule.Scope != nil && *rule.Scope != admissionv1.AllScopes && *rule.Scope != admissionv1.NamespacedScope {
			continue
		}
		if anyOf(rule.APIGroups, r.Group) && anyOf(rule.APIVersions, r.Version) &&
			(anyOf(rule.Resources, r.Resource) || slices.Contains(rule.Resources, "*/*")) &&
			slices.ContainsFunc(r.Operations, func(op admissionv1.OperationType) bool {
				return slices.Contains(rule.Operations, op) || slices.Contains(rule.Operations, admissionv1.OperationAll)
			}) {
			return true
		}
	}
	return false
}

// anyOf: values holds want or the wildcard "*".
func anyOf(values []string, want string) bool {
	return slices.Contains(values, want) || slices.Contains(values, "*")
}

func operations(ops []admissionv1.OperationType) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = string(op)
	}
	return out
}

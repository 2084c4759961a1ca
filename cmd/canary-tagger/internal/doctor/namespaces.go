package doctor

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

// injectLabel is the namespace label the webhook's namespaceSelector reads.
const injectLabel = "canary-tagger.io/inject"

// loadNamespaces reads every namespace's labels: every scope decision needs
// them, so without them nothing else can be said.
func loadNamespaces(ctx context.Context, c *cluster, in *inputs) error {
	list, err := c.core.CoreV1().Namespaces().List(ctx, listOptions(""))
	if err != nil {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	in.namespaces = map[string]labels.Set{}
	for _, ns := range list.Items {
		set := labels.Set{}
		for k, v := range ns.Labels {
			set[k] = v
		}
		// The apiserver sets this label; an old object may lack it, and
		// the manifests' selectors rely on it.
		if _, ok := set["kubernetes.io/metadata.name"]; !ok {
			set["kubernetes.io/metadata.name"] = ns.Name
		}
		in.namespaces[ns.Name] = set
	}
	return nil
}

// inScope says whether the apiserver sends an object with these labels, in
// namespace ns, to the webhook of scope s. Without the webhook (or with a
// selector the apiserver would refuse) every namespace counts: the question
// is then what is not labelled yet.
func inScope(s heal.Scope, namespaces map[string]labels.Set, ns string, objLabels map[string]string) bool {
	if s.Namespaces == nil || s.Objects == nil {
		return true
	}
	return s.Namespaces.Matches(namespaces[ns]) && s.Objects.Matches(labels.Set(objLabels))
}

// checkExcludedNamespaces lists the namespaces the Rollout webhook's (or
// admission policy binding's) namespaceSelector leaves out, and how one is
// brought in.
func checkExcludedNamespaces(_ context.Context, _ *cluster, in inputs) []Finding {
	object, selector, scope, ok := in.registration.rolloutsAdmitted()
	if !ok {
		return nil
	}
	_, name, _ := strings.Cut(object, "/")
	var excluded, disabled []string
	for _, ns := range sortedKeys(in.namespaces) {
		if inScope(scope, in.namespaces, ns, nil) {
			continue
		}
		excluded = append(excluded, ns)
		if in.namespaces[ns][injectLabel] == "disabled" {
			disabled = append(disabled, ns)
		}
	}
	optIn := false
	if selector != nil {
		optIn = selector.MatchLabels[injectLabel] == "enabled"
		for _, e := range selector.MatchExpressions {
			if e.Key == injectLabel && e.Operator == metav1.LabelSelectorOpIn {
				optIn = true
			}
		}
	}
	mode := "cluster-wide mode"
	if optIn {
		mode = "namespace opt-in mode"
	}
	msg := fmt.Sprintf("%s: %d of %d namespaces are not covered by %s", mode, len(excluded), len(in.namespaces), name)
	if len(disabled) > 0 {
		msg += fmt.Sprintf(" (%d labelled %s=disabled)", len(disabled), injectLabel)
	}
	var fix []string
	if len(excluded) > 0 && (optIn || len(disabled) > 0) { // else nothing a label brings back
		fix = namespaceFix(optIn)
	}
	return []Finding{{Status: Info, Object: object, Message: msg, Items: excluded, Fix: fix}}
}

func listOptions(selector string) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: selector}
}

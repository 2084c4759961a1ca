package heal

import (
	"context"
	"errors"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// rule is a webhook rule; scope nil means unset (the apiserver's "*").
func rule(groups, versions, resources []string, scope *admissionv1.ScopeType, ops ...admissionv1.OperationType) admissionv1.RuleWithOperations {
	return admissionv1.RuleWithOperations{Operations: ops, Rule: admissionv1.Rule{APIGroups: groups, APIVersions: versions, Resources: resources, Scope: scope}}
}

var (
	argo      = []string{"argoproj.io"}
	every     = []string{"*"}
	rollouts  = []string{"rollouts"}
	createUpd = []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}
)

func configWith(webhooks ...admissionv1.MutatingWebhook) *admissionv1.MutatingWebhookConfiguration {
	return &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "canary-tagger"}, Webhooks: webhooks}
}

func webhookWith(name string, rules ...admissionv1.RuleWithOperations) admissionv1.MutatingWebhook {
	return admissionv1.MutatingWebhook{Name: name, Rules: rules}
}

func TestScopeOfFindsTheRolloutWebhook(t *testing.T) {
	namespaced, cluster, all := ptr.To(admissionv1.NamespacedScope), ptr.To(admissionv1.ClusterScope), ptr.To(admissionv1.AllScopes)
	for name, tc := range map[string]struct {
		rules   []admissionv1.RuleWithOperations
		webhook string // "" = nothing healed
	}{
		"the chart's rule":           {[]admissionv1.RuleWithOperations{rule(argo, every, rollouts, namespaced, createUpd...)}, "w"},
		"CREATE only":                {[]admissionv1.RuleWithOperations{rule(argo, every, rollouts, nil, admissionv1.Create)}, "w"},
		"UPDATE only":                {[]admissionv1.RuleWithOperations{rule(argo, every, rollouts, nil, admissionv1.Update)}, "w"},
		"every operation":            {[]admissionv1.RuleWithOperations{rule(argo, every, rollouts, all, admissionv1.OperationAll)}, "w"},
		"every group":                {[]admissionv1.RuleWithOperations{rule(every, every, rollouts, nil, createUpd...)}, "w"},
		"every resource":             {[]admissionv1.RuleWithOperations{rule(argo, every, every, nil, createUpd...)}, "w"},
		"every resource and subres.": {[]admissionv1.RuleWithOperations{rule(argo, every, []string{"*/*"}, nil, createUpd...)}, "w"},
		"the served version":         {[]admissionv1.RuleWithOperations{rule(argo, []string{"v1alpha1"}, rollouts, nil, createUpd...)}, "w"},
		"second rule matches": {[]admissionv1.RuleWithOperations{
			rule([]string{""}, every, []string{"pods"}, nil, admissionv1.Create), rule(argo, every, rollouts, nil, admissionv1.Update)}, "w"},
		"DELETE only":             {[]admissionv1.RuleWithOperations{rule(argo, every, rollouts, nil, admissionv1.Delete)}, ""},
		"status subresource only": {[]admissionv1.RuleWithOperations{rule(argo, every, []string{"rollouts/status"}, nil, createUpd...)}, ""},
		"another group":           {[]admissionv1.RuleWithOperations{rule([]string{"apps"}, every, rollouts, nil, createUpd...)}, ""},
		"another version":         {[]admissionv1.RuleWithOperations{rule(argo, []string{"v1"}, rollouts, nil, createUpd...)}, ""},
		"cluster scope":           {[]admissionv1.RuleWithOperations{rule(argo, every, rollouts, cluster, createUpd...)}, ""},
		"pods":                    {[]admissionv1.RuleWithOperations{rule([]string{""}, every, []string{"pods"}, nil, admissionv1.Create)}, ""},
		"no rules":                {nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			s := ScopeOf(configWith(webhookWith("w", tc.rules...)), Rollouts)
			if s.Webhook != tc.webhook || s.Heals() != (tc.webhook != "") {
				t.Fatalf("webhook %q, heals %t (%s); want webhook %q", s.Webhook, s.Heals(), s, tc.webhook)
			}
			if !s.Heals() && !strings.Contains(s.NotHealed, "no webhook called for CREATE or UPDATE rollouts.argoproj.io") {
				t.Errorf("NotHealed = %q", s.NotHealed)
			}
		})
	}
}

func TestScopeOfTakesTheFirstWebhookForRollouts(t *testing.T) {
	pods := webhookWith("pods", rule([]string{""}, every, []string{"pods"}, nil, admissionv1.Create))
	first := webhookWith("first", rule(argo, every, rollouts, nil, createUpd...))
	first.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	second := webhookWith("second", rule(argo, every, rollouts, nil, createUpd...))
	s := ScopeOf(configWith(pods, first, second), Rollouts)
	if s.Webhook != "first" || s.Config != "canary-tagger" || !s.Heals() {
		t.Fatalf("scope %s, want webhook first of canary-tagger", s)
	}
	if !s.Covers(map[string]string{"team": "a"}, nil) || s.Covers(map[string]string{"team": "b"}, nil) {
		t.Errorf("scope %s does not use the first webhook's namespaceSelector", s)
	}
}

func TestScopeSelectors(t *testing.T) {
	chart := webhookWith("rollouts.canary-tagger.io", rule(argo, every, rollouts, nil, createUpd...))
	chart.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "canary-tagger"}},
		{Key: "canary-tagger.io/inject", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"disabled"}},
	}}
	withObjects := chart
	withObjects.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"heal": "yes"}}
	optIn := chart
	optIn.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"canary-tagger.io/inject": "enabled"}}
	none := chart
	none.NamespaceSelector, none.ObjectSelector = nil, nil

	ns := func(name string, kv ...string) map[string]string {
		l := map[string]string{"kubernetes.io/metadata.name": name}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	for name, tc := range map[string]struct {
		webhook   admissionv1.MutatingWebhook
		ns, obj   map[string]string
		want      bool
		selectors string
	}{
		"cluster-wide: a team namespace":       {chart, ns("shop"), nil, true, ""},
		"cluster-wide: opted out":              {chart, ns("shop", "canary-tagger.io/inject", "disabled"), nil, false, ""},
		"cluster-wide: kube-system":            {chart, ns("kube-system"), nil, false, ""},
		"cluster-wide: own namespace":          {chart, ns("canary-tagger"), nil, false, ""},
		"opt-in: enabled":                      {optIn, ns("shop", "canary-tagger.io/inject", "enabled"), nil, true, ""},
		"opt-in: not labelled":                 {optIn, ns("shop"), nil, false, ""},
		"objectSelector: matches":              {withObjects, ns("shop"), map[string]string{"heal": "yes"}, true, ""},
		"objectSelector: no label":             {withObjects, ns("shop"), map[string]string{"app": "web"}, false, ""},
		"no selectors: everything":             {none, ns("kube-system"), map[string]string{"x": "y"}, true, "namespaces all, objects all"},
		"objectSelector in the description":    {withObjects, ns("shop"), map[string]string{"heal": "yes"}, true, "objects heal=yes"},
		"namespaceSelector in the description": {optIn, ns("shop", "canary-tagger.io/inject", "enabled"), nil, true, "namespaces canary-tagger.io/inject=enabled"},
	} {
		t.Run(name, func(t *testing.T) {
			s := ScopeOf(configWith(tc.webhook), Rollouts)
			if !s.Heals() {
				t.Fatalf("nothing healed: %s", s.NotHealed)
			}
			if got := s.Covers(tc.ns, tc.obj); got != tc.want {
				t.Errorf("Covers(%v, %v) = %t, want %t (%s)", tc.ns, tc.obj, got, tc.want, s)
			}
			if !strings.Contains(s.String(), tc.selectors) {
				t.Errorf("%q does not say %q", s, tc.selectors)
			}
		})
	}
}

func TestScopeRefusesWhatItCannotEvaluate(t *testing.T) {
	bad := webhookWith("w", rule(argo, every, rollouts, nil, createUpd...))
	bad.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
	badObj := webhookWith("w", rule(argo, every, rollouts, nil, createUpd...))
	badObj.ObjectSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpIn}}}
	cel := webhookWith("w", rule(argo, every, rollouts, nil, createUpd...))
	cel.MatchConditions = []admissionv1.MatchCondition{{Name: "not-system", Expression: "true"}}
	for name, tc := range map[string]struct {
		webhook admissionv1.MutatingWebhook
		says    string
	}{
		"bad namespaceSelector": {bad, "webhook w: namespaceSelector: "},
		"bad objectSelector":    {badObj, "webhook w: objectSelector: "},
		"matchConditions":       {cel, "webhook w has matchConditions"},
	} {
		t.Run(name, func(t *testing.T) {
			s := ScopeOf(configWith(tc.webhook), Rollouts)
			if s.Heals() || !strings.Contains(s.NotHealed, tc.says) {
				t.Errorf("heals %t, NotHealed %q; want nothing healed because %q", s.Heals(), s.NotHealed, tc.says)
			}
			if s.Covers(map[string]string{"a": "b"}, nil) {
				t.Errorf("a scope that heals nothing covers an object")
			}
			// Selectors that parse are kept for doctor, which reads what
			// the webhook is sent.
			if parsed := name == "matchConditions"; (s.Namespaces != nil) != parsed || (s.Objects != nil) != parsed {
				t.Errorf("selectors kept: namespaces %v, objects %v; want them only when they parse", s.Namespaces, s.Objects)
			}
		})
	}
}

func TestReadScope(t *testing.T) {
	ctx := context.Background()
	missing, err := ReadScope(ctx, fake.NewClientset(), "canary-tagger", Rollouts)
	if err != nil {
		t.Fatal(err)
	}
	if missing.Heals() || missing.NotHealed != "MutatingWebhookConfiguration canary-tagger not found" {
		t.Errorf("without the configuration: %+v", missing)
	}

	cs := fake.NewClientset(configWith(webhookWith("rollouts.canary-tagger.io", rule(argo, every, rollouts, nil, createUpd...))))
	s, err := ReadScope(ctx, cs, "canary-tagger", Rollouts)
	if err != nil || !s.Heals() || s.Webhook != "rollouts.canary-tagger.io" {
		t.Errorf("ReadScope = %+v, %v", s, err)
	}
	if other, err := ReadScope(ctx, cs, "other", Rollouts); err != nil || other.Heals() {
		t.Errorf("another configuration's name: %+v, %v", other, err)
	}

	cs.PrependReactor("get", "mutatingwebhookconfigurations", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}, "canary-tagger", errors.New("no"))
	})
	if _, err := ReadScope(ctx, cs, "canary-tagger", Rollouts); !apierrors.IsForbidden(err) {
		t.Errorf("a forbidden GET: %v, want the API's error", err)
	}
}

func TestLeaseName(t *testing.T) {
	if got := LeaseName("canary-tagger"); got != "canary-tagger-heal" {
		t.Errorf("LeaseName = %q", got)
	}
}

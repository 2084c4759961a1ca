package rollout_test

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

func TestWorkloadRefResolve(t *testing.T) {
	for _, c := range []struct {
		ref      rollout.WorkloadRef
		resource schema.GroupVersionResource
		labels   []string
	}{
		{rollout.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, []string{"spec", "template", "metadata", "labels"}},
		{rollout.WorkloadRef{APIVersion: "apps/v1beta2", Kind: "ReplicaSet", Name: "web"}, // any version of the group
			schema.GroupVersionResource{Group: "apps", Version: "v1beta2", Resource: "replicasets"}, []string{"spec", "template", "metadata", "labels"}},
		{rollout.WorkloadRef{APIVersion: "v1", Kind: "PodTemplate", Name: "web"},
			schema.GroupVersionResource{Version: "v1", Resource: "podtemplates"}, []string{"template", "metadata", "labels"}},
	} {
		kind, resource, err := c.ref.Resolve()
		if err != nil {
			t.Errorf("%+v: %v", c.ref, err)
			continue
		}
		if resource != c.resource || kind.Kind != c.ref.Kind || !slices.Equal(kind.TemplateLabelsPath(), c.labels) {
			t.Errorf("%+v: %+v, %v; want %v, labels at %q", c.ref, kind, resource, c.resource, c.labels)
		}
	}
	for _, c := range []struct {
		ref  rollout.WorkloadRef
		want string
	}{
		{rollout.WorkloadRef{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web"}, "apps/v1 StatefulSet is not a kind Argo Rollouts supports"},
		{rollout.WorkloadRef{APIVersion: "extensions/v1beta1", Kind: "Deployment", Name: "web"}, "extensions/v1beta1 Deployment is not a kind"},
		{rollout.WorkloadRef{APIVersion: "v1", Kind: "Deployment", Name: "web"}, "v1 Deployment is not a kind"},
		{rollout.WorkloadRef{Kind: "Deployment", Name: "web"}, " Deployment is not a kind"},
		{rollout.WorkloadRef{APIVersion: "a/b/c", Kind: "Deployment", Name: "web"}, `apiVersion "a/b/c"`},
		{rollout.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment"}, "workloadRef has no name"},
	} {
		if _, _, err := c.ref.Resolve(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.ref, err, c.want)
		}
	}
}

// The kinds handed out are copies: a caller cannot change the model.
func TestWorkloadKindsCopied(t *testing.T) {
	kinds := rollout.WorkloadKinds()
	kinds[0].Template[0] = "changed"
	kinds[0].Kind = "changed"
	if again := rollout.WorkloadKinds(); again[0].Kind != "Deployment" || again[0].Template[0] != "spec" {
		t.Errorf("the model changed: %+v", again[0])
	}
	if k, ok := rollout.LookupWorkloadKind(schema.GroupKind{Kind: "PodTemplate"}); !ok || k.Resource != "podtemplates" {
		t.Errorf("core PodTemplate: %+v, %t", k, ok)
	}
	if _, ok := rollout.LookupWorkloadKind(schema.GroupKind{Kind: "Deployment"}); ok {
		t.Error("a core Deployment resolved")
	}
}

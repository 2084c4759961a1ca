package rollout

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// WorkloadRef is spec.workloadRef of a Rollout.
type WorkloadRef struct {
	APIVersion string
	Kind       string
	Name       string
}

func (r WorkloadRef) String() string { return r.Kind + "/" + r.Name }

// TemplateLabels returns the pod template labels of the workload a Rollout
// references. An error (or a nil function) means "could not be read": the
// rule then injects and warns that the template was not checked (contract 2.2).
// The server reads the workload from the cluster, mutate from its input.
type TemplateLabels func(ref WorkloadRef) (map[string]string, error)

// WorkloadKind is a kind of workload a workloadRef can name.
type WorkloadKind struct {
	Group    string // "" for the core group
	Kind     string
	Resource string   // to read it from the API
	Template []string // where its pod template is
}

// GroupKind is the kind's group and name.
func (k WorkloadKind) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: k.Group, Kind: k.Kind}
}

// TemplateLabelsPath is where its pod template's labels are.
func (k WorkloadKind) TemplateLabelsPath() []string {
	return append(slices.Clone(k.Template), "metadata", "labels")
}

// workloadKinds are the kinds Argo Rollouts resolves a workloadRef to, by
// group and kind in any version (argo-rollouts rollout/templateref.go).
var workloadKinds = []WorkloadKind{
	{Group: "apps", Kind: "Deployment", Resource: "deployments", Template: []string{"spec", "template"}},
	{Group: "apps", Kind: "ReplicaSet", Resource: "replicasets", Template: []string{"spec", "template"}},
	{Group: "", Kind: "PodTemplate", Resource: "podtemplates", Template: []string{"template"}},
}

// WorkloadKinds lists the kinds a workloadRef can name.
func WorkloadKinds() []WorkloadKind {
	kinds := slices.Clone(workloadKinds)
	for i := range kinds {
		kinds[i].Template = slices.Clone(kinds[i].Template)
	}
	return kinds
}

// LookupWorkloadKind returns the kind of workload with this group and kind,
// if a workloadRef can name it.
func LookupWorkloadKind(gk schema.GroupKind) (WorkloadKind, bool) {
	for _, k := range WorkloadKinds() {
		if k.GroupKind() == gk {
			return k, true
		}
	}
	return WorkloadKind{}, false
}

// Resolve returns the kind of workload the reference names and the resource
// (in the reference's version) to read it from, as Argo Rollouts resolves
// it; or why it cannot be resolved.
func (r WorkloadRef) Resolve() (WorkloadKind, schema.GroupVersionResource, error) {
	gv, err := schema.ParseGroupVersion(r.APIVersion)
	if err != nil {
		return WorkloadKind{}, schema.GroupVersionResource{}, fmt.Errorf("apiVersion %q: %v", r.APIVersion, err)
	}
	kind, ok := LookupWorkloadKind(schema.GroupKind{Group: gv.Group, Kind: r.Kind})
	if !ok {
		return WorkloadKind{}, schema.GroupVersionResource{}, fmt.Errorf("%s %s is not a kind Argo Rollouts supports for workloadRef", r.APIVersion, r.Kind)
	}
	if r.Name == "" {
		return WorkloadKind{}, schema.GroupVersionResource{}, errors.New("workloadRef has no name")
	}
	return kind, gv.WithResource(kind.Resource), nil
}

func workloadRef(m map[string]any) WorkloadRef {
	s := func(k string) string { v, _ := m[k].(string); return v }
	return WorkloadRef{APIVersion: s("apiVersion"), Kind: s("kind"), Name: s("name")}
}

package offline

import (
	"fmt"
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// workloads are the objects of the input a Rollout's spec.workloadRef may
// name (the kinds Argo Rollouts supports), by "Kind/name". mutate has no
// cluster to read, so it resolves workloadRef from the other documents of
// its input, whatever file they come from (contract 2.2).
type workloads map[string][]workload

type workload struct {
	apiVersion, namespace string
	labels                any // the pod template's labels as decoded
	labelsKind            obj.Kind
}

// templatePaths is where each supported kind keeps its pod template labels.
var templatePaths = map[string][]string{
	"Deployment":  {"spec", "template", "metadata", "labels"},
	"ReplicaSet":  {"spec", "template", "metadata", "labels"},
	"PodTemplate": {"template", "metadata", "labels"},
}

func indexWorkloads(docs []*Document) workloads {
	w := workloads{}
	add := func(o map[string]any) {
		kind := kindOf(o)
		path, ok := templatePaths[kind]
		if !ok {
			return
		}
		name, _ := obj.String(o, "metadata", "name")
		av, _ := obj.String(o, "apiVersion")
		ns, _ := obj.String(o, "metadata", "namespace")
		labels, k := obj.Lookup(o, path...)
		w[kind+"/"+name] = append(w[kind+"/"+name], workload{apiVersion: av, namespace: ns, labels: labels, labelsKind: k})
	}
	for _, d := range docs {
		if d.obj == nil {
			continue
		}
		add(d.obj)
		if items, ok := d.obj["items"].([]any); ok && strings.HasSuffix(kindOf(d.obj), "List") {
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					add(m)
				}
			}
		}
	}
	return w
}

// templateLabels resolves a Rollout's workloadRef: a workload of that kind
// and name in the Rollout's namespace, or, when either side has no
// namespace (as in most manifests), in any. If several match, their labels
// are merged, so a key any of them uses counts as a conflict.
func (w workloads) templateLabels(ro map[string]any) rollout.TemplateLabels {
	ns, _ := obj.String(ro, "metadata", "namespace")
	return func(ref rollout.WorkloadRef) (map[string]string, error) {
		if _, ok := templatePaths[ref.Kind]; !ok {
			return nil, fmt.Errorf("mutate reads only Deployment, ReplicaSet and PodTemplate, not %q", ref.Kind)
		}
		var exact, loose []workload
		for _, c := range w[ref.Kind+"/"+ref.Name] {
			if ref.APIVersion != "" && group(c.apiVersion) != group(ref.APIVersion) {
				continue
			}
			switch {
			case c.namespace == ns:
				exact = append(exact, c)
			case c.namespace == "" || ns == "":
				loose = append(loose, c)
			}
		}
		if len(exact) == 0 {
			exact = loose
		}
		if len(exact) == 0 {
			return nil, fmt.Errorf("no %s named %q in the input", ref.Kind, ref.Name)
		}
		labels := map[string]string{}
		for _, c := range exact {
			switch c.labelsKind {
			case obj.Absent, obj.Null:
			case obj.Map:
				for k, v := range c.labels.(map[string]any) {
					s, _ := v.(string)
					labels[k] = s
				}
			default:
				return nil, fmt.Errorf("its pod template labels are %s", obj.TypeName(c.labels))
			}
		}
		return labels, nil
	}
}

func group(apiVersion string) string {
	g, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return "" // core group ("v1")
	}
	return g
}

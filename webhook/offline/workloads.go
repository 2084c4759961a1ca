package offline

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// workloads are the objects of the input a Rollout's spec.workloadRef may
// name (rollout.WorkloadKinds), by "Kind/name". mutate has no cluster to
// read, so it resolves workloadRef from the other documents of its input,
// whatever file they come from (contract 2.2).
type workloads map[string][]workload

type workload struct {
	namespace  string
	labels     any // the pod template's labels as decoded
	labelsKind obj.Kind
}

func indexWorkloads(docs []*Document) workloads {
	w := workloads{}
	add := func(o map[string]any) {
		av, _ := obj.String(o, "apiVersion")
		gv, err := schema.ParseGroupVersion(av)
		if err != nil {
			return
		}
		kind, ok := rollout.LookupWorkloadKind(gv.WithKind(kindOf(o)).GroupKind())
		if !ok {
			return
		}
		name, _ := obj.String(o, "metadata", "name")
		ns, _ := obj.String(o, "metadata", "namespace")
		labels, k := obj.Lookup(o, kind.TemplateLabelsPath()...)
		key := kind.Kind + "/" + name
		w[key] = append(w[key], workload{namespace: ns, labels: labels, labelsKind: k})
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

// templateLabels resolves a Rollout's workloadRef as the server does: a
// workload of that kind and name in the Rollout's namespace, or, when
// either side has no namespace (as in most manifests), in any. If several
// match, their labels are merged, so a key any of them uses counts as a
// conflict.
func (w workloads) templateLabels(ro map[string]any) rollout.TemplateLabels {
	ns, _ := obj.String(ro, "metadata", "namespace")
	return func(ref rollout.WorkloadRef) (map[string]string, error) {
		kind, err := resolve(ref)
		if err != nil {
			return nil, err
		}
		var exact, loose []workload
		for _, c := range w[kind.Kind+"/"+ref.Name] {
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

// resolve is WorkloadRef.Resolve, except that a manifest may leave the
// reference's apiVersion out: its kind alone then names the workload.
func resolve(ref rollout.WorkloadRef) (rollout.WorkloadKind, error) {
	if ref.APIVersion != "" {
		kind, _, err := ref.Resolve()
		return kind, err
	}
	kinds := rollout.WorkloadKinds()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		if k.Kind == ref.Kind {
			return k, nil
		}
		names[i] = k.Kind
	}
	last := len(names) - 1
	return rollout.WorkloadKind{}, fmt.Errorf("mutate reads only %s and %s, not %q", strings.Join(names[:last], ", "), names[last], ref.Kind)
}

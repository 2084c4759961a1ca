package offline

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// TestDatadogFixturesLayoutOnly: on the Datadog chart renders, the agent
// DaemonSet and the Cluster Agent Deployment are the only documents written differently, and apart from the
// DD_KUBERNETES_POD_LABELS_AS_TAGS entries it decodes as before: the rest
// of the difference is layout (run also checks that every comment and key
// is kept, in order).
func TestDatadogFixturesLayoutOnly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "test", "testdata", "datadog-helm", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in test/testdata/datadog-helm: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res, _, _ := run(t, Input{Name: file, Data: data})
			for _, d := range res.Docs {
				if !d.Changed {
					continue
				}
				if kind := kindOf(d.obj); kind != "DaemonSet" && kind != "Deployment" {
					t.Errorf("document %d (%s) changed", d.Index, kindOf(d.obj))
					continue
				}
				again := &Document{Format: d.Format, Raw: d.Out}
				if err := again.decode(); err != nil {
					t.Fatal(err)
				}
				if before, after := withoutLabelsAsTags(d.obj), withoutLabelsAsTags(again.obj); !reflect.DeepEqual(before, after) {
					t.Errorf("document %d: more than %s changed", d.Index, agentpod.EnvName)
				}
			}
		})
	}
}

// withoutLabelsAsTags is a workload with the variable's entries removed
// from every container's env (the object is modified in place).
func withoutLabelsAsTags(ds map[string]any) map[string]any {
	for _, field := range []string{"containers", "initContainers"} {
		list, _ := obj.Lookup(ds, "spec", "template", "spec", field)
		containers, _ := list.([]any)
		for _, c := range containers {
			cm, _ := c.(map[string]any)
			env, _ := cm["env"].([]any)
			var kept []any
			for _, e := range env {
				if em, _ := e.(map[string]any); em["name"] != agentpod.EnvName {
					kept = append(kept, e)
				}
			}
			cm["env"] = kept
		}
	}
	return ds
}

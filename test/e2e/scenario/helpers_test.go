package scenario

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
)

// relocate must give kubectl a stream in which every namespaced object of the
// chart is in the new namespace, and leave the cluster-scoped ones out.
func TestRelocate(t *testing.T) {
	repo, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(repo, "test", "testdata", "datadog-helm", "default.yaml")
	out, skipped, err := relocate(path, "datadog", "datadog-default")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ClusterRoleBindings", "ClusterRoles"}; !reflect.DeepEqual(skipped, want) {
		t.Errorf("skipped %v, want %v", skipped, want)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	kinds := map[string]int{}
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Kind     string
			Metadata struct{ Namespace string }
		}
		if err := yaml.UnmarshalStrict(doc, &m); err != nil && !strings.Contains(err.Error(), "unknown field") {
			t.Fatal(err)
		}
		if m.Kind == "" {
			continue
		}
		kinds[m.Kind]++
		if m.Metadata.Namespace != "datadog-default" {
			t.Errorf("%s in namespace %q", m.Kind, m.Metadata.Namespace)
		}
	}
	if kinds["DaemonSet"] != 1 || kinds["Deployment"] != 1 {
		t.Errorf("kinds %v: want one DaemonSet and one Deployment", kinds)
	}
	if bytes.Contains(out, []byte("namespace: datadog\n")) {
		t.Error("a `namespace: datadog` line is left")
	}
}

func TestParseHookMetrics(t *testing.T) {
	text := `# TYPE apiserver_admission_webhook_request_total counter
apiserver_admission_webhook_request_total{code="200",name="rollouts.canary-tagger.io",operation="CREATE",rejected="false",type="admit"} 2
apiserver_admission_webhook_request_total{code="200",name="rollouts.canary-tagger.io",operation="UPDATE",rejected="false",type="admit"} 5
apiserver_admission_webhook_request_total{code="200",name="agent-pods.canary-tagger.io",operation="CREATE",rejected="false",type="admit"} 3
apiserver_admission_webhook_fail_open_count{name="agent-pods.canary-tagger.io",type="admit"} 1
apiserver_admission_webhook_rejection_count{name="rollouts.canary-tagger.io"} 9
`
	m, err := webhooktest.ParseFamilies([]byte(text), requestsMetric, failOpenMetric)
	if err != nil {
		t.Fatal(err)
	}
	hc := hookCountsOf(m)
	if got := hc.requests[RolloutHook]; got != 7 {
		t.Errorf("rollout requests %g, want 7", got)
	}
	if got := hc.requests[AgentPodsHook]; got != 3 {
		t.Errorf("agent-pod requests %g, want 3", got)
	}
	if got := hc.failOpen[AgentPodsHook]; got != 1 {
		t.Errorf("fail open %g, want 1", got)
	}
}

func TestChangedLines(t *testing.T) {
	diff := "diff -u -N a b\n--- a\n+++ b\n@@ -1,3 +1,3 @@\n-  generation: 3\n+  generation: 4\n   name: demo\n-        resources: {}\n"
	got := changedLines(diff)
	want := []string{"-  generation: 3", "+  generation: 4", "-        resources: {}"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, l := range []string{"+      stableMetadata:", "-          role: canary", "+    canary-tagger.io/x: y"} {
		if !owned.MatchString(l) {
			t.Errorf("%q is canary-tagger's", l)
		}
	}
	for _, l := range want {
		if owned.MatchString(l) {
			t.Errorf("%q is not canary-tagger's", l)
		}
	}
}

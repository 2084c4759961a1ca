package integration

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// kubectl runs the real kubectl and logs the command line and outcome.
func kubectl(t *testing.T, args ...string) harness.Result {
	t.Helper()
	start := time.Now()
	r := env.Kubectl.Run(t.Context(), args...)
	t.Logf("$ kubectl %s  # exit %d in %s", strings.Join(args, " "), r.ExitCode, time.Since(start).Round(time.Millisecond))
	if r.Err != nil {
		t.Fatalf("running kubectl: %s", r)
	}
	return r
}

// mustKubectl is kubectl that fails the test on a non-zero exit.
func mustKubectl(t *testing.T, args ...string) harness.Result {
	t.Helper()
	r := kubectl(t, args...)
	if !r.OK() {
		t.Fatalf("%s", r)
	}
	return r
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// newNamespace creates a namespace named after the test, with labels.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), "-"), "-")
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	name := base + "-" + rand.String(5)
	if err := env.CreateNamespace(t.Context(), name, labels); err != nil {
		t.Fatal(err)
	}
	return name
}

// seedYAML is the seed's Rollout "demo" (harness.SeedRolloutPath) with
// revisionHistoryLimit 2, with each old→new replacement applied; every old
// string must occur.
func seedYAML(t *testing.T, oldNew ...string) string {
	t.Helper()
	data, err := os.ReadFile(harness.SeedRolloutPath(env.Repo))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	oldNew = append([]string{"  replicas: 5\n", "  replicas: 5\n  revisionHistoryLimit: 2\n"}, oldNew...)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("seed Rollout has no %q to replace", oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	return s
}

// writeFile writes content to a file in the test's temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// seedFile is seedYAML written to a file.
func seedFile(t *testing.T, oldNew ...string) string {
	t.Helper()
	return writeFile(t, "rollout.yaml", seedYAML(t, oldNew...))
}

// Image change used as "a later update".
var imageChange = []string{"argoproj/demo:blue", "argoproj/demo:yellow"}

func getRollout(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	r, err := env.GetRollout(t.Context(), ns, name)
	if err != nil {
		t.Fatalf("reading Rollout %s/%s: %v", ns, name, err)
	}
	return r
}

func nested(obj map[string]any, path ...string) (any, bool) {
	v, found, err := unstructured.NestedFieldNoCopy(obj, path...)
	return v, found && err == nil
}

func metadataPath(side string) []string {
	return []string{"spec", "strategy", "canary", side}
}

// wantInjected asserts that stableMetadata and canaryMetadata are exactly
// {labels: {role: stable}} and {labels: {role: canary}} — what the webhook
// adds to a Rollout that had neither.
func wantInjected(t *testing.T, r *unstructured.Unstructured) {
	t.Helper()
	key := env.Rules.Rollout.LabelKey
	for side, value := range map[string]string{
		"stableMetadata": env.Rules.Rollout.StableValue,
		"canaryMetadata": env.Rules.Rollout.CanaryValue,
	} {
		got, _ := nested(r.Object, metadataPath(side)...)
		want := map[string]any{"labels": map[string]any{key: value}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Rollout %s/%s: spec.strategy.canary.%s = %v, want %v", r.GetNamespace(), r.GetName(), side, got, want)
		}
	}
}

// wantUntouched asserts that neither stableMetadata nor canaryMetadata exists.
func wantUntouched(t *testing.T, r *unstructured.Unstructured) {
	t.Helper()
	for _, side := range []string{"stableMetadata", "canaryMetadata"} {
		if v, ok := nested(r.Object, metadataPath(side)...); ok {
			t.Errorf("Rollout %s/%s: spec.strategy.canary.%s = %v, want it absent (untouched)", r.GetNamespace(), r.GetName(), side, v)
		}
	}
}

func image(t *testing.T, r *unstructured.Unstructured) string {
	t.Helper()
	cs, _ := nested(r.Object, "spec", "template", "spec", "containers")
	list, _ := cs.([]any)
	if len(list) == 0 {
		t.Fatalf("Rollout %s has no containers", r.GetName())
	}
	img, _ := list[0].(map[string]any)["image"].(string)
	return img
}

// parseYAML parses one YAML document (a file or kubectl -o yaml output).
func parseYAML(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("parsing YAML: %v\n%s", err, s)
	}
	return m
}

// reviews reads the webhook's review counter for one webhook (summed over
// outcomes), or for one outcome.
func reviews(t *testing.T, webhook string, outcome ...string) float64 {
	t.Helper()
	m, err := env.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Has(harness.ReviewsMetric) {
		t.Fatalf("the webhook's /metrics has no %s", harness.ReviewsMetric)
	}
	match := map[string]string{"webhook": webhook}
	if len(outcome) > 0 {
		match["outcome"] = outcome[0]
	}
	return m.Sum(harness.ReviewsMetric, match)
}

// crRequests is controller-runtime's request counter for one webhook path
// (counts every request that reached the server, even undecodable ones).
func crRequests(t *testing.T, path string) float64 {
	t.Helper()
	m, err := env.Metrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum(harness.CRRequestsMetric, map[string]string{"webhook": path})
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

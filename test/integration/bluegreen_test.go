package integration

import (
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// blueGreenRollout is the seed's Rollout with a blue-green strategy instead
// of its canary steps.
func blueGreenRollout(t *testing.T, templateLabels string) string {
	t.Helper()
	seed := seedYAML(t)
	i := strings.Index(seed, "  strategy:\n")
	if i < 0 {
		t.Fatalf("the seed Rollout has no strategy:\n%s", seed)
	}
	doc := seed[:i] + "  strategy:\n    blueGreen:\n      activeService: demo\n      previewService: demo-preview\n      autoPromotionEnabled: false\n"
	return strings.Replace(doc, "    metadata:\n      labels:\n        app: demo\n", "    metadata:\n      labels:\n        app: demo\n"+templateLabels, 1)
}

// blueGreenCases run against both installs (TestRolloutAdmission).
var blueGreenCases = []rolloutCase{{"blue-green", blueGreen}}

// Contract 2.5 (the suite runs with --blue-green, and the policy is
// rendered with settings.blueGreen): previewMetadata gets the canary value,
// activeMetadata the stable value; a clash is warned about and the Rollout
// stored untouched.
func blueGreen(t *testing.T, in install) {
	rules := env.Rules.Rollout
	t.Run("injected", func(t *testing.T) {
		ns := newNamespace(t, nil)
		mustKubectl(t, "apply", "-n", ns, "-f", writeFile(t, "bluegreen.yaml", blueGreenRollout(t, "")))
		got := getRollout(t, ns, "demo")
		for side, want := range map[string]string{"previewMetadata": rules.CanaryValue, "activeMetadata": rules.StableValue} {
			if v, _ := nested(got.Object, "spec", "strategy", "blueGreen", side, "labels", rules.LabelKey); v != want {
				t.Errorf("spec.strategy.blueGreen.%s.labels.%s = %v, want %q", side, rules.LabelKey, v, want)
			}
		}
		// Applying the file again changes nothing (the metadata stays).
		r := mustKubectl(t, "apply", "-n", ns, "-f", writeFile(t, "bluegreen.yaml", blueGreenRollout(t, "")))
		wantContains(t, "kubectl apply stdout", r.Stdout, "unchanged")
	})
	t.Run("key in the template", func(t *testing.T) {
		ns := newNamespace(t, nil)
		doc := blueGreenRollout(t, "        "+rules.LabelKey+": web\n")
		_, messages, err := harness.RuleResult(parseYAML(t, doc), rules)
		must(t, err)
		if len(messages) != 1 || !strings.Contains(messages[0], `"`+rules.LabelKey+`"`) {
			t.Fatalf("the rule's warnings %q: want one naming %q", messages, rules.LabelKey)
		}
		r := mustKubectl(t, "apply", "-n", ns, "-f", writeFile(t, "bluegreen.yaml", doc))
		wantWarnings(t, in, r, messages...)
		got := getRollout(t, ns, "demo")
		if _, has := nested(got.Object, "spec", "strategy", "blueGreen", "previewMetadata"); has {
			t.Errorf("previewMetadata added despite the clash: %v", got.Object["spec"])
		}
	})
}

package integration

import (
	"strings"
	"testing"
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

// Contract 2.5 (the suite runs with --blue-green): previewMetadata gets the
// canary value, activeMetadata the stable value; a clash is warned about
// and the Rollout stored untouched.
func TestBlueGreen(t *testing.T) {
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
		r := mustKubectl(t, "apply", "-n", ns, "-f", writeFile(t, "bluegreen.yaml", blueGreenRollout(t, "        "+rules.LabelKey+": web\n")))
		wantContains(t, "kubectl apply stderr", r.Stderr, "Warning:", `"`+rules.LabelKey+`"`)
		got := getRollout(t, ns, "demo")
		if _, has := nested(got.Object, "spec", "strategy", "blueGreen", "previewMetadata"); has {
			t.Errorf("previewMetadata added despite the clash: %v", got.Object["spec"])
		}
	})
}

package scenario

import (
	"context"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// BlueGreenNamespace holds the blue-green Rollout of stepBlueGreen.
const BlueGreenNamespace = "blue-green"

// blueGreenDocs are two Services and the seed's Rollout with a blue-green
// strategy that waits for a manual promotion.
func (s *Scenario) blueGreenDocs() ([]byte, error) {
	seed, err := os.ReadFile(s.env.RolloutFile)
	if err != nil {
		return nil, err
	}
	i := strings.Index(string(seed), "  strategy:\n")
	if i < 0 {
		return nil, fmt.Errorf("%s has no strategy", s.env.RolloutFile)
	}
	service := func(name string) string {
		return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name +
			"\nspec:\n  selector:\n    app: demo\n  ports:\n    - port: 80\n      targetPort: 8080\n---\n"
	}
	// The shipped error-ratio template judges the preview pods before they
	// take the active Service.
	prePromotion := "      prePromotionAnalysis:\n        templates:\n          - templateName: " + ErrorRatioTemplate + "\n            clusterScope: true\n" +
		"        args:\n          - name: service\n            value: " + AnalysisService + "\n          - name: interval\n            value: " + AnalysisInterval +
		"\n          - name: count\n            value: \"" + AnalysisCount + "\"\n"
	return []byte(service("demo-active") + service("demo-preview") + string(seed[:i]) +
		"  strategy:\n    blueGreen:\n      activeService: demo-active\n      previewService: demo-preview\n      autoPromotionEnabled: false\n" + prePromotion), nil
}

// stepBlueGreen: with --blue-green, a blue-green Rollout gets
// previewMetadata with the canary value and activeMetadata with the stable
// value (contract 2.5); the real controller labels the preview pods canary
// before the promotion and stable after it, and the shipped template judges
// them as a prePromotionAnalysis.
func (s *Scenario) stepBlueGreen(ctx context.Context, n Narrator) error {
	if s.env.RestartWebhook == nil {
		return fmt.Errorf("the blue-green step needs Env.RestartWebhook")
	}
	n.Say("canary-tagger restarted with --blue-green:")
	if err := s.env.RestartWebhook(ctx, "--blue-green"); err != nil {
		return err
	}
	bg := *s
	bg.env.Namespace = BlueGreenNamespace
	if err := bg.ensureNamespace(ctx, BlueGreenNamespace); err != nil {
		return err
	}
	docs, err := s.blueGreenDocs()
	if err != nil {
		return err
	}
	n.Say("The seed's Rollout with a blue-green strategy (active and preview Services, manual promotion):")
	if _, _, err := bg.show(ctx, n, docs, "apply", "-n", BlueGreenNamespace, "-f", "-"); err != nil {
		return err
	}
	if _, _, err := bg.show(ctx, n, nil, "get", "rollout", RolloutName, "-n", BlueGreenNamespace, "-o",
		`jsonpath=previewMetadata: {.spec.strategy.blueGreen.previewMetadata}{"\n"}activeMetadata: {.spec.strategy.blueGreen.activeMetadata}{"\n"}`); err != nil {
		return err
	}
	st, err := bg.rollout(ctx)
	if err != nil {
		return err
	}
	for field, want := range map[string]string{"previewMetadata": CanaryValue, "activeMetadata": StableValue} {
		if got, _, _ := unstructured.NestedString(st.Obj.Object, "spec", "strategy", "blueGreen", field, "labels", LabelKey); got != want {
			return fmt.Errorf("spec.strategy.blueGreen.%s.labels.%s = %q, want %q", field, LabelKey, got, want)
		}
	}
	n.Check("canary-tagger added previewMetadata %s=%s and activeMetadata %s=%s", LabelKey, CanaryValue, LabelKey, StableValue)

	var oldHash string
	if _, err := bg.waitForRollout(ctx, "Healthy, 5 active pods "+LabelKey+"="+StableValue, func(_ context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		counts, settled := countPods(pods)
		oldHash = st.StableRS
		return st.Phase == "Healthy" && st.StableRS != "" && settled && len(pods) == 5 && counts[[2]string{StableValue, st.StableRS}] == 5, seen, nil
	}); err != nil {
		return err
	}
	n.Check("Healthy: 5 active pods %s=%s (hash %s)", LabelKey, StableValue, oldHash)

	s.datadog.SetScenario(goodTable(CanaryValue, StableValue))
	if _, _, err := bg.show(ctx, n, nil, "argo", "rollouts", "set", "image", RolloutName, "demo="+ImageAfter, "-n", BlueGreenNamespace); err != nil {
		return err
	}
	var newHash string
	if _, err := bg.waitForRollout(ctx, "paused before promotion: 5 preview pods "+LabelKey+"="+CanaryValue+" beside 5 active "+StableValue, func(_ context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		counts, settled := countPods(pods)
		newHash = st.PodHash
		return st.Paused && newHash != oldHash && settled && counts[[2]string{CanaryValue, newHash}] == 5 && counts[[2]string{StableValue, oldHash}] == 5, seen, nil
	}); err != nil {
		return err
	}
	n.Check("before promotion: 5 preview pods %s=%s (hash %s), 5 active pods %s=%s (hash %s)", LabelKey, CanaryValue, newHash, LabelKey, StableValue, oldHash)
	if err := bg.showPods(ctx, n); err != nil {
		return err
	}
	var run analysisRun
	if err := bg.waitFor(ctx, "the prePromotionAnalysis of the preview pods Successful", func(ctx context.Context) (bool, string, error) {
		var err error
		run, err = bg.newestRun(ctx, newHash)
		return run.Phase == "Successful", run.String(), err
	}); err != nil {
		return err
	}
	s.analysis.seenRuns[run.UID] = true
	if err := valuesMeasured("Successful", 3, near(0))(run.Measurements); err != nil {
		return fmt.Errorf("prePromotionAnalysis %s: %v", run.Name, err)
	}
	bg.showRun(n, run)
	n.Check("prePromotionAnalysis with the shipped template: %s Successful, %d measurements comparing %s=%s with %s=%s", run.Name, len(run.Measurements), LabelKey, CanaryValue, LabelKey, StableValue)

	if _, _, err := bg.show(ctx, n, nil, "argo", "rollouts", "promote", RolloutName, "-n", BlueGreenNamespace); err != nil {
		return err
	}
	if _, err := bg.waitForRollout(ctx, "promoted: the new pods "+LabelKey+"="+StableValue, func(_ context.Context, st rolloutState, pods []podInfo, seen string) (bool, string, error) {
		counts, _ := countPods(pods)
		return st.Phase == "Healthy" && st.StableRS == newHash && counts[[2]string{StableValue, newHash}] == 5 && counts[[2]string{CanaryValue, newHash}] == 0, seen, nil
	}); err != nil {
		return err
	}
	n.Check("after promotion: the 5 pods of hash %s are active and %s=%s", newHash, LabelKey, StableValue)

	n.Say("canary-tagger restarted with its default flags:")
	return s.env.RestartWebhook(ctx)
}

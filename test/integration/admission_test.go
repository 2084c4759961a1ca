package integration

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// install is one way the chart admits Rollouts (rollouts.admission): the
// webhook, or the MutatingAdmissionPolicy and ValidatingAdmissionPolicy
// rendered from the chart. Every Rollout case runs against each.
type install struct {
	admission harness.Admission
}

var installs = []install{{harness.AdmissionWebhook}, {harness.AdmissionPolicy}}

func (in install) policy() bool { return in.admission == harness.AdmissionPolicy }

// use makes in admit Rollouts in mode (and nothing else).
func (in install) use(t *testing.T, mode harness.Mode) {
	t.Helper()
	must(t, env.InstallAdmission(context.Background(), in.admission, mode))
}

// remove makes nothing admit Rollouts.
func (in install) remove(t *testing.T) {
	t.Helper()
	must(t, env.UninstallAdmission(t.Context()))
}

// warning is the line kubectl prints for a warning of the Rollout rule: the
// webhook's own words, or the ValidatingAdmissionPolicy's failure in Warn
// mode, whose message is those words (README, "Rollouts without a webhook").
func (in install) warning(message string) string {
	if in.policy() {
		name := env.PolicyName()
		return fmt.Sprintf("Warning: Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s': %s", name, name, message)
	}
	return "Warning: " + message
}

// evaluations counts Rollout requests the install has acted on: the
// webhook's review counter, or the apiserver's count of the mutating
// policy's evaluations.
func (in install) evaluations(t *testing.T) float64 {
	t.Helper()
	if in.policy() {
		n, err := env.PolicyEvaluations(t.Context())
		must(t, err)
		return n
	}
	return reviews(t, harness.WebhookRollout)
}

// rolloutCase is one case of the table: it runs against an install that is
// in effect, cluster-wide, and leaves it so.
type rolloutCase struct {
	name string
	run  func(t *testing.T, in install)
}

// TestRolloutAdmission runs every Rollout case (rollout_test.go,
// bluegreen_test.go, modes_test.go, and the shapes and audit cases here)
// against the webhook and then against the policy, on the same apiserver
// with the same kubectl. What differs is asserted where it differs, as the
// README's table of modes says.
func TestRolloutAdmission(t *testing.T) {
	cases := slices.Concat(rolloutCases, blueGreenCases, modeCases, []rolloutCase{
		{"every shape as the rule says", everyShapeAsTheRuleSays},
		{"audit annotations", auditAnnotations},
	})
	t.Cleanup(func() { restoreDefault(t) })
	for _, in := range installs {
		t.Run(string(in.admission), func(t *testing.T) {
			in.use(t, harness.ModeClusterWide)
			webhookReviews := reviews(t, harness.WebhookRollout)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, in) })
				if env.Admission() != in.admission || env.Mode() != harness.ModeClusterWide {
					t.Errorf("%s left %q admitting Rollouts in mode %q", c.name, env.Admission(), env.Mode())
					in.use(t, harness.ModeClusterWide)
				}
			}
			// With the policy, the Rollout webhook is not registered: the
			// server never saw one of these Rollouts.
			if n := reviews(t, harness.WebhookRollout) - webhookReviews; in.policy() && n != 0 {
				t.Errorf("the Rollout webhook got %v reviews while rollouts.admission=policy", n)
			}
		})
	}
}

// warnings are the kubectl stderr lines that are warnings.
func warnings(stderr string) []string {
	var out []string
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, "Warning: ") {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return out
}

// wantWarnings asserts that kubectl printed exactly the rule's messages as
// in prints them.
func wantWarnings(t *testing.T, in install, r harness.Result, messages ...string) {
	t.Helper()
	want := []string{}
	for _, m := range messages {
		want = append(want, in.warning(m))
	}
	if got := warnings(r.Stderr); !slices.Equal(got, want) {
		t.Errorf("kubectl warnings:\n got %q\nwant %q", got, want)
	}
}

// Every shape of contract 2 (harness.RolloutShapes), created with
// `kubectl create --dry-run=server`: the spec the apiserver answers is the
// rule's operations applied to the file, and kubectl prints the rule's
// warnings — for the webhook, which runs the rule, and for the policy,
// which must do the same in CEL.
func everyShapeAsTheRuleSays(t *testing.T, in install) {
	ns := newNamespace(t, nil)
	shapes, err := harness.RolloutShapes(env.Repo, env.Rules.Rollout.LabelKey)
	must(t, err)
	for _, s := range shapes {
		t.Run(s.Name, func(t *testing.T) {
			want, messages, err := harness.RuleResult(s.Object, env.Rules.Rollout)
			must(t, err)
			doc, err := yaml.Marshal(s.Object)
			must(t, err)
			r := mustKubectl(t, "create", "--dry-run=server", "-o", "json", "-n", ns, "-f", writeFile(t, "shape.yaml", string(doc)))
			got := parseYAML(t, r.Stdout)
			if !reflect.DeepEqual(normalise(t, got["spec"]), normalise(t, want["spec"])) {
				t.Errorf("spec as admitted:\n got %v\nwant %v (the rule's)", got["spec"], want["spec"])
			}
			wantWarnings(t, in, r, messages...)
		})
	}
}

// The audit log: the webhook's review leaves `outcome`, `reason` and
// `injected` audit annotations (under its name); a policy leaves none for
// the mutation, and its clash warning is recorded by the
// ValidatingAdmissionPolicy's Audit action instead.
func auditAnnotations(t *testing.T, in install) {
	key := env.Rules.Rollout.LabelKey
	ns := newNamespace(t, nil)
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))
	injected, err := env.WaitAuditEvent(t.Context(), ns, "demo", "create")
	must(t, err)

	clashName := "clash-" + rand.String(4)
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t,
		"metadata:\n  name: demo\n", "metadata:\n  name: "+clashName+"\n",
		"    metadata:\n      labels:\n        app: demo\n", "    metadata:\n      labels:\n        app: demo\n        "+key+": web\n"))
	clash, err := env.WaitAuditEvent(t.Context(), ns, clashName, "create")
	must(t, err)

	const webhookPrefix = "rollouts.canary-tagger.io/"
	const vapFailure = "validation.policy.admission.k8s.io/validation_failure"
	ours := func(ev harness.AuditEvent) map[string]string {
		m := map[string]string{}
		for k, v := range ev.Annotations {
			if strings.HasPrefix(k, webhookPrefix) || k == vapFailure {
				m[k] = v
			}
		}
		return m
	}
	if in.policy() {
		if got := ours(injected); len(got) != 0 {
			t.Errorf("policy: the injected create has audit annotations %v, want none of the webhook's", got)
		}
		got := ours(clash)
		if len(got) != 1 || !strings.Contains(got[vapFailure], `"`+env.PolicyName()+`"`) ||
			!strings.Contains(got[vapFailure], `already used in spec.template.metadata.labels`) {
			t.Errorf("policy: the clash's audit annotations %v, want only %s naming the policy and the clash", got, vapFailure)
		}
		return
	}
	if got := injected.Annotations[webhookPrefix+"outcome"]; got != "injected" {
		t.Errorf("webhook: outcome audit annotation %q, want injected (all: %v)", got, injected.Annotations)
	}
	wantAdded := fmt.Sprintf("stableMetadata.labels.%s=%s", key, env.Rules.Rollout.StableValue)
	if got := injected.Annotations[webhookPrefix+"injected"]; !strings.Contains(got, wantAdded) {
		t.Errorf("webhook: injected audit annotation %q, want it to name %s", got, wantAdded)
	}
	if got := clash.Annotations[webhookPrefix+"outcome"]; got != "conflict" {
		t.Errorf("webhook: the clash's outcome audit annotation %q, want conflict (all: %v)", got, clash.Annotations)
	}
	if _, has := clash.Annotations[vapFailure]; has {
		t.Errorf("webhook: the clash has a ValidatingAdmissionPolicy audit annotation: %v", clash.Annotations)
	}
}

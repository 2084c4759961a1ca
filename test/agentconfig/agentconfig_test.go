// Package agentconfig_test proves canary-tagger's agent-pod rule against the
// real client of its output, the Datadog Agent's config code: for every agent
// pod of the Datadog Helm renders, Operator-shaped pods, and pods that mount a
// datadog.yaml or set DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, the pod-label
// mapping each container's Agent process ends up with after the patch keeps
// every mapping it had before, and maps role → kube_role wherever the rule
// says it injected.
//
// It is its own module so that the Agent's module graph stays out of the
// test module (see docs/agent-config.md); `make unit` runs it.
package agentconfig_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/config"
)

const (
	labelKey = config.DefaultLabelKey
	tagName  = config.DefaultTagName
	podVar   = "DD_KUBERNETES_POD_LABELS_AS_TAGS"
)

// ruleOptions are the rule's settings as `serve` has them with no flags (its
// agent selector matches the three Agent components). This module cannot
// import the test module's harness.ServeRules; it takes the defaults the same
// way, from the flag definitions.
func ruleOptions(t *testing.T) agentpod.Options {
	t.Helper()
	var flags config.Flags
	flags.Register(flag.NewFlagSet("serve", flag.ContinueOnError))
	rules, err := flags.Validate()
	if err != nil {
		t.Fatal(err)
	}
	return rules.AgentPod
}

// containerRef names a container of the pod.
type containerRef struct {
	init bool
	name string
}

func (r containerRef) String() string {
	if r.init {
		return "initContainers/" + r.name
	}
	return "containers/" + r.name
}

// decision is what a rule says it did to one container.
type decision struct {
	action agentpod.Action
	tag    string // the tag it says the label already maps to (present)
	note   string
}

// apply applies RFC 6902 operations to the pod.
func apply(t *testing.T, pod map[string]any, ops any) map[string]any {
	t.Helper()
	doc, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatalf("the operations are not a JSON Patch: %v\n%s", err, raw)
	}
	out, err := patch.Apply(doc)
	if err != nil {
		t.Fatalf("the operations do not apply to the pod: %v\n%s", err, raw)
	}
	var patched map[string]any
	if err := json.Unmarshal(out, &patched); err != nil {
		t.Fatal(err)
	}
	return patched
}

type podContainer struct {
	ref containerRef
	c   map[string]any
}

func podContainers(pod map[string]any) []podContainer {
	var out []podContainer
	for _, field := range []string{"containers", "initContainers"} {
		for _, c := range asSlice(asMap(pod["spec"])[field]) {
			m := asMap(c)
			name, _ := m["name"].(string)
			out = append(out, podContainer{containerRef{field == "initContainers", name}, m})
		}
	}
	return out
}

// checkAgentMappings loads every container of the pod before and after the
// patch through the Agent's config code, with each config implementation,
// and returns what breaks the property:
//   - a mapping the Agent had before is gone or changed after;
//   - a container reported injected whose Agent does not map role → kube_role;
//   - a container reported present whose Agent mapping changed, or does not
//     map role to the tag reported;
//   - any other container (skipped, or not handled) whose mapping changed;
//   - in a safe case, an Agent container that does not map role at all.
func checkAgentMappings(t *testing.T, c agentCase, after map[string]any, decisions map[containerRef]decision) []string {
	t.Helper()
	var violations []string
	afterByRef := map[containerRef]map[string]any{}
	for _, pc := range podContainers(after) {
		afterByRef[pc.ref] = pc.c
	}
	for _, pc := range podContainers(c.pod) {
		ac, ok := afterByRef[pc.ref]
		if !ok {
			violations = append(violations, pc.ref.String()+": gone after the patch")
			continue
		}
		d, handled := decisions[pc.ref]
		t.Run(pc.ref.String(), func(t *testing.T) {
			for _, lib := range configLibs {
				var before, got map[string]string
				t.Run(lib.name+"/before", func(t *testing.T) {
					before = agentPodLabelsAsTags(t, lib.name, lib.param, configName(pc.ref.name),
						containerEnv(t, pc.c), mountedConfig(t, c.pod, pc.c, c.objects))
				})
				t.Run(lib.name+"/after", func(t *testing.T) {
					got = agentPodLabelsAsTags(t, lib.name, lib.param, configName(pc.ref.name),
						containerEnv(t, ac), mountedConfig(t, after, ac, c.objects))
				})
				if before == nil || got == nil {
					violations = append(violations, fmt.Sprintf("%s [%s]: the Agent's config could not be loaded", pc.ref, lib.name))
					continue
				}
				t.Logf("%s [%s] %s: before %v, after %v", pc.ref, lib.name, describe(d, handled), before, got)
				v := func(format string, args ...any) {
					violations = append(violations, fmt.Sprintf("%s [%s] ", pc.ref, lib.name)+fmt.Sprintf(format, args...))
				}
				for _, k := range sortedKeys(before) {
					if a, ok := got[k]; !ok {
						v("loses %s → %s (before %v, after %v)", k, before[k], before, got)
					} else if a != before[k] {
						v("changes %s → %s to %s → %s", k, before[k], k, a)
					}
				}
				switch {
				case handled && d.action == agentpod.ActionInjected:
					if got[labelKey] != tagName {
						v("reported injected, but the Agent maps %s to %q (after %v)", labelKey, got[labelKey], got)
					}
				case handled && d.action == agentpod.ActionPresent:
					if !maps.Equal(before, got) {
						v("reported present, but the mapping changed from %v to %v", before, got)
					}
					if before[labelKey] != d.tag {
						v("reported present (%s), but the Agent maps %s to %q", d.tag, labelKey, before[labelKey])
					}
				default:
					if !maps.Equal(before, got) {
						v("%s, but the mapping changed from %v to %v", describe(d, handled), before, got)
					}
				}
				if c.safe && !pc.ref.init && got[labelKey] == "" {
					v("nothing maps %s here, so the Agent must end up mapping it, but it maps %v (%s)", labelKey, got, describe(d, handled))
				}
			}
		})
	}
	return violations
}

func describe(d decision, handled bool) string {
	if !handled {
		return "not handled"
	}
	s := string(d.action)
	if d.note != "" {
		s += ": " + d.note
	}
	return s
}

// TestAgentKeepsEveryMapping runs canary-tagger's rule on every case and
// checks the result with the Agent's own config code.
func TestAgentKeepsEveryMapping(t *testing.T) {
	opts := ruleOptions(t)
	injected := 0
	for _, c := range allCases(t) {
		t.Run(c.name, func(t *testing.T) {
			input := deepCopy(t, c.pod)
			ops, res := agentpod.MutatePod(input, opts)
			if !maps.EqualFunc(input, c.pod, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
				t.Error("MutatePod changed its input")
			}
			t.Logf("rule: outcome %v, reason %q, status %q, %d operations", res.Outcome, res.Reason, res.Status(), len(ops))
			decisions := map[containerRef]decision{}
			// The rule lists every container, then the init containers it
			// handled (those that declare the variable).
			regular := len(asSlice(asMap(c.pod["spec"])["containers"]))
			for i, rc := range res.Containers {
				note := rc.Tag
				if rc.Action == agentpod.ActionSkipped {
					note = string(rc.Reason)
				}
				decisions[containerRef{i >= regular, rc.Name}] = decision{rc.Action, rc.Tag, note}
				if rc.Action == agentpod.ActionInjected {
					injected++
				}
			}
			after := apply(t, c.pod, ops)
			for _, v := range checkAgentMappings(t, c, after, decisions) {
				t.Error(v)
			}
		})
	}
	if injected == 0 {
		t.Error("the rule injected into no container of any case: the property was not exercised")
	}
}

// naiveRule adds role → kube_role to every container's variable (appending
// the variable where there is none), blind to mounted config files and to
// DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS: what canary-tagger must not be.
func naiveRule(t *testing.T, pod map[string]any) ([]map[string]any, map[containerRef]decision) {
	t.Helper()
	var ops []map[string]any
	decisions := map[containerRef]decision{}
	for _, field := range []string{"containers", "initContainers"} {
		for i, cv := range asSlice(asMap(pod["spec"])[field]) {
			c := asMap(cv)
			name, _ := c["name"].(string)
			ref := containerRef{field == "initContainers", name}
			env := asSlice(c["env"])
			last := -1
			for j, e := range env {
				if asMap(e)["name"] == podVar {
					last = j
				}
			}
			at := fmt.Sprintf("/spec/%s/%d/env", field, i)
			switch {
			case last < 0 && ref.init:
				continue
			case last < 0 && len(env) == 0:
				ops = append(ops, map[string]any{"op": "add", "path": at, "value": []any{map[string]any{"name": podVar, "value": `{"role":"kube_role"}`}}})
			case last < 0:
				ops = append(ops, map[string]any{"op": "add", "path": at + "/-", "value": map[string]any{"name": podVar, "value": `{"role":"kube_role"}`}})
			default:
				m := map[string]string{}
				if err := json.Unmarshal([]byte(fmt.Sprint(asMap(env[last])["value"])), &m); err != nil {
					t.Fatalf("%s: %v", ref, err)
				}
				if tag, ok := m[labelKey]; ok {
					decisions[ref] = decision{action: agentpod.ActionPresent, tag: tag}
					continue
				}
				m[labelKey] = tagName
				b, _ := json.Marshal(m)
				ops = append(ops, map[string]any{"op": "replace", "path": fmt.Sprintf("%s/%d/value", at, last), "value": string(b)})
			}
			decisions[ref] = decision{action: agentpod.ActionInjected}
		}
	}
	return ops, decisions
}

// TestCheckCatchesNaiveRule shows the check has teeth: the naive rule breaks
// the property exactly in the cases marked naiveLoses (a datadog.yaml the
// added variable hides, a resources variable whose role wins over ours), and
// nowhere else.
func TestCheckCatchesNaiveRule(t *testing.T) {
	var caught []string
	for _, c := range allCases(t) {
		t.Run(c.name, func(t *testing.T) {
			ops, decisions := naiveRule(t, c.pod)
			violations := checkAgentMappings(t, c, apply(t, c.pod, ops), decisions)
			switch {
			case c.naiveLoses && len(violations) == 0:
				t.Error("the naive rule should break the property here, but the check found nothing")
			case !c.naiveLoses && len(violations) > 0:
				t.Errorf("the naive rule is safe here, but the check says:\n%s", strings.Join(violations, "\n"))
			}
			for _, v := range violations {
				caught = append(caught, c.name+": "+v)
			}
		})
	}
	t.Logf("what a naive rule would break (%d findings):\n%s", len(caught), strings.Join(caught, "\n"))
}

package datadogagent_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/datadogagent"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

var defaults = datadogagent.Options{LabelKey: "role", TagName: "kube_role"}

// dda builds a DatadogAgent from its spec, in YAML flow style.
func dda(spec string) string {
	return `{apiVersion: datadoghq.com/v2alpha1, kind: DatadogAgent, metadata: {name: datadog, namespace: datadog}, spec: ` + spec + `}`
}

const fileMapping = `{configData: "kubernetes_pod_labels_as_tags:\n  app: kube_app\n  team: team\n"}`

type tcase struct {
	name    string
	in      string
	opts    *datadogagent.Options
	outcome outcome.Outcome
	reason  datadogagent.Reason
	detail  string // a part of the detail
	// want is spec.global.podLabelsAsTags afterwards (when injected).
	want     map[string]any
	warnings int
	quiet    bool
}

var cases = []tcase{
	// Injected.
	{name: "no global", in: dda(`{features: {apm: {enabled: true}}}`), outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "no spec", in: `{apiVersion: datadoghq.com/v2alpha1, kind: DatadogAgent, metadata: {name: d}}`, outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "spec null", in: `{apiVersion: datadoghq.com/v2alpha1, kind: DatadogAgent, metadata: {name: d}, spec: null}`, outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "global null", in: dda(`{global: null}`), outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "no podLabelsAsTags", in: dda(`{global: {site: datadoghq.eu}}`), outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "podLabelsAsTags null", in: dda(`{global: {podLabelsAsTags: null}}`), outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "podLabelsAsTags empty", in: dda(`{global: {podLabelsAsTags: {}}}`), outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "existing mappings kept", in: dda(`{global: {podLabelsAsTags: {app: kube_app, "*": "%%label%%", team: "+team"}}}`), outcome: outcome.Injected,
		want: map[string]any{"app": "kube_app", "*": "%%label%%", "team": "+team", "role": "kube_role"}},
	{name: "label key with a slash", in: dda(`{global: {podLabelsAsTags: {app: kube_app}}}`), opts: &datadogagent.Options{LabelKey: "canary-tagger.io/role", TagName: "kube_role"},
		outcome: outcome.Injected, want: map[string]any{"app": "kube_app", "canary-tagger.io/role": "kube_role"}},
	{name: "other tag name", in: dda(`{global: {podLabelsAsTags: {app: kube_app}}}`), opts: &datadogagent.Options{LabelKey: "role", TagName: "rollout_role"},
		outcome: outcome.Injected, want: map[string]any{"app": "kube_app", "role": "rollout_role"}},
	// Another label already mapped to the tag: added, as the agent-pod rule does, with a warning.
	{name: "clash: another label maps to the tag", in: dda(`{global: {podLabelsAsTags: {tier: kube_role}}}`), outcome: outcome.Injected,
		want: map[string]any{"tier": "kube_role", "role": "kube_role"}, warnings: 1},
	// The file is already hidden by the variable podLabelsAsTags sets.
	{name: "custom config with global", in: dda(`{global: {podLabelsAsTags: {app: kube_app}}, override: {nodeAgent: {customConfigurations: {datadog.yaml: ` + fileMapping + `}}}}`),
		outcome: outcome.Injected, want: map[string]any{"app": "kube_app", "role": "kube_role"}},
	{name: "custom config without a mapping", in: dda(`{override: {nodeAgent: {customConfigurations: {datadog.yaml: {configData: "log_level: debug\n"}}}}}`),
		outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "custom config with an empty mapping", in: dda(`{override: {nodeAgent: {customConfigurations: {datadog.yaml: {configData: "kubernetes_pod_labels_as_tags: {}\n"}}}}}`),
		outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "custom system-probe.yaml", in: dda(`{override: {nodeAgent: {customConfigurations: {system-probe.yaml: {configMap: {name: sp}}}}}}`),
		outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "envFrom with global", in: dda(`{global: {podLabelsAsTags: {app: kube_app}}, override: {nodeAgent: {envFrom: [{configMapRef: {name: x}}]}}}`),
		outcome: outcome.Injected, want: map[string]any{"app": "kube_app", "role": "kube_role"}},
	{name: "global env hidden by podLabelsAsTags", in: dda(`{global: {podLabelsAsTags: {app: kube_app}, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"team":"team"}'}]}}`),
		outcome: outcome.Injected, want: map[string]any{"app": "kube_app", "role": "kube_role"}},
	{name: "global env mapping nothing", in: dda(`{global: {env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: "{}"}]}}`),
		outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "resources mapping another label", in: dda(`{global: {kubernetesResourcesLabelsAsTags: {pods: {tier: kube_tier}, nodes: {zone: zone}}}}`),
		outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},
	{name: "other override env", in: dda(`{override: {nodeAgent: {env: [{name: DD_LOG_LEVEL, value: debug}], containers: {agent: {env: [{name: DD_TAGS, value: a:b}]}}}}}`),
		outcome: outcome.Injected, want: map[string]any{"role": "kube_role"}},

	// Present.
	{name: "role already mapped", in: dda(`{global: {podLabelsAsTags: {role: team_role}}}`), outcome: outcome.Present},
	{name: "role already mapped, other case", in: dda(`{global: {podLabelsAsTags: {Role: kube_role}}}`), outcome: outcome.Present},

	// Left alone: a mapping would be lost or hidden.
	{name: "custom config without global", in: dda(`{override: {nodeAgent: {customConfigurations: {datadog.yaml: ` + fileMapping + `}}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonConfigFile, detail: `spec.override.nodeAgent.customConfigurations[datadog.yaml] maps {"app":"kube_app","team":"team"}`},
	{name: "cluster agent custom config", in: dda(`{override: {clusterAgent: {customConfigurations: {datadog-cluster.yaml: ` + fileMapping + `}}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonConfigFile, detail: `spec.override.clusterAgent.customConfigurations[datadog-cluster.yaml]`},
	{name: "custom config upper-case key", in: dda(`{override: {nodeAgent: {customConfigurations: {datadog.yaml: {configData: "KUBERNETES_POD_LABELS_AS_TAGS: '{\"app\":\"kube_app\"}'\n"}}}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonConfigFile},
	{name: "custom config from a ConfigMap", in: dda(`{override: {nodeAgent: {customConfigurations: {datadog.yaml: {configMap: {name: my-datadog-yaml}}}}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonConfigFile, detail: `ConfigMap "my-datadog-yaml"`},
	{name: "custom config not YAML", in: dda(`{override: {nodeAgent: {customConfigurations: {datadog.yaml: {configData: "a: [b\n"}}}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonConfigFile, detail: "not YAML"},
	{name: "override env", in: dda(`{global: {podLabelsAsTags: {app: kube_app}}, override: {nodeAgent: {env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"team":"team"}'}]}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonOverrideEnv, detail: "spec.override.nodeAgent.env[0]"},
	{name: "override env without global", in: dda(`{override: {clusterAgent: {env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"team":"team"}'}]}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonOverrideEnv, detail: "spec.override.clusterAgent.env[0]"},
	{name: "container override env", in: dda(`{override: {nodeAgent: {containers: {trace-agent: {env: [{name: DD_LOG_LEVEL, value: info}, {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{}'}]}}}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonOverrideEnv, detail: "spec.override.nodeAgent.containers.trace-agent.env[1]"},
	{name: "global env without podLabelsAsTags", in: dda(`{global: {env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"team":"team"}'}]}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonGlobalEnv, detail: `spec.global.env[0] is "{\"team\":\"team\"}"`},
	{name: "global env valueFrom", in: dda(`{global: {env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: {configMapKeyRef: {name: x, key: y}}}]}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonGlobalEnv, detail: "valueFrom"},
	{name: "override envFrom without global", in: dda(`{override: {nodeAgent: {envFrom: [{configMapRef: {name: x}}]}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonEnvFrom, detail: "spec.override.nodeAgent.envFrom"},
	{name: "resources field maps role", in: dda(`{global: {podLabelsAsTags: {app: kube_app}, kubernetesResourcesLabelsAsTags: {pods: {role: team_role}}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonResourcesMapKey, detail: "spec.global.kubernetesResourcesLabelsAsTags.pods"},
	{name: "resources variable maps role", in: dda(`{override: {nodeAgent: {env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: '{"pods.":{"Role":"team_role"}}'}]}}}`),
		outcome: outcome.Skipped, reason: datadogagent.ReasonResourcesMapKey, detail: "spec.override.nodeAgent.env[0]"},

	// Not ours, or another version.
	{name: "not a DatadogAgent", in: `{apiVersion: v1, kind: ConfigMap, metadata: {name: x}}`, outcome: outcome.Skipped, reason: datadogagent.ReasonNotDatadogAgent, quiet: true},
	{name: "DatadogAgent of another group", in: `{apiVersion: example.com/v1, kind: DatadogAgent, metadata: {name: x}}`, outcome: outcome.Skipped, reason: datadogagent.ReasonNotDatadogAgent, quiet: true},
	{name: "no apiVersion", in: `{kind: DatadogAgent, metadata: {name: x}}`, outcome: outcome.Skipped, reason: datadogagent.ReasonNotDatadogAgent, quiet: true},
	{name: "v1alpha1", in: `{apiVersion: datadoghq.com/v1alpha1, kind: DatadogAgent, metadata: {name: x}, spec: {agent: {}}}`,
		outcome: outcome.Skipped, reason: datadogagent.ReasonVersion, detail: `"datadoghq.com/v1alpha1"`},

	// Malformed: left alone, the field named.
	{name: "spec a string", in: `{apiVersion: datadoghq.com/v2alpha1, kind: DatadogAgent, spec: x}`, outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec is a string"},
	{name: "global a list", in: dda(`{global: []}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.global is an array"},
	{name: "podLabelsAsTags a string", in: dda(`{global: {podLabelsAsTags: "role=kube_role"}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.global.podLabelsAsTags is a string"},
	{name: "podLabelsAsTags value a number", in: dda(`{global: {podLabelsAsTags: {app: 1}}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.global.podLabelsAsTags.app is a number"},
	{name: "global env a map", in: dda(`{global: {env: {a: b}}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.global.env is an object"},
	{name: "global env entry a string", in: dda(`{global: {env: [x]}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.global.env[0] is a string"},
	{name: "override a list", in: dda(`{override: []}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.override is an array"},
	{name: "component a string", in: dda(`{override: {nodeAgent: x}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.override.nodeAgent is a string"},
	{name: "override env a string", in: dda(`{override: {nodeAgent: {env: x}}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.override.nodeAgent.env is a string"},
	{name: "containers a list", in: dda(`{override: {nodeAgent: {containers: []}}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.override.nodeAgent.containers is an array"},
	{name: "container env entry a number", in: dda(`{override: {nodeAgent: {containers: {agent: {env: [1]}}}}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "spec.override.nodeAgent.containers.agent.env[0] is a number"},
	{name: "customConfigurations a list", in: dda(`{override: {nodeAgent: {customConfigurations: []}}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "customConfigurations is an array"},
	{name: "configData a map", in: dda(`{override: {nodeAgent: {customConfigurations: {datadog.yaml: {configData: {a: b}}}}}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "configData is an object"},
	{name: "resources field a list", in: dda(`{global: {kubernetesResourcesLabelsAsTags: []}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "kubernetesResourcesLabelsAsTags is an array"},
	{name: "envFrom a map", in: dda(`{override: {nodeAgent: {envFrom: {a: b}}}}`), outcome: outcome.Skipped, reason: datadogagent.ReasonUnexpectedType, detail: "envFrom is an object"},
}

func TestMutate(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, err := objtest.YAML(c.in)
			if err != nil {
				t.Fatal(err)
			}
			opts := defaults
			if c.opts != nil {
				opts = *c.opts
			}
			out, res := run(t, in, opts)
			if res.Outcome != c.outcome || res.Reason != c.reason {
				t.Fatalf("got %s %q (%s), want %s %q", res.Outcome, res.Reason, res.Detail, c.outcome, c.reason)
			}
			if !strings.Contains(res.Detail, c.detail) {
				t.Errorf("detail %q does not say %q", res.Detail, c.detail)
			}
			if len(res.Warnings) != c.warnings {
				t.Errorf("warnings %q, want %d", res.Warnings, c.warnings)
			}
			s := res.Summary()
			if s.Quiet != c.quiet {
				t.Errorf("summary quiet = %v, want %v (%s)", s.Quiet, c.quiet, s)
			}
			if !c.quiet && c.outcome != outcome.Injected && s.Reason == "" {
				t.Errorf("a document left alone needs a note saying why: %s", s)
			}
			if c.outcome != outcome.Injected {
				if !reflect.DeepEqual(in, out) {
					t.Errorf("left alone, but changed: %s", objtest.JSON(out))
				}
				return
			}
			got, _ := obj.Lookup(out, "spec", "global", "podLabelsAsTags")
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("podLabelsAsTags = %s, want %s", objtest.JSON(got), objtest.JSON(c.want))
			}
			if want := "injected spec.global.podLabelsAsTags." + opts.LabelKey + "=" + opts.TagName; s.String() != want {
				t.Errorf("summary %q, want %q", s, want)
			}
		})
	}
}

// run applies the rule and checks what every call must hold: the input is
// not modified, only add operations, nothing but podLabelsAsTags changes,
// and the output gives no operation (idempotent).
func run(t *testing.T, in map[string]any, opts datadogagent.Options) (map[string]any, datadogagent.Result) {
	t.Helper()
	before := objtest.CopyObject(in)
	ops, res := datadogagent.Mutate(in, opts)
	if !reflect.DeepEqual(in, before) {
		t.Fatal("the rule modified its input")
	}
	for _, op := range ops {
		if op.Operation != "add" {
			t.Errorf("operation %s %s: only add", op.Operation, op.Path)
		}
	}
	if (len(ops) > 0) != (res.Outcome == outcome.Injected) {
		t.Errorf("%d operations with outcome %s", len(ops), res.Outcome)
	}
	out, err := objtest.Apply(in, ops)
	if err != nil {
		t.Fatalf("the operations do not apply: %v\n%s", err, objtest.JSON(ops))
	}
	// Nothing but spec.global.podLabelsAsTags changes (spec and global
	// appear when they were absent or null).
	if res.Outcome == outcome.Injected {
		if sIn, sOut := outside(in), outside(out); !reflect.DeepEqual(sIn, sOut) {
			t.Errorf("more than spec.global.podLabelsAsTags changed:\n in %s\nout %s", objtest.JSON(sIn), objtest.JSON(sOut))
		}
	}
	if again, r2 := datadogagent.Mutate(out, opts); len(again) > 0 {
		t.Errorf("not idempotent: the output gives %s (%s)", objtest.JSON(again), r2.Summary())
	} else if res.Outcome == outcome.Injected && r2.Outcome != outcome.Present {
		t.Errorf("on its own output the rule says %s, want present", r2.Summary())
	}
	return out, res
}

// outside is the object without spec.global.podLabelsAsTags, and without
// spec and spec.global when they are then empty or null.
func outside(m map[string]any) map[string]any {
	c := objtest.CopyObject(m)
	spec, _ := c["spec"].(map[string]any)
	if g, ok := spec["global"].(map[string]any); ok {
		delete(g, "podLabelsAsTags")
		if len(g) == 0 {
			delete(spec, "global")
		}
	}
	if v, ok := spec["global"]; ok && v == nil {
		delete(spec, "global")
	}
	if v, ok := c["spec"]; ok && (v == nil || spec != nil && len(spec) == 0) {
		delete(c, "spec")
	}
	return c
}

package agentpod_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

func selector(s string) labels.Selector {
	sel, err := labels.Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// defaults are the contract 1 defaults.
var defaults = agentpod.Options{LabelKey: "role", TagName: "kube_role", Selector: selector("agent.datadoghq.com/component in (agent,cluster-agent,cluster-checks-runner)")}

// nodeAgentsOnly patches node Agents only (the selector is the setting).
var nodeAgentsOnly = &agentpod.Options{LabelKey: "role", TagName: "kube_role", Selector: selector("agent.datadoghq.com/component=agent")}

const (
	agentLabels = `labels: {app: dd-datadog, agent.datadoghq.com/component: agent}`
	dsOwner     = `ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: dd-datadog, uid: 0b3c, controller: true, blockOwnerDeletion: true}]`
	rsOwner     = `ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: dd-datadog-cluster-agent-6d4f8b7c9, uid: 0b3d, controller: true}]`
	edsOwner    = `ownerReferences: [{apiVersion: datadoghq.com/v1alpha1, kind: ExtendedDaemonSetReplicaSet, name: datadog-agent-8x7kq, uid: 0b3e, controller: true}]`
	agentMeta   = `name: dd-datadog-x7k2p, namespace: datadog, ` + agentLabels + `, ` + dsOwner
	// inj is the env entry the rule appends with the default options.
	inj = `{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"kube_role"}'}`
)

// agentPod is an agent pod (agent labels, owned by a DaemonSet) with the given spec.
func agentPod(spec string) string {
	return `{apiVersion: v1, kind: Pod, metadata: {` + agentMeta + `}, spec: ` + spec + `}`
}

// podWithStatus is agentPod with the status annotation the rule adds.
func podWithStatus(status, spec string) string {
	return `{apiVersion: v1, kind: Pod, metadata: {` + agentMeta + `, annotations: {canary-tagger.io/status: ` + quote(status) + `}}, spec: ` + spec + `}`
}

// podWith is a pod with the given metadata fields and spec.
func podWith(meta, spec string) string {
	return `{apiVersion: v1, kind: Pod, metadata: {` + meta + `}, spec: ` + spec + `}`
}

// agent is a container named agent with the given extra fields.
func agent(fields string) string {
	if fields != "" {
		fields = ", " + fields
	}
	return `{name: agent, image: "registry.datadoghq.com/agent:7.81.1"` + fields + `}`
}

// one is a spec with the single container agent(fields).
func one(fields string) string { return `{containers: [` + agent(fields) + `]}` }

// env is a spec whose agent container has env DD_KUBERNETES_POD_LABELS_AS_TAGS=value.
func env(value string) string {
	return one(`env: [{name: DD_SITE, value: datadoghq.com}, {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: ` + quote(value) + `}]`)
}

// withVolume is a spec with the given volume, mounted into the agent
// container with the given mount fields, plus the container's other fields.
func withVolume(volume, mount, fields string) string {
	if fields != "" {
		fields = ", " + fields
	}
	return `{volumes: [` + volume + `], containers: [` + agent(`volumeMounts: [{name: `+volumeName(volume)+`, `+mount+`}]`+fields) + `]}`
}

// withConfigMap is withVolume with the ConfigMap the Datadog chart's
// customAgentConfig mounts.
func withConfigMap(mount, fields string) string {
	return withVolume(`{name: custom-config, configMap: {name: dd-datadog-datadog-yaml}}`, mount, fields)
}

func volumeName(volume string) string {
	rest := volume[strings.Index(volume, "name: ")+len("name: "):]
	return rest[:strings.IndexAny(rest, ",}")]
}

// configSkipped is the agent container's status when mount carries a config.
func configSkipped(mount string) string {
	return "agent: skipped: " + string(agentpod.ReasonConfigFile) + " (" + mount +
		`; add "role": "kube_role" to kubernetes_pod_labels_as_tags there, or set DD_KUBERNETES_POD_LABELS_AS_TAGS to that whole map)`
}

// quote makes a YAML (JSON) double-quoted scalar.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// agentDaemonSet is an agent DaemonSet with the given pod template spec.
func agentDaemonSet(podSpec string) string {
	return `{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: dd-datadog, namespace: datadog}, spec: {selector: {matchLabels: {app: dd-datadog}}, ` +
		`template: {metadata: {` + agentLabels + `, annotations: {checksum/config: abc}}, spec: ` + podSpec + `}}}`
}

type tcase struct {
	name    string
	in      string
	opts    *agentpod.Options
	outcome outcome.Outcome
	reason  agentpod.Reason // of the whole object
	detail  string          // substring of Result.Detail
	status  string          // Result.Status()
	want    string          // expected output; "" means unchanged
}

const skipInvalid = "agent: skipped: " + string(agentpod.ReasonInvalidJSON)

var podCases = []tcase{
	// contract 3.1: which pods.
	{name: "3.1 not a Pod", in: `{apiVersion: v1, kind: Service, metadata: {` + agentMeta + `}, spec: {}}`, outcome: outcome.Skipped, reason: agentpod.ReasonNotPod},
	{name: "3.1 selector mismatch", in: podWith(`name: web, labels: {app: web}, `+dsOwner, one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonNotAgent},
	{name: "3.1 selector mismatch: a component not selected", in: podWith(`name: dca, labels: {agent.datadoghq.com/component: cluster-agent}, `+rsOwner, one(``)),
		opts: nodeAgentsOnly, outcome: outcome.Skipped, reason: agentpod.ReasonNotAgent},
	{name: "3.1 selector mismatch: another component", in: podWith(`name: x, labels: {agent.datadoghq.com/component: otel-agent}, `+dsOwner, one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonNotAgent},
	{name: "3.1 no labels", in: podWith(`name: web, `+dsOwner, one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonNotAgent},
	{name: "3.1 labels null", in: podWith(`name: web, labels: null, `+dsOwner, one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonNotAgent},
	{name: "3.1 no metadata", in: `{apiVersion: v1, kind: Pod, spec: {containers: [{name: agent}]}}`, outcome: outcome.Skipped, reason: agentpod.ReasonNotAgent},
	{name: "3.1 Cluster Agent owned by a ReplicaSet", in: podWith(`labels: {agent.datadoghq.com/component: cluster-agent}, `+rsOwner, one(``)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWith(`labels: {agent.datadoghq.com/component: cluster-agent}, `+rsOwner+`, annotations: {canary-tagger.io/status: "agent: injected"}`, one(`env: [`+inj+`]`))},
	{name: "3.1 Cluster Checks Runner owned by a ReplicaSet", in: podWith(`labels: {agent.datadoghq.com/component: cluster-checks-runner}, `+rsOwner, one(``)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWith(`labels: {agent.datadoghq.com/component: cluster-checks-runner}, `+rsOwner+`, annotations: {canary-tagger.io/status: "agent: injected"}`, one(`env: [`+inj+`]`))},
	{name: "3.1 node Agent owned by an ExtendedDaemonSetReplicaSet", in: podWith(agentLabels+`, `+edsOwner, one(``)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWith(agentLabels+`, `+edsOwner+`, annotations: {canary-tagger.io/status: "agent: injected"}`, one(`env: [`+inj+`]`))},
	{name: "3.1 not owned: no owner", in: podWith(agentLabels, one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonNotOwned},
	{name: "3.1 not owned: a StatefulSet", in: podWith(agentLabels+`, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: x, uid: u}]`, one(``)),
		outcome: outcome.Skipped, reason: agentpod.ReasonNotOwned},
	{name: "3.1 not owned: a DaemonSet of another group", in: podWith(agentLabels+`, ownerReferences: [{apiVersion: datadoghq.com/v1alpha1, kind: DaemonSet, name: x, uid: u}]`, one(``)),
		outcome: outcome.Skipped, reason: agentpod.ReasonNotOwned},
	{name: "3.1 not owned: an ExtendedDaemonSetReplicaSet of another group", in: podWith(agentLabels+`, ownerReferences: [{apiVersion: apps/v1, kind: ExtendedDaemonSetReplicaSet, name: x, uid: u}]`, one(``)),
		outcome: outcome.Skipped, reason: agentpod.ReasonNotOwned},
	{name: "7 ownerReferences of the wrong type", in: podWith(agentLabels+`, ownerReferences: {kind: DaemonSet}`, one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonNotOwned},
	{name: "7 owner entries of the wrong types", in: podWith(agentLabels+`, ownerReferences: [5, null, {kind: 1, apiVersion: []}]`, one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonNotOwned},
	{name: "3.1 one of several owners is a DaemonSet", in: podWith(agentLabels+`, ownerReferences: [{apiVersion: v1, kind: Node, name: n, uid: u}, "x", {apiVersion: apps/v1, kind: DaemonSet, name: dd, uid: u}]`, one(``)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWith(agentLabels+`, ownerReferences: [{apiVersion: v1, kind: Node, name: n, uid: u}, "x", {apiVersion: apps/v1, kind: DaemonSet, name: dd, uid: u}], annotations: {canary-tagger.io/status: "agent: injected"}`, one(`env: [`+inj+`]`))},
	{name: "3.1 custom selector (charts before 3.140.0)", in: podWith(`labels: {app: datadog}, `+dsOwner, one(``)),
		opts: &agentpod.Options{LabelKey: "role", TagName: "kube_role", Selector: selector("app=datadog")}, outcome: outcome.Injected, status: "agent: injected",
		want: podWith(`labels: {app: datadog}, `+dsOwner+`, annotations: {canary-tagger.io/status: "agent: injected"}`, one(`env: [`+inj+`]`))},
	{name: "3.1 nil selector matches nothing", in: agentPod(one(``)), opts: &agentpod.Options{LabelKey: "role", TagName: "kube_role"},
		outcome: outcome.Skipped, reason: agentpod.ReasonNotAgent},
	{name: "7 label value not a string", in: podWith(`labels: {agent.datadoghq.com/component: agent, count: 5}, `+dsOwner, one(``)),
		outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "metadata.labels.count is a number"},
	{name: "7 labels array", in: podWith(`labels: [], `+dsOwner, one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "metadata.labels is an array"},
	{name: "7 metadata string", in: `{apiVersion: v1, kind: Pod, metadata: "x", spec: {}}`, outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "metadata is a string"},
	{name: "7 spec string", in: agentPod(`"x"`), outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "spec is a string"},
	{name: "7 spec absent", in: `{apiVersion: v1, kind: Pod, metadata: {` + agentMeta + `}}`, outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "spec is null"},

	// contract 3.2: which containers.
	{name: "3.2 every container, init container without the variable not handled",
		in:      agentPod(`{initContainers: [{name: init-volume, image: x, env: [{name: A, value: b}]}, {name: init-env-object, env: {}}], containers: [` + agent(``) + `, {name: trace-agent, env: []}, {name: process-agent, env: null}]}`),
		outcome: outcome.Injected, status: "agent: injected; trace-agent: injected; process-agent: injected",
		want: podWithStatus("agent: injected; trace-agent: injected; process-agent: injected",
			`{initContainers: [{name: init-volume, image: x, env: [{name: A, value: b}]}, {name: init-env-object, env: {}}], containers: [`+agent(`env: [`+inj+`]`)+`, {name: trace-agent, env: [`+inj+`]}, {name: process-agent, env: [`+inj+`]}]}`)},
	{name: "3.2 init container declaring the variable",
		in:      agentPod(`{initContainers: [{name: init-volume}, {name: init-config, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app"}'}]}], containers: [{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app"}'}]}]}`),
		outcome: outcome.Injected, status: "agent: injected; init-config: injected",
		want: podWithStatus("agent: injected; init-config: injected",
			`{initContainers: [{name: init-volume}, {name: init-config, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app","role":"kube_role"}'}]}], containers: [{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app","role":"kube_role"}'}]}]}`)},
	{name: "3.2 init container declaring it with valueFrom is skipped",
		in:      agentPod(`{initContainers: [{name: init-config, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: {configMapKeyRef: {name: c, key: k}}}]}], containers: [{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"kube_role"}'}]}]}`),
		outcome: outcome.Skipped, status: "agent: present (kube_role); init-config: skipped: " + string(agentpod.ReasonValueFrom),
		want: podWithStatus("agent: present (kube_role); init-config: skipped: "+string(agentpod.ReasonValueFrom),
			`{initContainers: [{name: init-config, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: {configMapKeyRef: {name: c, key: k}}}]}], containers: [{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"kube_role"}'}]}]}`)},
	{name: "3.2 init container with envFrom but no declaration is not handled",
		in:      agentPod(`{initContainers: [{name: init, envFrom: [{configMapRef: {name: c}}]}], containers: [` + agent(``) + `]}`),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", `{initContainers: [{name: init, envFrom: [{configMapRef: {name: c}}]}], containers: [`+agent(`env: [`+inj+`]`)+`]}`)},
	{name: "3.2 init container declaring it, bad entry elsewhere",
		in:      agentPod(`{initContainers: [{name: init-config, env: ["x", {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: ""}]}], containers: [{name: agent, env: [` + inj + `]}]}`),
		outcome: outcome.Skipped, status: "agent: present (kube_role); init-config: skipped: field of unexpected type (env[0] is a string)",
		want: podWithStatus("agent: present (kube_role); init-config: skipped: field of unexpected type (env[0] is a string)",
			`{initContainers: [{name: init-config, env: ["x", {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: ""}]}], containers: [{name: agent, env: [`+inj+`]}]}`)},
	{name: "3.2 only init containers", in: agentPod(`{initContainers: [{name: init-config, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: "{}"}]}]}`),
		outcome: outcome.Injected, status: "init-config: injected",
		want: podWithStatus("init-config: injected", `{initContainers: [{name: init-config, env: [`+inj+`]}]}`)},
	{name: "3.2 no containers", in: agentPod(`{containers: []}`), outcome: outcome.Skipped, reason: agentpod.ReasonNoContainers},
	{name: "3.2 no containers handled", in: agentPod(`{containers: null, initContainers: [{name: init-volume}]}`), outcome: outcome.Skipped, reason: agentpod.ReasonNoContainers},
	{name: "7 containers object", in: agentPod(`{containers: {name: agent}}`), outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "spec.containers is an object"},
	{name: "7 containers entry string", in: agentPod(`{containers: [` + agent(``) + `, "x"]}`), outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "spec.containers[1] is a string"},
	{name: "7 initContainers string", in: agentPod(`{containers: [` + agent(``) + `], initContainers: "x"}`), outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "spec.initContainers is a string"},

	// contract 3.3: per container.
	{name: "3.3 no entry: appended after the others", in: agentPod(one(`env: [{name: DD_SITE, value: datadoghq.com}, {name: DD_API_KEY, valueFrom: {secretKeyRef: {name: s, key: api-key}}}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [{name: DD_SITE, value: datadoghq.com}, {name: DD_API_KEY, valueFrom: {secretKeyRef: {name: s, key: api-key}}}, `+inj+`]`))},
	{name: "3.3 env absent", in: agentPod(one(``)), outcome: outcome.Injected, status: "agent: injected", want: podWithStatus("agent: injected", one(`env: [`+inj+`]`))},
	{name: "3.3 env null", in: agentPod(one(`env: null`)), outcome: outcome.Injected, status: "agent: injected", want: podWithStatus("agent: injected", one(`env: [`+inj+`]`))},
	{name: "3.3 env empty", in: agentPod(one(`env: []`)), outcome: outcome.Injected, status: "agent: injected", want: podWithStatus("agent: injected", one(`env: [`+inj+`]`))},
	{name: "3.3 envFrom non-empty: skipped", in: agentPod(one(`envFrom: [{configMapRef: {name: dd-env}}]`)), outcome: outcome.Skipped,
		status: "agent: skipped: " + string(agentpod.ReasonEnvFrom),
		want:   podWithStatus("agent: skipped: "+string(agentpod.ReasonEnvFrom), one(`envFrom: [{configMapRef: {name: dd-env}}]`))},
	{name: "3.3 envFrom empty list: injected", in: agentPod(one(`envFrom: []`)), outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`envFrom: [], env: [`+inj+`]`))},
	{name: "3.3 envFrom null: injected", in: agentPod(one(`envFrom: null`)), outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`envFrom: null, env: [`+inj+`]`))},
	{name: "3.3 envFrom and an entry: the entry wins", in: agentPod(one(`envFrom: [{secretRef: {name: s}}], env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app"}'}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`envFrom: [{secretRef: {name: s}}], env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app","role":"kube_role"}'}]`))},
	{name: "7 envFrom object", in: agentPod(one(`envFrom: {configMapRef: {name: c}}`)), outcome: outcome.Skipped,
		status: "agent: skipped: field of unexpected type (envFrom is an object)",
		want:   podWithStatus("agent: skipped: field of unexpected type (envFrom is an object)", one(`envFrom: {configMapRef: {name: c}}`))},
	{name: "3.3 mapping without the key: added, sorted, compact", in: agentPod(env(`{"team": "team", "app":"kube_app"}`)), outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", env(`{"app":"kube_app","role":"kube_role","team":"team"}`))},
	{name: "3.3 empty object", in: agentPod(env(`{}`)), outcome: outcome.Injected, status: "agent: injected", want: podWithStatus("agent: injected", env(`{"role":"kube_role"}`))},
	{name: "3.3 empty string counts as {}", in: agentPod(env(``)), outcome: outcome.Injected, status: "agent: injected", want: podWithStatus("agent: injected", env(`{"role":"kube_role"}`))},
	{name: "3.3 value absent counts as empty", in: agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS}]`)), outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [`+inj+`]`))},
	{name: "3.3 value null counts as empty", in: agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: null}]`)), outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [`+inj+`]`))},
	{name: "3.3 whitespace around the object", in: agentPod(env(" \n{ \"app\" : \"kube_app\" }\n")), outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", env(`{"app":"kube_app","role":"kube_role"}`))},
	{name: "3.3 glob keys, %%label%% and +tag values kept exactly", in: agentPod(env(`{"*":"%%label%%","app.kubernetes.io/*":"kube_%%label%%","team":"+team","x":"a<b>&c","é":"ü"}`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", env(`{"*":"%%label%%","app.kubernetes.io/*":"kube_%%label%%","role":"kube_role","team":"+team","x":"a<b>&c","é":"ü"}`))},
	{name: "3.3 key present: user's tag wins", in: agentPod(env(`{"role":"team_role"}`)), outcome: outcome.Present, status: "agent: present (team_role)",
		want: podWithStatus("agent: present (team_role)", env(`{"role":"team_role"}`))},
	{name: "3.3 key present, compared case-insensitively", in: agentPod(env(`{"Role":"x"}`)), outcome: outcome.Present, status: "agent: present (x)",
		want: podWithStatus("agent: present (x)", env(`{"Role":"x"}`))},
	{name: "3.3 key present in upper case", in: agentPod(env(`{"app":"kube_app","ROLE":"y"}`)), outcome: outcome.Present, status: "agent: present (y)",
		want: podWithStatus("agent: present (y)", env(`{"app":"kube_app","ROLE":"y"}`))},
	{name: "3.3 key present in two cases: exact one reported", in: agentPod(env(`{"ROLE":"a","Role":"b","role":"c"}`)), outcome: outcome.Present, status: "agent: present (c)",
		want: podWithStatus("agent: present (c)", env(`{"ROLE":"a","Role":"b","role":"c"}`))},
	{name: "3.3 key present in two other cases: first sorted reported", in: agentPod(env(`{"rOLE":"a","Role":"b"}`)), outcome: outcome.Present, status: "agent: present (b)",
		want: podWithStatus("agent: present (b)", env(`{"rOLE":"a","Role":"b"}`))},
	{name: "3.3 key with an empty tag", in: agentPod(env(`{"role":""}`)), outcome: outcome.Present, status: "agent: present ()",
		want: podWithStatus("agent: present ()", env(`{"role":""}`))},
	{name: "3.3 only a glob key is not the key", in: agentPod(env(`{"*":"%%label%%"}`)), outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", env(`{"*":"%%label%%","role":"kube_role"}`))},
	{name: "3.3 duplicate entries: the last one is changed, the earlier one untouched",
		in:      agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"a"}'}, {name: DD_SITE, value: s}, {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"team":"t"}'}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"a"}'}, {name: DD_SITE, value: s}, {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"kube_role","team":"t"}'}]`))},
	{name: "3.3 duplicate entries: only the last one counts for present",
		in:      agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"a"}'}, {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"r"}'}]`)),
		outcome: outcome.Present, status: "agent: present (r)",
		want: podWithStatus("agent: present (r)", one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"a"}'}, {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"r"}'}]`))},
	{name: "3.3 duplicate entries: an earlier mapping of the key does not count",
		in:      agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"r"}'}, {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: ""}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"r"}'}, `+inj+`]`))},
	{name: "3.3 duplicate entries: earlier valueFrom does not count",
		in:      agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: {configMapKeyRef: {name: c, key: k}}}, {name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: "{}"}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: {configMapKeyRef: {name: c, key: k}}}, `+inj+`]`))},
	{name: "3.3 valueFrom: skipped", in: agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: {configMapKeyRef: {name: dd, key: tags}}}]`)),
		outcome: outcome.Skipped, status: "agent: skipped: valueFrom: value not visible to the webhook",
		want: podWithStatus("agent: skipped: valueFrom: value not visible to the webhook", one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: {configMapKeyRef: {name: dd, key: tags}}}]`))},
	{name: "3.3 valueFrom null is no valueFrom", in: agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: null, value: "{}"}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, valueFrom: null, value: '{"role":"kube_role"}'}]`))},
	{name: "3.3 invalid JSON", in: agentPod(env(`{"app":`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`{"app":`))},
	{name: "3.3 not JSON", in: agentPod(env(`app:kube_app`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`app:kube_app`))},
	{name: "3.3 non-string JSON value: number", in: agentPod(env(`{"app":1}`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`{"app":1}`))},
	{name: "3.3 non-string JSON value: null", in: agentPod(env(`{"app":null}`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`{"app":null}`))},
	{name: "3.3 non-string JSON value: object", in: agentPod(env(`{"app":{"a":"b"}}`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`{"app":{"a":"b"}}`))},
	{name: "3.3 non-string JSON value: array", in: agentPod(env(`{"app":["a"]}`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`{"app":["a"]}`))},
	{name: "3.3 JSON array", in: agentPod(env(`["role"]`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`["role"]`))},
	{name: "3.3 JSON string", in: agentPod(env(`"role"`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`"role"`))},
	{name: "3.3 JSON null", in: agentPod(env(`null`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`null`))},
	{name: "3.3 trailing data", in: agentPod(env(`{} {}`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`{} {}`))},
	{name: "3.3 trailing comma", in: agentPod(env(`{"a":"b",}`)), outcome: outcome.Skipped, status: skipInvalid, want: podWithStatus(skipInvalid, env(`{"a":"b",}`))},
	{name: "3.3 duplicate JSON keys", in: agentPod(env(`{"app":"a","app":"b"}`)), outcome: outcome.Skipped, status: "agent: skipped: value has duplicate keys",
		want: podWithStatus("agent: skipped: value has duplicate keys", env(`{"app":"a","app":"b"}`))},
	{name: "7 value a number", in: agentPod(one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: 5}]`)), outcome: outcome.Skipped,
		status: "agent: skipped: field of unexpected type (value is a number)",
		want:   podWithStatus("agent: skipped: field of unexpected type (value is a number)", one(`env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: 5}]`))},
	{name: "7 env object", in: agentPod(one(`env: {}`)), outcome: outcome.Skipped, status: "agent: skipped: field of unexpected type (env is an object)",
		want: podWithStatus("agent: skipped: field of unexpected type (env is an object)", one(`env: {}`))},
	{name: "7 env string", in: agentPod(one(`env: "x"`)), outcome: outcome.Skipped, status: "agent: skipped: field of unexpected type (env is a string)",
		want: podWithStatus("agent: skipped: field of unexpected type (env is a string)", one(`env: "x"`))},
	{name: "7 env entry string", in: agentPod(one(`env: ["x", ` + inj + `]`)), outcome: outcome.Skipped, status: "agent: skipped: field of unexpected type (env[0] is a string)",
		want: podWithStatus("agent: skipped: field of unexpected type (env[0] is a string)", one(`env: ["x", `+inj+`]`))},
	{name: "3.3 custom options", in: agentPod(env(`{"app":"kube_app","role":"kube_role"}`)),
		opts:    &agentpod.Options{LabelKey: "canary-tagger.io/track", TagName: "deploy_track", Selector: selector("app=dd-datadog")},
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", env(`{"app":"kube_app","canary-tagger.io/track":"deploy_track","role":"kube_role"}`))},
	{name: "3.3 custom options, present", in: agentPod(env(`{"tier":"kube_tier"}`)),
		opts:    &agentpod.Options{LabelKey: "tier", TagName: "deploy_tier", Selector: selector("agent.datadoghq.com/component")},
		outcome: outcome.Present, status: "agent: present (kube_tier)", want: podWithStatus("agent: present (kube_tier)", env(`{"tier":"kube_tier"}`))},
	{name: "3.3 nothing else in the pod changes", in: agentPod(`{hostPID: true, containers: [{name: agent, image: a, resources: {limits: {memory: 512Mi}}, ports: [{containerPort: 8125, protocol: UDP}], x-unknown: [1, 2.50, null]}], volumes: [{name: v, emptyDir: {}}]}`),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", `{hostPID: true, containers: [{name: agent, image: a, resources: {limits: {memory: 512Mi}}, ports: [{containerPort: 8125, protocol: UDP}], x-unknown: [1, 2.50, null], env: [`+inj+`]}], volumes: [{name: v, emptyDir: {}}]}`)},

	// contract 3.5: the status annotation.
	// contract 3.3: never hide a mapping the Agent would read elsewhere.
	{name: "3.3 datadog.yaml from a ConfigMap, no variable: left alone", in: agentPod(withConfigMap(`mountPath: /etc/datadog-agent/datadog.yaml, subPath: datadog.yaml`, ``)),
		outcome: outcome.Skipped, status: "agent: skipped: " + string(agentpod.ReasonConfigFile) + ` (configMap volume "custom-config" at /etc/datadog-agent/datadog.yaml; add "role": "kube_role" to kubernetes_pod_labels_as_tags there, or set DD_KUBERNETES_POD_LABELS_AS_TAGS to that whole map)`,
		want: podWithStatus("agent: skipped: "+string(agentpod.ReasonConfigFile)+` (configMap volume "custom-config" at /etc/datadog-agent/datadog.yaml; add "role": "kube_role" to kubernetes_pod_labels_as_tags there, or set DD_KUBERNETES_POD_LABELS_AS_TAGS to that whole map)`,
			withConfigMap(`mountPath: /etc/datadog-agent/datadog.yaml, subPath: datadog.yaml`, ``))},
	{name: "3.3 config directory from a Secret, no variable: left alone", in: agentPod(withVolume(`{name: custom-config, secret: {secretName: s}}`, `mountPath: /etc/datadog-agent/`, ``)),
		outcome: outcome.Skipped, status: configSkipped(`secret volume "custom-config" at /etc/datadog-agent`),
		want: podWithStatus(configSkipped(`secret volume "custom-config" at /etc/datadog-agent`), withVolume(`{name: custom-config, secret: {secretName: s}}`, `mountPath: /etc/datadog-agent/`, ``))},
	{name: "3.3 datadog-cluster.yaml of a Cluster Agent: left alone", in: agentPod(withConfigMap(`mountPath: /etc/datadog-agent/datadog-cluster.yaml, subPath: datadog-cluster.yaml`, ``)),
		outcome: outcome.Skipped, status: configSkipped(`configMap volume "custom-config" at /etc/datadog-agent/datadog-cluster.yaml`),
		want: podWithStatus(configSkipped(`configMap volume "custom-config" at /etc/datadog-agent/datadog-cluster.yaml`), withConfigMap(`mountPath: /etc/datadog-agent/datadog-cluster.yaml, subPath: datadog-cluster.yaml`, ``))},
	{name: "3.3 config from a ConfigMap, variable already set: the variable already wins, so the merge loses nothing", in: agentPod(withConfigMap(`mountPath: /etc/datadog-agent/datadog.yaml, subPath: datadog.yaml`, `env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app"}'}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", withConfigMap(`mountPath: /etc/datadog-agent/datadog.yaml, subPath: datadog.yaml`, `env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app","role":"kube_role"}'}]`))},
	{name: "3.3 config directory from an emptyDir (the charts' own): injected", in: agentPod(withVolume(`{name: config, emptyDir: {}}`, `mountPath: /etc/datadog-agent`, ``)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", withVolume(`{name: config, emptyDir: {}}`, `mountPath: /etc/datadog-agent`, `env: [`+inj+`]`))},
	{name: "3.3 other files from a ConfigMap (system-probe.yaml, conf.d): injected", in: agentPod(withConfigMap(`mountPath: /etc/datadog-agent/system-probe.yaml, subPath: system-probe.yaml`, ``)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", withConfigMap(`mountPath: /etc/datadog-agent/system-probe.yaml, subPath: system-probe.yaml`, `env: [`+inj+`]`))},
	{name: "3.3 mount of an unknown volume: injected", in: agentPod(withVolume(`{name: other, emptyDir: {}}`, `mountPath: /etc/datadog-agent/datadog.yaml`, ``)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", withVolume(`{name: other, emptyDir: {}}`, `mountPath: /etc/datadog-agent/datadog.yaml`, `env: [`+inj+`]`))},
	{name: "3.3 resources variable maps role for pods: left alone", in: agentPod(one(`env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: '{"pods":{"Role":"team_role"},"nodes":{"zone":"z"}}'}]`)),
		outcome: outcome.Skipped, status: "agent: skipped: " + string(agentpod.ReasonResourcesMapKey) + ` (pods: "Role" → "team_role")`,
		want: podWithStatus("agent: skipped: "+string(agentpod.ReasonResourcesMapKey)+` (pods: "Role" → "team_role")`, one(`env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: '{"pods":{"Role":"team_role"},"nodes":{"zone":"z"}}'}]`))},
	{name: "3.3 resources variable maps role for the core group's pods.: left alone", in: agentPod(one(`env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: '{"pods.":{"role":"team_role"}}'}]`)),
		outcome: outcome.Skipped, status: "agent: skipped: " + string(agentpod.ReasonResourcesMapKey) + ` (pods: "role" → "team_role")`,
		want: podWithStatus("agent: skipped: "+string(agentpod.ReasonResourcesMapKey)+` (pods: "role" → "team_role")`, one(`env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: '{"pods.":{"role":"team_role"}}'}]`))},
	{name: "3.3 resources variable maps other pod labels: merged by the Agent, injected", in: agentPod(one(`env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: '{"pods":{"team":"team"}}'}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: '{"pods":{"team":"team"}}'}, `+inj+`]`))},
	{name: "3.3 resources variable the Agent cannot parse: injected", in: agentPod(one(`env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: 'role'}]`)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [{name: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS, value: 'role'}, `+inj+`]`))},
	{name: "7 a volume of two sources counts by its other source, whatever the map order", in: agentPod(withVolume(`{name: custom-config, emptyDir: {}, configMap: {name: c}}`, `mountPath: /etc/datadog-agent`, ``)),
		outcome: outcome.Skipped, status: configSkipped(`configMap volume "custom-config" at /etc/datadog-agent`),
		want: podWithStatus(configSkipped(`configMap volume "custom-config" at /etc/datadog-agent`), withVolume(`{name: custom-config, emptyDir: {}, configMap: {name: c}}`, `mountPath: /etc/datadog-agent`, ``))},
	{name: "7 volumes and mounts of the wrong types: injected, nothing repaired", in: agentPod(`{volumes: "x", containers: [` + agent(`volumeMounts: [5, {name: 1, mountPath: []}]`) + `]}`),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", `{volumes: "x", containers: [`+agent(`volumeMounts: [5, {name: 1, mountPath: []}], env: [`+inj+`]`)+`]}`)},

	{name: "3.5 one entry per container handled",
		in: agentPod(`{containers: [{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"team_role"}'}]}, {name: trace-agent}, {name: process-agent, envFrom: [{configMapRef: {name: c}}]}, {name: system-probe, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: "{"}]}], ` +
			`initContainers: [{name: init-volume}, {name: init-config, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: ""}]}]}`),
		outcome: outcome.Injected,
		status:  "agent: present (team_role); trace-agent: injected; process-agent: skipped: " + string(agentpod.ReasonEnvFrom) + "; system-probe: skipped: " + string(agentpod.ReasonInvalidJSON) + "; init-config: injected",
		want: podWithStatus("agent: present (team_role); trace-agent: injected; process-agent: skipped: "+string(agentpod.ReasonEnvFrom)+"; system-probe: skipped: "+string(agentpod.ReasonInvalidJSON)+"; init-config: injected",
			`{containers: [{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"role":"team_role"}'}]}, {name: trace-agent, env: [`+inj+`]}, {name: process-agent, envFrom: [{configMapRef: {name: c}}]}, {name: system-probe, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: "{"}]}], `+
				`initContainers: [{name: init-volume}, {name: init-config, env: [`+inj+`]}]}`)},
	{name: "3.5 existing status annotation is kept", in: podWith(agentMeta+`, annotations: {canary-tagger.io/status: "agent: injected", other: x}`, one(``)),
		outcome: outcome.Injected, status: "agent: injected",
		want: podWith(agentMeta+`, annotations: {canary-tagger.io/status: "agent: injected", other: x}`, one(`env: [`+inj+`]`))},
	{name: "3.5 existing status annotation is kept even when it says something else", in: podWith(agentMeta+`, annotations: {canary-tagger.io/status: "hand-written"}`, env(`{"role":"r"}`)),
		outcome: outcome.Present, status: "agent: present (r)"},
	{name: "3.5 other annotations kept", in: podWith(agentMeta+`, annotations: {a: b}`, one(``)), outcome: outcome.Injected, status: "agent: injected",
		want: podWith(agentMeta+`, annotations: {a: b, canary-tagger.io/status: "agent: injected"}`, one(`env: [`+inj+`]`))},
	{name: "3.5 annotations null", in: podWith(agentMeta+`, annotations: null`, one(``)), outcome: outcome.Injected, status: "agent: injected",
		want: podWithStatus("agent: injected", one(`env: [`+inj+`]`))},
	{name: "7 annotations of the wrong type are left alone", in: podWith(agentMeta+`, annotations: []`, one(``)), outcome: outcome.Injected, status: "agent: injected",
		want: podWith(agentMeta+`, annotations: []`, one(`env: [`+inj+`]`))},
}

// workloadCases run MutateWorkload (contract 6: the manifest-time equivalent of 3).
var workloadCases = []tcase{
	{name: "6 a StatefulSet is not an Agent workload", in: `{apiVersion: apps/v1, kind: StatefulSet, metadata: {name: d}, spec: {template: {metadata: {` + agentLabels + `}, spec: ` + one(``) + `}}}`,
		outcome: outcome.Skipped, reason: agentpod.ReasonNotWorkload},
	{name: "6 a Pod is not a workload", in: agentPod(one(``)), outcome: outcome.Skipped, reason: agentpod.ReasonNotWorkload},
	{name: "6 Cluster Agent Deployment", in: `{apiVersion: apps/v1, kind: Deployment, metadata: {name: dca}, spec: {template: {metadata: {labels: {agent.datadoghq.com/component: cluster-agent}}, spec: ` + one(``) + `}}}`,
		outcome: outcome.Injected, status: "agent: injected",
		want: `{apiVersion: apps/v1, kind: Deployment, metadata: {name: dca}, spec: {template: {metadata: {labels: {agent.datadoghq.com/component: cluster-agent}}, spec: ` + one(`env: [`+inj+`]`) + `}}}`},
	{name: "6 ExtendedDaemonSet", in: `{apiVersion: datadoghq.com/v1alpha1, kind: ExtendedDaemonSet, metadata: {name: dd}, spec: {template: {metadata: {` + agentLabels + `}, spec: ` + one(``) + `}}}`,
		outcome: outcome.Injected, status: "agent: injected",
		want: `{apiVersion: datadoghq.com/v1alpha1, kind: ExtendedDaemonSet, metadata: {name: dd}, spec: {template: {metadata: {` + agentLabels + `}, spec: ` + one(`env: [`+inj+`]`) + `}}}`},
	{name: "6 template does not match", in: `{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d, labels: {agent.datadoghq.com/component: agent}}, spec: {template: {metadata: {labels: {app: x}}, spec: ` + one(``) + `}}}`,
		outcome: outcome.Skipped, reason: agentpod.ReasonNotAgent},
	{name: "6 injected, no status annotation", in: agentDaemonSet(`{initContainers: [{name: init-volume}], containers: [` + agent(``) + `, {name: trace-agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app"}'}]}]}`),
		outcome: outcome.Injected, status: "agent: injected; trace-agent: injected",
		want: agentDaemonSet(`{initContainers: [{name: init-volume}], containers: [` + agent(`env: [`+inj+`]`) + `, {name: trace-agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"app":"kube_app","role":"kube_role"}'}]}]}`)},
	{name: "6 present: unchanged", in: agentDaemonSet(env(`{"role":"r"}`)), outcome: outcome.Present, status: "agent: present (r)"},
	{name: "6 all skipped: unchanged", in: agentDaemonSet(one(`envFrom: [{configMapRef: {name: c}}]`)), outcome: outcome.Skipped, status: "agent: skipped: " + string(agentpod.ReasonEnvFrom)},
	{name: "6 template spec string", in: `{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {template: {metadata: {` + agentLabels + `}, spec: "x"}}}`,
		outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "spec.template.spec is a string"},
	{name: "6 template string", in: `{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {template: "x"}}`,
		outcome: outcome.Skipped, reason: agentpod.ReasonUnexpectedType, detail: "spec.template is a string"},
	{name: "6 no containers", in: agentDaemonSet(`{containers: []}`), outcome: outcome.Skipped, reason: agentpod.ReasonNoContainers},
}

func (c tcase) options() agentpod.Options {
	if c.opts != nil {
		return *c.opts
	}
	return defaults
}

type mutateFunc func(map[string]any, agentpod.Options) ([]jsonpatch.Operation, agentpod.Result)

// applied runs a rule and applies its operations: the object as it would be
// stored.
func applied(tb testing.TB, mutate mutateFunc, in map[string]any, opts agentpod.Options) (map[string]any, agentpod.Result) {
	tb.Helper()
	ops, res := mutate(in, opts)
	out, err := objtest.Apply(in, ops)
	if err != nil {
		tb.Fatalf("patch %s does not apply: %v", objtest.JSON(ops), err)
	}
	if res.Outcome == outcome.Injected && len(ops) == 0 || res.Reason != agentpod.ReasonNone && len(ops) > 0 {
		tb.Fatalf("outcome %s (%q) with operations %s", res.Outcome, res.Reason, objtest.JSON(ops))
	}
	return out, res
}

func TestMutatePod(t *testing.T)      { runCases(t, podCases, agentpod.MutatePod) }
func TestMutateWorkload(t *testing.T) { runCases(t, workloadCases, agentpod.MutateWorkload) }

// runCases runs the table.
func runCases(t *testing.T, cases []tcase, mutate mutateFunc) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := objtest.MustYAML(c.in)
			before := objtest.CopyObject(in)
			out, res := applied(t, mutate, in, c.options())
			if !reflect.DeepEqual(in, before) {
				t.Fatalf("the rule modified its input:\n got %s\nwant %s", objtest.JSON(in), objtest.JSON(before))
			}
			if res.Outcome != c.outcome || res.Reason != c.reason {
				t.Errorf("result = %s/%q (%s), want %s/%q", res.Outcome, res.Reason, res.Detail, c.outcome, c.reason)
			}
			if !strings.Contains(res.Detail, c.detail) {
				t.Errorf("detail = %q, want it to contain %q", res.Detail, c.detail)
			}
			if got := res.Status(); got != c.status {
				t.Errorf("status:\n got %q\nwant %q", got, c.status)
			}
			if len(res.Containers) > 0 && res.Reason != agentpod.ReasonNone {
				t.Errorf("object-level reason %q with containers %v", res.Reason, res.Containers)
			}
			want := in
			if c.want != "" {
				want = objtest.MustYAML(c.want)
			}
			if !reflect.DeepEqual(out, want) {
				t.Errorf("output:\n got %s\nwant %s", objtest.JSON(out), objtest.JSON(want))
			}
			checkIdempotent(t, out, c.options(), mutate)
		})
	}
}

// checkIdempotent applies the rule to its own output: nothing to change.
func checkIdempotent(t *testing.T, out map[string]any, opts agentpod.Options, mutate mutateFunc) {
	t.Helper()
	if again, res := mutate(out, opts); len(again) != 0 || res.Outcome == outcome.Injected {
		t.Errorf("not idempotent: %s, operations %s on %s", res.Outcome, objtest.JSON(again), objtest.JSON(out))
	}
}

// TestContainers checks the per-container records behind the annotation.
func TestContainers(t *testing.T) {
	in := objtest.MustYAML(agentPod(`{containers: [{name: agent, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: '{"ROLE":"r"}'}]}, {name: trace-agent, env: {}}], initContainers: [{name: init-config, env: [{name: DD_KUBERNETES_POD_LABELS_AS_TAGS, value: ""}]}]}`))
	_, res := agentpod.MutatePod(in, defaults)
	want := []agentpod.Container{
		{Name: "agent", Action: agentpod.ActionPresent, Tag: "r"},
		{Name: "trace-agent", Action: agentpod.ActionSkipped, Reason: agentpod.ReasonUnexpectedType, Detail: "env is an object"},
		{Name: "init-config", Action: agentpod.ActionInjected},
	}
	if !reflect.DeepEqual(res.Containers, want) {
		t.Errorf("containers:\n got %+v\nwant %+v", res.Containers, want)
	}
}

// TestStatusReadable: the annotation separates containers with "; ", so no
// container-level reason may contain ";" (contract 3.5: short, readable).
func TestStatusReadable(t *testing.T) {
	for _, r := range []agentpod.Reason{agentpod.ReasonValueFrom, agentpod.ReasonEnvFrom, agentpod.ReasonInvalidJSON, agentpod.ReasonDuplicateKeys, agentpod.ReasonUnexpectedType} {
		if strings.Contains(string(r), ";") || len(r) > 100 {
			t.Errorf("reason %q: contains ';' or is longer than 100 characters", r)
		}
	}
	if !strings.Contains(string(agentpod.ReasonInvalidJSON), "drops it whole") {
		t.Errorf("ReasonInvalidJSON must say the agent drops the value whole (contract 3.3): %q", agentpod.ReasonInvalidJSON)
	}
}

// TestNumbersKept: numbers elsewhere in the pod keep their exact text.
func TestNumbersKept(t *testing.T) {
	raw := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"agent.datadoghq.com/component":"agent"},` +
		`"ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"dd","uid":"u"}]},` +
		`"spec":{"terminationGracePeriodSeconds":30.0,"containers":[{"name":"agent","x":1e3}]}}`
	in, err := obj.Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := applied(t, agentpod.MutatePod, in, defaults)
	got := string(objtest.JSON(out))
	for _, n := range []string{`"terminationGracePeriodSeconds":30.0`, `"x":1e3`} {
		if !strings.Contains(got, n) {
			t.Errorf("output %s lost %s", got, n)
		}
	}
}

// TestStatusBounded: a pod with thousands of containers gets a status that
// stays readable and far below the apiserver's 256 KiB annotation limit,
// still counting every container.
func TestStatusBounded(t *testing.T) {
	var r agentpod.Result
	for i := range 10000 {
		a := agentpod.ActionInjected
		if i%3 == 0 {
			a = agentpod.ActionPresent
		}
		r.Containers = append(r.Containers, agentpod.Container{Name: fmt.Sprintf("c%05d", i), Action: a, Tag: "kube_role"})
	}
	s := r.Status()
	if len(s) > agentpod.MaxStatusLen {
		t.Fatalf("status is %d bytes, want at most %d", len(s), agentpod.MaxStatusLen)
	}
	if !strings.HasPrefix(s, "c00000: present (kube_role); c00001: injected") || !strings.Contains(s, " more containers: ") {
		t.Fatalf("status = %.200q…%q", s, s[len(s)-80:])
	}
	// Short statuses are not touched.
	r.Containers = r.Containers[:2]
	if got := r.Status(); got != "c00000: present (kube_role); c00001: injected" {
		t.Fatalf("status = %q", got)
	}
}

package agentconfig_test

// The agent pods the test admits: the pods the DaemonSet and ReplicaSet
// controllers create from the Datadog Helm renders in test/testdata/datadog-helm,
// pods shaped like the Datadog Operator's (v1.31.2 source), and variants that
// mount a datadog.yaml or set DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// agentCase is one pod and the ConfigMaps and Secrets it may mount.
type agentCase struct {
	name string
	pod  map[string]any
	// objects are "ConfigMap/<name>" or "Secret/<name>" → file name → content.
	objects map[string]map[string]string
	// safe: adding the mapping cannot hide another (no config file or
	// resources variable maps pod labels), so the Agent must end up mapping
	// the label in every container of the pod: the feature itself.
	safe bool
	// naiveLoses: a rule that adds the variable to every container without
	// looking at mounts or the resources variable breaks the property here.
	naiveLoses bool
}

// customAgentConfig is the datadog.yaml of the config-file cases, as Helm
// renders agents.customAgentConfig (toYaml) into its ConfigMap.
const customAgentConfig = "kubernetes_pod_labels_as_tags:\n  app: kube_app\n  team: team\n"

// operatorPodLabelsAsTags is DD_KUBERNETES_POD_LABELS_AS_TAGS as the Operator
// writes global.podLabelsAsTags {app: kube_app} (json.Marshal of the map,
// internal/controller/datadogagent/global/global.go applyGlobalSettings).
const operatorPodLabelsAsTags = `{"app":"kube_app"}`

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "test", "testdata", "datadog-helm")); err != nil {
		t.Fatalf("Datadog Helm renders not found from %s: %v", dir, err)
	}
	return dir
}

// helmRender reads a multi-document render.
func helmRender(t *testing.T, file string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "test", "testdata", "datadog-helm", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var docs []map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// renderObjects collects the ConfigMaps and Secrets of a render, the data a
// pod of that render can mount.
func renderObjects(t *testing.T, docs []map[string]any) map[string]map[string]string {
	t.Helper()
	objects := map[string]map[string]string{}
	for _, d := range docs {
		kind, _ := d["kind"].(string)
		if kind != "ConfigMap" && kind != "Secret" {
			continue
		}
		name := str(d, "metadata", "name")
		data := map[string]string{}
		for k, v := range asMap(d["data"]) {
			s, _ := v.(string)
			if kind == "Secret" {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					t.Fatalf("Secret %s key %s: %v", name, k, err)
				}
				s = string(b)
			}
			data[k] = s
		}
		for k, v := range asMap(d["stringData"]) {
			data[k], _ = v.(string)
		}
		objects[kind+"/"+name] = data
	}
	return objects
}

// controllerPod is the pod a controller creates from a workload's template:
// the template's metadata and spec, the controller's labels and owner.
func controllerPod(t *testing.T, workload map[string]any) map[string]any {
	t.Helper()
	tmpl := deepCopy(t, asMap(asMap(workload["spec"])["template"]))
	meta := asMap(tmpl["metadata"])
	if meta == nil {
		meta = map[string]any{}
	}
	labels := asMap(meta["labels"])
	if labels == nil {
		labels = map[string]any{}
	}
	name := str(workload, "metadata", "name")
	var owner map[string]any
	switch kind, _ := workload["kind"].(string); kind {
	case "DaemonSet": // pkg/controller/daemon: revision hash and generation labels
		labels["controller-revision-hash"] = "7b9c8d6f5d"
		labels["pod-template-generation"] = "1"
		owner = ownerRef("apps/v1", "DaemonSet", name)
	case "Deployment": // the ReplicaSet's pod-template-hash label, owned by the ReplicaSet
		labels["pod-template-hash"] = "6d4f8b7c9"
		owner = ownerRef("apps/v1", "ReplicaSet", name+"-6d4f8b7c9")
	default:
		t.Fatalf("no controller pod for a %s", kind)
	}
	meta["labels"] = labels
	meta["name"] = name + "-x7k2p"
	meta["namespace"] = str(workload, "metadata", "namespace")
	meta["ownerReferences"] = []any{owner}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl["spec"]}
}

func ownerRef(apiVersion, kind, name string) map[string]any {
	return map[string]any{
		"apiVersion": apiVersion, "kind": kind, "name": name,
		"uid":        "5f0c4a4e-1b0e-4c36-9a57-" + fmt.Sprintf("%012x", len(name)),
		"controller": true, "blockOwnerDeletion": true,
	}
}

// helmCases: every agent DaemonSet, Cluster Agent and Cluster Checks Runner
// Deployment of every render, as pods.
func helmCases(t *testing.T) []agentCase {
	t.Helper()
	var cases []agentCase
	for _, file := range []string{"default.yaml", "pod-labels-as-tags.yaml", "role-already-mapped.yaml"} {
		docs := helmRender(t, file)
		objects := renderObjects(t, docs)
		n := 0
		for _, d := range docs {
			kind, _ := d["kind"].(string)
			if kind != "DaemonSet" && kind != "Deployment" {
				continue
			}
			component := str(d, "spec", "template", "metadata", "labels", "agent.datadoghq.com/component")
			if component == "" {
				continue
			}
			n++
			cases = append(cases, agentCase{
				name:    "helm/" + strings.TrimSuffix(file, ".yaml") + "/" + component,
				pod:     controllerPod(t, d),
				objects: objects,
				safe:    true,
			})
		}
		if n < 2 {
			t.Fatalf("%s: %d agent workloads, want the agent DaemonSet and the cluster-agent Deployment at least", file, n)
		}
	}
	return cases
}

// helmNodeAgent is the node-Agent pod of a render, and its objects.
func helmNodeAgent(t *testing.T, file string) (map[string]any, map[string]map[string]string) {
	t.Helper()
	docs := helmRender(t, file)
	for _, d := range docs {
		if d["kind"] == "DaemonSet" && str(d, "spec", "template", "metadata", "labels", "agent.datadoghq.com/component") == "agent" {
			return controllerPod(t, d), renderObjects(t, docs)
		}
	}
	t.Fatalf("%s: no agent DaemonSet", file)
	return nil, nil
}

// configFileCases: a datadog.yaml mapping {app: kube_app, team: team} from a
// ConfigMap (Helm agents.useConfigMap + customAgentConfig: volume
// datadog-yaml, mount /etc/datadog-agent/datadog.yaml subPath datadog.yaml,
// templates/_container-agent.yaml and datadog-yaml-configmap.yaml), a Secret,
// and a whole config directory from a ConfigMap; with and without the
// variable in the containers' env.
func configFileCases(t *testing.T) []agentCase {
	t.Helper()
	var cases []agentCase
	for _, v := range []struct {
		render  string
		withEnv bool
	}{{"default.yaml", false}, {"pod-labels-as-tags.yaml", true}} {
		envName := "without-env"
		if v.withEnv {
			envName = "with-env"
		}
		// ConfigMap, subPath mount in every container.
		pod, objects := helmNodeAgent(t, v.render)
		cm := "dd-datadog-datadog-yaml"
		objects["ConfigMap/"+cm] = map[string]string{"datadog.yaml": customAgentConfig}
		addVolume(pod, map[string]any{"name": "datadog-yaml", "configMap": map[string]any{"name": cm}})
		forContainers(pod, func(c map[string]any) {
			addMount(c, map[string]any{"name": "datadog-yaml", "mountPath": agentConfDir + "/datadog.yaml", "subPath": "datadog.yaml", "readOnly": true})
		})
		cases = append(cases, agentCase{name: "datadog.yaml/configmap-subpath/" + envName, pod: pod, objects: objects, naiveLoses: !v.withEnv})

		// Secret, subPath mount in the agent container only.
		pod, objects = helmNodeAgent(t, v.render)
		objects["Secret/dd-agent-config"] = map[string]string{"datadog.yaml": customAgentConfig}
		addVolume(pod, map[string]any{"name": "agent-config", "secret": map[string]any{"secretName": "dd-agent-config"}})
		forContainers(pod, func(c map[string]any) {
			if c["name"] == "agent" {
				addMount(c, map[string]any{"name": "agent-config", "mountPath": agentConfDir + "/datadog.yaml", "subPath": "datadog.yaml"})
			}
		})
		cases = append(cases, agentCase{name: "datadog.yaml/secret-subpath/" + envName, pod: pod, objects: objects, naiveLoses: !v.withEnv})

		// The config directory itself from a ConfigMap: the chart's "config"
		// emptyDir at /etc/datadog-agent replaced by a ConfigMap volume.
		pod, objects = helmNodeAgent(t, v.render)
		objects["ConfigMap/dd-agent-confdir"] = map[string]string{"datadog.yaml": customAgentConfig}
		replaced := false
		for _, vol := range asSlice(asMap(pod["spec"])["volumes"]) {
			if m := asMap(vol); m["name"] == "config" {
				delete(m, "emptyDir")
				m["configMap"] = map[string]any{"name": "dd-agent-confdir"}
				replaced = true
			}
		}
		if !replaced {
			t.Fatalf("%s: no config volume", v.render)
		}
		cases = append(cases, agentCase{name: "datadog.yaml/configmap-directory/" + envName, pod: pod, objects: objects, naiveLoses: !v.withEnv})
	}
	return cases
}

// resourcesCases: DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS in every container,
// mapping role (it wins over ours) or only another label (it merges).
func resourcesCases(t *testing.T) []agentCase {
	t.Helper()
	var cases []agentCase
	for _, v := range []struct {
		render, name, value string
		mapsRole            bool
	}{
		{"default.yaml", "maps-role/without-env", `{"pods":{"role":"team_role"}}`, true},
		{"pod-labels-as-tags.yaml", "maps-role/with-env", `{"pods":{"role":"team_role"}}`, true},
		{"default.yaml", "other-label/without-env", `{"pods":{"tier":"kube_tier"}}`, false},
		{"pod-labels-as-tags.yaml", "other-label/with-env", `{"pods":{"tier":"kube_tier"},"nodes":{"zone":"kube_zone"}}`, false},
	} {
		pod, objects := helmNodeAgent(t, v.render)
		forContainers(pod, func(c map[string]any) {
			c["env"] = append(asSlice(c["env"]), map[string]any{"name": "DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS", "value": v.value})
		})
		cases = append(cases, agentCase{name: "resources-variable/" + v.name, pod: pod, objects: objects, safe: !v.mapsRole, naiveLoses: v.mapsRole})
	}
	return cases
}

// Operator-shaped pods, from github.com/DataDog/datadog-operator v1.31.2:
// labels from internal/controller/datadogagent/common/utils.go
// GetDefaultLabels and object/labels.go; containers and their env from
// component/agent/default.go, component/clusteragent/default.go and
// component/clusterchecksrunner/default.go; the global env
// (DD_KUBERNETES_POD_LABELS_AS_TAGS among them) added to every Agent
// container but not to init containers (global/global.go applyGlobalSettings,
// merger/envvars.go AddEnvVar over merger.AllAgentContainers);
// customConfigurations mounted with subPath in every Agent container
// (override/podtemplatespec.go overrideCustomConfigVolumes).
const ddaName = "datadog"

func operatorLabels(component string) map[string]any {
	return map[string]any{
		"app.kubernetes.io/name":        "datadog-agent-deployment",
		"app.kubernetes.io/instance":    ddaName + "-" + component,
		"app.kubernetes.io/part-of":     "datadog-" + ddaName,
		"app.kubernetes.io/version":     "",
		"app.kubernetes.io/managed-by":  "datadog-operator",
		"app.kubernetes.io/component":   component,
		"agent.datadoghq.com/name":      ddaName,
		"agent.datadoghq.com/component": component,
	}
}

func operatorPod(component string, owner map[string]any, initContainers, containers []any, volumes []any) map[string]any {
	spec := map[string]any{"containers": containers, "volumes": volumes, "serviceAccountName": ddaName + "-" + component}
	if len(initContainers) > 0 {
		spec["initContainers"] = initContainers
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"name": ddaName + "-" + component + "-x7k2p", "namespace": "datadog",
			"labels": operatorLabels(component), "ownerReferences": []any{owner},
		},
		"spec": spec,
	}
}

func env(pairs ...string) []any {
	var out []any
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, map[string]any{"name": pairs[i], "value": pairs[i+1]})
	}
	return out
}

func envFromField(name, field string) map[string]any {
	return map[string]any{"name": name, "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": field}}}
}

func envFromConfigMap(name, cm, key string) map[string]any {
	return map[string]any{"name": name, "valueFrom": map[string]any{"configMapKeyRef": map[string]any{"name": cm, "key": key}}}
}

// operatorCommonEnv is commonEnvVars of component/agent/default.go.
func operatorCommonEnv() []any {
	return append(env(
		"KUBERNETES", "yes",
		"DD_CLUSTER_AGENT_ENABLED", "true",
		"DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME", ddaName+"-cluster-agent",
		"DD_KUBERNETES_USE_ENDPOINT_SLICES", "true",
		"DD_CLUSTER_AGENT_TOKEN_NAME", ddaName+"-token",
		"DD_AUTH_TOKEN_FILE_PATH", "/etc/datadog-agent/auth/token",
	), envFromField("DD_KUBERNETES_KUBELET_HOST", "status.hostIP"))
}

// operatorGlobalEnv is what applyGlobalSettings adds to every Agent
// container; podLabelsAsTags only when the DatadogAgent sets it.
func operatorGlobalEnv(podLabelsAsTags bool) []any {
	e := env("DD_SITE", "datadoghq.com", "DD_LOG_LEVEL", "info")
	if podLabelsAsTags {
		e = append(e, env("DD_KUBERNETES_POD_LABELS_AS_TAGS", operatorPodLabelsAsTags)...)
	}
	return append(e, map[string]any{"name": "DD_API_KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": ddaName + "-secret", "key": "api_key"}}})
}

func container(name string, command []string, envs ...[]any) map[string]any {
	var all []any
	for _, e := range envs {
		all = append(all, e...)
	}
	cmd := make([]any, len(command))
	for i, s := range command {
		cmd[i] = s
	}
	c := map[string]any{"name": name, "image": "gcr.io/datadoghq/agent:7.77.0", "command": cmd,
		"volumeMounts": []any{map[string]any{"name": "config", "mountPath": agentConfDir}}}
	if len(all) > 0 {
		c["env"] = all
	}
	return c
}

func operatorNodeAgent(owner map[string]any, podLabelsAsTags bool) map[string]any {
	coreEnv := append(env("DD_HEALTH_PORT", "5555", "DD_CONTAINER_IMAGE_ENABLED", "true"), operatorCommonEnv()...)
	traceEnv := append([]any{
		envFromConfigMap("DD_INSTRUMENTATION_INSTALL_ID", ddaName+"-apm-telemetry", "install_id"),
		envFromConfigMap("DD_INSTRUMENTATION_INSTALL_TIME", ddaName+"-apm-telemetry", "install_time"),
		envFromConfigMap("DD_INSTRUMENTATION_INSTALL_TYPE", ddaName+"-apm-telemetry", "install_type"),
	}, operatorCommonEnv()...)
	global := operatorGlobalEnv(podLabelsAsTags)
	initVolume := container("init-volume", []string{"bash", "-c"})
	initVolume["volumeMounts"] = []any{map[string]any{"name": "config", "mountPath": "/opt/datadog-agent"}}
	return operatorPod("agent", owner,
		[]any{initVolume, container("init-config", []string{"bash", "-c"}, coreEnv)},
		[]any{
			container("agent", []string{"agent", "run"}, coreEnv, global),
			container("trace-agent", []string{"trace-loader", agentConfDir + "/datadog.yaml", "trace-agent", "--config=" + agentConfDir + "/datadog.yaml"}, traceEnv, global),
			container("process-agent", []string{"process-agent", "--cfgpath=" + agentConfDir + "/datadog.yaml"}, operatorCommonEnv(), global),
		},
		[]any{map[string]any{"name": "config", "emptyDir": map[string]any{}}})
}

func operatorClusterAgent(podLabelsAsTags bool) map[string]any {
	dcaEnv := append([]any{envFromField("DD_POD_NAME", "metadata.name")}, env(
		"DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME", ddaName+"-cluster-agent",
		"DD_KUBE_RESOURCES_NAMESPACE", "datadog",
		"DD_KUBERNETES_USE_ENDPOINT_SLICES", "true",
		"DD_LEADER_ELECTION", "true",
		"DD_HEALTH_PORT", "5556",
		"DD_AUTH_TOKEN_FILE_PATH", "/etc/datadog-agent/auth/token",
	)...)
	c := container("cluster-agent", []string{"datadog-cluster-agent", "start"}, dcaEnv, operatorGlobalEnv(podLabelsAsTags))
	return operatorPod("cluster-agent", ownerRef("apps/v1", "ReplicaSet", ddaName+"-cluster-agent-6d4f8b7c9"), nil,
		[]any{c}, []any{map[string]any{"name": "config", "emptyDir": map[string]any{}}})
}

func operatorClusterChecksRunner(podLabelsAsTags bool) map[string]any {
	clcEnv := append(env(
		"DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME", ddaName+"-cluster-agent",
		"DD_CLUSTER_AGENT_ENABLED", "true",
		"DD_HEALTH_PORT", "5555",
		"KUBERNETES", "yes",
		"DD_ENABLE_METADATA_COLLECTION", "false",
		"DD_CLC_RUNNER_ENABLED", "true",
	), envFromField("DD_CLC_RUNNER_HOST", "status.podIP"), envFromField("DD_CLC_RUNNER_ID", "metadata.name"))
	clcEnv = append(clcEnv, env("DD_DOGSTATSD_ENABLED", "false", "DD_PROCESS_CONFIG_PROCESS_COLLECTION_ENABLED", "false", "DD_LOGS_ENABLED", "false")...)
	c := container("agent", []string{"agent", "run"}, clcEnv, operatorGlobalEnv(podLabelsAsTags))
	return operatorPod("cluster-checks-runner", ownerRef("apps/v1", "ReplicaSet", ddaName+"-cluster-checks-runner-6d4f8b7c9"),
		[]any{container("init-config", []string{"bash", "-c"})},
		[]any{c}, []any{map[string]any{"name": "config", "emptyDir": map[string]any{}}})
}

// operatorCustomConfig mounts customConfigurations[file] of the component in
// every Agent container, as overrideCustomConfigVolumes does.
func operatorCustomConfig(pod map[string]any, component, file, content string, objects map[string]map[string]string) {
	cm := fmt.Sprintf("%s-%s-yaml-%s", ddaName, strings.Split(file, ".")[0], component)
	vol := cm
	if component == "clusteragent" {
		vol = "custom-cluster-agent-yaml"
	}
	objects["ConfigMap/"+cm] = map[string]string{file: content}
	addVolume(pod, map[string]any{"name": vol, "configMap": map[string]any{"name": cm}})
	forContainers(pod, func(c map[string]any) {
		addMount(c, map[string]any{"name": vol, "mountPath": agentConfDir + "/" + file, "subPath": file})
	})
}

func operatorCases() []agentCase {
	ds := ownerRef("apps/v1", "DaemonSet", ddaName+"-agent")
	eds := ownerRef("datadoghq.com/v1alpha1", "ExtendedDaemonSetReplicaSet", ddaName+"-agent-8k6wq")
	none := func() map[string]map[string]string { return map[string]map[string]string{} }
	cases := []agentCase{
		{name: "operator/agent/daemonset", pod: operatorNodeAgent(ds, true), objects: none(), safe: true},
		{name: "operator/agent/extendeddaemonset", pod: operatorNodeAgent(eds, true), objects: none(), safe: true},
		{name: "operator/agent/daemonset/no-podLabelsAsTags", pod: operatorNodeAgent(ds, false), objects: none(), safe: true},
		{name: "operator/cluster-agent", pod: operatorClusterAgent(true), objects: none(), safe: true},
		{name: "operator/cluster-checks-runner", pod: operatorClusterChecksRunner(true), objects: none(), safe: true},
	}
	for _, withEnv := range []bool{false, true} {
		suffix := "without-env"
		if withEnv {
			suffix = "with-env"
		}
		objects := none()
		pod := operatorNodeAgent(eds, withEnv)
		operatorCustomConfig(pod, "nodeagent", "datadog.yaml", customAgentConfig, objects)
		cases = append(cases, agentCase{name: "operator/agent/customConfigurations-datadog.yaml/" + suffix, pod: pod, objects: objects, naiveLoses: !withEnv})

		objects = none()
		pod = operatorClusterAgent(withEnv)
		operatorCustomConfig(pod, "clusteragent", "datadog-cluster.yaml", customAgentConfig, objects)
		cases = append(cases, agentCase{name: "operator/cluster-agent/customConfigurations-datadog-cluster.yaml/" + suffix, pod: pod, objects: objects, naiveLoses: !withEnv})

		objects = none()
		pod = operatorClusterChecksRunner(withEnv)
		operatorCustomConfig(pod, "clusterchecksrunner", "datadog.yaml", customAgentConfig, objects)
		cases = append(cases, agentCase{name: "operator/cluster-checks-runner/customConfigurations-datadog.yaml/" + suffix, pod: pod, objects: objects, naiveLoses: !withEnv})
	}
	return cases
}

func allCases(t *testing.T) []agentCase {
	t.Helper()
	var cases []agentCase
	cases = append(cases, helmCases(t)...)
	cases = append(cases, configFileCases(t)...)
	cases = append(cases, resourcesCases(t)...)
	cases = append(cases, operatorCases()...)
	return cases
}

// containerEnv is a container's process environment as the kubelet sets it
// from env: in order, the last entry of a name winning. Entries with
// valueFrom are left out (API keys, host IPs); one of the two variables the
// mapping comes from set that way, or envFrom, cannot be evaluated here.
func containerEnv(t *testing.T, c map[string]any) []envVar {
	t.Helper()
	if len(asSlice(c["envFrom"])) > 0 {
		t.Fatalf("container %v has envFrom: its variables are not visible to this test", c["name"])
	}
	byName := map[string]int{}
	var out []envVar
	for _, e := range asSlice(c["env"]) {
		m := asMap(e)
		name, _ := m["name"].(string)
		if _, ok := m["valueFrom"]; ok {
			if name == "DD_KUBERNETES_POD_LABELS_AS_TAGS" || name == "DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS" {
				t.Fatalf("container %v sets %s with valueFrom: not visible to this test", c["name"], name)
			}
			continue
		}
		value, _ := m["value"].(string)
		if strings.Contains(value, "$(") {
			t.Fatalf("container %v: %s uses a $(VAR) reference this test does not expand", c["name"], name)
		}
		if i, ok := byName[name]; ok {
			out[i].Value = value
			continue
		}
		byName[name] = len(out)
		out = append(out, envVar{name, value})
	}
	return out
}

// mountedConfig is what the container sees under /etc/datadog-agent from
// ConfigMap and Secret volumes (relative path → content). Other volumes there
// (the charts' emptyDir filled from the image by init-volume) hold the
// image's defaults, which map no pod labels.
func mountedConfig(t *testing.T, pod map[string]any, c map[string]any, objects map[string]map[string]string) map[string]string {
	t.Helper()
	volumes := map[string]map[string]any{}
	for _, v := range asSlice(asMap(pod["spec"])["volumes"]) {
		m := asMap(v)
		name, _ := m["name"].(string)
		volumes[name] = m
	}
	files := map[string]string{}
	for _, vm := range asSlice(c["volumeMounts"]) {
		m := asMap(vm)
		mountPath, _ := m["mountPath"].(string)
		mountPath = path.Clean(mountPath)
		if mountPath != agentConfDir && !strings.HasPrefix(mountPath, agentConfDir+"/") {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(mountPath, agentConfDir), "/")
		vol := volumes[fmt.Sprint(m["name"])]
		var key string
		switch {
		case vol["configMap"] != nil:
			key = "ConfigMap/" + str(vol, "configMap", "name")
		case vol["secret"] != nil:
			key = "Secret/" + str(vol, "secret", "secretName")
		default:
			continue
		}
		data, ok := objects[key]
		if !ok {
			t.Fatalf("container %v mounts %s at %s but the case has no such object", c["name"], key, mountPath)
		}
		// items: key → path; without items every key is a file.
		src := asMap(vol["configMap"])
		if src == nil {
			src = asMap(vol["secret"])
		}
		entries := map[string]string{}
		if items := asSlice(src["items"]); len(items) > 0 {
			for _, it := range items {
				im := asMap(it)
				if content, ok := data[fmt.Sprint(im["key"])]; ok {
					entries[fmt.Sprint(im["path"])] = content
				}
			}
		} else {
			for k, content := range data {
				entries[k] = content
			}
		}
		if sub, _ := m["subPath"].(string); sub != "" {
			if content, ok := entries[sub]; ok {
				files[rel] = content
			}
			continue
		}
		for p, content := range entries {
			files[path.Join(rel, p)] = content
		}
	}
	return files
}

// Small helpers over unstructured JSON.

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asSlice(v any) []any        { s, _ := v.([]any); return s }

func str(o map[string]any, keys ...string) string {
	var v any = o
	for _, k := range keys {
		v = asMap(v)[k]
	}
	s, _ := v.(string)
	return s
}

func deepCopy(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func addVolume(pod map[string]any, vol map[string]any) {
	spec := asMap(pod["spec"])
	spec["volumes"] = append(asSlice(spec["volumes"]), vol)
}

func addMount(c map[string]any, mount map[string]any) {
	c["volumeMounts"] = append(asSlice(c["volumeMounts"]), mount)
}

// forContainers calls f on every entry of spec.containers (not init containers).
func forContainers(pod map[string]any, f func(map[string]any)) {
	for _, c := range asSlice(asMap(pod["spec"])["containers"]) {
		f(asMap(c))
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

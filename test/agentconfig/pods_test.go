package agentconfig_test

// The agent pods the test admits: the pods the DaemonSet and ReplicaSet
// controllers create from the Datadog Helm renders in test/testdata/datadog-helm
// and from the Datadog Operator's renders in test/testdata/datadog-operator,
// and variants that mount a datadog.yaml or set
// DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS.

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

// render reads a multi-document render from test/testdata/<dir>.
func render(t *testing.T, dir, file string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "test", "testdata", dir, file))
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
			t.Fatalf("%s/%s: %v", dir, file, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

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
// Deployment of every Helm render, as pods.
func helmCases(t *testing.T) []agentCase {
	t.Helper()
	var cases []agentCase
	for _, file := range []string{"default.yaml", "pod-labels-as-tags.yaml", "role-already-mapped.yaml"} {
		for _, c := range renderCases(t, "datadog-helm", file, 2) {
			c.safe = true
			cases = append(cases, c)
		}
	}
	return cases
}

// renderCases: the pods of every agent workload (a DaemonSet or Deployment
// whose pods carry agent.datadoghq.com/component) of a render, with the
// render's ConfigMaps and Secrets; at least min of them.
func renderCases(t *testing.T, dir, file string, min int) []agentCase {
	t.Helper()
	docs := render(t, dir, file)
	objects := renderObjects(t, docs)
	var cases []agentCase
	for _, d := range docs {
		kind, _ := d["kind"].(string)
		if kind != "DaemonSet" && kind != "Deployment" {
			continue
		}
		component := str(d, "spec", "template", "metadata", "labels", "agent.datadoghq.com/component")
		if component == "" {
			continue
		}
		cases = append(cases, agentCase{
			name:    strings.TrimPrefix(dir, "datadog-") + "/" + strings.TrimSuffix(file, ".yaml") + "/" + component,
			pod:     controllerPod(t, d),
			objects: objects,
		})
	}
	if len(cases) < min {
		t.Fatalf("%s/%s: %d agent workloads, want at least %d", dir, file, len(cases), min)
	}
	return cases
}

// helmNodeAgent is the node-Agent pod of a render, and its objects.
func helmNodeAgent(t *testing.T, file string) (map[string]any, map[string]map[string]string) {
	t.Helper()
	docs := render(t, "datadog-helm", file)
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
		// "pods." names the core group's pods too (the Agent trims the dot).
		{"default.yaml", "maps-role-core-group/without-env", `{"pods.":{"Role":"team_role"}}`, true},
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

// operatorCases: every agent workload of the Datadog Operator's renders
// (test/testdata/datadog-operator: its own reconcilers' output, which make
// e2e checks against the running Operator), as pods. customConfigurations
// put a datadog.yaml mapping pod labels in a ConfigMap mounted with subPath
// in every Agent container: without the variable, adding it would hide that
// file. And the node Agent owned by an ExtendedDaemonSetReplicaSet, as
// Operators with ExtendedDaemonSet support run it (v1.31 builds DaemonSets
// only, so that owner is put on its render's pod).
func operatorCases(t *testing.T) []agentCase {
	t.Helper()
	var cases []agentCase
	for _, r := range []struct {
		file       string
		safe       bool
		naiveLoses bool
	}{
		{"default.yaml", true, false},
		{"pod-labels-as-tags.yaml", true, false},
		{"custom-config-without-env.yaml", false, true},
		{"custom-config-with-env.yaml", false, false},
	} {
		for _, c := range renderCases(t, "datadog-operator", r.file, 3) {
			c.safe, c.naiveLoses = r.safe, r.naiveLoses
			cases = append(cases, c)
		}
	}
	for _, c := range renderCases(t, "datadog-operator", "pod-labels-as-tags.yaml", 3) {
		if str(c.pod, "metadata", "labels", "agent.datadoghq.com/component") == "agent" {
			c.name += "/extendeddaemonset"
			asMap(c.pod["metadata"])["ownerReferences"] = []any{ownerRef("datadoghq.com/v1alpha1", "ExtendedDaemonSetReplicaSet", "datadog-agent-8k6wq")}
			cases = append(cases, c)
		}
	}
	return cases
}

func allCases(t *testing.T) []agentCase {
	t.Helper()
	var cases []agentCase
	cases = append(cases, helmCases(t)...)
	cases = append(cases, configFileCases(t)...)
	cases = append(cases, resourcesCases(t)...)
	cases = append(cases, operatorCases(t)...)
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

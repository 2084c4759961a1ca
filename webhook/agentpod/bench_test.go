package agentpod_test

// BenchmarkMutate measures the agent-pod rule alone (no decoding, no patch) on
// agent pods built from the Datadog Helm chart's renders (read in place from
// test/testdata/datadog-helm) and on one
// shaped like the Datadog Operator's. Compare runs with benchstat:
//
//	go test -run '^$' -bench BenchmarkMutate -benchmem -count 10 ./webhook/agentpod > new.txt
//	benchstat old.txt new.txt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

const benchFixtures = "../../test/testdata/datadog-helm"

func benchOpts(b *testing.B) agentpod.Options {
	sel, err := labels.Parse("agent.datadoghq.com/component=agent")
	if err != nil {
		b.Fatal(err)
	}
	return agentpod.Options{LabelKey: "role", TagName: "kube_role", Selector: sel}
}

// benchHelmPod returns the pod the DaemonSet controller creates from the agent
// DaemonSet of a Helm render, as the apiserver sends it (defaults applied).
func benchHelmPod(b *testing.B, file string) map[string]any {
	raw, err := os.ReadFile(filepath.Join(benchFixtures, file))
	if errors.Is(err, os.ErrNotExist) {
		b.Skipf("fixture %s not found (the shared fixtures sit next to the repository)", file)
	} else if err != nil {
		b.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			b.Fatal(err)
		}
		if doc["kind"] == "DaemonSet" {
			return benchPodFromDaemonSet(b, doc)
		}
	}
	b.Fatalf("%s: no DaemonSet", file)
	return nil
}

func benchPodFromDaemonSet(b *testing.B, ds map[string]any) map[string]any {
	dsMeta := ds["metadata"].(map[string]any)
	tmpl := ds["spec"].(map[string]any)["template"].(map[string]any)
	tmeta := tmpl["metadata"].(map[string]any)
	podLabels := map[string]any{"controller-revision-hash": "7d9f8c6b5", "pod-template-generation": "1"}
	for k, v := range tmeta["labels"].(map[string]any) {
		podLabels[k] = v
	}
	spec := tmpl["spec"].(map[string]any)
	spec["nodeName"] = "node-1"
	spec["restartPolicy"] = "Always"
	spec["dnsPolicy"] = "ClusterFirst"
	spec["schedulerName"] = "default-scheduler"
	spec["terminationGracePeriodSeconds"] = 30
	spec["tolerations"] = []any{
		map[string]any{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
		map[string]any{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
	}
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"generateName": dsMeta["name"].(string) + "-", "namespace": dsMeta["namespace"],
			"labels": podLabels, "annotations": tmeta["annotations"],
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": dsMeta["name"],
				"uid": "0c7f4b0e-3b7a-4f5e-9d55-1a2b3c4d5e6f", "controller": true, "blockOwnerDeletion": true}},
		},
		"spec": spec,
	}
	return benchRoundTrip(b, pod)
}

// benchRoundTrip re-decodes v the way the handler does (json.Number).
func benchRoundTrip(b *testing.B, v any) map[string]any {
	raw, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	m, err := obj.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// benchOperatorPod is an agent pod shaped like the Datadog Operator's
// (DatadogAgent with podLabelsAsTags {"app":"kube_app"}): containers agent,
// trace-agent, process-agent; init containers init-volume, init-config.
func benchOperatorPod(b *testing.B) map[string]any {
	env := func(extra ...any) []any {
		e := []any{
			map[string]any{"name": "DD_API_KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "datadog-secret", "key": "api-key"}}},
			map[string]any{"name": "DD_CLUSTER_NAME", "value": "prod-eu-1"},
			map[string]any{"name": "DD_SITE", "value": "datadoghq.eu"},
			map[string]any{"name": "DD_KUBERNETES_KUBELET_HOST", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "status.hostIP"}}},
			map[string]any{"name": "DD_CLUSTER_AGENT_ENABLED", "value": "true"},
			map[string]any{"name": "DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME", "value": "datadog-cluster-agent"},
			map[string]any{"name": "DD_CLUSTER_AGENT_AUTH_TOKEN", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "datadog-token", "key": "token"}}},
			map[string]any{"name": "DD_KUBERNETES_POD_LABELS_AS_TAGS", "value": `{"app":"kube_app"}`},
		}
		return append(e, extra...)
	}
	mounts := []any{
		map[string]any{"name": "logdatadog", "mountPath": "/var/log/datadog"},
		map[string]any{"name": "config", "mountPath": "/etc/datadog-agent"},
		map[string]any{"name": "procdir", "mountPath": "/host/proc", "readOnly": true},
		map[string]any{"name": "cgroups", "mountPath": "/host/sys/fs/cgroup", "readOnly": true},
	}
	ctr := func(name string, cmd ...any) map[string]any {
		return map[string]any{"name": name, "image": "gcr.io/datadoghq/agent:7.81.1", "imagePullPolicy": "IfNotPresent",
			"command": cmd, "env": env(), "volumeMounts": mounts, "resources": map[string]any{},
			"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
	}
	agent := ctr("agent", "agent", "run")
	agent["livenessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/live", "port": 5555, "scheme": "HTTP"}, "periodSeconds": 15}
	agent["readinessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/ready", "port": 5555, "scheme": "HTTP"}, "periodSeconds": 15}
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"generateName": "datadog-agent-", "namespace": "datadog",
			"labels": map[string]any{
				"agent.datadoghq.com/component": "agent", "agent.datadoghq.com/name": "datadog",
				"agent.datadoghq.com/provider": "", "app.kubernetes.io/component": "agent",
				"app.kubernetes.io/instance": "datadog-agent", "app.kubernetes.io/managed-by": "datadog-operator",
				"app.kubernetes.io/name": "datadog-agent-deployment", "app.kubernetes.io/part-of": "datadog-datadog",
				"app.kubernetes.io/version": "", "controller-revision-hash": "5c8b7f9d4", "pod-template-generation": "3",
			},
			"annotations": map[string]any{"agent.datadoghq.com/agentspechash": "9f2d3c4b5a6e7f8091a2b3c4d5e6f708"},
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "datadog-agent",
				"uid": "6a0b5a9e-1f3c-4f7e-8a2b-9c0d1e2f3a4b", "controller": true, "blockOwnerDeletion": true}},
		},
		"spec": map[string]any{
			"serviceAccountName": "datadog-agent", "nodeName": "node-1", "hostPID": true,
			"initContainers": []any{
				map[string]any{"name": "init-volume", "image": "gcr.io/datadoghq/agent:7.81.1", "command": []any{"bash", "-c"},
					"args": []any{"cp -vnr /etc/datadog-agent /opt"}, "volumeMounts": mounts[1:2]},
				map[string]any{"name": "init-config", "image": "gcr.io/datadoghq/agent:7.81.1", "command": []any{"bash", "-c"},
					"args": []any{"for script in $(find /etc/cont-init.d/ -type f -name '*.sh' | sort) ; do bash $script ; done"},
					"env":  env(), "volumeMounts": mounts},
			},
			"containers": []any{agent, ctr("trace-agent", "trace-agent", "-config=/etc/datadog-agent/datadog.yaml"),
				ctr("process-agent", "process-agent", "--cfgpath=/etc/datadog-agent/datadog.yaml")},
			"volumes": []any{
				map[string]any{"name": "logdatadog", "emptyDir": map[string]any{}},
				map[string]any{"name": "config", "emptyDir": map[string]any{}},
				map[string]any{"name": "procdir", "hostPath": map[string]any{"path": "/proc"}},
				map[string]any{"name": "cgroups", "hostPath": map[string]any{"path": "/sys/fs/cgroup"}},
			},
			"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
			"tolerations": []any{map[string]any{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}},
		},
	}
	return benchRoundTrip(b, pod)
}

// benchManyEnv is the operator pod with n extra env entries in each container.
func benchManyEnv(b *testing.B, n int) map[string]any {
	pod := benchOperatorPod(b)
	for _, c := range pod["spec"].(map[string]any)["containers"].([]any) {
		cm := c.(map[string]any)
		env := cm["env"].([]any)
		extra := make([]any, 0, n+len(env))
		for i := range n {
			extra = append(extra, map[string]any{"name": fmt.Sprintf("VAR_%05d", i), "value": "x"})
		}
		cm["env"] = append(extra, env...)
	}
	return pod
}

func BenchmarkMutate(b *testing.B) {
	opts := benchOpts(b)
	for _, c := range []struct {
		name string
		pod  func(*testing.B) map[string]any
		want outcome.Outcome
	}{
		{"helm-default", func(b *testing.B) map[string]any { return benchHelmPod(b, "default.yaml") }, outcome.Injected},
		{"helm-pod-labels-as-tags", func(b *testing.B) map[string]any { return benchHelmPod(b, "pod-labels-as-tags.yaml") }, outcome.Injected},
		{"helm-role-already-mapped", func(b *testing.B) map[string]any { return benchHelmPod(b, "role-already-mapped.yaml") }, outcome.Present},
		{"operator", benchOperatorPod, outcome.Injected},
		{"operator-1000-env", func(b *testing.B) map[string]any { return benchManyEnv(b, 1000) }, outcome.Injected},
	} {
		b.Run(c.name, func(b *testing.B) {
			pod := c.pod(b)
			if _, r := agentpod.MutatePod(pod, opts); r.Outcome != c.want {
				b.Fatalf("outcome %q, want %q (%+v)", r.Outcome, c.want, r)
			}
			b.ReportAllocs()
			for b.Loop() {
				agentpod.MutatePod(pod, opts)
			}
		})
	}
}

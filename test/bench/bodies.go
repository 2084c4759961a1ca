// Package bench measures what users of canary-tagger feel: Rollout creates in
// a real kube-apiserver with canary-tagger, a no-op webhook, a
// MutatingAdmissionPolicy or nothing in the way (cmd/admissionbench, `make
// bench`), canary-tagger's RSS, and a keep-alive HTTPS load generator with
// request bodies built at run time from real shapes (cmd/loadbench, `make
// soak`; test/faults reuses it).
//
// It drives the built `canary-tagger serve` binary; the repository's paths
// and free ports come from the test harness.
package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// Paths of the two webhooks (contract 1).
const (
	PathRollout  = "/mutate-rollout"
	PathAgentPod = "/mutate-agent-pod"
)

// Body is one AdmissionReview request body and where it goes.
type Body struct {
	Name string // short, for tables
	Path string
	JSON []byte
	// Patched says whether canary-tagger is expected to return a patch.
	Patched bool
}

// FixturesDir is where the Datadog Helm chart renders live.
func FixturesDir(repo string) string {
	return filepath.Join(repo, "test", "testdata", "datadog-helm")
}

// SeedRollout returns the seed's Rollout as the apiserver sends it on CREATE
// in namespace ns: defaults, uid, managedFields and kubectl's
// last-applied-configuration annotation included.
func SeedRollout(repo, ns string) (map[string]any, error) {
	raw, err := os.ReadFile(harness.SeedRolloutPath(repo))
	if err != nil {
		return nil, err
	}
	docs, err := decodeYAML(raw)
	if err != nil || len(docs) != 1 {
		return nil, fmt.Errorf("seed rollout: %v (%d documents)", err, len(docs))
	}
	r := docs[0]
	applied, _ := json.Marshal(r)
	meta := r["metadata"].(map[string]any)
	meta["namespace"] = ns
	meta["uid"] = "4b1c2a53-0d4f-4d61-9c7e-3d1f5b7a9e10"
	meta["generation"] = 1
	meta["creationTimestamp"] = "2026-11-25T10:00:00Z"
	meta["annotations"] = map[string]any{"kubectl.kubernetes.io/last-applied-configuration": string(applied) + "\n"}
	meta["managedFields"] = []any{map[string]any{
		"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "argoproj.io/v1alpha1",
		"time": "2026-11-25T10:00:00Z", "fieldsType": "FieldsV1",
		"fieldsV1": map[string]any{
			"f:metadata": map[string]any{"f:annotations": map[string]any{".": map[string]any{}, "f:kubectl.kubernetes.io/last-applied-configuration": map[string]any{}}},
			"f:spec": map[string]any{".": map[string]any{}, "f:replicas": map[string]any{}, "f:selector": map[string]any{},
				"f:strategy": map[string]any{".": map[string]any{}, "f:canary": map[string]any{".": map[string]any{}, "f:steps": map[string]any{}}},
				"f:template": map[string]any{}},
		},
	}}
	return r, nil
}

// UnknownFieldsRollout is the seed with many fields canary-tagger does not
// know (about 60 KiB): 200 annotations, 100 fields of a future API version,
// 50 analysis templates, traffic routing, a status, and ephemeral metadata on
// both sides that lacks the label.
func UnknownFieldsRollout(repo, ns string) (map[string]any, error) {
	r, err := SeedRollout(repo, ns)
	if err != nil {
		return nil, err
	}
	ann := r["metadata"].(map[string]any)["annotations"].(map[string]any)
	for i := range 200 {
		ann[fmt.Sprintf("example.com/annotation-%03d", i)] = fmt.Sprintf("value %d, as long as a checksum: 0123456789abcdef0123456789abcdef", i)
	}
	spec := r["spec"].(map[string]any)
	for i := range 100 {
		spec[fmt.Sprintf("futureField%03d", i)] = map[string]any{"enabled": true, "n": i, "ratio": 1.5, "list": []any{"a", "b", nil}}
	}
	canary := spec["strategy"].(map[string]any)["canary"].(map[string]any)
	var analyses []any
	for i := range 50 {
		analyses = append(analyses, map[string]any{"templateName": fmt.Sprintf("success-rate-%d", i),
			"args": []any{map[string]any{"name": "service", "value": "demo"}, map[string]any{"name": "threshold", "value": "0.99"}}})
	}
	canary["analysis"] = map[string]any{"templates": analyses, "startingStep": 2}
	canary["trafficRouting"] = map[string]any{"nginx": map[string]any{"stableIngress": "demo",
		"additionalIngressAnnotations": map[string]any{"canary-by-header": "X-Canary"}}}
	canary["stableMetadata"] = map[string]any{"annotations": map[string]any{"team": "payments"}}
	canary["canaryMetadata"] = map[string]any{"labels": map[string]any{"track": "canary"}, "annotations": map[string]any{"team": "payments"}}
	r["status"] = map[string]any{"phase": "Healthy", "replicas": 5, "readyReplicas": 5,
		"conditions": []any{map[string]any{"type": "Available", "status": "True", "reason": "AvailableReason"}}}
	return r, nil
}

// HelmAgentPod returns the pod the DaemonSet controller creates from the agent
// DaemonSet of a Helm chart render (file in FixturesDir), as the apiserver
// sends it on CREATE (defaults applied, no name yet: generateName).
func HelmAgentPod(repo, file string) (map[string]any, error) {
	ds, err := HelmAgentDaemonSet(repo, file)
	if err != nil {
		return nil, err
	}
	return podFromDaemonSet(ds), nil
}

// HelmAgentDaemonSet returns the agent DaemonSet of a Helm chart render.
func HelmAgentDaemonSet(repo, file string) (map[string]any, error) {
	path := filepath.Join(FixturesDir(repo), file)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("Datadog Helm chart render %s not found: the fixtures live in test/testdata/datadog-helm", path)
	} else if err != nil {
		return nil, err
	}
	docs, err := decodeYAML(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	for _, d := range docs {
		if d["kind"] == "DaemonSet" {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%s: no DaemonSet", file)
}

func podFromDaemonSet(ds map[string]any) map[string]any {
	dsMeta := ds["metadata"].(map[string]any)
	tmpl := ds["spec"].(map[string]any)["template"].(map[string]any)
	tmeta := tmpl["metadata"].(map[string]any)
	labels := map[string]any{"controller-revision-hash": "7d9f8c6b5", "pod-template-generation": "1"}
	for k, v := range asMap(tmeta["labels"]) {
		labels[k] = v
	}
	spec := tmpl["spec"].(map[string]any)
	spec["restartPolicy"] = "Always"
	spec["dnsPolicy"] = "ClusterFirst"
	spec["schedulerName"] = "default-scheduler"
	spec["terminationGracePeriodSeconds"] = 30
	spec["enableServiceLinks"] = true
	spec["preemptionPolicy"] = "PreemptLowerPriority"
	spec["priority"] = 0
	spec["affinity"] = map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
		"nodeSelectorTerms": []any{map[string]any{"matchFields": []any{map[string]any{"key": "metadata.name", "operator": "In", "values": []any{"node-1"}}}}}}}}
	spec["tolerations"] = []any{
		map[string]any{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
		map[string]any{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
		map[string]any{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
		map[string]any{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
		map[string]any{"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
		map[string]any{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
	}
	for _, field := range []string{"containers", "initContainers"} {
		list, _ := spec[field].([]any)
		for _, c := range list {
			if cm, ok := c.(map[string]any); ok {
				cm["terminationMessagePath"] = "/dev/termination-log"
				cm["terminationMessagePolicy"] = "File"
				if _, ok := cm["imagePullPolicy"]; !ok {
					cm["imagePullPolicy"] = "IfNotPresent"
				}
			}
		}
	}
	name, _ := dsMeta["name"].(string)
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"generateName": name + "-", "namespace": dsMeta["namespace"],
			"labels": labels, "annotations": tmeta["annotations"],
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name,
				"uid": "0c7f4b0e-3b7a-4f5e-9d55-1a2b3c4d5e6f", "controller": true, "blockOwnerDeletion": true}},
		},
		"spec": spec,
	}
}

// OperatorAgentPod is an agent pod shaped like the Datadog Operator's
// (a DatadogAgent named "datadog" with podLabelsAsTags {"app":"kube_app"}):
// containers agent, trace-agent, process-agent; init containers init-volume
// and init-config; the operator's labels and owner DaemonSet "datadog-agent".
func OperatorAgentPod(ns string) map[string]any {
	env := func() []any {
		return []any{
			map[string]any{"name": "DD_API_KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "datadog-secret", "key": "api-key"}}},
			map[string]any{"name": "DD_CLUSTER_NAME", "value": "prod-eu-1"},
			map[string]any{"name": "DD_SITE", "value": "datadoghq.eu"},
			map[string]any{"name": "DD_KUBERNETES_KUBELET_HOST", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "status.hostIP"}}},
			map[string]any{"name": "DD_KUBELET_TLS_VERIFY", "value": "false"},
			map[string]any{"name": "DD_HEALTH_PORT", "value": "5555"},
			map[string]any{"name": "DD_CLUSTER_AGENT_ENABLED", "value": "true"},
			map[string]any{"name": "DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME", "value": "datadog-cluster-agent"},
			map[string]any{"name": "DD_CLUSTER_AGENT_AUTH_TOKEN", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "datadog-token", "key": "token"}}},
			map[string]any{"name": "DD_KUBERNETES_POD_LABELS_AS_TAGS", "value": `{"app":"kube_app"}`},
			map[string]any{"name": "DD_LOG_LEVEL", "value": "INFO"},
		}
	}
	mounts := func() []any {
		return []any{
			map[string]any{"name": "logdatadog", "mountPath": "/var/log/datadog"},
			map[string]any{"name": "config", "mountPath": "/etc/datadog-agent"},
			map[string]any{"name": "installinfo", "mountPath": "/etc/datadog-agent/install_info", "subPath": "install_info", "readOnly": true},
			map[string]any{"name": "procdir", "mountPath": "/host/proc", "readOnly": true},
			map[string]any{"name": "cgroups", "mountPath": "/host/sys/fs/cgroup", "readOnly": true},
			map[string]any{"name": "runtimesocketdir", "mountPath": "/host/var/run", "readOnly": true},
		}
	}
	ctr := func(name string, cmd ...any) map[string]any {
		return map[string]any{"name": name, "image": "gcr.io/datadoghq/agent:7.81.1", "imagePullPolicy": "IfNotPresent",
			"command": cmd, "env": env(), "volumeMounts": mounts(), "resources": map[string]any{},
			"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
	}
	agent := ctr("agent", "agent", "run")
	agent["ports"] = []any{map[string]any{"name": "dogstatsdport", "containerPort": 8125, "protocol": "UDP"}}
	agent["livenessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/live", "port": 5555, "scheme": "HTTP"},
		"initialDelaySeconds": 15, "periodSeconds": 15, "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 6}
	agent["readinessProbe"] = map[string]any{"httpGet": map[string]any{"path": "/ready", "port": 5555, "scheme": "HTTP"},
		"initialDelaySeconds": 15, "periodSeconds": 15, "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 6}
	trace := ctr("trace-agent", "trace-agent", "-config=/etc/datadog-agent/datadog.yaml")
	trace["ports"] = []any{map[string]any{"name": "traceport", "containerPort": 8126, "protocol": "TCP"}}
	initConfig := ctr("init-config", "bash", "-c")
	initConfig["args"] = []any{"for script in $(find /etc/cont-init.d/ -type f -name '*.sh' | sort) ; do bash $script ; done"}
	initVolume := ctr("init-volume", "bash", "-c")
	initVolume["args"] = []any{"cp -vnr /etc/datadog-agent /opt"}
	delete(initVolume, "env")
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"generateName": "datadog-agent-", "namespace": ns,
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
			"serviceAccountName": "datadog-agent", "serviceAccount": "datadog-agent", "hostPID": true,
			"initContainers": []any{initVolume, initConfig},
			"containers":     []any{agent, trace, ctr("process-agent", "process-agent", "--cfgpath=/etc/datadog-agent/datadog.yaml")},
			"volumes": []any{
				map[string]any{"name": "logdatadog", "emptyDir": map[string]any{}},
				map[string]any{"name": "config", "emptyDir": map[string]any{}},
				map[string]any{"name": "installinfo", "configMap": map[string]any{"name": "datadog-install-info", "defaultMode": 420}},
				map[string]any{"name": "procdir", "hostPath": map[string]any{"path": "/proc", "type": ""}},
				map[string]any{"name": "cgroups", "hostPath": map[string]any{"path": "/sys/fs/cgroup", "type": ""}},
				map[string]any{"name": "runtimesocketdir", "hostPath": map[string]any{"path": "/var/run", "type": ""}},
			},
			"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
			"terminationGracePeriodSeconds": 30, "priority": 0, "enableServiceLinks": true,
			"tolerations": []any{map[string]any{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}},
		},
	}
}

// Review wraps obj in an AdmissionReview v1 request as the apiserver sends
// it: encoded from the typed AdmissionReview, so in the apiserver's key order
// (kind, apiVersion, request with uid first and the object near the end).
func Review(uid, operation string, obj map[string]any) ([]byte, error) {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	group, version, found := strings.Cut(apiVersion, "/")
	if !found {
		group, version = "", apiVersion
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	user := authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"kubeadm:cluster-admins", "system:authenticated"}}
	if kind == "Pod" {
		user = authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:daemon-set-controller",
			UID: "6d3a0f8e-2b1c-4e5d-9a7b-8c9d0e1f2a3b", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}}
	}
	gvk := metav1.GroupVersionKind{Group: group, Version: version, Kind: kind}
	gvr := metav1.GroupVersionResource{Group: group, Version: version, Resource: strings.ToLower(kind) + "s"}
	dryRun := false
	req := &admissionv1.AdmissionRequest{
		UID: types.UID(uid), Kind: gvk, Resource: gvr, RequestKind: &gvk, RequestResource: &gvr,
		Name: name, Namespace: ns, Operation: admissionv1.Operation(operation), UserInfo: user,
		Object: runtime.RawExtension{Raw: raw}, DryRun: &dryRun,
		Options: runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply","fieldValidation":"Strict"}`)},
	}
	if operation == "UPDATE" {
		req.OldObject = runtime.RawExtension{Raw: raw}
		req.Options = runtime.RawExtension{Raw: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply","fieldValidation":"Strict"}`)}
	}
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{Kind: "AdmissionReview", APIVersion: "admission.k8s.io/v1"},
		Request:  req,
	})
}

// Mix is the request mix of the load test: the seed Rollout, a Rollout with
// many unknown fields, agent pods from the Helm chart's three renders and one
// shaped like the Operator's. canary-tagger patches every one of them (for
// role-already-mapped only with the status annotation: the user's mapping wins).
func Mix(repo string) ([]Body, error) {
	var out []Body
	add := func(name, path string, patched bool, obj map[string]any, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b, err := Review(fmt.Sprintf("00000000-0000-4000-8000-%012d", len(out)), "CREATE", obj)
		if err != nil {
			return err
		}
		out = append(out, Body{Name: name, Path: path, JSON: b, Patched: patched})
		return nil
	}
	seed, err := SeedRollout(repo, "default")
	if err := add("rollout-seed", PathRollout, true, seed, err); err != nil {
		return nil, err
	}
	unk, err := UnknownFieldsRollout(repo, "default")
	if err := add("rollout-unknown-fields", PathRollout, true, unk, err); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name, file string
		patched    bool
	}{
		{"pod-helm-default", "default.yaml", true},
		{"pod-helm-labels-as-tags", "pod-labels-as-tags.yaml", true},
		{"pod-helm-role-mapped", "role-already-mapped.yaml", true}, // status annotation only
	} {
		pod, err := HelmAgentPod(repo, f.file)
		if err := add(f.name, PathAgentPod, f.patched, pod, err); err != nil {
			return nil, err
		}
	}
	if err := add("pod-operator", PathAgentPod, true, OperatorAgentPod("datadog"), nil); err != nil {
		return nil, err
	}
	return out, nil
}

func decodeYAML(raw []byte) ([]map[string]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if doc != nil {
			out = append(out, doc)
		}
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

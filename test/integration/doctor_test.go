package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/canary-tagger/canary-tagger/certs"
	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

// doctorReport is `canary-tagger doctor -o json` (cmd/canary-tagger/internal/doctor).
type doctorReport struct {
	Cluster              string          `json:"cluster"`
	WebhookConfiguration string          `json:"webhookConfiguration"`
	Findings             []doctorFinding `json:"findings"`
	Summary              map[string]int  `json:"summary"`
}

type doctorFinding struct {
	Check   string   `json:"check"`
	Status  string   `json:"status"`
	Object  string   `json:"object"`
	Message string   `json:"message"`
	Reason  string   `json:"reason"`
	Items   []string `json:"items"`
	Fix     []string `json:"fix"`
}

// find returns the findings of check about object (any object when "").
func (r doctorReport) find(check, status, object string) []doctorFinding {
	var out []doctorFinding
	for _, f := range r.Findings {
		if f.Check == check && f.Status == status && (object == "" || f.Object == object) {
			out = append(out, f)
		}
	}
	return out
}

func (r doctorReport) String() string {
	b, _ := json.MarshalIndent(r.Findings, "", "  ")
	return string(b)
}

var (
	doctorBuild sync.Once
	doctorBin   string
	doctorErr   error
)

// doctorBinary builds canary-tagger once for the package.
func doctorBinary(t *testing.T) string {
	t.Helper()
	doctorBuild.Do(func() {
		dir, err := os.MkdirTemp("", "canary-tagger-doctor-")
		if err != nil {
			doctorErr = err
			return
		}
		doctorBin = filepath.Join(dir, "canary-tagger")
		doctorErr = harness.BuildCanaryTagger(context.Background(), env.Repo, doctorBin)
	})
	if doctorErr != nil {
		t.Fatal(doctorErr)
	}
	return doctorBin
}

// runDoctor runs `canary-tagger doctor -o json` against the control plane
// and returns its report and exit code.
func runDoctor(t *testing.T, args ...string) (doctorReport, int) {
	t.Helper()
	args = append([]string{"doctor", "--kubeconfig", env.Kubeconfig(), "-o", "json"}, args...)
	cmd := exec.CommandContext(t.Context(), doctorBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("canary-tagger %s: %v", strings.Join(args, " "), err)
	}
	var rep doctorReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("canary-tagger %s (exit %d): output is not the JSON report: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, err, stdout.String(), stderr.String())
	}
	t.Logf("$ canary-tagger doctor %s  # exit %d: %v", strings.Join(args[3:], " "), code, rep.Summary)
	return rep, code
}

// runFix runs a fix command doctor printed, which must be a kubectl command
// line (comments after # dropped).
func runFix(t *testing.T, fix string) {
	t.Helper()
	line, _, _ := strings.Cut(fix, "#")
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "kubectl" {
		t.Fatalf("fix %q is not a kubectl command", fix)
	}
	for i, f := range fields {
		fields[i] = strings.Trim(f, "'")
	}
	mustKubectl(t, fields[1:]...)
}

// agentDaemonSet is an agent DaemonSet shaped like the Datadog chart's: the
// component label, and agent containers with a mapping of their own.
func agentDaemonSet(ns string) *appsv1.DaemonSet {
	agentLabels := map[string]string{"app": "dd-agent", "agent.datadoghq.com/component": "agent"}
	agentEnv := []corev1.EnvVar{{Name: "DD_KUBERNETES_POD_LABELS_AS_TAGS", Value: `{"app":"kube_app"}`}}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dd-agent", Labels: agentLabels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "dd-agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: agentLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "agent", Image: "datadog/agent:7", Env: agentEnv},
					{Name: "trace-agent", Image: "datadog/agent:7", Env: agentEnv},
				}},
			},
		},
	}
}

// TestDoctorObjectsFromBeforeRegistration: with the configuration deleted, doctor
// says so, and a Rollout and an agent pod created meanwhile are listed with
// the command that fixes them; after the fixes, nothing is left in the
// namespace.
func TestDoctorObjectsFromBeforeRegistration(t *testing.T) {
	ns := newNamespace(t, nil)
	ctx := t.Context()

	ds := agentDaemonSet(ns)
	must(t, env.Client.Create(ctx, ds))

	must(t, env.UninstallWebhookConfiguration(ctx))
	t.Cleanup(func() { restoreDefault(t) })
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))
	oldPod := podForDaemonSet(ds, "node-a")
	must(t, env.Client.Create(ctx, oldPod))

	rep, code := runDoctor(t, "-n", ns)
	if code != 1 {
		t.Errorf("exit %d with the webhook not registered, want 1\n%s", code, rep)
	}
	if f := rep.find("webhook", "action", "mutatingwebhookconfiguration/canary-tagger"); len(f) != 1 || !strings.Contains(f[0].Message, "not found") {
		t.Errorf("no action saying the webhook configuration is not found:\n%s", rep)
	}

	must(t, env.InstallWebhookConfiguration(ctx, harness.ModeClusterWide))
	rep, code = runDoctor(t, "-n", ns)
	if code != 1 {
		t.Errorf("exit %d with a Rollout and an agent pod from before the install, want 1\n%s", code, rep)
	}
	if f := rep.find("webhook", "action", ""); len(f) != 0 {
		t.Errorf("webhook actions with the configuration installed and the server up: %+v", f)
	}
	if f := rep.find("webhook", "ok", ""); len(f) == 0 || !strings.Contains(f[0].Message, "trusted") {
		t.Errorf("no finding that the caBundle is trusted by the served certificate:\n%s", rep)
	}

	// The text report says the same for a person: each fix as a command
	// line, and the verdict.
	text, err := exec.CommandContext(ctx, doctorBinary(t), "doctor", "--kubeconfig", env.Kubeconfig(), "-n", ns).Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("doctor -o text: %v, want exit 1", err)
	}
	t.Logf("$ canary-tagger doctor -n %s\n%s", ns, text)
	wantContains(t, "text report", string(text),
		"ACTION rollout ", "$ kubectl -n "+ns+" annotate rollout demo canary-tagger.io/reapplied-at=",
		"ACTION agent-pod ", "$ kubectl -n "+ns+" rollout restart daemonset/"+ds.Name,
		"2 thing(s) need doing")

	rolloutFinding := rep.find("rollout", "action", "rollout/"+ns+"/demo")
	if len(rolloutFinding) != 1 || len(rolloutFinding[0].Fix) != 1 || !strings.Contains(rolloutFinding[0].Fix[0], "annotate rollout demo") {
		t.Fatalf("want one action for rollout/%s/demo with an annotate command:\n%s", ns, rep)
	}
	dsFinding := rep.find("agent-pod", "action", "daemonset/"+ns+"/"+ds.Name)
	wantFix := fmt.Sprintf("kubectl -n %s rollout restart daemonset/%s", ns, ds.Name)
	if len(dsFinding) != 1 || len(dsFinding[0].Fix) != 1 || dsFinding[0].Fix[0] != wantFix {
		t.Fatalf("want one action for daemonset/%s/%s with fix %q:\n%s", ns, ds.Name, wantFix, rep)
	}
	if items := dsFinding[0].Items; len(items) != 1 || items[0] != oldPod.Name {
		t.Errorf("agent finding lists pods %q, want [%s]", items, oldPod.Name)
	}

	// The fixes: the annotate goes through the webhook, which injects; the
	// restart changes the template, and the pod the DaemonSet controller
	// would create in its place goes through the webhook too.
	runFix(t, rolloutFinding[0].Fix[0])
	wantInjected(t, getRollout(t, ns, "demo"))
	runFix(t, dsFinding[0].Fix[0])
	must(t, env.Client.Delete(ctx, oldPod))
	must(t, env.Client.Get(ctx, client.ObjectKeyFromObject(ds), ds))
	must(t, env.Client.Create(ctx, podForDaemonSet(ds, "node-a")))

	rep, code = runDoctor(t, "-n", ns)
	if code != 0 {
		t.Errorf("exit %d after the fixes, want 0 (all is well in %s)\n%s", code, ns, rep)
	}
	if f := rep.find("agent-pod", "ok", ""); len(f) != 1 || !strings.HasPrefix(f[0].Message, "1 Datadog Agent pod") {
		t.Errorf("want an ok finding for 1 patched agent pod:\n%s", rep)
	}
}

// TestDoctorConflictRollout: a Rollout whose pod template already has the
// label key is skipped by the webhook; doctor lists it with the rule's
// reason, and the opt-out it suggests silences it.
func TestDoctorConflictRollout(t *testing.T) {
	ns := newNamespace(t, nil)
	key := env.Rules.Rollout.LabelKey
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t, "        app: demo\n    spec:", "        app: demo\n        "+key+": web\n    spec:"))
	wantUntouched(t, getRollout(t, ns, "demo"))

	rep, code := runDoctor(t, "-n", ns)
	if code != 1 {
		t.Errorf("exit %d with a conflict Rollout, want 1\n%s", code, rep)
	}
	f := rep.find("rollout", "action", "rollout/"+ns+"/demo")
	if len(f) != 1 {
		t.Fatalf("want one action for rollout/%s/demo:\n%s", ns, rep)
	}
	if want := fmt.Sprintf("label key in pod template labels: %q in spec.template.metadata.labels", key); f[0].Reason != want {
		t.Errorf("reason %q, want the rule's %q", f[0].Reason, want)
	}
	wantContains(t, "conflict message", f[0].Message, "argo-rollouts #2916")
	var optOut string
	for _, fix := range f[0].Fix {
		if strings.HasPrefix(fix, "kubectl ") {
			optOut = fix
		}
	}
	if optOut == "" {
		t.Fatalf("no kubectl command among the fixes %q", f[0].Fix)
	}
	runFix(t, optOut)
	rep, code = runDoctor(t, "-n", ns)
	if code != 0 || len(rep.find("rollout", "action", "")) != 0 {
		t.Errorf("exit %d after opting the Rollout out, want 0 and no rollout action\n%s", code, rep)
	}
}

// TestDoctorPromotedRolloutWithCanaryPods: a Rollout whose status says it is
// fully promoted (stable = current hash, Healthy) while pods of that hash
// still carry role=canary — argo-rollouts #4944, made here by labelling the
// pods directly. doctor lists the pods and the relabel command.
func TestDoctorPromotedRolloutWithCanaryPods(t *testing.T) {
	ns := newNamespace(t, nil)
	ctx := t.Context()
	key := env.Rules.Rollout.LabelKey
	mustKubectl(t, "apply", "-n", ns, "-f", seedFile(t))
	r := getRollout(t, ns, "demo")
	wantInjected(t, r)

	const hash = "6c5b9d7f48"
	must(t, unstructured.SetNestedField(r.Object, map[string]any{
		"stableRS": hash, "currentPodHash": hash, "phase": "Healthy",
		"observedGeneration": fmt.Sprint(r.GetGeneration()),
	}, "status"))
	must(t, env.Client.Status().Update(ctx, r))

	var pods []string
	for i, role := range []string{env.Rules.Rollout.CanaryValue, env.Rules.Rollout.CanaryValue, env.Rules.Rollout.StableValue} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("demo-%s-%d", hash, i),
				Labels: map[string]string{"app": "demo", "rollouts-pod-template-hash": hash, key: role}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "demo", Image: "argoproj/demo:blue"}}},
		}
		must(t, env.Client.Create(ctx, p))
		if role == env.Rules.Rollout.CanaryValue {
			pods = append(pods, p.Name)
		}
	}

	rep, code := runDoctor(t, "-n", ns)
	if code != 1 {
		t.Errorf("exit %d with canary-labelled pods on a promoted Rollout, want 1\n%s", code, rep)
	}
	f := rep.find("promoted-canary", "action", "rollout/"+ns+"/demo")
	if len(f) != 1 || len(f[0].Fix) != 1 {
		t.Fatalf("want one promoted-canary action for rollout/%s/demo with one fix:\n%s", ns, rep)
	}
	if got := strings.Join(f[0].Items, ","); got != strings.Join(pods, ",") {
		t.Errorf("listed pods %s, want %s", got, strings.Join(pods, ","))
	}
	wantContains(t, "promoted-canary message", f[0].Message, "#4944")
	runFix(t, f[0].Fix[0])
	var after corev1.PodList
	must(t, env.Client.List(ctx, &after, client.InNamespace(ns), client.MatchingLabels{key: env.Rules.Rollout.StableValue}))
	if len(after.Items) != 3 {
		t.Errorf("%d pods %s=%s after the fix, want 3", len(after.Items), key, env.Rules.Rollout.StableValue)
	}
	rep, code = runDoctor(t, "-n", ns)
	if code != 0 || len(rep.find("promoted-canary", "ok", "")) != 1 {
		t.Errorf("exit %d after relabelling, want 0 and the promoted-canary check ok\n%s", code, rep)
	}
}

// TestDoctorOldArgoRolloutsController: a Deployment running an argo-rollouts
// image older than 1.10 (by tag, or by the version label when the tag says
// nothing) is listed with the set image command.
func TestDoctorOldArgoRolloutsController(t *testing.T) {
	ns := newNamespace(t, nil)
	ctx := t.Context()
	controller := func(name, image string, labels map[string]string) *appsv1.Deployment {
		sel := map[string]string{"app": name}
		tl := map[string]string{"app": name}
		for k, v := range labels {
			tl[k] = v
		}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: tl},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "argo-rollouts", Image: image}}},
				},
			},
		}
	}
	byTag := controller("argo-rollouts", "argoproj/argo-rollouts:v1.6.6", nil)
	byLabel := controller("argo-rollouts-latest", "argoproj/argo-rollouts:latest", map[string]string{"app.kubernetes.io/version": "v1.9.0"})
	for _, d := range []*appsv1.Deployment{byTag, byLabel} {
		must(t, env.Client.Create(ctx, d))
	}
	t.Cleanup(func() {
		for _, d := range []*appsv1.Deployment{byTag, byLabel} {
			if err := env.Client.Delete(context.Background(), d); err != nil {
				t.Errorf("deleting %s: %v", d.Name, err)
			}
		}
	})

	rep, code := runDoctor(t, "-n", ns)
	if code != 1 {
		t.Errorf("exit %d with an old Argo Rollouts controller, want 1\n%s", code, rep)
	}
	tagFinding := rep.find("argo-rollouts", "action", "deployment/"+ns+"/argo-rollouts")
	if len(tagFinding) != 1 || !strings.Contains(tagFinding[0].Message, "v1.6.6") {
		t.Fatalf("want one action for deployment/%s/argo-rollouts naming v1.6.6:\n%s", ns, rep)
	}
	if f := rep.find("argo-rollouts", "action", "deployment/"+ns+"/argo-rollouts-latest"); len(f) != 1 || !strings.Contains(f[0].Message, "v1.9.0") || !strings.Contains(f[0].Message, "label") {
		t.Errorf("want one action for deployment/%s/argo-rollouts-latest naming v1.9.0 from its label:\n%s", ns, rep)
	}

	runFix(t, tagFinding[0].Fix[0])
	rep, _ = runDoctor(t, "-n", ns)
	if f := rep.find("argo-rollouts", "ok", "deployment/"+ns+"/argo-rollouts"); len(f) != 1 {
		t.Errorf("deployment/%s/argo-rollouts not ok after `%s`:\n%s", ns, tagFinding[0].Fix[0], rep)
	}
}

// TestDoctorServiceWebhook: a webhook registered by Service (as the
// manifests do) is checked through the API: no ready endpoint, and a
// serving certificate in its Secret that the caBundle does not trust, are
// both listed; with a ready endpoint and the right certificate, both are ok.
// The configuration selects no namespace, so the apiserver never calls it.
func TestDoctorServiceWebhook(t *testing.T) {
	ns := newNamespace(t, nil)
	ctx := t.Context()
	name := "doctor-" + rand.String(5) // the webhook configuration's, as a Helm release's full name
	dns := "canary-tagger-webhook." + ns + ".svc"
	trusted, other := filepath.Join(t.TempDir(), "trusted"), filepath.Join(t.TempDir(), "other")
	caPEM, err := certs.WriteSelfSigned(trusted, []string{dns}, time.Hour)
	must(t, err)
	_, err = certs.WriteSelfSigned(other, []string{dns}, time.Hour)
	must(t, err)
	secret := func(dir string) *corev1.Secret {
		crt, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
		must(t, err)
		key, err := os.ReadFile(filepath.Join(dir, "tls.key"))
		must(t, err)
		// The chart's name for the cert-manager Secret: <full name>-webhook-tls.
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-webhook-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	}
	sec := secret(other)
	must(t, env.Client.Create(ctx, sec))
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary-tagger-webhook"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443, Protocol: corev1.ProtocolTCP}}}}
	must(t, env.Client.Create(ctx, svc))

	never := &metav1.LabelSelector{MatchLabels: map[string]string{"canary-tagger.io/doctor-test": "never"}}
	hook := func(hookName, group, resource string) admissionv1.MutatingWebhook {
		return admissionv1.MutatingWebhook{
			Name: hookName, AdmissionReviewVersions: []string{"v1"}, SideEffects: ptr(admissionv1.SideEffectClassNone),
			FailurePolicy: ptr(admissionv1.Ignore), NamespaceSelector: never,
			ClientConfig: admissionv1.WebhookClientConfig{CABundle: caPEM, Service: &admissionv1.ServiceReference{Namespace: ns, Name: svc.Name, Path: ptr("/x")}},
			Rules: []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create},
				Rule: admissionv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: []string{resource}}}},
		}
	}
	mwc := &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionv1.MutatingWebhook{hook("rollouts.doctor.test", "argoproj.io", "rollouts"), hook("agent-pods.doctor.test", "", "pods")}}
	must(t, env.Client.Create(ctx, mwc))
	t.Cleanup(func() {
		if err := env.Client.Delete(context.Background(), mwc); err != nil {
			t.Errorf("deleting %s: %v", name, err)
		}
	})

	rep, code := runDoctor(t, "-n", ns, "--webhook-configuration", name)
	if code != 1 {
		t.Errorf("exit %d with no endpoint and an untrusted certificate, want 1\n%s", code, rep)
	}
	if f := rep.find("webhook", "action", "service/"+ns+"/"+svc.Name); len(f) != 1 || !strings.Contains(f[0].Message, "no ready endpoint") {
		t.Errorf("want an action saying service/%s/%s has no ready endpoint:\n%s", ns, svc.Name, rep)
	}
	if f := rep.find("webhook", "action", "mutatingwebhookconfiguration/"+name+" rollouts.doctor.test"); len(f) != 1 || !strings.Contains(f[0].Message, "does not trust") {
		t.Errorf("want an action saying the caBundle does not trust the serving certificate:\n%s", rep)
	}
	if f := rep.find("namespaces", "info", ""); len(f) != 1 || len(f[0].Items) == 0 {
		t.Errorf("want an info finding listing the namespaces the selector excludes:\n%s", rep)
	}

	// A ready endpoint, and the certificate signed by the caBundle's CA.
	ready := true
	must(t, env.Client.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc.Name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Port: ptr(int32(9443))}},
	}))
	fixed := secret(trusted)
	fixed.ResourceVersion = sec.ResourceVersion
	must(t, env.Client.Update(ctx, fixed))

	rep, code = runDoctor(t, "-n", ns, "--webhook-configuration", name)
	if code != 0 {
		t.Errorf("exit %d with a ready endpoint and a trusted certificate, want 0\n%s", code, rep)
	}
	if f := rep.find("webhook", "ok", "service/"+ns+"/"+svc.Name); len(f) != 1 || !strings.HasPrefix(f[0].Message, "1 ready endpoint") {
		t.Errorf("want service/%s/%s ok with 1 ready endpoint:\n%s", ns, svc.Name, rep)
	}
	if f := rep.find("webhook", "ok", "mutatingwebhookconfiguration/"+name+" rollouts.doctor.test"); len(f) != 1 || !strings.Contains(f[0].Message, "trusts the serving certificate") {
		t.Errorf("want the caBundle ok against the serving certificate:\n%s", rep)
	}
}

// TestDoctorNoCluster: a kubeconfig that reaches no apiserver is an error (exit 2).
func TestDoctorNoCluster(t *testing.T) {
	kubeconfig := writeFile(t, "kubeconfig", `apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]
users: [{name: nobody, user: {token: x}}]
current-context: nowhere
`)
	cmd := exec.CommandContext(t.Context(), doctorBinary(t), "doctor", "--kubeconfig", kubeconfig)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("doctor against no apiserver: %v, want exit 2\n%s", err, out)
	}
	wantContains(t, "doctor's error", string(out), "canary-tagger doctor:", "127.0.0.1:1")
}

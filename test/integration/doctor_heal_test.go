package integration

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

// TestDoctorHeal: doctor reads how the install heals — the Deployment that
// runs serve (as the chart writes it; no pod runs here, doctor reads only
// its args), the heal scope, the Lease — and says so, and which Rollout
// findings healing repairs. Healing on with a live Lease (a real healer in
// this process holds it), the Lease released, the Lease expired, healing off.
func TestDoctorHeal(t *testing.T) {
	ns := newNamespace(t, nil)
	ctx := t.Context()
	o := healOptions(t, "healer")
	cfg := o.WebhookConfigName
	leaseName := heal.LeaseName(cfg)

	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary-tagger"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "canary-tagger"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "canary-tagger"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "canary-tagger", Image: "canary-tagger:test",
					Args: []string{"serve", "--port=9443", "--webhook-config-name=" + cfg, "--heal-interval=1m", "--heal-agent-pods", "--leader-elect", "--leader-election-namespace=$(POD_NAMESPACE)"},
					Env:  []corev1.EnvVar{{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}},
				}}},
			},
		},
	}
	must(t, env.Client.Create(ctx, dep))
	t.Cleanup(func() { // the other doctor tests run without a serve Deployment
		if err := env.Client.Delete(context.Background(), dep); err != nil {
			t.Errorf("deleting the serve Deployment: %v", err)
		}
	})

	// A healer elected on the Lease in the Deployment's namespace, which
	// passes once and then not for an hour: the Rollout created after it,
	// while the webhook is down, stays unlabelled for doctor to see.
	o.Interval, o.LeaderElection, o.LeaderElectionNamespace = time.Hour, true, ns
	healer := harness.StartHealer(o)
	stopHealer := func() {
		if err := healer.Stop(); err != nil {
			t.Error(err)
		}
	}
	defer stopHealer()
	must(t, healer.WaitPasses(ctx, 1, harness.DefaultTimeout))
	lease := &coordinationv1.Lease{}
	must(t, env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaseName}, lease))
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("Lease %s/%s has no holder while the healer heals", ns, leaseName)
	}
	leader, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")

	// An agent DaemonSet whose pod was admitted while the webhook was down:
	// the Deployment's --heal-agent-pods restarts it (doctor reads the flag;
	// the healer here heals Rollouts only).
	ds := agentDaemonSet(ns)
	must(t, env.Client.Create(ctx, ds))

	stopWebhook(t)
	createRollout(t, ns, "old", nil)
	must(t, env.Client.Create(ctx, podForDaemonSet(ds, "node-a")))
	restoreDefault(t)
	object := "rollout/" + ns + "/old"

	// Healing on, a live Lease.
	rep, code := runDoctor(t, "-n", ns, "--webhook-configuration", cfg)
	if code != 1 {
		t.Errorf("exit %d with an unlabelled Rollout healing will repair, want 1 (still a finding)\n%s", code, rep)
	}
	if f := rep.find("heal", "ok", "deployment/"+ns+"/canary-tagger"); len(f) != 1 || f[0].Message != "healing on (Agent workloads restarted too: --heal-agent-pods), every 1m, leader "+leader {
		t.Errorf("want ok: healing on (Agent workloads restarted too: --heal-agent-pods), every 1m, leader %s\n%s", leader, rep)
	}
	if f := rep.find("agent-pod", "action", "daemonset/"+ns+"/"+ds.Name); len(f) != 1 || !strings.HasSuffix(f[0].Message, "healing restarts it within 1m") || len(f[0].Fix) != 2 ||
		!strings.HasPrefix(f[0].Fix[0], "# wait: healing restarts it within 1m") || !strings.Contains(f[0].Fix[1], "rollout restart daemonset/"+ds.Name) {
		t.Errorf("want the agent DaemonSet's action to say healing restarts it, the wait first among its fixes:\n%s", rep)
	}
	f := rep.find("rollout", "action", object)
	if len(f) != 1 || !strings.HasSuffix(f[0].Message, "healing repairs this within 1m") || len(f[0].Fix) != 2 ||
		!strings.HasPrefix(f[0].Fix[0], "# wait: healing repairs this within 1m") || !strings.Contains(f[0].Fix[1], "annotate rollout old") {
		t.Errorf("want the Rollout's action to say healing repairs it, the wait first among its fixes:\n%s", rep)
	}
	text, err := exec.CommandContext(ctx, doctorBinary(t), "doctor", "--kubeconfig", env.Kubeconfig(), "-n", ns, "--webhook-configuration", cfg).Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("doctor -o text: %v, want exit 1", err)
	}
	t.Logf("$ canary-tagger doctor -n %s\n%s", ns, text)

	// The healer stops and releases the Lease: no replica holds it, and
	// the Rollout's finding no longer counts on healing.
	stopHealer()
	noHolder := func(want string) {
		t.Helper()
		rep, code := runDoctor(t, "-n", ns, "--webhook-configuration", cfg)
		if code != 1 {
			t.Errorf("exit %d, want 1\n%s", code, rep)
		}
		if f := rep.find("heal", "action", "lease/"+ns+"/"+leaseName); len(f) != 1 || !strings.Contains(f[0].Message, "no replica holds the Lease ("+want) {
			t.Errorf("want an action saying no replica holds the Lease (%s…:\n%s", want, rep)
		}
		if f := rep.find("rollout", "action", object); len(f) != 1 || strings.Contains(f[0].Message, "heal") || len(f[0].Fix) != 1 || !strings.HasPrefix(f[0].Fix[0], "kubectl ") {
			t.Errorf("want the Rollout's action as without healing:\n%s", rep)
		}
	}
	noHolder("released")

	// A leader that died: its holder stays, renewTime + duration passed.
	must(t, env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaseName}, lease))
	lease.Spec.HolderIdentity = ptr("canary-tagger-7d9f-x2k4p_0b6e")
	lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now().Add(-time.Minute)}
	lease.Spec.LeaseDurationSeconds = ptr(int32(15))
	must(t, env.Client.Update(ctx, lease))
	noHolder("last held by canary-tagger-7d9f-x2k4p, not renewed within its duration")

	// Healing off in the Deployment's args: info (a choice), with how to
	// turn it on; the Lease is not read.
	must(t, env.Client.Get(ctx, client.ObjectKeyFromObject(dep), dep))
	dep.Spec.Template.Spec.Containers[0].Args = []string{"serve", "--webhook-config-name=" + cfg, "--heal=false"}
	must(t, env.Client.Update(ctx, dep))
	rep, code = runDoctor(t, "-n", ns, "--webhook-configuration", cfg)
	if code != 1 || len(rep.find("heal", "action", "")) != 0 {
		t.Errorf("exit %d with healing off, want 1 for the Rollout alone\n%s", code, rep)
	}
	if f := rep.find("heal", "info", "deployment/"+ns+"/canary-tagger"); len(f) != 1 || !strings.HasPrefix(f[0].Message, "healing off (--heal=false)") ||
		len(f[0].Fix) != 1 || !strings.Contains(f[0].Fix[0], "--set heal.enabled=true") {
		t.Errorf("want info: healing off, with how to turn it on:\n%s", rep)
	}
	if f := rep.find("rollout", "action", object); len(f) != 1 || strings.Contains(f[0].Message, "heal") {
		t.Errorf("want the Rollout's action as without healing:\n%s", rep)
	}
}

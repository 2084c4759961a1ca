package install

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	admregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

var yamlUnmarshalStrict = yaml.UnmarshalStrict

// ensureOwnNamespace creates the rendered Namespace for real (a server-side
// dry-run of namespaced objects needs their namespace to exist) and checks
// the apiserver stored its Pod Security label.
func ensureOwnNamespace(t *testing.T, r rendered) *corev1.Namespace {
	t.Helper()
	ns := only[corev1.Namespace](t, r, "Namespace")
	ctx := t.Context()
	var raw []byte
	for _, d := range r.ofKind("Namespace") {
		raw = d.Raw
	}
	// As `kubectl apply -k` would create it (with its last-applied annotation).
	if res := env.Kubectl.RunStdin(ctx, bytes.NewReader(raw), "apply", "-f", "-"); !res.OK() {
		t.Fatalf("creating namespace %s: %s", ns.Name, res)
	}
	got := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: ns.Name}, got); err != nil {
		t.Fatal(err)
	}
	for k, v := range ns.Labels {
		if got.Labels[k] != v {
			t.Fatalf("namespace %s has %s=%q, the manifests say %q", ns.Name, k, got.Labels[k], v)
		}
	}
	return got
}

// TestEntryPointsServerDryRun runs the install command of every entry point,
// `kubectl apply -k manifests/<dir> --dry-run=server`, against an apiserver
// that has the real cert-manager CRDs (from the cert-manager module): every
// object passes the apiserver's validation, the CRDs' schemas and strict
// field validation.
func TestEntryPointsServerDryRun(t *testing.T) {
	installCertManagerCRDs(t)
	for _, ep := range entryPoints {
		t.Run(ep.dir, func(t *testing.T) {
			r := render(t, ep.dir)
			ensureOwnNamespace(t, r)
			res := env.Kubectl.Run(t.Context(), "apply", "-k", filepath.Join(env.Repo, "manifests", ep.dir), "--dry-run=server")
			if !res.OK() {
				t.Fatalf("install does not pass a server-side dry-run:\n%s", res)
			}
			if strings.Contains(res.Stderr, "Warning") {
				t.Errorf("the apiserver warns:\n%s", res.Stderr)
			}
			// One line per rendered object.
			if got, want := strings.Count(res.Stdout, "(server dry run)"), len(r.docs); got != want {
				t.Errorf("%d objects dry-run, %d rendered:\n%s", got, want, res.Stdout)
			}
		})
	}
}

// podFromTemplate is the Pod the Deployment's ReplicaSet would create.
func podFromTemplate(dep *appsv1.Deployment) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: dep.Name + "-",
			Namespace:    dep.Namespace,
			Labels:       dep.Spec.Template.Labels,
			Annotations:  dep.Spec.Template.Annotations,
		},
		Spec: *dep.Spec.Template.Spec.DeepCopy(),
	}
}

// TestPodSecurityRestricted creates (server-side dry-run) a Pod from each
// entry point's Deployment template in canary-tagger's namespace, which the
// manifests label pod-security.kubernetes.io/enforce=restricted: the
// apiserver's Pod Security admission admits it without a warning. A pod that
// allows privilege escalation is refused there, so the admission is really on.
func TestPodSecurityRestricted(t *testing.T) {
	installCertManagerCRDs(t)
	for _, ep := range entryPoints {
		t.Run(ep.dir, func(t *testing.T) {
			r := render(t, ep.dir)
			ns := ensureOwnNamespace(t, r)
			if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Fatalf("namespace %s is not enforcing restricted: %v", ns.Name, ns.Labels)
			}
			dep := only[appsv1.Deployment](t, r, "Deployment")
			if dep.Namespace != ns.Name {
				t.Fatalf("Deployment in %s, Namespace is %s", dep.Namespace, ns.Name)
			}
			warnings := &warningRecorder{}
			cfg := *env.Config
			cfg.WarningHandler = warnings
			c, err := client.New(&cfg, client.Options{Scheme: env.Client.Scheme()})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Create(t.Context(), podFromTemplate(dep), client.DryRunAll); err != nil {
				t.Fatalf("the Deployment's pod is refused in a restricted namespace: %v", err)
			}
			if len(warnings.msgs) > 0 {
				t.Errorf("Pod Security warnings: %q", warnings.msgs)
			}

			// Control: the same pod, allowed to escalate privileges.
			bad := podFromTemplate(dep)
			bad.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
			err = env.Client.Create(t.Context(), bad, client.DryRunAll)
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
				t.Errorf("a pod with allowPrivilegeEscalation=true is not refused by Pod Security admission: %v", err)
			}
		})
	}
}

type warningRecorder struct{ msgs []string }

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, msg string) {
	w.msgs = append(w.msgs, msg)
}

// TestReapplyKeepsCABundle installs an entry point for real, lets a caBundle
// be written as cert-manager's CA injector or the self-managed mode would,
// and applies the same manifests again (an upgrade): the caBundle of both
// webhooks survives, so re-applying never breaks TLS.
func TestReapplyKeepsCABundle(t *testing.T) {
	installCertManagerCRDs(t)
	for _, dir := range []string{"default", "self-managed"} {
		t.Run(dir, func(t *testing.T) {
			ctx := t.Context()
			r := render(t, dir)
			ensureOwnNamespace(t, r)
			mwcName := only[admregv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration").Name
			t.Cleanup(func() {
				// The Service has no endpoints here: do not leave a webhook pointing at it.
				_ = env.Client.Delete(context.Background(), &admregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: mwcName}})
			})
			path := filepath.Join(env.Repo, "manifests", dir)
			if res := env.Kubectl.Run(ctx, "apply", "-k", path); !res.OK() {
				t.Fatalf("install: %s", res)
			}
			mwc := &admregv1.MutatingWebhookConfiguration{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: mwcName}, mwc); err != nil {
				t.Fatal(err)
			}
			ca := []byte("-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n")
			for i := range mwc.Webhooks {
				mwc.Webhooks[i].ClientConfig.CABundle = ca
			}
			if err := env.Client.Update(ctx, mwc, client.FieldOwner("cainjector")); err != nil {
				t.Fatal(err)
			}
			if res := env.Kubectl.Run(ctx, "apply", "-k", path); !res.OK() {
				t.Fatalf("re-apply: %s", res)
			}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: mwcName}, mwc); err != nil {
				t.Fatal(err)
			}
			for _, w := range mwc.Webhooks {
				if !bytes.Equal(w.ClientConfig.CABundle, ca) {
					t.Errorf("re-applying the manifests changed the caBundle of %s to %q", w.Name, w.ClientConfig.CABundle)
				}
			}
		})
	}
}

package install

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

// entryPoint is one directory users `kubectl apply -k`.
type entryPoint struct {
	dir         string
	optIn       bool // namespace opt-in, else cluster-wide
	selfManaged bool // self-managed TLS, else cert-manager
}

var entryPoints = []entryPoint{
	{dir: "default"},
	{dir: "opt-in", optIn: true},
	{dir: "self-managed", selfManaged: true},
	{dir: "self-managed-opt-in", optIn: true, selfManaged: true},
}

// doc is one rendered YAML document.
type doc struct {
	APIVersion, Kind, Name, Namespace string
	Raw                               []byte
}

type rendered struct {
	entry entryPoint
	yaml  string
	docs  []doc
}

// render runs `kubectl kustomize manifests/<dir>` with the kubectl we build.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	path := filepath.Join(env.Repo, "manifests", dir)
	res := env.Kubectl.Run(context.Background(), "kustomize", path)
	if !res.OK() {
		t.Fatalf("rendering %s: %s", path, res)
	}
	docs, err := splitDocs([]byte(res.Stdout))
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	r := rendered{yaml: res.Stdout, docs: docs}
	for _, e := range entryPoints {
		if e.dir == dir {
			r.entry = e
		}
	}
	return r
}

func splitDocs(stream []byte) ([]doc, error) {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var out []doc
	for {
		b, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var h struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(b, &h); err != nil {
			return nil, err
		}
		out = append(out, doc{APIVersion: h.APIVersion, Kind: h.Kind, Name: h.Metadata.Name, Namespace: h.Metadata.Namespace, Raw: b})
	}
}

func (r rendered) ofKind(kind string) []doc {
	var out []doc
	for _, d := range r.docs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// decodeStrict decodes into a Go API type and fails on any field the type
// does not have: a misspelt field fails here, not at install time.
func decodeStrict[T any](t *testing.T, d doc) *T {
	t.Helper()
	v := new(T)
	if err := yaml.UnmarshalStrict(d.Raw, v); err != nil {
		t.Fatalf("%s %s/%s does not decode strictly into %T: %v", d.Kind, d.Namespace, d.Name, v, err)
	}
	return v
}

// only decodes the single document of kind.
func only[T any](t *testing.T, r rendered, kind string) *T {
	t.Helper()
	ds := r.ofKind(kind)
	if len(ds) != 1 {
		t.Fatalf("%s: %d %s, want 1", r.entry.dir, len(ds), kind)
	}
	return decodeStrict[T](t, ds[0])
}

// named decodes the document of kind and name.
func named[T any](t *testing.T, r rendered, kind, name string) *T {
	t.Helper()
	for _, d := range r.ofKind(kind) {
		if d.Name == name {
			return decodeStrict[T](t, d)
		}
	}
	t.Fatalf("%s: no %s %q", r.entry.dir, kind, name)
	return nil
}

// container is the Deployment's only container.
func container(t *testing.T, dep *appsv1.Deployment) corev1.Container {
	t.Helper()
	if n := len(dep.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment has %d containers, want 1", n)
	}
	return dep.Spec.Template.Spec.Containers[0]
}

// effectiveArgs expands $(VAR) in the container's args from its literal env
// values and fieldRefs, as the kubelet does.
func effectiveArgs(t *testing.T, dep *appsv1.Deployment) []string {
	t.Helper()
	c := container(t, dep)
	vars := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			vars[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			vars[e.Name] = dep.Namespace
		}
	}
	re := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	var out []string
	for _, a := range c.Args {
		out = append(out, re.ReplaceAllStringFunc(a, func(m string) string {
			name := re.FindStringSubmatch(m)[1]
			v, ok := vars[name]
			if !ok {
				t.Errorf("arg %q refers to $(%s), which the container does not define", a, name)
			}
			return v
		}))
	}
	return out
}

// argValue is the value of --name=value in args ("" and false if absent).
func argValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name {
			return "true", true
		}
	}
	return "", false
}

func selectorMatches(t *testing.T, sel *metav1.LabelSelector, lbls map[string]string) bool {
	t.Helper()
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("invalid selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(lbls))
}

func nsLabels(name string, extra map[string]string) map[string]string {
	l := map[string]string{"kubernetes.io/metadata.name": name}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

func webhookNamed(t *testing.T, mwc *admissionv1.MutatingWebhookConfiguration, name string) admissionv1.MutatingWebhook {
	t.Helper()
	for _, w := range mwc.Webhooks {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("MutatingWebhookConfiguration %s has no webhook %s", mwc.Name, name)
	return admissionv1.MutatingWebhook{}
}

func containerPort(t *testing.T, c corev1.Container, nameOrNumber string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == nameOrNumber || fmt.Sprint(p.ContainerPort) == nameOrNumber {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %s", c.Name, nameOrNumber)
	return 0
}

// TestEntryPointsRender renders every entry point with `kubectl kustomize` and
// checks that the pieces fit together: contract 4's webhook configuration for the
// entry point's mode, the Service and Deployment it calls, the settings being
// valid contract 1 flags and the agent selector equal to the objectSelector, the
// hardened Deployment, the PodDisruptionBudget, the NetworkPolicy and RBAC.
func TestEntryPointsRender(t *testing.T) {
	for _, ep := range entryPoints {
		t.Run(ep.dir, func(t *testing.T) {
			r := render(t, ep.dir)
			ns := only[corev1.Namespace](t, r, "Namespace")
			dep := only[appsv1.Deployment](t, r, "Deployment")
			mwc := only[admissionv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration")
			only[corev1.ServiceAccount](t, r, "ServiceAccount")
			c := container(t, dep)
			args := effectiveArgs(t, dep)
			own := ns.Name

			if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("Namespace %s is not labelled pod-security.kubernetes.io/enforce=restricted: %v", own, ns.Labels)
			}
			if want := "canary-tagger:latest"; c.Image != want {
				t.Errorf("image %q, want %q (set through kustomize images:)", c.Image, want)
			}

			// contract 1: the settings are valid flags.
			var shared []string
			for _, name := range []string{"label-key", "stable-value", "canary-value", "tag-name", "agent-selector"} {
				v, ok := argValue(args, name)
				if !ok {
					t.Errorf("container args do not set --%s: %q", name, args)
				}
				shared = append(shared, "--"+name+"="+v)
			}
			if _, err := harness.ServeRules(shared...); err != nil {
				t.Errorf("the rendered settings are refused by serve: %v", err)
			}

			// contract 4: webhook configuration.
			if len(mwc.Webhooks) != 2 {
				t.Fatalf("%d webhooks, want 2", len(mwc.Webhooks))
			}
			for _, w := range mwc.Webhooks {
				if !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) ||
					w.SideEffects == nil || *w.SideEffects != admissionv1.SideEffectClassNone ||
					w.TimeoutSeconds == nil || *w.TimeoutSeconds > 5 ||
					w.FailurePolicy == nil || *w.FailurePolicy != admissionv1.Ignore ||
					w.MatchPolicy == nil || *w.MatchPolicy != admissionv1.Equivalent ||
					w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionv1.IfNeededReinvocationPolicy {
					t.Errorf("webhook %s does not have contract 4's settings: %+v", w.Name, w)
				}
				s := w.ClientConfig.Service
				if s == nil || w.ClientConfig.URL != nil {
					t.Fatalf("webhook %s does not call a Service", w.Name)
				}
				svc := named[corev1.Service](t, r, "Service", s.Name)
				if svc.Namespace != s.Namespace || s.Namespace != own {
					t.Errorf("webhook %s calls %s/%s; the Service is in %s, the Namespace is %s", w.Name, s.Namespace, s.Name, svc.Namespace, own)
				}
				port := int32(443)
				if s.Port != nil {
					port = *s.Port
				}
				var target string
				for _, p := range svc.Spec.Ports {
					if p.Port == port {
						target = p.TargetPort.String()
					}
				}
				if target == "" {
					t.Fatalf("Service %s has no port %d", svc.Name, port)
				}
				if got := containerPort(t, c, target); fmt.Sprint(got) != mustArg(t, args, "port") {
					t.Errorf("Service %s port %d → container port %d, but the server listens on --port=%s", svc.Name, port, got, mustArg(t, args, "port"))
				}
				if !selectorMatches(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, dep.Spec.Template.Labels) {
					t.Errorf("Service %s does not select the Deployment's pods", svc.Name)
				}
				// Nothing in canary-tagger's own namespace goes through it.
				if selectorMatches(t, w.NamespaceSelector, nsLabels(own, ns.Labels)) {
					t.Errorf("webhook %s applies to canary-tagger's own namespace %s", w.Name, own)
				}
			}
			ro := webhookNamed(t, mwc, "rollouts.canary-tagger.io")
			if want := "/mutate-rollout"; ro.ClientConfig.Service.Path == nil || *ro.ClientConfig.Service.Path != want {
				t.Errorf("rollout webhook path %v, want %s", ro.ClientConfig.Service.Path, want)
			}
			if len(ro.Rules) != 1 || !slices.Equal(ro.Rules[0].APIGroups, []string{"argoproj.io"}) || !slices.Equal(ro.Rules[0].Resources, []string{"rollouts"}) ||
				!slices.Equal(ro.Rules[0].Operations, []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}) {
				t.Errorf("rollout webhook rules %+v", ro.Rules)
			}
			cases := map[string]struct {
				labels             map[string]string
				clusterWide, optIn bool
			}{
				"team-a":          {nil, true, false},
				"team-b":          {map[string]string{"canary-tagger.io/inject": "enabled"}, true, true},
				"team-c":          {map[string]string{"canary-tagger.io/inject": "disabled"}, false, false},
				"kube-system":     {nil, false, false},
				"kube-public":     {nil, false, false},
				"kube-node-lease": {nil, false, false},
			}
			for name, tc := range cases {
				want := tc.clusterWide
				if ep.optIn {
					want = tc.optIn
				}
				if got := selectorMatches(t, ro.NamespaceSelector, nsLabels(name, tc.labels)); got != want {
					t.Errorf("rollout webhook applies to namespace %s %v: %t, want %t", name, tc.labels, got, want)
				}
			}
			ap := webhookNamed(t, mwc, "agent-pods.canary-tagger.io")
			if want := "/mutate-agent-pod"; ap.ClientConfig.Service.Path == nil || *ap.ClientConfig.Service.Path != want {
				t.Errorf("agent webhook path %v, want %s", ap.ClientConfig.Service.Path, want)
			}
			for _, name := range []string{"team-a", "kube-system", "datadog"} {
				if !selectorMatches(t, ap.NamespaceSelector, nsLabels(name, nil)) {
					t.Errorf("agent webhook does not apply to namespace %s", name)
				}
			}
			// The objectSelector is the --agent-selector (components/settings).
			agentSel, _ := argValue(args, "agent-selector")
			want, err := labels.Parse(agentSel)
			if err != nil {
				t.Fatal(err)
			}
			got, err := metav1.LabelSelectorAsSelector(ap.ObjectSelector)
			if err != nil || ap.ObjectSelector == nil {
				t.Fatalf("agent webhook objectSelector %v: %v", ap.ObjectSelector, err)
			}
			if got.String() != want.String() {
				t.Errorf("agent webhook objectSelector %q differs from --agent-selector=%q", got, want)
			}

			// Deployment: two replicas, spread, probes, resources, security.
			checkDeployment(t, r, dep, args)

			// PodDisruptionBudget.
			pdb := only[policyPDB](t, r, "PodDisruptionBudget")
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
				t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
			}
			if !selectorMatches(t, pdb.Spec.Selector, dep.Spec.Template.Labels) {
				t.Errorf("PodDisruptionBudget does not select the pods")
			}

			// NetworkPolicy: ingress to the webhook and metrics ports only.
			checkNetworkPolicy(t, r, dep, c, args)

			// RBAC and TLS per mode.
			checkRBAC(t, r, dep)
			if ep.selfManaged {
				checkSelfManaged(t, r, dep, mwc, args)
			} else {
				checkCertManager(t, r, dep, mwc, args)
			}
		})
	}
}

func mustArg(t *testing.T, args []string, name string) string {
	t.Helper()
	v, ok := argValue(args, name)
	if !ok {
		t.Fatalf("container args do not set --%s: %q", name, args)
	}
	return v
}

func checkDeployment(t *testing.T, r rendered, dep *appsv1.Deployment, args []string) {
	t.Helper()
	c := container(t, dep)
	ps := dep.Spec.Template.Spec
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
	}
	if !selectorMatches(t, dep.Spec.Selector, dep.Spec.Template.Labels) {
		t.Errorf("Deployment selector does not match its template")
	}
	spread := false
	if a := ps.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			spread = spread || term.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" &&
				selectorMatches(t, term.PodAffinityTerm.LabelSelector, dep.Spec.Template.Labels)
		}
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			spread = spread || term.TopologyKey == "kubernetes.io/hostname"
		}
	}
	for _, tsc := range ps.TopologySpreadConstraints {
		spread = spread || tsc.TopologyKey == "kubernetes.io/hostname"
	}
	if !spread {
		t.Errorf("replicas are not spread across nodes (kubernetes.io/hostname)")
	}

	// Probes on the health port.
	health := mustArg(t, args, "health-probe-bind-address")
	for probe, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != probe {
			t.Errorf("no %s probe: %+v", probe, p)
			continue
		}
		if port := containerPort(t, c, p.HTTPGet.Port.String()); ":"+fmt.Sprint(port) != health || port != 8081 {
			t.Errorf("%s probe on port %d; --health-probe-bind-address=%s", probe, port, health)
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("no %s request", res)
		}
		if _, ok := c.Resources.Limits[res]; !ok {
			t.Errorf("no %s limit", res)
		}
	}

	// Pod security: non-root, read-only root, no capabilities, no escalation, RuntimeDefault.
	sc, psc := c.SecurityContext, ps.SecurityContext
	if sc == nil || psc == nil {
		t.Fatalf("no security context")
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	seccomp := (sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault) ||
		(psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
	if !nonRoot || !seccomp ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container security context is not hardened: %+v (pod: %+v)", sc, psc)
	}

	// The certificate directory, where there is one (cert-manager; the
	// self-managed server serves from memory), is a mounted volume.
	if certDir, ok := argValue(args, "cert-dir"); ok {
		var mounted bool
		for _, m := range c.VolumeMounts {
			mounted = mounted || filepath.Clean(m.MountPath) == filepath.Clean(certDir)
		}
		if !mounted {
			t.Errorf("--cert-dir=%s is not a mounted volume", certDir)
		}
	}
	if ps.ServiceAccountName == "" || ps.ServiceAccountName != r.ofKind("ServiceAccount")[0].Name {
		t.Errorf("pods run as service account %q", ps.ServiceAccountName)
	}
}

func checkNetworkPolicy(t *testing.T, r rendered, dep *appsv1.Deployment, c corev1.Container, args []string) {
	t.Helper()
	np := only[networkingNP](t, r, "NetworkPolicy")
	if !selectorMatches(t, &np.Spec.PodSelector, dep.Spec.Template.Labels) {
		t.Fatalf("NetworkPolicy does not select the pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		t.Errorf("NetworkPolicy does not restrict ingress: %v", np.Spec.PolicyTypes)
	}
	var ports []string
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Errorf("an ingress rule admits every port")
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.EndPort != nil {
				t.Errorf("ingress port range %+v", p)
				continue
			}
			ports = append(ports, fmt.Sprint(containerPort(t, c, p.Port.String())))
		}
	}
	slices.Sort(ports)
	metrics := strings.TrimPrefix(mustArg(t, args, "metrics-bind-address"), ":")
	want := []string{mustArg(t, args, "port"), metrics}
	slices.Sort(want)
	if !slices.Equal(ports, want) || !slices.Equal(want, []string{"8080", "9443"}) {
		t.Errorf("NetworkPolicy admits ports %v, want the webhook and metrics ports %v", ports, want)
	}
}

// rbacRule is one (apiGroup, resource, verb, resourceName) grant.
type rbacRule struct{ namespace, group, resource, verb, name string }

// grants are every permission the Deployment's service account gets.
func grants(t *testing.T, r rendered, dep *appsv1.Deployment) []rbacRule {
	t.Helper()
	sa := dep.Spec.Template.Spec.ServiceAccountName
	bound := func(subjects []rbacv1.Subject) bool {
		for _, s := range subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == dep.Namespace {
				return true
			}
		}
		return false
	}
	rules := func(kind, ns, name string) []rbacv1.PolicyRule {
		if kind == "ClusterRole" {
			return named[rbacv1.ClusterRole](t, r, "ClusterRole", name).Rules
		}
		role := named[rbacv1.Role](t, r, "Role", name)
		if role.Namespace != ns {
			t.Fatalf("RoleBinding in %s refers to Role %s in %s", ns, name, role.Namespace)
		}
		return role.Rules
	}
	var out []rbacRule
	add := func(ns string, prs []rbacv1.PolicyRule) {
		for _, pr := range prs {
			if len(pr.NonResourceURLs) > 0 {
				t.Errorf("non-resource URLs granted: %v", pr.NonResourceURLs)
			}
			names := pr.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, g := range pr.APIGroups {
				for _, res := range pr.Resources {
					for _, v := range pr.Verbs {
						for _, n := range names {
							out = append(out, rbacRule{ns, g, res, v, n})
						}
					}
				}
			}
		}
	}
	for _, d := range r.ofKind("ClusterRoleBinding") {
		b := decodeStrict[rbacv1.ClusterRoleBinding](t, d)
		if bound(b.Subjects) {
			add("*", rules(b.RoleRef.Kind, "", b.RoleRef.Name))
		}
	}
	for _, d := range r.ofKind("RoleBinding") {
		b := decodeStrict[rbacv1.RoleBinding](t, d)
		if bound(b.Subjects) {
			add(b.Namespace, rules(b.RoleRef.Kind, b.Namespace, b.RoleRef.Name))
		}
	}
	return out
}

// workloadRefKinds are the kinds Argo Rollouts accepts in spec.workloadRef,
// read from the pinned argo-rollouts source (rollout/templateref.go) so that a
// new kind in a new version fails this test instead of the RBAC silently
// falling short.
func workloadRefKinds(t *testing.T) []string {
	t.Helper()
	files := env.ArgoCRDFiles
	if len(files) == 0 {
		t.Fatal("the harness installed no Argo Rollouts CRDs")
	}
	// <module>/manifests/crds/x.yaml → <module>/rollout/templateref.go
	src := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(files[0]))), "rollout", "templateref.go")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("reading Argo Rollouts' workloadRef kinds: %v", err)
	}
	re := regexp.MustCompile(`\{(?:Group: "([a-z.]*)", )?Kind: "([A-Za-z]+)"\}:`)
	var kinds []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		kinds = append(kinds, m[1]+"/"+m[2])
	}
	if len(kinds) == 0 {
		t.Fatalf("no workloadRef kinds found in %s", src)
	}
	slices.Sort(kinds)
	return kinds
}

func checkRBAC(t *testing.T, r rendered, dep *appsv1.Deployment) {
	t.Helper()
	// group/Kind → group/resource, as the apiserver maps them.
	kindToResource := map[string]string{
		"apps/Deployment": "apps/deployments", "apps/ReplicaSet": "apps/replicasets", "/PodTemplate": "/podtemplates",
	}
	var want []string
	for _, k := range workloadRefKinds(t) {
		res, ok := kindToResource[k]
		if !ok {
			t.Fatalf("Argo Rollouts supports workloadRef kind %s, which the RBAC does not cover", k)
		}
		want = append(want, "*|"+res+"|get|")
	}
	want = append(want, healGrants(t, dep, false)...)
	if r.entry.selfManaged {
		secret := mustArg(t, effectiveArgs(t, dep), "tls-secret")
		mwc := mustArg(t, effectiveArgs(t, dep), "webhook-config-name")
		want = append(want,
			dep.Namespace+"|/secrets|create|",
			dep.Namespace+"|/secrets|get|"+secret,
			dep.Namespace+"|/secrets|update|"+secret,
			"*|admissionregistration.k8s.io/mutatingwebhookconfigurations|get|"+mwc,
			"*|admissionregistration.k8s.io/mutatingwebhookconfigurations|update|"+mwc,
		)
	}
	var got []string
	for _, g := range grants(t, r, dep) {
		got = append(got, g.namespace+"|"+g.group+"/"+g.resource+"|"+g.verb+"|"+g.name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("service account permissions (namespace|group/resource|verb|resourceName):\n got  %q\n want %q", got, want)
	}
}

// healGrants are the permissions healing needs (README, RBAC): the scope
// (this install's webhook configuration, the namespaces), the Rollouts, the
// Events, and the Lease the replicas elect the healer on, in the release
// namespace; with agentPods, the Agent pods and their workloads.
func healGrants(t *testing.T, dep *appsv1.Deployment, agentPods bool) []string {
	t.Helper()
	args := effectiveArgs(t, dep)
	mwc := mustArg(t, args, "webhook-config-name")
	if ns := mustArg(t, args, "leader-election-namespace"); ns != dep.Namespace {
		t.Errorf("--leader-election-namespace=%s, want the release namespace %s", ns, dep.Namespace)
	}
	grants := []string{
		"*|admissionregistration.k8s.io/mutatingwebhookconfigurations|get|" + mwc,
		"*|/namespaces|list|",
		"*|argoproj.io/rollouts|get|", "*|argoproj.io/rollouts|list|", "*|argoproj.io/rollouts|patch|",
		"*|events.k8s.io/events|create|",
		dep.Namespace + "|coordination.k8s.io/leases|create|",
		dep.Namespace + "|coordination.k8s.io/leases|get|" + heal.LeaseName(mwc),
		dep.Namespace + "|coordination.k8s.io/leases|update|" + heal.LeaseName(mwc),
		dep.Namespace + "|/events|create|",
	}
	if agentPods {
		grants = append(grants, "*|/pods|list|", "*|apps/replicasets|get|",
			"*|apps/daemonsets|get|", "*|apps/daemonsets|patch|", "*|apps/deployments|get|", "*|apps/deployments|patch|")
	}
	return grants
}

package install

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/canary-tagger/canary-tagger/certs"
)

type (
	policyPDB    = policyv1.PodDisruptionBudget
	networkingNP = networkingv1.NetworkPolicy
)

const injectCAFrom = "cert-manager.io/inject-ca-from"

// certDirVolume is the volume mounted at --cert-dir.
func certDirVolume(t *testing.T, dep *appsv1.Deployment, args []string) (corev1.Volume, corev1.VolumeMount) {
	t.Helper()
	certDir := mustArg(t, args, "cert-dir")
	c := container(t, dep)
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) != filepath.Clean(certDir) {
			continue
		}
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name == m.Name {
				return v, m
			}
		}
		t.Fatalf("volume %s mounted at %s is not defined", m.Name, certDir)
	}
	t.Fatalf("nothing is mounted at --cert-dir=%s", certDir)
	return corev1.Volume{}, corev1.VolumeMount{}
}

// webhookService is the Service both webhooks call.
func webhookService(t *testing.T, mwc *admissionv1.MutatingWebhookConfiguration) (name, namespace string) {
	t.Helper()
	for _, w := range mwc.Webhooks {
		s := w.ClientConfig.Service
		if name != "" && (s.Name != name || s.Namespace != namespace) {
			t.Fatalf("webhooks call two Services: %s/%s and %s/%s", namespace, name, s.Namespace, s.Name)
		}
		name, namespace = s.Name, s.Namespace
	}
	return name, namespace
}

// checkCertManager: the rendered Issuers and Certificates are valid
// cert-manager API objects (decoded strictly into cert-manager's Go types),
// the caBundle is injected from the serving Certificate, whose Secret is what
// the server reads and whose names are the Service's, signed by a CA from a
// self-signed Issuer.
func checkCertManager(t *testing.T, r rendered, dep *appsv1.Deployment, mwc *admissionv1.MutatingWebhookConfiguration, args []string) {
	t.Helper()
	issuers := map[string]*cmv1.Issuer{}
	certsByName := map[string]*cmv1.Certificate{}
	for _, d := range r.docs {
		if !strings.HasPrefix(d.APIVersion, "cert-manager.io/") {
			continue
		}
		if d.APIVersion != "cert-manager.io/v1" {
			t.Errorf("%s %s uses %s, want cert-manager.io/v1", d.Kind, d.Name, d.APIVersion)
		}
		switch d.Kind {
		case "Issuer":
			issuers[d.Namespace+"/"+d.Name] = decodeStrict[cmv1.Issuer](t, d)
		case "Certificate":
			certsByName[d.Namespace+"/"+d.Name] = decodeStrict[cmv1.Certificate](t, d)
		default:
			t.Errorf("unexpected cert-manager kind %s", d.Kind)
		}
	}
	from := mwc.Annotations[injectCAFrom]
	serving, ok := certsByName[from]
	if !ok {
		t.Fatalf("%s=%q does not name a rendered Certificate (have %v)", injectCAFrom, from, keys(certsByName))
	}
	if serving.Spec.IsCA {
		t.Errorf("serving Certificate %s is a CA", from)
	}
	svc, ns := webhookService(t, mwc)
	if serving.Namespace != ns {
		t.Errorf("serving Certificate in %s, Service in %s", serving.Namespace, ns)
	}
	for _, dns := range []string{svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"} {
		if !slices.Contains(serving.Spec.DNSNames, dns) {
			t.Errorf("serving Certificate dnsNames %v lack %s (what the apiserver checks)", serving.Spec.DNSNames, dns)
		}
	}
	if len(serving.Spec.Usages) > 0 && !slices.Contains(serving.Spec.Usages, cmv1.UsageServerAuth) {
		t.Errorf("serving Certificate usages %v lack server auth", serving.Spec.Usages)
	}
	if serving.Spec.Duration == nil || serving.Spec.RenewBefore == nil || serving.Spec.RenewBefore.Duration >= serving.Spec.Duration.Duration {
		t.Errorf("serving Certificate duration %v renewBefore %v", serving.Spec.Duration, serving.Spec.RenewBefore)
	}

	// The server reads the Certificate's Secret.
	vol, mount := certDirVolume(t, dep, args)
	if vol.Secret == nil || vol.Secret.SecretName != serving.Spec.SecretName {
		t.Errorf("--cert-dir volume %+v is not the Certificate's Secret %s", vol.VolumeSource, serving.Spec.SecretName)
	}
	if !mount.ReadOnly {
		t.Errorf("the certificate Secret is mounted read-write")
	}
	for flag, want := range map[string]string{"cert-name": corev1.TLSCertKey, "key-name": corev1.TLSPrivateKeyKey} {
		if v, ok := argValue(args, flag); ok && v != want {
			t.Errorf("--%s=%s, but cert-manager writes %s", flag, v, want)
		}
	}
	if _, ok := argValue(args, "self-managed-tls"); ok {
		t.Errorf("cert-manager mode runs with --self-managed-tls")
	}

	// serving ← CA Issuer ← CA Certificate ← self-signed Issuer, all rendered.
	issuerOf := func(c *cmv1.Certificate) *cmv1.Issuer {
		ref := c.Spec.IssuerRef
		if ref.Kind != "" && ref.Kind != "Issuer" || ref.Group != "" && ref.Group != "cert-manager.io" {
			t.Fatalf("Certificate %s: issuerRef %+v is not a rendered Issuer", c.Name, ref)
		}
		iss, ok := issuers[c.Namespace+"/"+ref.Name]
		if !ok {
			t.Fatalf("Certificate %s: Issuer %s/%s is not rendered", c.Name, c.Namespace, ref.Name)
		}
		return iss
	}
	caIssuer := issuerOf(serving)
	if caIssuer.Spec.CA == nil {
		t.Fatalf("serving Certificate is issued by %s, not a CA Issuer", caIssuer.Name)
	}
	var caCert *cmv1.Certificate
	for _, c := range certsByName {
		if c.Spec.SecretName == caIssuer.Spec.CA.SecretName && c.Namespace == caIssuer.Namespace {
			caCert = c
		}
	}
	if caCert == nil || !caCert.Spec.IsCA {
		t.Fatalf("CA Issuer %s uses Secret %s, which no rendered CA Certificate writes", caIssuer.Name, caIssuer.Spec.CA.SecretName)
	}
	if root := issuerOf(caCert); root.Spec.SelfSigned == nil {
		t.Errorf("CA Certificate %s is issued by %s, not a self-signed Issuer", caCert.Name, root.Name)
	}
	if caCert.Spec.Duration == nil || caCert.Spec.Duration.Duration < 2*serving.Spec.Duration.Duration {
		t.Errorf("CA lifetime %v should be well beyond the serving certificate's %v", caCert.Spec.Duration, serving.Spec.Duration)
	}
}

// checkSelfManaged: no cert-manager objects; the server's flags name the
// rendered Secret (RBAC), webhook configuration and Service; no certificate
// directory and no volume (the certificate is served from memory).
func checkSelfManaged(t *testing.T, r rendered, dep *appsv1.Deployment, mwc *admissionv1.MutatingWebhookConfiguration, args []string) {
	t.Helper()
	for _, d := range r.docs {
		if strings.Contains(d.APIVersion, "cert-manager.io") {
			t.Errorf("self-managed mode renders %s %s", d.Kind, d.Name)
		}
	}
	if v, ok := mwc.Annotations[injectCAFrom]; ok {
		t.Errorf("self-managed mode keeps %s=%s", injectCAFrom, v)
	}
	if v, ok := argValue(args, "self-managed-tls"); !ok || v != "true" {
		t.Errorf("no --self-managed-tls in %q", args)
	}
	svc, ns := webhookService(t, mwc)
	for flag, want := range map[string]string{
		"webhook-config-name": mwc.Name,
		"service-name":        svc,
		"service-namespace":   ns,
	} {
		if got := mustArg(t, args, flag); got != want {
			t.Errorf("--%s=%s, want %s", flag, got, want)
		}
	}
	if mustArg(t, args, "tls-secret") == "" {
		t.Errorf("--tls-secret is empty")
	}
	if d, err := time.ParseDuration(mustArg(t, args, "cert-lifetime")); err != nil || d < certs.MinCertLifetime || d > certs.MaxCertLifetime {
		t.Errorf("--cert-lifetime=%s: %v", mustArg(t, args, "cert-lifetime"), err)
	}
	if v, ok := argValue(args, "cert-dir"); ok {
		t.Errorf("--cert-dir=%s in self-managed mode, where nothing reads it", v)
	}
	if vs := dep.Spec.Template.Spec.Volumes; len(vs) > 0 {
		t.Errorf("self-managed mode mounts %d volume(s), the first %s: the certificate needs none", len(vs), vs[0].Name)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestCertManagerObjectsStrict shows the strict decoding has teeth: the
// rendered serving Certificate with one field misspelt no longer decodes into
// cert-manager's Certificate type, and the apiserver with cert-manager's CRDs
// refuses it too.
func TestCertManagerObjectsStrict(t *testing.T) {
	installCertManagerCRDs(t)
	r := render(t, "default")
	var raw []byte
	for _, d := range r.ofKind("Certificate") {
		if !strings.Contains(string(d.Raw), "isCA: true") {
			raw = d.Raw
		}
	}
	if !strings.Contains(string(raw), "dnsNames:") {
		t.Fatalf("no serving Certificate with dnsNames in\n%s", r.yaml)
	}
	bad := strings.Replace(string(raw), "dnsNames:", "dnsName:", 1)
	var c cmv1.Certificate
	if err := yamlUnmarshalStrict([]byte(bad), &c); err == nil || !strings.Contains(err.Error(), "dnsName") {
		t.Errorf("a misspelt field decodes into cmv1.Certificate: err=%v", err)
	}
	ensureOwnNamespace(t, r)
	res := env.Kubectl.RunStdin(t.Context(), strings.NewReader(bad), "apply", "--dry-run=server", "-f", "-")
	if res.OK() || !strings.Contains(res.Stderr, "dnsName") {
		t.Errorf("the apiserver accepts a misspelt Certificate field:\n%s", res)
	}
}

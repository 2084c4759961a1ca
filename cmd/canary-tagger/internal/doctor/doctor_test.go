package doctor

import (
	"bytes"
	"crypto/x509"
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [3]int
		ok   bool
	}{
		{"v1.10.2", [3]int{1, 10, 2}, true},
		{"1.9", [3]int{1, 9, 0}, true},
		{"v1.10.2+unknown", [3]int{1, 10, 2}, true},
		{"v1.7.0-rc1", [3]int{1, 7, 0}, true},
		{"latest", [3]int{}, false},
		{"sha256", [3]int{}, false},
		{"", [3]int{}, false},
	} {
		got, ok := parseVersion(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseVersion(%q) = %v, %t; want %v, %t", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	// 1.9 < 1.10: compared as numbers, not strings.
	v19, _ := parseVersion("v1.9.9")
	v110, _ := parseVersion("1.10.0")
	if !less(v19, v110) || less(v110, v19) || less(v110, v110) {
		t.Error("less: want v1.9.9 < 1.10.0, not the reverse, and not 1.10.0 < 1.10.0")
	}
}

func TestSplitImage(t *testing.T) {
	for in, want := range map[string][2]string{
		"argoproj/argo-rollouts:v1.6.6":            {"argoproj/argo-rollouts", "v1.6.6"},
		"localhost:5000/argo-rollouts":             {"localhost:5000/argo-rollouts", ""},
		"localhost:5000/argo-rollouts:v1.10.2":     {"localhost:5000/argo-rollouts", "v1.10.2"},
		"argo-rollouts:v1.8.0@sha256:0123456789ab": {"argo-rollouts", "v1.8.0"},
	} {
		repo, tag := splitImage(in)
		if repo != want[0] || tag != want[1] {
			t.Errorf("splitImage(%q) = %q, %q; want %q, %q", in, repo, tag, want[0], want[1])
		}
	}
}

func TestExitCodeAndVerdict(t *testing.T) {
	for _, tc := range []struct {
		sum     Summary
		code    int
		verdict string
	}{
		{Summary{OK: 3, Info: 1}, 0, "All is well"},
		{Summary{OK: 3, Action: 2}, 1, "2 thing(s) need doing"},
		{Summary{Action: 1, Error: 1}, 2, "1 check(s) could not be made"},
	} {
		r := Report{Summary: tc.sum}
		if got := r.ExitCode(); got != tc.code {
			t.Errorf("%+v: exit %d, want %d", tc.sum, got, tc.code)
		}
		var b bytes.Buffer
		if err := WriteText(&b, r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.verdict) {
			t.Errorf("%+v: text report lacks %q:\n%s", tc.sum, tc.verdict, b.String())
		}
	}
}

func TestCAPool(t *testing.T) {
	for in, want := range map[string]string{"": "is empty", "  \n": "is empty", "not pem": "holds no usable PEM certificate: "} {
		if pool, msg := caPool([]byte(in)); pool != nil || !strings.HasPrefix(msg, want) {
			t.Errorf("caPool(%q) = %v, %q; want nil, %q", in, pool, msg, want)
		}
	}
}

// A serving Secret whose tls.crt holds no certificate: the webhook has
// nothing to serve, an action with the caBundle's fix.
func TestVerifyServingWithoutCertificate(t *testing.T) {
	sec := &corev1.Secret{Data: map[string][]byte{corev1.TLSCertKey: []byte("not pem")}}
	ref := &admissionv1.ServiceReference{Namespace: "canary-tagger", Name: "canary-tagger"}
	mwc := &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "canary-tagger"}}
	f := verifyServing(&cluster{}, "mwc", "secret/canary-tagger/tls", sec, ref, x509.NewCertPool(), mwc)
	if f.Status != Action || f.Object != "secret/canary-tagger/tls" || !strings.Contains(f.Message, "no usable certificate in tls.crt") {
		t.Errorf("finding %+v, want an action on the Secret naming its tls.crt", f)
	}
	if !reflect.DeepEqual(f.Fix, caBundleFix(mwc)) {
		t.Errorf("fix %q, want the caBundle's %q", f.Fix, caBundleFix(mwc))
	}
}

// Where the caBundle comes from decides where to look: cert-manager's
// Certificate and CA injector, or serve --self-managed-tls in the Service's
// namespace.
func TestCABundleFix(t *testing.T) {
	certManager := &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "canary-tagger",
		Annotations: map[string]string{injectCAFromAnnotation: "tagging/canary-tagger-webhook"}}}
	if got := caBundleFix(certManager); len(got) != 2 || !strings.HasPrefix(got[0], "kubectl -n tagging get certificate canary-tagger-webhook ") {
		t.Errorf("cert-manager: %q", got)
	}
	selfManaged := &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "ct"},
		Webhooks: []admissionv1.MutatingWebhook{{ClientConfig: admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: "tagging", Name: "ct"}}}}}
	if got := caBundleFix(selfManaged); len(got) != 1 || !strings.HasPrefix(got[0], "kubectl -n tagging logs deployment/ct --tail=50 ") {
		t.Errorf("self-managed: %q", got)
	}
}

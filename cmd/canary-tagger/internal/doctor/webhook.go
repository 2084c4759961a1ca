package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/cert"

	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

// The Secrets the chart (and the manifests rendered from it) keep the
// serving certificate in, by TLS mode: the webhook configuration's name
// (the chart's full name) with these suffixes.
var servingSecretSuffixes = []string{
	"-webhook-tls",      // cert-manager (charts/canary-tagger with tls=cert-manager)
	"-self-managed-tls", // serve --self-managed-tls
}

// injectCAFromAnnotation: cert-manager's CA injector writes the caBundle.
const injectCAFromAnnotation = "cert-manager.io/inject-ca-from"

// registration is the webhook configuration as read, and its two webhooks.
type registration struct {
	name string
	// config is nil when it is not found or could not be read (err).
	config *admissionv1.MutatingWebhookConfiguration
	err    error
	// rolloutScope and agentScope are what the configuration sends to
	// canary-tagger, read as the heal loop reads it; rollouts and agents
	// are the webhooks they name (nil when missing).
	rolloutScope, agentScope heal.Scope
	rollouts, agents         *admissionv1.MutatingWebhook
	// policy is the MutatingAdmissionPolicyBinding the chart names
	// <name>-rollouts (rollouts.admission=policy), nil when there is none;
	// policyErr when it could not be read.
	policy    *admissionv1.MutatingAdmissionPolicyBinding
	policyErr error
}

// policyBindingName is the binding the chart renders for
// rollouts.admission=policy, named after the webhook configuration.
func policyBindingName(webhookConfiguration string) string { return webhookConfiguration + "-rollouts" }

// rolloutsAdmitted is what admits Rollouts, as findings name it, and the
// scope it is sent: the Rollout webhook, else the admission policy's
// binding; ok is false when neither exists.
func (r registration) rolloutsAdmitted() (object string, namespaces *metav1.LabelSelector, scope heal.Scope, ok bool) {
	switch {
	case r.rollouts != nil:
		return "webhook/" + r.rollouts.Name, r.rollouts.NamespaceSelector, r.rolloutScope, true
	case r.policy != nil:
		var objects *metav1.LabelSelector
		if m := r.policy.Spec.MatchResources; m != nil {
			namespaces, objects = m.NamespaceSelector, m.ObjectSelector
		}
		scope = heal.Scope{Config: r.name, NotHealed: "Rollouts are admitted by a MutatingAdmissionPolicy"}
		var errNS, errObj error
		scope.Namespaces, errNS = selectorOf(namespaces)
		scope.Objects, errObj = selectorOf(objects)
		if errNS != nil || errObj != nil {
			scope.Namespaces, scope.Objects = nil, nil // the apiserver refuses such a binding
		}
		return "mutatingadmissionpolicybinding/" + r.policy.Name, namespaces, scope, true
	}
	return "", nil, r.rolloutScope, false
}

// selectorOf: an absent selector matches everything, as the apiserver reads it.
func selectorOf(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// registered is the registration of a configuration that was read.
func registered(cfg *admissionv1.MutatingWebhookConfiguration) registration {
	r := registration{name: cfg.Name, config: cfg,
		rolloutScope: heal.ScopeOf(cfg, heal.Rollouts), agentScope: heal.ScopeOf(cfg, heal.AgentPods)}
	r.rollouts, r.agents = webhookNamed(cfg, r.rolloutScope.Webhook), webhookNamed(cfg, r.agentScope.Webhook)
	return r
}

func webhookNamed(cfg *admissionv1.MutatingWebhookConfiguration, name string) *admissionv1.MutatingWebhook {
	for i := range cfg.Webhooks {
		if name != "" && cfg.Webhooks[i].Name == name {
			return &cfg.Webhooks[i]
		}
	}
	return nil
}

// object is how findings name the configuration.
func (r registration) object() string {
	return "mutatingwebhookconfiguration/" + r.name
}

// webhooks are its webhooks that exist, the Rollout one first.
func (r registration) webhooks() []*admissionv1.MutatingWebhook {
	var out []*admissionv1.MutatingWebhook
	for _, w := range []*admissionv1.MutatingWebhook{r.rollouts, r.agents} {
		if w != nil {
			out = append(out, w)
		}
	}
	return out
}

func loadRegistration(ctx context.Context, c *cluster, in *inputs) error {
	name := c.opts.WebhookConfiguration
	mwc, err := c.core.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		in.registration = registration{name: name, rolloutScope: heal.Missing(name)}
	case err != nil:
		in.registration = registration{name: name, err: err}
	default:
		in.registration = registered(mwc)
	}
	// Before Kubernetes 1.36 the API is not served: NotFound too.
	binding, err := c.core.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Get(ctx, policyBindingName(name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		in.registration.policyErr = err
	default:
		in.registration.policy = binding
	}
	return nil
}

// checkRegistration: the configuration exists and has both webhooks.
func checkRegistration(_ context.Context, _ *cluster, in inputs) []Finding {
	r, obj := in.registration, in.registration.object()
	var out []Finding
	if r.policy != nil {
		out = append(out, Finding{Status: OK, Object: "mutatingadmissionpolicybinding/" + r.policy.Name,
			Message: fmt.Sprintf("Rollouts are labelled by MutatingAdmissionPolicy %s in the apiserver (rollouts.admission=policy)", r.policy.Spec.PolicyName)})
	}
	switch {
	case r.err != nil:
		return append(out, errorFinding(obj, r.err, "reading the webhook configuration"))
	case r.config == nil && r.policy != nil:
		return append(out, Finding{Status: Info, Object: obj,
			Message: "not found: no agent-pod webhook (agentPods.enabled=false), so Datadog Agent pods get the mapping only from their own configuration"})
	case r.config == nil:
		return append(out, Finding{Status: Action, Object: obj,
			Message: "not found: canary-tagger is not registered, so no Rollout or agent pod is labelled (every finding below is checked against all namespaces)",
			Fix:     installFix})
	}
	if r.rollouts == nil && r.policy == nil {
		if r.policyErr != nil {
			out = append(out, errorFinding("mutatingadmissionpolicybinding/"+policyBindingName(r.name), r.policyErr, "has no webhook for rollouts.argoproj.io; reading the admission policy binding"))
		} else {
			out = append(out, Finding{Status: Action, Object: obj, Message: "has no webhook for rollouts.argoproj.io: Rollouts are not labelled", Fix: installFix})
		}
	}
	if r.agents == nil {
		out = append(out, Finding{Status: Action, Object: obj, Message: "has no webhook for pods: Datadog Agent pods do not get the tag mapping", Fix: installFix})
	}
	return out
}

// checkServices: a webhook registered by Service (as the manifests do) is
// up when its Service has a ready endpoint. Each Service once.
func checkServices(ctx context.Context, c *cluster, in inputs) []Finding {
	var out []Finding
	seen := map[string]bool{}
	for _, w := range in.registration.webhooks() {
		ref := w.ClientConfig.Service
		if ref == nil || seen[ref.Namespace+"/"+ref.Name] {
			continue
		}
		seen[ref.Namespace+"/"+ref.Name] = true
		svcObj := fmt.Sprintf("service/%s/%s", ref.Namespace, ref.Name)
		svc, err := c.core.CoreV1().Services(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			out = append(out, Finding{Status: Action, Object: svcObj, Message: "the webhook's Service does not exist: the apiserver cannot call the webhook", Fix: installFix})
		case err != nil:
			out = append(out, errorFinding(svcObj, err, "reading the webhook's Service"))
		default:
			out = append(out, checkEndpoints(ctx, c, svc, svcObj))
		}
	}
	return out
}

func checkEndpoints(ctx context.Context, c *cluster, svc *corev1.Service, svcObj string) Finding {
	slices, err := c.core.DiscoveryV1().EndpointSlices(svc.Namespace).List(ctx, listOptions(discoveryv1.LabelServiceName+"="+svc.Name))
	if err != nil {
		return errorFinding(svcObj, err, "listing the Service's EndpointSlices")
	}
	ready, notReady := 0, 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			// Ready nil means ready (discovery/v1); serving alone is not enough for the apiserver.
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready += len(e.Addresses)
			} else {
				notReady += len(e.Addresses)
			}
		}
	}
	if ready > 0 {
		return Finding{Status: OK, Object: svcObj, Message: fmt.Sprintf("%d ready endpoint(s)", ready)}
	}
	return Finding{Status: Action, Object: svcObj,
		Message: fmt.Sprintf("no ready endpoint (%d not ready): the webhook is down, and with failurePolicy Ignore Rollouts and agent pods are admitted unlabelled", notReady),
		Fix:     endpointsFix(svc, c.opts.WebhookConfiguration)}
}

// checkCABundles: each webhook's caBundle is usable and trusts the
// certificate its target serves. Both webhooks normally share one target,
// checked once.
func checkCABundles(ctx context.Context, c *cluster, in inputs) []Finding {
	var out []Finding
	mwc := in.registration.config
	checked := map[string]bool{}
	for _, w := range in.registration.webhooks() {
		obj := in.registration.object() + " " + w.Name
		pool, msg := caPool(w.ClientConfig.CABundle)
		if pool == nil {
			out = append(out, Finding{Status: Action, Object: obj, Message: "caBundle " + msg + ": the apiserver cannot call the webhook", Fix: caBundleFix(mwc)})
			continue
		}
		key := targetKey(w.ClientConfig) + "\x00" + string(w.ClientConfig.CABundle)
		if checked[key] {
			out = append(out, Finding{Status: OK, Object: obj, Message: "caBundle set; same target and caBundle as above"})
			continue
		}
		checked[key] = true
		if w.ClientConfig.URL != nil {
			out = append(out, checkURLTarget(ctx, c, obj, *w.ClientConfig.URL, pool))
		} else if ref := w.ClientConfig.Service; ref != nil {
			out = append(out, checkServingSecret(ctx, c, mwc, obj, ref, pool))
		}
	}
	return out
}

func targetKey(c admissionv1.WebhookClientConfig) string {
	if c.URL != nil {
		return *c.URL
	}
	if s := c.Service; s != nil {
		port := int32(443)
		if s.Port != nil {
			port = *s.Port
		}
		return fmt.Sprintf("service %s/%s:%d", s.Namespace, s.Name, port)
	}
	return ""
}

// caPool parses a caBundle; nil and what is wrong when it cannot be used.
func caPool(bundle []byte) (*x509.CertPool, string) {
	if len(strings.TrimSpace(string(bundle))) == 0 {
		return nil, "is empty"
	}
	certs, err := cert.ParseCertsPEM(bundle)
	if err != nil {
		return nil, "holds no usable PEM certificate: " + err.Error()
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, ""
}

// checkURLTarget: a webhook registered by URL is checked by a TLS handshake
// that trusts only the caBundle, as the apiserver does.
func checkURLTarget(ctx context.Context, c *cluster, obj, raw string, pool *x509.CertPool) Finding {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Finding{Status: Action, Object: obj, Message: fmt.Sprintf("clientConfig.url %q is not a URL", raw)}
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	timeout := c.opts.Timeout
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dialer.DialContext(dctx, "tcp", net.JoinHostPort(host, port))
	if err == nil {
		conn.Close()
		return Finding{Status: OK, Object: obj, Message: fmt.Sprintf("caBundle set and trusted by the certificate %s serves", raw)}
	}
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &unknown) || errors.As(err, &hostErr) || errors.As(err, &invalid) {
		return Finding{Status: Action, Object: obj,
			Message: fmt.Sprintf("the certificate %s serves is not trusted by the caBundle: %v; the apiserver's calls fail and, with failurePolicy Ignore, objects are admitted unlabelled", raw, err),
			Fix:     untrustedURLFix(c.opts.WebhookConfiguration)}
	}
	return Finding{Status: Action, Object: obj,
		Message: fmt.Sprintf("%s does not answer: %v; objects are admitted unlabelled while it is down", raw, err),
		Fix:     unreachableURLFix(raw)}
}

// checkServingSecret: a webhook registered by Service is checked through
// the API only: the serving certificate read from its Secret, verified
// against the caBundle for the name the apiserver dials. (The apiserver's
// service proxy would reach the pods but neither verifies nor shows their
// certificate.)
func checkServingSecret(ctx context.Context, c *cluster, mwc *admissionv1.MutatingWebhookConfiguration, obj string, ref *admissionv1.ServiceReference, pool *x509.CertPool) Finding {
	var candidates [][2]string
	if c.opts.ServingSecret != "" {
		ns, name, ok := strings.Cut(c.opts.ServingSecret, "/")
		if !ok {
			ns, name = ref.Namespace, c.opts.ServingSecret
		}
		candidates = append(candidates, [2]string{ns, name})
	} else {
		for _, suffix := range servingSecretSuffixes {
			candidates = append(candidates, [2]string{ref.Namespace, c.opts.WebhookConfiguration + suffix})
		}
	}
	var tried []string
	for _, cand := range candidates {
		secObj := "secret/" + cand[0] + "/" + cand[1]
		sec, err := c.core.CoreV1().Secrets(cand[0]).Get(ctx, cand[1], metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			tried = append(tried, cand[0]+"/"+cand[1])
			continue
		}
		if err != nil {
			return errorFinding(secObj, err, "reading the serving certificate to check it against the caBundle (or give --serving-secret)")
		}
		return verifyServing(c, obj, secObj, sec, ref, pool, mwc)
	}
	return Finding{Status: Error, Object: obj,
		Message: fmt.Sprintf("no serving certificate Secret found (looked for %s): the caBundle could not be checked against it; give --serving-secret=NAMESPACE/NAME", strings.Join(tried, ", "))}
}

func verifyServing(c *cluster, obj, secObj string, sec *corev1.Secret, ref *admissionv1.ServiceReference, pool *x509.CertPool, mwc *admissionv1.MutatingWebhookConfiguration) Finding {
	chain, err := cert.ParseCertsPEM(sec.Data[corev1.TLSCertKey])
	if err != nil {
		return Finding{Status: Action, Object: secObj, Message: "holds no usable certificate in " + corev1.TLSCertKey + " (" + err.Error() + "): the webhook has nothing to serve", Fix: caBundleFix(mwc)}
	}
	inter := x509.NewCertPool()
	for _, crt := range chain[1:] {
		inter.AddCert(crt)
	}
	dnsName := ref.Name + "." + ref.Namespace + ".svc"
	_, err = chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: dnsName, CurrentTime: c.opts.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return Finding{Status: Action, Object: obj,
			Message: fmt.Sprintf("caBundle does not trust the serving certificate in %s for %s: %v; the apiserver's calls fail and objects are admitted unlabelled", secObj, dnsName, err),
			Fix:     caBundleFix(mwc)}
	}
	return Finding{Status: OK, Object: obj,
		Message: fmt.Sprintf("caBundle set and trusts the serving certificate in %s for %s (valid until %s)", secObj, dnsName, chain[0].NotAfter.UTC().Format("2006-01-02"))}
}

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
)

// The Secrets the chart (and the manifests rendered from it) keep the
// serving certificate in, by TLS mode: the webhook configuration's name
// (the chart's full name) with these suffixes.
var servingSecretSuffixes = []string{
	"-webhook-tls",      // cert-manager (charts/canary-tagger with tls=cert-manager)
	"-self-managed-tls", // serve --self-managed-tls
}

// Annotations and labels the webhook configuration and the namespaces carry.
const (
	injectCAFromAnnotation = "cert-manager.io/inject-ca-from"
	injectLabel            = "canary-tagger.io/inject"
)

// webhookInfo is what the webhook check learnt, for the scope of the others.
type webhookInfo struct {
	// found: the configuration exists.
	found bool
	// rollouts and agents are its two webhooks (nil when missing).
	rollouts, agents *admissionv1.MutatingWebhook
}

// inScope says whether the apiserver sends an object with these labels, in
// namespace ns, to webhook w. Without the configuration every namespace
// counts: the question is then what is not labelled yet.
func (d *doctor) inScope(w *admissionv1.MutatingWebhook, ns string, objLabels map[string]string) bool {
	if w == nil {
		return true
	}
	nsSel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
	if err != nil {
		return true // the apiserver refuses such a configuration; say more rather than less
	}
	if w.NamespaceSelector == nil {
		nsSel = labels.Everything()
	}
	objSel, err := metav1.LabelSelectorAsSelector(w.ObjectSelector)
	if err != nil || w.ObjectSelector == nil {
		objSel = labels.Everything()
	}
	return nsSel.Matches(labels.Set(d.nsLabels[ns])) && objSel.Matches(labels.Set(objLabels))
}

// handles says whether w is called for resource in group.
func handles(w admissionv1.MutatingWebhook, group, resource string) bool {
	for _, r := range w.Rules {
		groupOK, resourceOK := false, false
		for _, g := range r.APIGroups {
			groupOK = groupOK || g == group || g == "*"
		}
		for _, res := range r.Resources {
			resourceOK = resourceOK || res == resource || res == "*"
		}
		if groupOK && resourceOK {
			return true
		}
	}
	return false
}

func (d *doctor) checkWebhook(ctx context.Context) {
	name := d.opts.WebhookConfiguration
	obj := "mutatingwebhookconfiguration/" + name
	mwc, err := d.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: obj,
			Message: "not found: canary-tagger is not registered, so no Rollout or agent pod is labelled (every finding below is checked against all namespaces)",
			Fix:     []string{"helm upgrade --install canary-tagger charts/canary-tagger -n canary-tagger --create-namespace   # or kubectl apply -k manifests/default"}})
		return
	}
	if err != nil {
		d.errorf(CheckWebhook, obj, err, "reading the webhook configuration")
		return
	}
	d.wh.found = true
	for i := range mwc.Webhooks {
		w := &mwc.Webhooks[i]
		if d.wh.rollouts == nil && handles(*w, "argoproj.io", "rollouts") {
			d.wh.rollouts = w
		}
		if d.wh.agents == nil && handles(*w, "", "pods") {
			d.wh.agents = w
		}
	}
	reapply := "helm upgrade --install canary-tagger charts/canary-tagger -n canary-tagger --create-namespace   # or kubectl apply -k manifests/default"
	if d.wh.rollouts == nil {
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: obj, Message: "has no webhook for rollouts.argoproj.io: Rollouts are not labelled", Fix: []string{reapply}})
	}
	if d.wh.agents == nil {
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: obj, Message: "has no webhook for pods: Datadog Agent pods do not get the tag mapping", Fix: []string{reapply}})
	}

	// The caBundle of each webhook, and whether the certificate its target
	// serves chains to it. Both webhooks normally share one target.
	checked := map[string]bool{}
	for _, w := range []*admissionv1.MutatingWebhook{d.wh.rollouts, d.wh.agents} {
		if w == nil {
			continue
		}
		pool, msg := caPool(w.ClientConfig.CABundle)
		if pool == nil {
			d.add(Finding{Check: CheckWebhook, Status: Action, Object: obj + " " + w.Name, Message: "caBundle " + msg + ": the apiserver cannot call the webhook",
				Fix: caBundleFix(mwc)})
			continue
		}
		target := targetKey(w.ClientConfig)
		if checked[target+"\x00"+string(w.ClientConfig.CABundle)] {
			d.add(Finding{Check: CheckWebhook, Status: OK, Object: obj + " " + w.Name, Message: "caBundle set; same target and caBundle as above"})
			continue
		}
		checked[target+"\x00"+string(w.ClientConfig.CABundle)] = true
		if w.ClientConfig.URL != nil {
			d.checkURLTarget(ctx, obj+" "+w.Name, *w.ClientConfig.URL, pool)
		} else if s := w.ClientConfig.Service; s != nil {
			d.checkServiceTarget(ctx, mwc, obj+" "+w.Name, s, pool)
		}
	}
	if d.wh.rollouts != nil {
		d.checkExcludedNamespaces(d.wh.rollouts)
	}
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

func caBundleFix(mwc *admissionv1.MutatingWebhookConfiguration) []string {
	if from := mwc.Annotations[injectCAFromAnnotation]; from != "" {
		ns, cert, _ := strings.Cut(from, "/")
		return []string{
			fmt.Sprintf("kubectl -n %s get certificate %s   # cert-manager writes the caBundle from this Certificate (%s=%s)", ns, cert, injectCAFromAnnotation, from),
			"kubectl -n cert-manager logs deployment/cert-manager-cainjector --tail=50",
		}
	}
	ns := "canary-tagger"
	for _, w := range mwc.Webhooks {
		if w.ClientConfig.Service != nil {
			ns = w.ClientConfig.Service.Namespace
		}
	}
	return []string{fmt.Sprintf("kubectl -n %s logs deployment/%s --tail=50   # serve --self-managed-tls writes the caBundle", ns, mwc.Name)}
}

// checkURLTarget: a webhook registered by URL is checked by a TLS handshake
// that trusts only the caBundle, as the apiserver does.
func (d *doctor) checkURLTarget(ctx context.Context, obj, raw string, pool *x509.CertPool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: obj, Message: fmt.Sprintf("clientConfig.url %q is not a URL", raw)})
		return
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: d.opts.Timeout}, Config: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}}
	dctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	conn, err := dialer.DialContext(dctx, "tcp", net.JoinHostPort(host, port))
	if err == nil {
		conn.Close()
		d.add(Finding{Check: CheckWebhook, Status: OK, Object: obj, Message: fmt.Sprintf("caBundle set and trusted by the certificate %s serves", raw)})
		return
	}
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown), errors.As(err, &hostErr), errors.As(err, &invalid):
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: obj,
			Message: fmt.Sprintf("the certificate %s serves is not trusted by the caBundle: %v; the apiserver's calls fail and, with failurePolicy Ignore, objects are admitted unlabelled", raw, err),
			Fix:     []string{"# put the CA that signed the server's certificate into clientConfig.caBundle of every webhook of " + d.opts.WebhookConfiguration}})
	default:
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: obj,
			Message: fmt.Sprintf("%s does not answer: %v; objects are admitted unlabelled while it is down", raw, err),
			Fix:     []string{"# start canary-tagger serve at " + raw}})
	}
}

// checkServiceTarget: a webhook registered by Service is checked through the
// API only: the Service, its EndpointSlices (ready endpoints), and the
// serving certificate read from its Secret, verified against the caBundle
// for the name the apiserver dials. (The apiserver's service proxy would
// reach the pods but neither verifies nor shows their certificate.)
func (d *doctor) checkServiceTarget(ctx context.Context, mwc *admissionv1.MutatingWebhookConfiguration, obj string, ref *admissionv1.ServiceReference, pool *x509.CertPool) {
	svcObj := fmt.Sprintf("service/%s/%s", ref.Namespace, ref.Name)
	svc, err := d.cs.CoreV1().Services(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: svcObj, Message: "the webhook's Service does not exist: the apiserver cannot call the webhook",
			Fix: []string{"helm upgrade --install canary-tagger charts/canary-tagger -n canary-tagger --create-namespace   # or kubectl apply -k manifests/default"}})
	case err != nil:
		d.errorf(CheckWebhook, svcObj, err, "reading the webhook's Service")
	default:
		d.checkEndpoints(ctx, svc, svcObj)
	}
	d.checkServingSecret(ctx, mwc, obj, ref, pool)
}

func (d *doctor) checkEndpoints(ctx context.Context, svc *corev1.Service, svcObj string) {
	slices, err := d.cs.DiscoveryV1().EndpointSlices(svc.Namespace).List(ctx, listOptions(discoveryv1.LabelServiceName+"="+svc.Name))
	if err != nil {
		d.errorf(CheckWebhook, svcObj, err, "listing the Service's EndpointSlices")
		return
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
		d.add(Finding{Check: CheckWebhook, Status: OK, Object: svcObj, Message: fmt.Sprintf("%d ready endpoint(s)", ready)})
		return
	}
	fix := []string{fmt.Sprintf("kubectl -n %s get pods -o wide", svc.Namespace)}
	if len(svc.Spec.Selector) > 0 {
		fix = []string{fmt.Sprintf("kubectl -n %s get pods -l %s -o wide", svc.Namespace, shellQuote(labels.Set(svc.Spec.Selector).String()))}
	}
	fix = append(fix, fmt.Sprintf("kubectl -n %s rollout status deployment/%s   # and its events and logs if it does not become ready", svc.Namespace, d.opts.WebhookConfiguration))
	d.add(Finding{Check: CheckWebhook, Status: Action, Object: svcObj,
		Message: fmt.Sprintf("no ready endpoint (%d not ready): the webhook is down, and with failurePolicy Ignore Rollouts and agent pods are admitted unlabelled", notReady),
		Fix:     fix})
}

func (d *doctor) checkServingSecret(ctx context.Context, mwc *admissionv1.MutatingWebhookConfiguration, obj string, ref *admissionv1.ServiceReference, pool *x509.CertPool) {
	var candidates [][2]string
	if d.opts.ServingSecret != "" {
		ns, name, ok := strings.Cut(d.opts.ServingSecret, "/")
		if !ok {
			ns, name = ref.Namespace, d.opts.ServingSecret
		}
		candidates = append(candidates, [2]string{ns, name})
	} else {
		for _, suffix := range servingSecretSuffixes {
			candidates = append(candidates, [2]string{ref.Namespace, d.opts.WebhookConfiguration + suffix})
		}
	}
	var tried []string
	for _, c := range candidates {
		secObj := "secret/" + c[0] + "/" + c[1]
		sec, err := d.cs.CoreV1().Secrets(c[0]).Get(ctx, c[1], metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			tried = append(tried, c[0]+"/"+c[1])
			continue
		}
		if err != nil {
			d.errorf(CheckWebhook, secObj, err, "reading the serving certificate to check it against the caBundle (or give --serving-secret)")
			return
		}
		d.verifyServing(obj, secObj, sec, ref, pool, mwc)
		return
	}
	d.add(Finding{Check: CheckWebhook, Status: Error, Object: obj,
		Message: fmt.Sprintf("no serving certificate Secret found (looked for %s): the caBundle could not be checked against it; give --serving-secret=NAMESPACE/NAME", strings.Join(tried, ", "))})
}

func (d *doctor) verifyServing(obj, secObj string, sec *corev1.Secret, ref *admissionv1.ServiceReference, pool *x509.CertPool, mwc *admissionv1.MutatingWebhookConfiguration) {
	chain, err := cert.ParseCertsPEM(sec.Data[corev1.TLSCertKey])
	if err != nil {
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: secObj, Message: "holds no usable certificate in " + corev1.TLSCertKey + " (" + err.Error() + "): the webhook has nothing to serve", Fix: caBundleFix(mwc)})
		return
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	dnsName := ref.Name + "." + ref.Namespace + ".svc"
	_, err = chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: dnsName, CurrentTime: d.opts.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		d.add(Finding{Check: CheckWebhook, Status: Action, Object: obj,
			Message: fmt.Sprintf("caBundle does not trust the serving certificate in %s for %s: %v; the apiserver's calls fail and objects are admitted unlabelled", secObj, dnsName, err),
			Fix:     caBundleFix(mwc)})
		return
	}
	d.add(Finding{Check: CheckWebhook, Status: OK, Object: obj,
		Message: fmt.Sprintf("caBundle set and trusts the serving certificate in %s for %s (valid until %s)", secObj, dnsName, chain[0].NotAfter.UTC().Format("2006-01-02"))})
}

// checkExcludedNamespaces lists the namespaces the Rollout webhook's
// namespaceSelector leaves out, and how one is brought in.
func (d *doctor) checkExcludedNamespaces(w *admissionv1.MutatingWebhook) {
	var excluded, disabled []string
	for _, ns := range sortedKeys(d.nsLabels) {
		if d.inScope(w, ns, nil) {
			continue
		}
		excluded = append(excluded, ns)
		if d.nsLabels[ns][injectLabel] == "disabled" {
			disabled = append(disabled, ns)
		}
	}
	optIn := false
	if w.NamespaceSelector != nil {
		optIn = w.NamespaceSelector.MatchLabels[injectLabel] == "enabled"
		for _, e := range w.NamespaceSelector.MatchExpressions {
			if e.Key == injectLabel && e.Operator == metav1.LabelSelectorOpIn {
				optIn = true
			}
		}
	}
	mode := "cluster-wide mode"
	fix := []string{"kubectl label namespace NAMESPACE " + injectLabel + "-   # to bring back one labelled " + injectLabel + "=disabled"}
	if optIn {
		mode = "namespace opt-in mode"
		fix = []string{"kubectl label namespace NAMESPACE " + injectLabel + "=enabled   # to opt one in"}
	}
	msg := fmt.Sprintf("%s: %d of %d namespaces are not covered by %s", mode, len(excluded), len(d.nsLabels), w.Name)
	if len(disabled) > 0 {
		msg += fmt.Sprintf(" (%d labelled %s=disabled)", len(disabled), injectLabel)
	}
	if len(excluded) == 0 || (!optIn && len(disabled) == 0) {
		fix = nil // nothing a label brings back
	}
	d.add(Finding{Check: CheckNamespace, Status: Info, Object: "webhook/" + w.Name, Message: msg, Items: excluded, Fix: fix})
}

func listOptions(selector string) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: selector}
}

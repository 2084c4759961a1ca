package doctor

import (
	"fmt"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// Every command doctor prints, each written once; docs/doctor.md's "fix it
// prints" column is this file.

// installFix (re)installs canary-tagger: its configuration, webhooks or
// Service are missing.
var installFix = []string{"helm upgrade --install canary-tagger charts/canary-tagger -n canary-tagger --create-namespace   # or kubectl apply -k manifests/default"}

// caBundleFix points at what writes the caBundle: cert-manager's CA
// injector, or serve --self-managed-tls.
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

// untrustedURLFix: a webhook registered by URL serves a certificate its
// caBundle does not trust.
func untrustedURLFix(webhookConfiguration string) []string {
	return []string{"# put the CA that signed the server's certificate into clientConfig.caBundle of every webhook of " + webhookConfiguration}
}

// unreachableURLFix: nothing answers at a webhook's URL.
func unreachableURLFix(url string) []string {
	return []string{"# start canary-tagger serve at " + url}
}

// endpointsFix: the webhook's Service has no ready endpoint.
func endpointsFix(svc *corev1.Service, deployment string) []string {
	pods := fmt.Sprintf("kubectl -n %s get pods -o wide", svc.Namespace)
	if len(svc.Spec.Selector) > 0 {
		pods = fmt.Sprintf("kubectl -n %s get pods -l %s -o wide", svc.Namespace, shellQuote(labels.Set(svc.Spec.Selector).String()))
	}
	return []string{pods, fmt.Sprintf("kubectl -n %s rollout status deployment/%s   # and its events and logs if it does not become ready", svc.Namespace, deployment)}
}

// namespaceFix brings an excluded namespace in.
func namespaceFix(optIn bool) []string {
	if optIn {
		return []string{"kubectl label namespace NAMESPACE " + injectLabel + "=enabled   # to opt one in"}
	}
	return []string{"kubectl label namespace NAMESPACE " + injectLabel + "-   # to bring back one labelled " + injectLabel + "=disabled"}
}

// reapplyFix sends a Rollout the webhook never saw through it again.
func reapplyFix(ns, name string, now time.Time) []string {
	return []string{fmt.Sprintf("kubectl -n %s annotate rollout %s %s=%s --overwrite   # or re-apply its manifest", ns, name, reappliedAnnotation, now.UTC().Format("2006-01-02T15.04.05Z"))}
}

// conflictFix: remove the label key where it clashes, or opt the Rollout out.
func conflictFix(ns, name, labelKey string, res rollout.Result) []string {
	return []string{
		fmt.Sprintf("# remove %q from %s, or run canary-tagger with another --label-key; or, to leave this Rollout unlabelled:", labelKey, conflictWhere(res)),
		fmt.Sprintf("kubectl -n %s annotate rollout %s %s=false", ns, name, rollout.OptOutAnnotation),
	}
}

// editRolloutFix: a field of the Rollout has an unexpected type.
func editRolloutFix(ns, name, detail string) []string {
	return []string{fmt.Sprintf("kubectl -n %s edit rollout %s   # %s", ns, name, detail)}
}

// relabelFix gives pods left canary on a promoted Rollout the stable value
// (or removes the label when the Rollout has none).
func relabelFix(ns string, sel labels.Selector, key, stableValue string) []string {
	if stableValue == "" {
		return []string{fmt.Sprintf("kubectl -n %s label pods -l %s %s-", ns, shellQuote(sel.String()), key)}
	}
	return []string{fmt.Sprintf("kubectl -n %s label pods -l %s %s=%s --overwrite", ns, shellQuote(sel.String()), key, stableValue)}
}

// agentEnvFix: a container's DD_KUBERNETES_POD_LABELS_AS_TAGS is unusable.
func agentEnvFix(container string) []string {
	return []string{fmt.Sprintf("# fix %s of container %s in the Datadog Agent's values or manifest, then restart it", agentpod.EnvName, container)}
}

// agentConfigFix: without an agent-pod webhook the mapping must come from
// the Agent's own configuration (README, "Which path for which platform").
func agentConfigFix(opts agentpod.Options) []string {
	return []string{
		fmt.Sprintf("canary-tagger mutate -w -f datadog-agent.yaml && kubectl apply -f datadog-agent.yaml   # the Datadog Operator: adds %s: %s to spec.global.podLabelsAsTags", opts.LabelKey, opts.TagName),
		"helm template ... datadog/datadog | canary-tagger mutate | kubectl apply -f -   # the Datadog chart: or helm upgrade with --post-renderer canary-tagger --post-renderer-args mutate",
	}
}

// restartFix restarts agent pods through what owns them (podWorkload's ref).
func restartFix(ns, ref string, pods []string) []string {
	switch {
	case strings.HasPrefix(ref, "pod/"):
		return []string{fmt.Sprintf("kubectl -n %s delete %s   # no controller found to restart it", ns, ref)}
	case strings.HasPrefix(ref, "extendeddaemonsetreplicaset/"):
		// kubectl rollout restart knows no custom resource; the
		// ExtendedDaemonSet recreates deleted pods.
		return []string{fmt.Sprintf("kubectl -n %s delete pod %s   # the ExtendedDaemonSet recreates them", ns, strings.Join(pods, " "))}
	}
	return []string{fmt.Sprintf("kubectl -n %s rollout restart %s", ns, ref)}
}

// argoImageFix upgrades an old Argo Rollouts controller to the tested version.
func argoImageFix(ns, deployment, container, repo string) []string {
	return []string{fmt.Sprintf("kubectl -n %s set image deployment/%s %s=%s:%s   # or upgrade the release you installed it with", ns, deployment, container, repo, TestedArgoRollouts)}
}

// healOnFix turns healing on again: through the chart's value, or, for an
// install from manifests/ (which heal), by re-applying them.
func healOnFix(dep *appsv1.Deployment) []string {
	release := dep.Labels["app.kubernetes.io/instance"]
	if release == "" {
		release = "canary-tagger"
	}
	return []string{
		fmt.Sprintf("helm upgrade %s charts/canary-tagger -n %s --reuse-values --set heal.enabled=true   # or kubectl apply -k manifests/default, or drop --heal=false from deployment/%s's args", release, dep.Namespace, dep.Name),
	}
}

// leaseFix: where to look when no replica holds the heal Lease (RBAC on
// leases, the API unreachable, no replica running: serve logs why).
func leaseFix(ns, lease string, dep *appsv1.Deployment) []string {
	return []string{
		fmt.Sprintf("kubectl -n %s get lease %s -o yaml   # holderIdentity, renewTime", ns, lease),
		fmt.Sprintf("kubectl -n %s logs deployment/%s --tail=100 | grep -i heal   # why no replica heals", dep.Namespace, dep.Name),
	}
}

// healRestartFix: with --heal-agent-pods the heal loop restarts the
// workload at its next pass; the restart that does it now stays, after.
func healRestartFix(within string, now []string) []string {
	return append([]string{fmt.Sprintf("# wait: healing restarts it within %s (serve's --heal-interval, --heal-agent-pods); or, now:", within)}, now...)
}

// healWaitFix: the heal loop writes what admission missed at its next pass;
// the fix that does it now stays, after.
func healWaitFix(within string, now []string) []string {
	return append([]string{fmt.Sprintf("# wait: healing repairs this within %s (serve's --heal-interval); or, now:", within)}, now...)
}

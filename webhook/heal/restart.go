package heal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// RestartedAtAnnotation is the pod template annotation `kubectl rollout
// restart` sets: the only field a restart changes.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// Event reasons of the agent-pod pass.
const (
	ReasonRestarted    = "Restarted"
	ReasonNotRestarted = "NotRestarted"
	actionRestart      = "Restart"
)

// restartedAtPath is RestartedAtAnnotation in managedFields.
var restartedAtPath = fieldpath.MakePathOrDie("spec", "template", "metadata", "annotations", RestartedAtAnnotation)

// restartable is a DaemonSet or a Deployment.
type restartable interface {
	metav1.Object
	// object is the DaemonSet or Deployment itself (for its Events).
	object() runtime.Object
	// notRestartable says why a restart now would not replace the pods at
	// the workload's own pace ("" when it would); inProgress when a
	// rollout is under way (a later pass looks again).
	notRestartable() (why string, inProgress bool)
	patch(ctx context.Context, p *agentPodPass, body []byte) error
}

// restart restarts w's workload as `kubectl rollout restart` does, unless
// that would not help: its rollout is still in progress (its new pods may
// be mapped already), it cannot roll, canary-tagger restarted it before and
// the pods created since still lack the mapping (the apiserver did not call
// the webhook: restarting again would loop), or the webhook server here is
// not ready (the replacements would not be patched).
func (p *agentPodPass) restart(ctx context.Context, rep *Report, w *staleWorkload, warned map[types.UID]string) {
	h := p.h
	log := h.log.WithValues("kind", w.key.Kind, "namespace", w.key.Namespace, "name", w.key.Name, "podsWithoutMapping", len(w.pods))
	workload, err := p.get(ctx, rep, w.key)
	if err != nil {
		if ctx.Err() == nil {
			log.Error(err, "not restarted")
		}
		return
	}
	why, inProgress := workload.notRestartable()
	if why == "" {
		if at, ours := restartedByUs(workload); ours && !w.newestPod.Time.Before(at) {
			why = fmt.Sprintf("pods created since canary-tagger restarted it at %s still lack the mapping: the apiserver did not call the webhook for them, and restarting again would not help (see `canary-tagger doctor`; `kubectl rollout restart` it once the webhook is reachable)", at.Format(time.RFC3339))
		}
	}
	switch {
	case inProgress:
		log.V(1).Info("not restarted yet", "reason", why)
		return
	case why != "":
		if p.warned[workload.GetUID()] != workload.GetResourceVersion() {
			h.recorder.Eventf(workload.object(), nil, corev1.EventTypeWarning, ReasonNotRestarted, actionRestart, "%s %s: %s", podsLack(len(w.pods)), p.mapping(), why)
			log.Info("not restarted", "reason", why)
		}
		warned[workload.GetUID()] = workload.GetResourceVersion()
		return
	}
	if err := p.webhookReady(); err != nil {
		log.Info("not restarted: the webhook server here is not ready, its replacements would not be patched", "reason", err.Error())
		return
	}
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": workload.GetResourceVersion()}, // a concurrent write wins
		"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"annotations": map[string]any{
			RestartedAtAnnotation: time.Now().Format(time.RFC3339),
		}}}},
	})
	if err != nil {
		log.Error(err, "not restarted")
		return
	}
	rep.request(verbPatch)
	rep.Patches++
	switch err := workload.patch(ctx, p, body); {
	case err == nil:
		rep.Restarts++
		restartsTotal.WithLabelValues(w.key.Kind).Inc()
		h.recorder.Eventf(workload.object(), nil, corev1.EventTypeNormal, ReasonRestarted, actionRestart,
			"restarted as `kubectl rollout restart` does: %s %s (%s): admitted without canary-tagger's webhook (unreachable at the time, or they predate the install)",
			podsLack(len(w.pods)), p.mapping(), podList(w.pods))
		log.Info("restarted", "pods", w.pods)
	case ctx.Err() != nil:
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		rep.Superseded++
		log.V(1).Info("not restarted: changed since read")
	default:
		log.Error(err, "restarting")
	}
}

func (p *agentPodPass) mapping() string {
	return p.h.opts.AgentPodRules.LabelKey + " → " + p.h.opts.AgentPodRules.TagName
}

func (p *agentPodPass) webhookReady() error {
	if p.h.opts.WebhookReady == nil {
		return errors.New("no readiness check")
	}
	return p.h.opts.WebhookReady()
}

func podsLack(n int) string {
	if n == 1 {
		return "1 pod lacks"
	}
	return fmt.Sprintf("%d pods lack", n)
}

// podList names the first few pods.
func podList(pods []string) string {
	const shown = 3
	if len(pods) <= shown {
		return strings.Join(pods, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(pods[:shown], ", "), len(pods)-shown)
}

func (p *agentPodPass) get(ctx context.Context, rep *Report, k workloadKey) (restartable, error) {
	rep.request(verbGet)
	apps := p.h.kube.AppsV1()
	if k.Kind == "DaemonSet" {
		ds, err := apps.DaemonSets(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return daemonSet{ds}, nil
	}
	d, err := apps.Deployments(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return deployment{d}, nil
}

// restartedByUs is the time of canary-tagger's last restart of w, if the
// restartedAt annotation is its.
func restartedByUs(w restartable) (time.Time, bool) {
	for _, m := range w.GetManagedFields() {
		if m.Manager != FieldManager || m.FieldsV1 == nil {
			continue
		}
		set := &fieldpath.Set{}
		if set.FromJSON(strings.NewReader(string(m.FieldsV1.Raw))) != nil || !set.Has(restartedAtPath) {
			continue
		}
		var template metav1.ObjectMeta
		switch w := w.(type) {
		case daemonSet:
			template = w.Spec.Template.ObjectMeta
		case deployment:
			template = w.Spec.Template.ObjectMeta
		}
		at, err := time.Parse(time.RFC3339, template.Annotations[RestartedAtAnnotation])
		return at, err == nil
	}
	return time.Time{}, false
}

type daemonSet struct{ *appsv1.DaemonSet }

func (d daemonSet) object() runtime.Object { return d.DaemonSet }

// notRestartable: a rollout is finished as `kubectl rollout status` reads it.
func (d daemonSet) notRestartable() (string, bool) {
	s := d.Status
	switch {
	case d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType:
		return "its update strategy is OnDelete: a restart replaces no pod until each is deleted", false
	case d.Generation > s.ObservedGeneration || s.UpdatedNumberScheduled < s.DesiredNumberScheduled || s.NumberAvailable < s.DesiredNumberScheduled:
		return "a rollout is in progress", true
	}
	return "", false
}

func (d daemonSet) patch(ctx context.Context, p *agentPodPass, body []byte) error {
	_, err := p.h.kube.AppsV1().DaemonSets(d.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	return err
}

type deployment struct{ *appsv1.Deployment }

func (d deployment) object() runtime.Object { return d.Deployment }

func (d deployment) notRestartable() (string, bool) {
	s := d.Status
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	switch {
	case d.Spec.Paused:
		return "it is paused: a restart replaces no pod until it is resumed", false
	case d.Generation > s.ObservedGeneration || s.UpdatedReplicas < replicas || s.Replicas > s.UpdatedReplicas || s.AvailableReplicas < s.UpdatedReplicas:
		return "a rollout is in progress", true
	}
	return "", false
}

func (d deployment) patch(ctx context.Context, p *agentPodPass, body []byte) error {
	_, err := p.h.kube.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	return err
}

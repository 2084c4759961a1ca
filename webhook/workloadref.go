package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	crconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

const (
	// workloadRefTimeout keeps a review well inside the webhook's 5 s timeout.
	workloadRefTimeout = 2 * time.Second
	// clientRetryAfter spaces attempts to build the client after a failure
	// (e.g. no kubeconfig): each attempt logs, and the answer rarely changes.
	clientRetryAfter = 10 * time.Second
)

// workloadRefs reads the pod template labels of a Rollout's workloadRef
// (contract 2.2). Its client is read-only (GET only) and built on first use, so
// the server starts and serves without any cluster access; a Rollout that
// cannot be checked is injected with a warning by the rule.
type workloadRefs struct {
	disabled   bool
	restConfig func() (*rest.Config, error)
	timeout    time.Duration
	retryAfter time.Duration

	mu       sync.Mutex
	client   dynamic.Interface
	err      error
	failedAt time.Time
}

func newWorkloadRefs(enabled bool, restConfig func() (*rest.Config, error)) *workloadRefs {
	if restConfig == nil {
		restConfig = crconfig.GetConfig
	}
	return &workloadRefs{disabled: !enabled, restConfig: restConfig, timeout: workloadRefTimeout, retryAfter: clientRetryAfter}
}

// templateLabels returns the rule's reader for a Rollout in namespace.
func (w *workloadRefs) templateLabels(ctx context.Context, namespace string) rollout.TemplateLabels {
	return func(ref rollout.WorkloadRef) (map[string]string, error) {
		if w.disabled {
			return nil, errors.New("workloadRef check disabled")
		}
		// Detached from the request's cancellation: the server cancels its
		// base context at shutdown, and a review already in flight should
		// still finish its check. The timeout bounds it either way.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
		defer cancel()
		return WorkloadTemplateLabels(ctx, w.getClient, namespace, ref)
	}
}

// WorkloadTemplateLabels reads (GET) the pod template labels of the
// workload a Rollout in namespace references, as Argo Rollouts resolves it.
// `serve` and `doctor` both use it, so they see the same conflicts. client is
// asked for only once the reference is known to be one Argo Rollouts supports.
func WorkloadTemplateLabels(ctx context.Context, client func() (dynamic.Interface, error), namespace string, ref rollout.WorkloadRef) (map[string]string, error) {
	kind, resource, err := ref.Resolve()
	if err != nil {
		return nil, err
	}
	c, err := client()
	if err != nil {
		return nil, err
	}
	u, err := c.Resource(resource).Namespace(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	labels, _, err := unstructured.NestedStringMap(u.Object, kind.TemplateLabelsPath()...)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %v", ref.Kind, ref.Name, err)
	}
	return labels, nil
}

// getClient builds the client once, retrying after a failure.
func (w *workloadRefs) getClient() (dynamic.Interface, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client != nil {
		return w.client, nil
	}
	if w.err != nil && time.Since(w.failedAt) < w.retryAfter {
		return nil, w.err
	}
	c, err := w.newClient()
	if err != nil {
		w.err, w.failedAt = fmt.Errorf("no Kubernetes API access: %w", err), time.Now()
		return nil, w.err
	}
	w.client, w.err = c, nil
	return c, nil
}

func (w *workloadRefs) newClient() (dynamic.Interface, error) {
	cfg, err := w.restConfig()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = w.timeout
	cfg.UserAgent = "canary-tagger"
	return dynamic.NewForConfig(cfg)
}

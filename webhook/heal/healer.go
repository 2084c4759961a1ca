package heal

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// FieldManager owns every field the healer writes.
const FieldManager = "canary-tagger"

// Defaults of Options.
const (
	DefaultInterval = time.Minute
	DefaultPageSize = 500
)

// Options configure a Healer (New) and the manager it runs in (Run).
type Options struct {
	// Rules and CheckWorkloadRef are the webhook's: the healer decides as
	// admission would have.
	Rules            rollout.Options
	CheckWorkloadRef bool
	// HealAgentPods adds the agent-pod pass: workloads of Agent pods that
	// AgentPodRules would still inject are restarted, only while
	// WebhookReady (the webhook server in this process) returns nil.
	HealAgentPods bool
	AgentPodRules agentpod.Options
	WebhookReady  func() error
	// WebhookConfigName is the installed MutatingWebhookConfiguration: its
	// selectors are the scope, its name the Lease's (LeaseName).
	WebhookConfigName string
	// Interval between the end of a pass and the start of the next
	// (default DefaultInterval); PageSize is the Limit of each LIST
	// (default DefaultPageSize).
	Interval time.Duration
	PageSize int64
	Logger   logr.Logger
	// AfterPass, if set, is given every pass's Report (a test or benchmark
	// observing the healer).
	AfterPass func(Report)

	// Run only: the API's configuration (asked again after an error), and
	// leader election on the Lease LeaseName(WebhookConfigName) in
	// LeaderElectionNamespace.
	RESTConfig              func() (*rest.Config, error)
	LeaderElection          bool
	LeaderElectionNamespace string
}

// Report is what one pass did.
type Report struct {
	Kind  string
	Scope Scope
	// Listed objects of Kind; InScope of them asked about; Outcomes of
	// those, as the rule (or a failed write) decided.
	Listed, InScope int
	Outcomes        map[outcome.Outcome]int
	// Patches sent; Superseded of them refused because the object had
	// changed since it was listed (the next pass sees the new version).
	Patches, Superseded int
	// Restarts of workloads (the agent-pod pass).
	Restarts int
	// Requests to the apiserver by verb (list: one per page).
	Requests map[string]int
	Duration time.Duration
	// Err ended the pass early.
	Err error
}

func (r *Report) request(verb string) {
	r.Requests[verb]++
	requestsTotal.WithLabelValues(verb).Inc()
}

func (r *Report) count(o outcome.Outcome) {
	r.Outcomes[o]++
	objectsTotal.WithLabelValues(r.Kind, string(o)).Inc()
}

// pass heals one kind of object. The Rollout pass is one; an agent-pod
// pass is its sibling.
type pass interface {
	kind() string
	run(ctx context.Context, rep *Report) error
}

// Healer runs its passes at start and every Interval: a controller-runtime
// Runnable that runs only on the elected replica.
type Healer struct {
	opts     Options
	kube     kubernetes.Interface
	dynamic  dynamic.Interface
	recorder events.EventRecorder
	log      logr.Logger
	passes   []pass

	mu         sync.Mutex
	lastScopes map[string]string // kind → what was last logged about its scope
}

// New returns a Healer of Rollouts (and of Agent pods, with HealAgentPods) that reads and writes through kube and
// dyn and reports to recorder.
func New(o Options, kube kubernetes.Interface, dyn dynamic.Interface, recorder events.EventRecorder) *Healer {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	h := &Healer{opts: o, kube: kube, dynamic: dyn, recorder: recorder, log: o.Logger.WithName("heal"), lastScopes: map[string]string{}}
	h.passes = []pass{&rolloutPass{h: h}}
	if o.HealAgentPods {
		h.passes = append(h.passes, &agentPodPass{h: h})
	}
	return h
}

// NeedLeaderElection: with several replicas, one heals.
func (h *Healer) NeedLeaderElection() bool { return true }

// Start runs a pass at once and then every Interval until ctx ends.
func (h *Healer) Start(ctx context.Context) error {
	registerMetrics()
	h.log.Info("healing", "interval", h.opts.Interval, "webhookConfiguration", h.opts.WebhookConfigName)
	wait.UntilWithContext(ctx, func(ctx context.Context) { h.Pass(ctx) }, h.opts.Interval)
	return nil
}

// Pass runs every pass once and returns their reports.
func (h *Healer) Pass(ctx context.Context) []Report {
	registerMetrics()
	var reports []Report
	for _, p := range h.passes {
		rep := Report{Kind: p.kind(), Outcomes: map[outcome.Outcome]int{}, Requests: map[string]int{}}
		start := time.Now()
		rep.Err = p.run(ctx, &rep)
		rep.Duration = time.Since(start)
		if ctx.Err() != nil && errors.Is(rep.Err, ctx.Err()) {
			return reports // stopping: not a pass
		}
		h.record(rep)
		reports = append(reports, rep)
	}
	return reports
}

func (h *Healer) record(rep Report) {
	passesTotal.WithLabelValues(rep.Kind).Inc()
	lastPassDuration.WithLabelValues(rep.Kind).Set(rep.Duration.Seconds())
	lastPassTime.WithLabelValues(rep.Kind).SetToCurrentTime()
	kv := []any{"kind", rep.Kind, "listed", rep.Listed, "inScope", rep.InScope, "patches", rep.Patches,
		"superseded", rep.Superseded, "restarts", rep.Restarts, "requests", rep.Requests, "duration", rep.Duration.Round(time.Millisecond)}
	for o, n := range rep.Outcomes {
		kv = append(kv, string(o), n)
	}
	switch {
	case rep.Err != nil:
		passErrorsTotal.WithLabelValues(rep.Kind).Inc()
		h.log.Error(rep.Err, "heal pass", kv...)
	case rep.Patches > 0 || rep.Outcomes[outcome.Error] > 0:
		h.log.Info("heal pass", kv...)
	default:
		h.log.V(1).Info("heal pass", kv...)
	}
	if h.opts.AfterPass != nil {
		h.opts.AfterPass(rep)
	}
}

// scope reads the scope of r and logs it when it differs from what was
// last logged: once per change, not every interval.
func (h *Healer) scope(ctx context.Context, rep *Report, r Resource) (Scope, error) {
	rep.request(verbGet)
	s, err := ReadScope(ctx, h.kube, h.opts.WebhookConfigName, r)
	if err != nil {
		return s, err
	}
	rep.Scope = s
	h.mu.Lock()
	changed := h.lastScopes[rep.Kind] != s.String()
	h.lastScopes[rep.Kind] = s.String()
	h.mu.Unlock()
	if changed {
		h.log.Info("heal scope", "kind", rep.Kind, "heals", s.Heals(), "scope", s.String())
	}
	return s, nil
}

// namespacesIn LISTs the namespaces (paged) and returns those s covers.
func (h *Healer) namespacesIn(ctx context.Context, rep *Report, s Scope) (map[string]bool, error) {
	in := map[string]bool{}
	err := eachPage(ctx, h, rep, h.kube.CoreV1().Namespaces().List, func(list *corev1.NamespaceList) {
		for _, ns := range list.Items {
			if s.Namespaces.Matches(labels.Set(ns.Labels)) {
				in[ns.Name] = true
			}
		}
	})
	return in, err
}

// eachPage LISTs in pages of PageSize and hands each page to each before
// asking for the next: one page in memory at a time, and every request
// counted in the pass's Report from this goroutine (client-go's pager
// fetches ahead from one of its own, and gives up on an expired continue
// token just the same).
func eachPage[L interface{ GetContinue() string }](ctx context.Context, h *Healer, rep *Report,
	list func(context.Context, metav1.ListOptions) (L, error), each func(L)) error {
	opts := metav1.ListOptions{Limit: h.opts.PageSize}
	for {
		rep.request(verbList)
		page, err := list(ctx, opts)
		if err != nil {
			return err
		}
		each(page)
		if opts.Continue = page.GetContinue(); opts.Continue == "" {
			return nil
		}
	}
}

// dynamicClient is the workloadRef reader's client.
func (h *Healer) dynamicClient() (dynamic.Interface, error) { return h.dynamic, nil }

// Package doctor is `canary-tagger doctor`: a read-only look at a cluster
// that lists what canary-tagger has not covered yet, each with the command
// that fixes it. It only GETs and LISTs (plus a TLS handshake with a webhook
// registered by URL), and it decides nothing about Rollouts or agent pods
// itself: it runs the webhook's own rules (rollout.Mutate,
// agentpod.MutatePod) on the objects as stored, and an object the rules
// would still change is one the webhook never saw.
package doctor

import (
	"context"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// Status of one finding.
type Status string

const (
	// OK: checked, nothing to do.
	OK Status = "ok"
	// Action: something needs doing; Fix says what.
	Action Status = "action"
	// Info: worth knowing, nothing to do (e.g. namespaces the mode excludes).
	Info Status = "info"
	// Error: the check could not be made (RBAC, an unreachable API).
	Error Status = "error"
)

// Category is what a finding is about, printed as its "check" (the first
// column of docs/doctor.md's table). The list in checks.go orders them.
type Category string

const (
	Webhook        Category = "webhook"
	Namespaces     Category = "namespaces"
	Heal           Category = "heal"
	Rollout        Category = "rollout"
	PromotedCanary Category = "promoted-canary"
	AgentPod       Category = "agent-pod"
	ArgoRollouts   Category = "argo-rollouts"
)

// Finding is one line of the report.
type Finding struct {
	Category Category `json:"check"`
	Status   Status   `json:"status"`
	// Object is what the finding is about, kind/namespace/name or kind/name.
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
	// Reason is the rule's reason (a conflict, a skipped container).
	Reason string `json:"reason,omitempty"`
	// Items lists the objects behind a grouped finding (pods of one DaemonSet, namespaces).
	Items []string `json:"items,omitempty"`
	// Fix holds the commands that fix it, in order.
	Fix []string `json:"fix,omitempty"`
}

// Report is the whole answer.
type Report struct {
	Cluster              string    `json:"cluster"`
	WebhookConfiguration string    `json:"webhookConfiguration"`
	Findings             []Finding `json:"findings"`
	Summary              Summary   `json:"summary"`
}

// Summary counts findings by status.
type Summary struct {
	OK     int `json:"ok"`
	Action int `json:"action"`
	Info   int `json:"info"`
	Error  int `json:"error"`
}

// ExitCode is the command's: 2 when a check could not be made, 1 when
// something needs doing, 0 when all is well.
func (r Report) ExitCode() int {
	switch {
	case r.Summary.Error > 0:
		return 2
	case r.Summary.Action > 0:
		return 1
	}
	return 0
}

// Options are doctor's settings.
type Options struct {
	// Namespace limits the Rollout, promoted-canary and agent pod checks to
	// one namespace ("" = all). The webhook and Argo Rollouts checks are
	// about the cluster and always run whole.
	Namespace string
	// WebhookConfiguration is the MutatingWebhookConfiguration's name.
	WebhookConfiguration string
	// Rules are the webhook's settings (label key, values, tag, agent selector).
	Rules config.Rules
	// AgentSelectorSet says --agent-selector was given; otherwise the agent
	// webhook's objectSelector, what the apiserver sends, selects agent pods.
	AgentSelectorSet bool
	// ServingSecret (namespace/name) holds the serving certificate of a
	// webhook registered by Service; default: the Secrets the manifests use.
	ServingSecret string
	// MinArgoRollouts is the oldest Argo Rollouts controller that is fine.
	MinArgoRollouts string
	// Timeout bounds a TLS handshake with a webhook registered by URL.
	Timeout time.Duration
	// Now stamps the fix commands that re-apply a Rollout.
	Now func() time.Time
}

// Run makes every check against the cluster of cfg.
func Run(ctx context.Context, cfg *rest.Config, opts Options) (Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MinArgoRollouts == "" {
		opts.MinArgoRollouts = "1.10.0"
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "canary-tagger-doctor"
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Report{}, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Report{}, err
	}
	c := &cluster{opts: opts, core: core, dyn: dyn}
	in, err := load(ctx, c)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Cluster: cfg.Host, WebhookConfiguration: opts.WebhookConfiguration, Findings: runChecks(ctx, c, in, checks)}
	for _, f := range rep.Findings {
		switch f.Status {
		case OK:
			rep.Summary.OK++
		case Action:
			rep.Summary.Action++
		case Info:
			rep.Summary.Info++
		case Error:
			rep.Summary.Error++
		}
	}
	return rep, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

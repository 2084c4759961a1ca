package doctor

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

// ServeFlagDefaults are the flags of `canary-tagger serve` that say how it
// heals, with serve's defaults as its flag set prints them (a test of serve
// keeps them in step): doctor reads them from the install's Deployment.
var ServeFlagDefaults = map[string]string{
	"heal":                      "true",
	"heal-agent-pods":           "false",
	"heal-interval":             heal.DefaultInterval.String(),
	"leader-elect":              "false",
	"leader-election-namespace": "",
	"webhook-config-name":       "canary-tagger",
}

// healing is how the install heals, as far as doctor can tell from outside:
// serve's flags in the install's Deployment, the scope the heal loop reads
// from the webhook configuration (heal.ScopeOf, the loop's own), and the
// Lease the healing replica holds.
type healing struct {
	// err: one of them could not be read; doing says which.
	err   error
	doing string
	// deployment runs serve for the webhook configuration; nil when none does.
	deployment *appsv1.Deployment
	// enabled, interval (as given, or serve's default) and leaderElect are
	// its serve flags; leaseNamespace is where its Lease is.
	enabled, leaderElect bool
	interval             string
	leaseNamespace       string
	scope                heal.Scope
	// agentPods is --heal-agent-pods; agentScope the pods it restarts for.
	agentPods  bool
	agentScope heal.Scope
	// lease is nil when it does not exist; holder is the replica that
	// holds it ("" when released or expired at the time of reading).
	lease  *coordinationv1.Lease
	holder string
}

// repairs says whether the heal loop writes what the Rollout rule adds to an
// object with objLabels in a namespace with nsLabels, and within what.
func (h healing) repairs(nsLabels, objLabels map[string]string) (string, bool) {
	on := h.deployment != nil && h.enabled && h.scope.Covers(nsLabels, objLabels) && (!h.leaderElect || h.holder != "")
	return h.interval, on
}

// restarts says whether the heal loop restarts ref (daemonset/NAME or
// deployment/NAME, what owns an Agent pod with podLabels in a namespace
// with nsLabels) because its pods lack the mapping, and within what.
func (h healing) restarts(nsLabels, podLabels map[string]string, ref string) (string, bool) {
	kind, _, _ := strings.Cut(ref, "/")
	on := h.deployment != nil && h.enabled && h.agentPods && (kind == "daemonset" || kind == "deployment") &&
		h.agentScope.Covers(nsLabels, podLabels) && (!h.leaderElect || h.holder != "")
	return h.interval, on
}

// leaseObject names the Lease in findings.
func (h healing) leaseObject() string {
	return "lease/" + h.leaseNamespace + "/" + heal.LeaseName(h.scope.Config)
}

func loadHealing(ctx context.Context, c *cluster, in *inputs) error {
	in.healing = readHealing(ctx, c, in.registration, in.deployments)
	return nil
}

// readHealing finds serve's Deployment among deps and reads the Lease; the
// scope is the registration's, read as the heal loop reads it.
func readHealing(ctx context.Context, c *cluster, reg registration, deps deploymentList) healing {
	cfg := c.opts.WebhookConfiguration
	if deps.err != nil {
		return healing{err: deps.err, doing: "listing Deployments to find the one that runs canary-tagger serve"}
	}
	var h healing
	var flags map[string]string
	for i := range deps.items {
		if flags = serveFlags(&deps.items[i], cfg); flags != nil {
			h.deployment = &deps.items[i]
			break
		}
	}
	if h.deployment == nil {
		return h
	}
	h.enabled, h.leaderElect = flags["heal"] != "false", flags["leader-elect"] == "true"
	h.agentPods = flags["heal-agent-pods"] == "true"
	h.interval = flags["heal-interval"]
	if d, err := time.ParseDuration(h.interval); err == nil {
		h.interval = shortDuration(d)
	}
	// serve's default: the pod's namespace.
	if h.leaseNamespace = flags["leader-election-namespace"]; h.leaseNamespace == "" || strings.Contains(h.leaseNamespace, "$(") {
		h.leaseNamespace = h.deployment.Namespace
	}
	if !h.enabled {
		return h
	}
	if reg.err != nil {
		return healing{err: reg.err, doing: "reading the heal scope"}
	}
	h.scope, h.agentScope = reg.rolloutScope, reg.agentScope
	if !h.leaderElect {
		return h
	}
	lease, err := c.core.CoordinationV1().Leases(h.leaseNamespace).Get(ctx, heal.LeaseName(cfg), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return healing{err: err, doing: "reading the heal Lease " + h.leaseNamespace + "/" + heal.LeaseName(cfg)}
	default:
		h.lease, h.holder = lease, leaseHolder(lease, c.opts.Now())
	}
	return h
}

// leaseHolder is the Lease's holder, "" when it was released (a leader that
// stops clears it) or not renewed within its duration (a leader that died).
func leaseHolder(l *coordinationv1.Lease, now time.Time) string {
	s := l.Spec
	if s.HolderIdentity == nil || *s.HolderIdentity == "" || s.RenewTime == nil || s.LeaseDurationSeconds == nil {
		return ""
	}
	if now.After(s.RenewTime.Add(time.Duration(*s.LeaseDurationSeconds) * time.Second)) {
		return ""
	}
	return *s.HolderIdentity
}

// podOf is the pod in a controller-runtime holder identity (hostname_uuid).
func podOf(holder string) string {
	pod, _, _ := strings.Cut(holder, "_")
	return pod
}

// serveFlags are the heal flags (ServeFlagDefaults) of the Deployment's
// container that runs `canary-tagger serve --webhook-config-name=cfg`; nil
// when none does. The chart and manifests always name the configuration;
// a serve without the flag is older than healing (or made by hand), and
// doctor then rather says it does not know than that healing is on.
func serveFlags(dep *appsv1.Deployment, cfg string) map[string]string {
	for i := range dep.Spec.Template.Spec.Containers {
		ctr := &dep.Spec.Template.Spec.Containers[i]
		tokens := append(slices.Clone(ctr.Command), ctr.Args...)
		at := slices.Index(tokens, "serve")
		if at < 0 {
			continue
		}
		given := parseFlags(tokens[at+1:])
		for name, v := range given {
			given[name] = expandEnv(v, ctr, dep.Namespace)
		}
		if name, named := given["webhook-config-name"]; !named || name != cfg {
			continue
		}
		flags := map[string]string{}
		for name, def := range ServeFlagDefaults {
			flags[name] = def
			if v, ok := given[name]; ok {
				flags[name] = v
			}
		}
		return flags
	}
	return nil
}

// parseFlags reads the flags of ServeFlagDefaults from command-line tokens
// as serve's flag set would (--name=value, --name value, a bare boolean);
// the last of a flag given twice wins. Other flags are passed over.
func parseFlags(tokens []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(tokens); i++ {
		t := tokens[i]
		if t == "--" {
			break
		}
		if !strings.HasPrefix(t, "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(t, "-"), "=")
		def, known := ServeFlagDefaults[name]
		if !known {
			continue
		}
		if !hasValue {
			if def == "true" || def == "false" {
				value = "true"
			} else if i+1 < len(tokens) {
				i++
				value = tokens[i]
			}
		}
		out[name] = value
	}
	return out
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandEnv expands $(VAR) in an argument as the kubelet does, for the
// variables doctor can know: a literal value, or the pod's namespace (the
// chart's POD_NAMESPACE). Others are left as they are.
func expandEnv(s string, ctr *corev1.Container, namespace string) string {
	return envRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		for _, e := range ctr.Env {
			switch {
			case e.Name != name:
			case e.ValueFrom == nil:
				return e.Value
			case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
				return namespace
			}
		}
		return ref
	})
}

// shortDuration prints 1m rather than time's 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// checkHealing says whether serve's heal loop repairs what admission missed:
// off, on but with nothing in its scope, on with no replica holding its
// Lease, or on; the Rollout check then says which of its findings it repairs.
func checkHealing(_ context.Context, c *cluster, in inputs) []Finding {
	h := in.healing
	if h.err != nil {
		return []Finding{errorFinding("", h.err, "%s", h.doing)}
	}
	if h.deployment == nil {
		return []Finding{{Status: Info, Message: fmt.Sprintf("no Deployment runs canary-tagger serve for webhook configuration %s (serve runs elsewhere?): whether healing is on is not known, and the Rollout findings below do not count on it", c.opts.WebhookConfiguration)}}
	}
	dep := "deployment/" + h.deployment.Namespace + "/" + h.deployment.Name
	switch {
	case !h.enabled:
		return []Finding{{Status: Info, Object: dep,
			Message: "healing off (--heal=false): a Rollout admitted while the webhook was unreachable keeps missing its labels until it is updated again",
			Fix:     healOnFix(h.deployment)}}
	case !h.scope.Heals() && !(h.agentPods && h.agentScope.Heals()):
		return []Finding{{Status: Info, Object: dep, Message: "healing on, but it repairs nothing: " + h.scope.NotHealed}}
	case h.leaderElect && h.lease == nil:
		return []Finding{{Status: Action, Object: h.leaseObject(),
			Message: "healing on with --leader-elect, but no replica has ever taken the Lease: nothing is healed",
			Fix:     leaseFix(h.leaseNamespace, heal.LeaseName(h.scope.Config), h.deployment)}}
	case h.leaderElect && h.holder == "":
		last := "released"
		if id := h.lease.Spec.HolderIdentity; id != nil && *id != "" {
			last = "last held by " + podOf(*id) + ", not renewed within its duration"
		}
		return []Finding{{Status: Action, Object: h.leaseObject(),
			Message: fmt.Sprintf("healing on with --leader-elect, but no replica holds the Lease (%s): nothing is healed until one takes it", last),
			Fix:     leaseFix(h.leaseNamespace, heal.LeaseName(h.scope.Config), h.deployment)}}
	}
	what := ""
	if h.agentPods {
		what = " (Agent workloads restarted too: --heal-agent-pods)"
	}
	if h.leaderElect {
		return []Finding{{Status: OK, Object: dep, Message: fmt.Sprintf("healing on%s, every %s, leader %s", what, h.interval, podOf(h.holder))}}
	}
	return []Finding{{Status: OK, Object: dep, Message: fmt.Sprintf("healing on%s, every %s, on every replica (no --leader-elect)", what, h.interval)}}
}

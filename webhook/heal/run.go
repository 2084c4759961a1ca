package heal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Run heals until ctx ends, in a controller-runtime manager: leader election
// on the Lease LeaseName(WebhookConfigName) when asked, the manager's event
// recorder, the Healer as its only Runnable. The manager serves neither
// metrics nor probes (the webhook server does). An API that cannot be
// reached, or a lost election, is logged and retried after Interval, so
// healing never stops the webhook server next to it. Run returns an error
// only for Options that can never work.
func Run(ctx context.Context, o Options) error {
	switch {
	case o.WebhookConfigName == "":
		return errors.New("heal: no webhook configuration name")
	case o.LeaderElection && o.LeaderElectionNamespace == "":
		return errors.New("heal: leader election needs a namespace for its Lease")
	case o.RESTConfig == nil:
		return errors.New("heal: no RESTConfig")
	case o.HealAgentPods && (o.WebhookReady == nil || o.AgentPodRules.Selector == nil):
		return errors.New("heal: healing Agent pods needs the agent-pod rules and the webhook server's readiness")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	log := o.Logger.WithName("heal")
	var last string
	for {
		err := runManager(ctx, o)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("the manager stopped")
		}
		if err.Error() != last { // once per change, not every interval
			log.Error(err, "not healing; trying again every interval", "interval", o.Interval)
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Interval):
		}
	}
}

// runManager runs one manager until ctx ends or it fails (e.g. the election is lost).
func runManager(ctx context.Context, o Options) error {
	cfg, err := o.RESTConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes API access: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = FieldManager
	}
	mgr, err := manager.New(cfg, manager.Options{
		Logger:                        o.Logger.WithName("heal"),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              LeaseName(o.WebhookConfigName),
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true, // a rolling update hands over at once
	})
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return err
	}
	if err := mgr.Add(New(o, kube, dyn, mgr.GetEventRecorder(FieldManager))); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

package main

// Healing for `serve` (webhook/heal): the flags, and the options heal.Run gets.

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/canary-tagger/canary-tagger/webhook"
	"github.com/canary-tagger/canary-tagger/webhook/heal"
)

type healFlags struct {
	enabled                 bool
	interval                time.Duration
	agentPods               bool
	leaderElect             bool
	leaderElectionNamespace string
}

func (f *healFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "heal", true,
		"heal Rollouts admitted without the webhook (it was unreachable, or they predate the install): at start and every --heal-interval, write what admission would have, in the scope of --webhook-config-name")
	fs.DurationVar(&f.interval, "heal-interval", heal.DefaultInterval, "time between the end of one heal pass and the start of the next")
	fs.BoolVar(&f.agentPods, "heal-agent-pods", false,
		"also restart (as kubectl rollout restart does) the DaemonSets and Deployments of Agent pods that lack the mapping, in the scope of the agent-pod webhook, while this server is ready; a restart costs a few seconds of each node's metrics")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "with several replicas, heal on one: the holder of the Lease <webhook-config-name>-heal")
	fs.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the heal Lease (default: the pod's namespace, from $POD_NAMESPACE or the service account)")
}

// validate names the flag at fault.
func (f *healFlags) validate() error {
	if f.interval < time.Second {
		return fmt.Errorf("--heal-interval=%s: must be at least 1s", f.interval)
	}
	if f.agentPods && !f.enabled {
		return errors.New("--heal-agent-pods: needs --heal")
	}
	if !f.enabled || !f.leaderElect {
		return nil
	}
	if f.leaderElectionNamespace == "" {
		f.leaderElectionNamespace = os.Getenv("POD_NAMESPACE")
	}
	if f.leaderElectionNamespace == "" {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return fmt.Errorf("--leader-election-namespace: not set and not running in a pod (%v)", err)
		}
		f.leaderElectionNamespace = strings.TrimSpace(string(b))
	}
	if errs := validation.IsDNS1123Label(f.leaderElectionNamespace); len(errs) > 0 {
		return fmt.Errorf("--leader-election-namespace=%q: %s", f.leaderElectionNamespace, strings.Join(errs, "; "))
	}
	return nil
}

// options are the webhook's rules and client for the healer.
func (f *healFlags) options(o webhook.Options, webhookConfigName string) heal.Options {
	return heal.Options{
		Rules:                   o.Rules.Rollout,
		CheckWorkloadRef:        o.CheckWorkloadRef,
		HealAgentPods:           f.agentPods,
		AgentPodRules:           o.Rules.AgentPod,
		WebhookReady:            o.Readiness.Check,
		WebhookConfigName:       webhookConfigName,
		Interval:                f.interval,
		Logger:                  o.Logger,
		RESTConfig:              o.RESTConfig,
		LeaderElection:          f.leaderElect,
		LeaderElectionNamespace: f.leaderElectionNamespace,
	}
}

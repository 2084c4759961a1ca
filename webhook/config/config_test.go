package config_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/canary-tagger/canary-tagger/webhook/config"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// parse registers the flags on a fresh FlagSet and parses args.
func parse(t *testing.T, args ...string) config.Flags {
	t.Helper()
	var f config.Flags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f
}

func TestDefaults(t *testing.T) {
	f := parse(t)
	want := config.Flags{LabelKey: "role", StableValue: "stable", CanaryValue: "canary", TagName: "kube_role", AgentSelector: "agent.datadoghq.com/component in (agent,cluster-agent,cluster-checks-runner)"}
	if f != want {
		t.Fatalf("defaults %+v, want contract 1 %+v", f, want)
	}
	r, err := f.Validate()
	if err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	if r.Rollout != (rollout.Options{LabelKey: "role", StableValue: "stable", CanaryValue: "canary"}) {
		t.Errorf("rollout options %+v", r.Rollout)
	}
	if r.AgentPod.LabelKey != "role" || r.AgentPod.TagName != "kube_role" || r.AgentSelector != want.AgentSelector {
		t.Errorf("agent options %+v", r.AgentPod)
	}
	for _, component := range []string{"agent", "cluster-agent", "cluster-checks-runner"} {
		if !r.AgentPod.Selector.Matches(labels.Set{"agent.datadoghq.com/component": component, "app": "dd-datadog"}) {
			t.Errorf("default selector does not match a %s pod", component)
		}
	}
	for _, other := range []labels.Set{{"agent.datadoghq.com/component": "otel-agent"}, {"app": "dd-datadog"}} {
		if r.AgentPod.Selector.Matches(other) {
			t.Errorf("default selector matches %v", other)
		}
	}
}

func TestValid(t *testing.T) {
	for _, args := range [][]string{
		{"--label-key=canary-tagger.io/role", "--stable-value=old", "--canary-value=new", "--tag-name=deploy_role"},
		{"--agent-selector=app=datadog"},
		{"--agent-selector=app in (datadog, datadog-agent),!legacy"},
		{"--tag-name=a.b-c/d:e_f9"},
		{"--label-key=" + strings.Repeat("k", 63)},
		{"--stable-value=" + strings.Repeat("v", 63)},
		{"--tag-name=" + strings.Repeat("t", 200)},
	} {
		if _, err := parse(t, args...).Validate(); err != nil {
			t.Errorf("%q refused: %v", args, err)
		}
	}
	r, err := parse(t, "--label-key=tier", "--tag-name=kube_tier", "--agent-selector=app=datadog", "--blue-green").Validate()
	if err != nil {
		t.Fatal(err)
	}
	if r.Rollout.LabelKey != "tier" || r.AgentPod.LabelKey != "tier" || r.AgentPod.TagName != "kube_tier" || !r.Rollout.BlueGreen {
		t.Errorf("flags not carried into the options: %+v", r)
	}
	if !r.AgentPod.Selector.Matches(labels.Set{"app": "datadog"}) {
		t.Error("custom selector not used")
	}
}

// TestInvalid: each invalid value is refused at start-up with a message
// naming the flag (contract 1).
func TestInvalid(t *testing.T) {
	for _, c := range []struct {
		arg  string
		flag string // the message must name --flag
		also string // and contain this
	}{
		{"--label-key=", "label-key", "not a valid label key"},
		{"--label-key=bad key", "label-key", "not a valid label key"},
		{"--label-key=a/b/c", "label-key", "not a valid label key"},
		{"--label-key=-role", "label-key", ""},
		{"--label-key=" + strings.Repeat("k", 64), "label-key", ""},
		{"--label-key=Bad_Domain!/role", "label-key", ""},
		{"--stable-value=", "stable-value", "must not be empty"},
		{"--stable-value=not valid", "stable-value", "not a valid label value"},
		{"--stable-value=" + strings.Repeat("v", 64), "stable-value", ""},
		{"--stable-value=-x", "stable-value", ""},
		{"--canary-value=", "canary-value", "must not be empty"},
		{"--canary-value=a/b", "canary-value", "not a valid label value"},
		{"--canary-value=stable", "canary-value", "stable-value"}, // both the same
		{"--tag-name=", "tag-name", "must not be empty"},
		{"--tag-name=Kube_Role", "tag-name", "lower-case"},
		{"--tag-name=1role", "tag-name", "start with a lower-case letter"},
		{"--tag-name=kube role", "tag-name", ""},
		{"--tag-name=kube,role", "tag-name", ""},
		{"--tag-name=" + strings.Repeat("t", 201), "tag-name", "200"},
		{"--agent-selector=", "agent-selector", "must not be empty"},
		{"--agent-selector=   ", "agent-selector", "must not be empty"},
		{"--agent-selector=app in (", "agent-selector", "not a valid label selector"},
		{"--agent-selector=a==b==c", "agent-selector", "not a valid label selector"},
		{"--agent-selector=bad key=x", "agent-selector", "not a valid label selector"},
		{"--agent-selector=app=not valid!", "agent-selector", "not a valid label selector"},
	} {
		_, err := parse(t, c.arg).Validate()
		if err == nil {
			t.Errorf("%q accepted", c.arg)
			continue
		}
		if !strings.Contains(err.Error(), "--"+c.flag) {
			t.Errorf("%q: message %q does not name --%s", c.arg, err, c.flag)
		}
		if !strings.Contains(err.Error(), c.also) {
			t.Errorf("%q: message %q does not contain %q", c.arg, err, c.also)
		}
	}
}

// TestFirstInvalidNamed: with several bad values, the message names one
// flag, always the same one (flag order, not map order).
func TestFirstInvalidNamed(t *testing.T) {
	for i := 0; i < 20; i++ {
		_, err := parse(t, "--stable-value=", "--canary-value=").Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "--stable-value") {
			t.Fatalf("got %v, want the --stable-value error first", err)
		}
	}
}

func TestValidateTagName(t *testing.T) {
	for _, ok := range []string{"kube_role", "a", "role:x", "a.b", "a/b", "a-b", "a9"} {
		if err := config.ValidateTagName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "9a", "_a", "A", "a b", "a,b", "é", strings.Repeat("a", 201)} {
		if err := config.ValidateTagName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestValidateData: a KRM functionConfig's data sets the settings over the
// flags, checked by the same code as the flags, with messages naming the key.
func TestValidateData(t *testing.T) {
	base := parse(t, "--label-key=track")
	r, err := config.ValidateData(base, nil)
	if err != nil || r.Rollout.LabelKey != "track" || r.AgentPod.TagName != "kube_role" {
		t.Fatalf("no data: want the flags' settings, got %+v, %v", r, err)
	}
	r, err = config.ValidateData(base, map[string]string{
		"labelKey": "tier", "stableValue": "old", "canaryValue": "new", "tagName": "kube_tier",
		"blueGreen": "true", "agentSelector": "app=datadog",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := rollout.Options{LabelKey: "tier", StableValue: "old", CanaryValue: "new", BlueGreen: true}
	if r.Rollout != want || r.AgentPod.LabelKey != "tier" || r.AgentPod.TagName != "kube_tier" || r.AgentSelector != "app=datadog" {
		t.Errorf("data not carried into the options: %+v", r)
	}
	if !r.AgentPod.Selector.Matches(labels.Set{"app": "datadog"}) {
		t.Error("data's selector not used")
	}
	if r, err := config.ValidateData(parse(t, "--blue-green"), map[string]string{"blueGreen": "false"}); err != nil || r.Rollout.BlueGreen {
		t.Errorf("blueGreen: \"false\" over --blue-green: %+v, %v", r.Rollout, err)
	}
	for _, c := range []struct {
		data map[string]string
		msg  string
	}{
		{map[string]string{"labelKey": "bad key"}, `data.labelKey="bad key": not a valid label key`},
		{map[string]string{"stableValue": ""}, "data.stableValue: must not be empty"},
		{map[string]string{"canaryValue": "a/b"}, `data.canaryValue="a/b": not a valid label value`},
		{map[string]string{"canaryValue": "stable"}, `data.stableValue and data.canaryValue are both "stable"`},
		{map[string]string{"tagName": "Kube_Role"}, `data.tagName="Kube_Role"`},
		{map[string]string{"agentSelector": " "}, "data.agentSelector: must not be empty"},
		{map[string]string{"agentSelector": "app in ("}, `data.agentSelector="app in (": not a valid label selector`},
		{map[string]string{"blueGreen": "yes"}, `data.blueGreen="yes": not true or false`},
		{map[string]string{"label-key": "role"}, "data.label-key: not a setting"},
	} {
		if _, err := config.ValidateData(base, c.data); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: got %v, want an error containing %q", c.data, err, c.msg)
		}
	}
}

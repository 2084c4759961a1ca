// Package config holds the settings shared by `serve` and `mutate` (contract 1):
// which label to inject, its two values, the Datadog tag it maps to, and
// which pods are Datadog agents. Both shells validate them the same way and
// refuse to start with a message naming the flag; `mutate` run as a KRM
// function takes them from its functionConfig's data too, checked by the same
// code (ValidateData).
package config

import (
	"flag"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/canary-tagger/canary-tagger/webhook/agentpod"
	"github.com/canary-tagger/canary-tagger/webhook/rollout"
)

// Defaults (contract 1).
const (
	DefaultLabelKey      = "role"
	DefaultStableValue   = "stable"
	DefaultCanaryValue   = "canary"
	DefaultTagName       = "kube_role"
	DefaultAgentSelector = "agent.datadoghq.com/component in (agent,cluster-agent,cluster-checks-runner)"
)

// Flags are the raw flag values.
type Flags struct {
	LabelKey      string
	StableValue   string
	CanaryValue   string
	TagName       string
	AgentSelector string
	BlueGreen     bool
}

// Rules are validated settings, ready for the two rules.
type Rules struct {
	Rollout  rollout.Options
	AgentPod agentpod.Options
	// AgentSelector is the selector as given, for messages.
	AgentSelector string
}

// Register adds the shared flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.LabelKey, "label-key", DefaultLabelKey, "pod label injected into the Rollout's stable/canary ephemeral metadata and mapped to a Datadog tag")
	fs.StringVar(&f.StableValue, "stable-value", DefaultStableValue, "label value for stable pods (stableMetadata)")
	fs.StringVar(&f.CanaryValue, "canary-value", DefaultCanaryValue, "label value for canary pods (canaryMetadata)")
	fs.StringVar(&f.TagName, "tag-name", DefaultTagName, "Datadog tag the label becomes, added to DD_KUBERNETES_POD_LABELS_AS_TAGS")
	fs.BoolVar(&f.BlueGreen, "blue-green", false, "also label blue-green Rollouts: previewMetadata with the canary value, activeMetadata with the stable value")
	fs.StringVar(&f.AgentSelector, "agent-selector", DefaultAgentSelector, "label selector of the Datadog Agent pods to patch: node Agents, Cluster Agents, Cluster Checks Runners (e.g. app=datadog for charts before 3.140.0)")
}

// Validate checks every value and builds the rules' options. The error names
// the offending flag.
func (f Flags) Validate() (Rules, error) {
	return f.validate(flagNames)
}

// settingNames are what a message calls each setting: a flag, or a key of a
// KRM functionConfig's data.
type settingNames struct {
	labelKey, stableValue, canaryValue, tagName, agentSelector, blueGreen string
}

var (
	flagNames = settingNames{"--label-key", "--stable-value", "--canary-value", "--tag-name", "--agent-selector", "--blue-green"}
	dataNames = settingNames{"data.labelKey", "data.stableValue", "data.canaryValue", "data.tagName", "data.agentSelector", "data.blueGreen"}
)

// ValidateData is Validate for the settings of a KRM function (`mutate`
// given a ResourceList): base (the flags) with what a functionConfig
// ConfigMap's data sets, checked by the same code. The error names the data
// key; a key that is not a setting is an error too (a typo must not go
// unnoticed).
func ValidateData(base Flags, data map[string]string) (Rules, error) {
	f := base
	for _, key := range slices.Sorted(maps.Keys(data)) {
		v := data[key]
		switch "data." + key {
		case dataNames.labelKey:
			f.LabelKey = v
		case dataNames.stableValue:
			f.StableValue = v
		case dataNames.canaryValue:
			f.CanaryValue = v
		case dataNames.tagName:
			f.TagName = v
		case dataNames.agentSelector:
			f.AgentSelector = v
		case dataNames.blueGreen:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Rules{}, fmt.Errorf("%s=%q: not true or false", dataNames.blueGreen, v)
			}
			f.BlueGreen = b
		default:
			return Rules{}, fmt.Errorf("data.%s: not a setting (the settings are labelKey, stableValue, canaryValue, tagName, blueGreen, agentSelector)", key)
		}
	}
	return f.validate(dataNames)
}

func (f Flags) validate(names settingNames) (Rules, error) {
	if errs := validation.IsQualifiedName(f.LabelKey); len(errs) > 0 {
		return Rules{}, valueErr(names.labelKey, f.LabelKey, "not a valid label key", errs)
	}
	for _, fv := range []struct{ name, v string }{{names.stableValue, f.StableValue}, {names.canaryValue, f.CanaryValue}} {
		name, v := fv.name, fv.v
		if v == "" {
			return Rules{}, fmt.Errorf("%s: must not be empty", name)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return Rules{}, valueErr(name, v, "not a valid label value", errs)
		}
	}
	if f.StableValue == f.CanaryValue {
		return Rules{}, fmt.Errorf("%s and %s are both %q: stable and canary pods would look the same", names.stableValue, names.canaryValue, f.StableValue)
	}
	if err := ValidateTagName(f.TagName); err != nil {
		return Rules{}, fmt.Errorf("%s=%q: %v", names.tagName, f.TagName, err)
	}
	if strings.TrimSpace(f.AgentSelector) == "" {
		return Rules{}, fmt.Errorf("%s: must not be empty (it would match every pod)", names.agentSelector)
	}
	sel, err := labels.Parse(f.AgentSelector)
	if err != nil {
		return Rules{}, fmt.Errorf("%s=%q: not a valid label selector: %v", names.agentSelector, f.AgentSelector, err)
	}
	return Rules{
		Rollout:       rollout.Options{LabelKey: f.LabelKey, StableValue: f.StableValue, CanaryValue: f.CanaryValue, BlueGreen: f.BlueGreen},
		AgentPod:      agentpod.Options{LabelKey: f.LabelKey, TagName: f.TagName, Selector: sel},
		AgentSelector: f.AgentSelector,
	}, nil
}

// Datadog tag names start with a letter and hold lower-case letters, digits,
// and _ - : . / (the agent lower-cases them; we ask for what it will use).
var tagName = regexp.MustCompile(`^[a-z][a-z0-9_\-:./]*$`)

// ValidateTagName checks a Datadog tag name.
func ValidateTagName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > 200:
		return fmt.Errorf("longer than 200 characters, Datadog's limit")
	case !tagName.MatchString(s):
		return fmt.Errorf("not a valid Datadog tag name: start with a lower-case letter, then lower-case letters, digits, '_', '-', ':', '.', '/'")
	}
	return nil
}

func valueErr(name, value, what string, errs []string) error {
	return fmt.Errorf("%s=%q: %s: %s", name, value, what, strings.Join(errs, "; "))
}

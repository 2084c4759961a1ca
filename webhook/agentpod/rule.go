// Package agentpod is the Datadog Agent pod rule (contract 3): make every
// container of a node Agent, Cluster Agent or Cluster Checks Runner pod map
// the role label to a tag in DD_KUBERNETES_POD_LABELS_AS_TAGS, keeping every
// mapping the Agent had, and say per container what it did in the pod's
// status annotation.
//
// Like the Rollout rule it reads unstructured JSON, returns JSON Patch
// operations (for the webhook and for `mutate`), and leaves fields of
// unexpected types alone.
package agentpod

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-openapi/jsonpointer"
	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// EnvName is the agent's variable: a JSON object, pod label → tag name.
const EnvName = "DD_KUBERNETES_POD_LABELS_AS_TAGS"

// ResourcesEnvName maps labels of several resource kinds; for pods it is
// merged with EnvName key by key, and wins on a shared key (Agent 7.58+,
// docs/agent-config.md).
const ResourcesEnvName = "DD_KUBERNETES_RESOURCES_LABELS_AS_TAGS"

// StatusAnnotation records per container what canary-tagger did (contract 3.5).
const StatusAnnotation = "canary-tagger.io/status"

// Options are the label key, the tag it maps to, and which pods are agents.
type Options struct {
	LabelKey string
	TagName  string
	Selector labels.Selector
}

// Reason says why a pod, or one container, was left untouched.
type Reason string

const (
	ReasonNone           Reason = ""
	ReasonNotPod         Reason = "not a Pod"
	ReasonNotWorkload    Reason = "not a DaemonSet, ExtendedDaemonSet or Deployment"
	ReasonNotAgent       Reason = "labels do not match the agent selector"
	ReasonNotOwned       Reason = "not owned by a DaemonSet, ExtendedDaemonSet or ReplicaSet"
	ReasonNoContainers   Reason = "no containers"
	ReasonUnexpectedType Reason = "field of unexpected type"
	// Container-level reasons. They are shown in the status annotation, so
	// they are short, say what the user should look at, and contain no ";"
	// (the annotation's separator between containers).
	ReasonValueFrom     Reason = "valueFrom: value not visible to the webhook"
	ReasonEnvFrom       Reason = "envFrom may set " + EnvName + " and an added env entry would override it"
	ReasonInvalidJSON   Reason = "value is not a JSON object of strings: the agent drops it whole, no pod label becomes a tag"
	ReasonDuplicateKeys Reason = "value has duplicate keys"
	// An added variable replaces the whole kubernetes_pod_labels_as_tags
	// map of a datadog.yaml (docs/agent-config.md): the user's tags would go.
	ReasonConfigFile Reason = "a mounted Datadog config may map pod labels and an added " + EnvName + " would replace them"
	// The resources variable's mapping of the key wins over ours.
	ReasonResourcesMapKey Reason = ResourcesEnvName + " maps this label for pods and wins over " + EnvName
)

// Action is what happened to one container.
type Action string

const (
	ActionInjected Action = "injected"
	ActionPresent  Action = "present"
	ActionSkipped  Action = "skipped"
)

// Container is the result for one container.
type Container struct {
	Name   string
	Init   bool
	Action Action
	// Tag is the tag LabelKey already maps to (ActionPresent).
	Tag string
	// Reason and Detail say why it was skipped (ActionSkipped).
	Reason Reason
	Detail string
}

// String is the container's entry in the status annotation.
func (c Container) String() string {
	switch c.Action {
	case ActionPresent:
		return fmt.Sprintf("%s: present (%s)", c.Name, c.Tag)
	case ActionSkipped:
		if c.Detail != "" {
			return fmt.Sprintf("%s: skipped: %s (%s)", c.Name, c.Reason, c.Detail)
		}
		return fmt.Sprintf("%s: skipped: %s", c.Name, c.Reason)
	default:
		return fmt.Sprintf("%s: %s", c.Name, c.Action)
	}
}

// Result is what the rule decided.
type Result struct {
	Outcome outcome.Outcome
	// Reason and Detail say why the whole object was left alone.
	Reason     Reason
	Detail     string
	Containers []Container
}

// Status is the value of the status annotation for this result.
//
// It stays under MaxStatusLen: the apiserver refuses a pod whose annotations
// total more than 256 KiB, and an annotation is meant to be read in
// `kubectl describe`. Past the limit the remaining containers are counted.
func (r Result) Status() string {
	var b strings.Builder
	for i, c := range r.Containers {
		entry := c.String()
		if b.Len()+len(entry)+2 > MaxStatusLen-len(statusMore) {
			counts := map[Action]int{}
			for _, rest := range r.Containers[i:] {
				counts[rest.Action]++
			}
			fmt.Fprintf(&b, statusMore, len(r.Containers)-i,
				counts[ActionInjected], counts[ActionPresent], counts[ActionSkipped])
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(entry)
	}
	return b.String()
}

// MaxStatusLen bounds the status annotation's value.
const MaxStatusLen = 4096

const statusMore = "; and %d more containers: %d injected, %d present, %d skipped"

// MutatePod applies contract 3 to a Pod: agent pods owned by a DaemonSet,
// an ExtendedDaemonSet or (Cluster Agent, Checks Runner) a ReplicaSet get
// the mapping and the status annotation. An existing status annotation is kept:
// the apiserver may call the webhook again on its own output
// (reinvocationPolicy: IfNeeded), and the first record is the true one.
func MutatePod(o map[string]any, opts Options) ([]jsonpatch.Operation, Result) {
	if k, _ := obj.String(o, "kind"); k != "Pod" {
		return nil, skip(ReasonNotPod, "")
	}
	if r, ok := matches(o, []string{"metadata", "labels"}, opts.Selector); !ok {
		return nil, r
	}
	if !ownedByAgentController(o) {
		return nil, skip(ReasonNotOwned, "")
	}
	spec, k := obj.Lookup(o, "spec")
	if k != obj.Map {
		return nil, unexpectedPod("spec", spec)
	}
	ops, res := mutatePodSpec(spec.(map[string]any), "/spec", opts)
	if res.Reason != ReasonNone {
		return nil, res
	}
	// The status annotation, unless the user's metadata makes that impossible.
	status := res.Status()
	switch ann, k := obj.Lookup(o, "metadata", "annotations"); k {
	case obj.Absent, obj.Null:
		if _, mk := obj.Lookup(o, "metadata"); mk == obj.Map {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", map[string]any{StatusAnnotation: status}))
		}
	case obj.Map:
		if _, has := ann.(map[string]any)[StatusAnnotation]; !has {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+jsonpointer.Escape(StatusAnnotation), status))
		}
	}
	return ops, res
}

// templateKinds are the workloads whose pod template MutateWorkload handles.
var templateKinds = map[string]bool{"DaemonSet": true, "ExtendedDaemonSet": true, "Deployment": true}

// MutateWorkload applies contract 3 to the pod template of a DaemonSet,
// ExtendedDaemonSet or Deployment whose template matches the selector
// (contract 6, for manifests). No status annotation is written: it would
// change the template and restart the agents for nothing.
func MutateWorkload(o map[string]any, opts Options) ([]jsonpatch.Operation, Result) {
	if k, _ := obj.String(o, "kind"); !templateKinds[k] {
		return nil, skip(ReasonNotWorkload, "")
	}
	if r, ok := matches(o, []string{"spec", "template", "metadata", "labels"}, opts.Selector); !ok {
		return nil, r
	}
	ps, k, at := obj.Find(o, "spec", "template", "spec")
	if k != obj.Map {
		return nil, unexpectedPod(strings.Join(at, "."), ps)
	}
	ops, res := mutatePodSpec(ps.(map[string]any), "/spec/template/spec", opts)
	if res.Reason != ReasonNone {
		return nil, res
	}
	return ops, res
}

func matches(o map[string]any, path []string, sel labels.Selector) (Result, bool) {
	v, k, at := obj.Find(o, path...)
	set := labels.Set{}
	switch k {
	case obj.Map:
		for key, val := range v.(map[string]any) {
			s, ok := val.(string)
			if !ok {
				return unexpectedPod(strings.Join(path, ".")+"."+key, val), false
			}
			set[key] = s
		}
	case obj.Other:
		return unexpectedPod(strings.Join(at, "."), v), false
	}
	if sel == nil || !sel.Matches(set) {
		return skip(ReasonNotAgent, ""), false
	}
	return Result{}, true
}

// agentControllers are the owners of Agent pods: node Agents (DaemonSet, or
// the Datadog Operator's ExtendedDaemonSet through its replica sets), and
// Cluster Agents and Checks Runners (Deployment, through a ReplicaSet).
var agentControllers = map[string]string{
	"DaemonSet":                   "apps",
	"ReplicaSet":                  "apps",
	"ExtendedDaemonSetReplicaSet": "datadoghq.com",
}

func ownedByAgentController(o map[string]any) bool {
	refs, _ := obj.Lookup(o, "metadata", "ownerReferences")
	list, _ := refs.([]any)
	for _, r := range list {
		m, _ := r.(map[string]any)
		kind, _ := m["kind"].(string)
		apiVersion, _ := m["apiVersion"].(string)
		if group, ok := agentControllers[kind]; ok && strings.HasPrefix(apiVersion, group+"/") {
			return true
		}
	}
	return false
}

// mutatePodSpec handles containers (all) and init containers (only those that
// already declare the variable) of the pod spec at pointer. The returned
// Result has an empty Reason unless the spec as a whole was left alone.
func mutatePodSpec(spec map[string]any, pointer string, opts Options) ([]jsonpatch.Operation, Result) {
	var res Result
	var ops []jsonpatch.Operation
	volumes := volumeKinds(spec)
	for _, field := range []string{"containers", "initContainers"} {
		init := field == "initContainers"
		v, k := obj.Lookup(spec, field)
		switch k {
		case obj.Absent, obj.Null:
			continue
		case obj.Map:
			return nil, unexpectedPod("spec."+field, v)
		}
		list, ok := v.([]any)
		if !ok {
			return nil, unexpectedPod("spec."+field, v)
		}
		for i, c := range list {
			cm, ok := c.(map[string]any)
			if !ok {
				return nil, unexpectedPod(fmt.Sprintf("spec.%s[%d]", field, i), c)
			}
			op, cr, handled := mutateContainer(cm, init, volumes, opts)
			if !handled {
				continue
			}
			res.Containers = append(res.Containers, cr)
			if op != nil {
				op.Path = pointer + "/" + field + "/" + strconv.Itoa(i) + op.Path
				ops = append(ops, *op)
			}
		}
	}
	if len(res.Containers) == 0 {
		return nil, skip(ReasonNoContainers, "")
	}
	res.Outcome = outcome.Present
	for _, c := range res.Containers {
		switch c.Action {
		case ActionInjected:
			res.Outcome = outcome.Injected
		case ActionSkipped:
			if res.Outcome != outcome.Injected {
				res.Outcome = outcome.Skipped
			}
		}
	}
	return ops, res
}

// mutateContainer applies contract 3.3 to one container. The operation's path
// is relative to the container. handled is false for an init container that
// does not declare the variable (contract 3.2).
func mutateContainer(c map[string]any, init bool, volumes map[string]string, opts Options) (*jsonpatch.Operation, Container, bool) {
	name, _ := c["name"].(string)
	cr := Container{Name: name, Init: init}
	skipped := func(r Reason, detail string) (*jsonpatch.Operation, Container, bool) {
		cr.Action, cr.Reason, cr.Detail = ActionSkipped, r, detail
		return nil, cr, true
	}
	injected := func(op jsonpatch.Operation) (*jsonpatch.Operation, Container, bool) {
		cr.Action = ActionInjected
		return &op, cr, true
	}

	// Find the effective entry (the last one with the name, as Kubernetes
	// uses) and the first field of an unexpected type, if any.
	var env []any
	bad := ""
	envValue, envKind := obj.Lookup(c, "env")
	if envKind == obj.Map || envKind == obj.Other {
		l, ok := envValue.([]any)
		if !ok {
			bad = "env is " + obj.TypeName(envValue)
		}
		env = l
	}
	last := -1
	for i, e := range env {
		em, ok := e.(map[string]any)
		if !ok {
			if bad == "" {
				bad = fmt.Sprintf("env[%d] is %s", i, obj.TypeName(e))
			}
			continue
		}
		if em["name"] == EnvName {
			last = i
		}
	}
	switch {
	case init && last < 0:
		return nil, cr, false
	case bad != "":
		return skipped(ReasonUnexpectedType, bad)
	}

	if key, tag := resourcesMapping(env, opts.LabelKey); key != "" {
		return skipped(ReasonResourcesMapKey, fmt.Sprintf("pods: %q → %q", key, tag))
	}

	if last < 0 {
		if mount := configMount(c, volumes); mount != "" {
			return skipped(ReasonConfigFile, fmt.Sprintf("%s; add %q: %q to kubernetes_pod_labels_as_tags there, or set %s to that whole map", mount, opts.LabelKey, opts.TagName, EnvName))
		}
		switch ef, k := obj.Lookup(c, "envFrom"); k {
		case obj.Map, obj.Other:
			if l, ok := ef.([]any); !ok {
				return skipped(ReasonUnexpectedType, "envFrom is "+obj.TypeName(ef))
			} else if len(l) > 0 {
				return skipped(ReasonEnvFrom, "")
			}
		}
		value, _ := encode(map[string]string{opts.LabelKey: opts.TagName})
		entry := map[string]any{"name": EnvName, "value": value}
		if envKind == obj.Absent || envKind == obj.Null {
			return injected(jsonpatch.NewOperation("add", "/env", []any{entry}))
		}
		return injected(jsonpatch.NewOperation("add", "/env/"+strconv.Itoa(len(env)), entry))
	}

	entry := env[last].(map[string]any)
	if _, k := obj.Lookup(entry, "valueFrom"); k != obj.Absent && k != obj.Null {
		return skipped(ReasonValueFrom, "")
	}
	var raw string
	switch v, k := obj.Lookup(entry, "value"); k {
	case obj.Absent, obj.Null:
	default:
		s, ok := v.(string)
		if !ok {
			return skipped(ReasonUnexpectedType, "value is "+obj.TypeName(v))
		}
		raw = s
	}
	mapping, err := parseMapping(raw)
	if errors.Is(err, errDuplicate) {
		return skipped(ReasonDuplicateKeys, "")
	} else if err != nil {
		return skipped(ReasonInvalidJSON, "")
	}
	if tag, ok := mapped(mapping, opts.LabelKey); ok {
		cr.Action, cr.Tag = ActionPresent, tag
		return nil, cr, true
	}
	mapping[opts.LabelKey] = opts.TagName
	value, err := encode(mapping)
	if err != nil {
		return skipped(ReasonInvalidJSON, "")
	}
	op := "add" // an entry without a value
	if _, has := entry["value"]; has {
		op = "replace"
	}
	return injected(jsonpatch.NewOperation(op, "/env/"+strconv.Itoa(last)+"/value", value))
}

// resourcesMapping returns the key and tag of the resources variable's pod
// mapping of key, if it has one (compared without case, as the Agent does).
// A value the Agent cannot parse maps nothing.
func resourcesMapping(env []any, key string) (string, string) {
	var value string
	for _, e := range env {
		if em, _ := e.(map[string]any); em["name"] == ResourcesEnvName {
			value, _ = em["value"].(string)
		}
	}
	var resources map[string]map[string]string
	if value == "" || json.Unmarshal([]byte(value), &resources) != nil {
		return "", ""
	}
	for kind, labels := range resources {
		if !strings.EqualFold(kind, "pods") {
			continue
		}
		for k, tag := range labels {
			if strings.EqualFold(k, key) {
				return k, tag
			}
		}
	}
	return "", ""
}

// configFiles are the files the Agent (datadog.yaml) and the Cluster Agent
// (datadog-cluster.yaml) read their settings from.
var configFiles = []string{"/etc/datadog-agent/datadog.yaml", "/etc/datadog-agent/datadog-cluster.yaml"}

// configMount names a volume mount of the container that may put a config
// file in place (the file itself, or a directory above it), from a volume
// other than an emptyDir (the charts' own config directory is one); "" if
// there is none.
func configMount(c map[string]any, volumes map[string]string) string {
	mounts, _ := c["volumeMounts"].([]any)
	for _, m := range mounts {
		mm, _ := m.(map[string]any)
		name, _ := mm["name"].(string)
		at, _ := mm["mountPath"].(string)
		kind, known := volumes[name]
		if !known || kind == "emptyDir" || at == "" {
			continue
		}
		at = path.Clean(at)
		for _, f := range configFiles {
			if f == at || strings.HasPrefix(f, strings.TrimSuffix(at, "/")+"/") {
				return fmt.Sprintf("%s volume %q at %s", kind, name, at)
			}
		}
	}
	return ""
}

// volumeKinds maps each named volume of a pod spec to its source
// ("configMap", "secret", "emptyDir", ...). A volume of several sources is
// not valid; it counts as an emptyDir only if it has nothing else, so the
// answer never depends on map order.
func volumeKinds(spec map[string]any) map[string]string {
	kinds := map[string]string{}
	list, _ := spec["volumes"].([]any)
	for _, v := range list {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		if name == "" {
			continue
		}
		var sources []string
		for k := range vm {
			if k != "name" && k != "emptyDir" {
				sources = append(sources, k)
			}
		}
		switch {
		case len(sources) > 0:
			slices.Sort(sources)
			kinds[name] = sources[0]
		case hasKey(vm, "emptyDir"):
			kinds[name] = "emptyDir"
		}
	}
	return kinds
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

// mapped returns the tag the mapping gives key. The agent lower-cases the
// mapping's keys and the pod's label names (strings.ToLower), so the match is
// on lower-cased keys; with several such keys (e.g. "role" and "Role") the
// exact one wins, else the first in sorted order, so the answer is stable.
func mapped(m map[string]string, key string) (string, bool) {
	if tag, ok := m[key]; ok {
		return tag, true
	}
	lk := strings.ToLower(key)
	found, tag, ok := "", "", false
	for k, v := range m {
		if strings.ToLower(k) == lk && (!ok || k < found) {
			found, tag, ok = k, v, true
		}
	}
	return tag, ok
}

var errDuplicate = errors.New("duplicate key")

// parseMapping reads a JSON object whose values are all strings. It refuses
// duplicate keys (rewriting would silently drop one; sigs.k8s.io/json reports
// them) and invalid UTF-8 (encoding/json would replace it, changing a value
// we must keep exactly).
func parseMapping(raw string) (map[string]string, error) {
	if raw == "" {
		return map[string]string{}, nil
	}
	if !utf8.ValidString(raw) {
		return nil, errors.New("invalid UTF-8")
	}
	// *string: a null value decodes to nil, not to "".
	var values map[string]*string
	duplicates, err := kjson.UnmarshalStrict([]byte(raw), &values, kjson.DisallowDuplicateFields)
	switch {
	case err != nil:
		return nil, err
	case values == nil: // null
		return nil, errors.New("not an object")
	case len(duplicates) > 0:
		return nil, errDuplicate
	}
	m := make(map[string]string, len(values))
	for k, v := range values {
		if v == nil {
			return nil, errors.New("value is not a string")
		}
		m[k] = *v
	}
	return m, nil
}

// encode writes the mapping as compact JSON with sorted keys, as the Datadog
// Helm chart writes it, without escaping <, > and & (tags may contain them).
func encode(m map[string]string) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil { // map keys are encoded sorted
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func skip(r Reason, detail string) Result {
	return Result{Outcome: outcome.Skipped, Reason: r, Detail: detail}
}

func unexpectedPod(path string, v any) Result {
	return skip(ReasonUnexpectedType, path+" is "+obj.TypeName(v))
}

// Package agentpod is the Datadog Agent pod rule (contract 3): make every agent
// container map the role label to a tag in DD_KUBERNETES_POD_LABELS_AS_TAGS,
// keeping every mapping already there, and say per container what it did in
// the pod's status annotation.
//
// Like the Rollout rule it works on unstructured JSON, never modifies its
// input, and leaves fields of unexpected types alone.
package agentpod

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// EnvName is the agent's variable: a JSON object, pod label → tag name.
const EnvName = "DD_KUBERNETES_POD_LABELS_AS_TAGS"

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
	ReasonNotDaemonSet   Reason = "not a DaemonSet"
	ReasonNotAgent       Reason = "labels do not match the agent selector"
	ReasonNotOwnedByDS   Reason = "not owned by a DaemonSet"
	ReasonNoContainers   Reason = "no containers"
	ReasonUnexpectedType Reason = "field of unexpected type"
	// Container-level reasons. They are shown in the status annotation, so
	// they are short, say what the user should look at, and contain no ";"
	// (the annotation's separator between containers).
	ReasonValueFrom     Reason = "valueFrom: value not visible to the webhook"
	ReasonEnvFrom       Reason = "envFrom may set " + EnvName + " and an added env entry would override it"
	ReasonInvalidJSON   Reason = "value is not a JSON object of strings: the agent drops it whole, no pod label becomes a tag"
	ReasonDuplicateKeys Reason = "value has duplicate keys"
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

// PodReads is what MutatePod reads of a Pod, for a server that decodes only
// that (obj.Shape): not managedFields, and of the containers only name and
// environment. The tests run every case on both the whole and the shaped
// object. (name, namespace and generateName are for the webhook's log.)
var PodReads = obj.Shape{
	"apiVersion": nil, "kind": nil,
	"metadata": {"name": nil, "namespace": nil, "generateName": nil, "labels": nil, "annotations": nil, "ownerReferences": nil},
	"spec":     {"containers": containerReads, "initContainers": containerReads},
}

var containerReads = obj.Shape{"name": nil, "env": nil, "envFrom": nil}

// MutatePod applies contract 3 to a Pod: agent pods owned by a DaemonSet get the
// mapping and the status annotation. An existing status annotation is kept:
// the apiserver may call the webhook again on its own output
// (reinvocationPolicy: IfNeeded), and the first record is the true one.
func MutatePod(o map[string]any, opts Options) (map[string]any, Result) {
	if k, _ := obj.String(o, "kind"); k != "Pod" {
		return o, skip(ReasonNotPod, "")
	}
	if r, ok := matches(o, []string{"metadata", "labels"}, opts.Selector); !ok {
		return o, r
	}
	if !ownedByDaemonSet(o) {
		return o, skip(ReasonNotOwnedByDS, "")
	}
	spec, k := obj.Lookup(o, "spec")
	if k != obj.Map {
		return o, unexpectedPod("spec", spec)
	}
	newSpec, res := mutatePodSpec(spec.(map[string]any), opts)
	if res.Outcome != "" && res.Reason != ReasonNone {
		return o, res
	}
	out := obj.CopyMap(o)
	out["spec"] = newSpec
	// Status annotation, unless the user's metadata makes that impossible.
	meta, k := obj.Lookup(o, "metadata")
	if k == obj.Map {
		ann, ak := obj.Lookup(meta.(map[string]any), "annotations")
		switch ak {
		case obj.Absent, obj.Null:
			m := obj.CopyMap(meta.(map[string]any))
			m["annotations"] = map[string]any{StatusAnnotation: res.Status()}
			out["metadata"] = m
		case obj.Map:
			if _, has := ann.(map[string]any)[StatusAnnotation]; !has {
				m := obj.CopyMap(meta.(map[string]any))
				a := obj.CopyMap(ann.(map[string]any))
				a[StatusAnnotation] = res.Status()
				m["annotations"] = a
				out["metadata"] = m
			}
		}
	}
	return out, res
}

// MutateDaemonSet applies contract 3 to the pod template of a DaemonSet whose
// template matches the selector (contract 6, for manifests). No status annotation
// is written: it would change the template and restart the agents for nothing.
func MutateDaemonSet(o map[string]any, opts Options) (map[string]any, Result) {
	if k, _ := obj.String(o, "kind"); k != "DaemonSet" {
		return o, skip(ReasonNotDaemonSet, "")
	}
	if r, ok := matches(o, []string{"spec", "template", "metadata", "labels"}, opts.Selector); !ok {
		return o, r
	}
	ps, k, at := obj.Find(o, "spec", "template", "spec")
	if k != obj.Map {
		return o, unexpectedPod(strings.Join(at, "."), ps)
	}
	newPS, res := mutatePodSpec(ps.(map[string]any), opts)
	if res.Reason != ReasonNone || res.Outcome != outcome.Injected {
		return o, res
	}
	out := obj.CopyMap(o)
	spec := obj.CopyMap(out["spec"].(map[string]any))
	tmpl := obj.CopyMap(spec["template"].(map[string]any))
	tmpl["spec"] = newPS
	spec["template"] = tmpl
	out["spec"] = spec
	return out, res
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

func ownedByDaemonSet(o map[string]any) bool {
	refs, _ := obj.Lookup(o, "metadata", "ownerReferences")
	list, _ := refs.([]any)
	for _, r := range list {
		m, _ := r.(map[string]any)
		if m == nil {
			continue
		}
		if kind, _ := m["kind"].(string); kind != "DaemonSet" {
			continue
		}
		if av, _ := m["apiVersion"].(string); strings.HasPrefix(av, "apps/") {
			return true
		}
	}
	return false
}

// mutatePodSpec handles containers (all) and init containers (only those that
// already declare the variable). The returned Result has an empty Reason
// unless the spec as a whole was left alone.
func mutatePodSpec(spec map[string]any, opts Options) (map[string]any, Result) {
	var res Result
	out := spec
	changed := false
	for _, field := range []string{"containers", "initContainers"} {
		init := field == "initContainers"
		v, k := obj.Lookup(spec, field)
		switch k {
		case obj.Absent, obj.Null:
			continue
		case obj.Map:
			return spec, unexpectedPod("spec."+field, v)
		}
		list, ok := v.([]any)
		if !ok {
			return spec, unexpectedPod("spec."+field, v)
		}
		var newList []any
		for i, c := range list {
			cm, ok := c.(map[string]any)
			if !ok {
				return spec, unexpectedPod(fmt.Sprintf("spec.%s[%d]", field, i), c)
			}
			newC, cr, handled := mutateContainer(cm, init, opts)
			if !handled {
				continue
			}
			res.Containers = append(res.Containers, cr)
			if cr.Action == ActionInjected {
				if newList == nil {
					newList = append([]any(nil), list...)
				}
				newList[i] = newC
			}
		}
		if newList != nil {
			if !changed {
				out = obj.CopyMap(spec)
				changed = true
			}
			out[field] = newList
		}
	}
	if len(res.Containers) == 0 {
		return spec, skip(ReasonNoContainers, "")
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
	return out, res
}

// mutateContainer applies contract 3.3 to one container. handled is false for an
// init container that does not declare the variable (contract 3.2).
func mutateContainer(c map[string]any, init bool, opts Options) (map[string]any, Container, bool) {
	name, _ := c["name"].(string)
	cr := Container{Name: name, Init: init}
	skipped := func(r Reason, detail string) (map[string]any, Container, bool) {
		cr.Action, cr.Reason, cr.Detail = ActionSkipped, r, detail
		return c, cr, true
	}

	// Find the effective entry (the last one with the name, as Kubernetes
	// uses) and the first field of an unexpected type, if any.
	var env []any
	bad := ""
	if v, k := obj.Lookup(c, "env"); k == obj.Map || k == obj.Other {
		l, ok := v.([]any)
		if !ok {
			bad = "env is " + obj.TypeName(v)
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
		return c, cr, false
	case bad != "":
		return skipped(ReasonUnexpectedType, bad)
	}

	if last < 0 {
		switch ef, k := obj.Lookup(c, "envFrom"); k {
		case obj.Map, obj.Other:
			if l, ok := ef.([]any); !ok {
				return skipped(ReasonUnexpectedType, "envFrom is "+obj.TypeName(ef))
			} else if len(l) > 0 {
				return skipped(ReasonEnvFrom, "")
			}
		}
		value, _ := encode(map[string]string{opts.LabelKey: opts.TagName})
		out := obj.CopyMap(c)
		newEnv := make([]any, len(env), len(env)+1)
		copy(newEnv, env)
		out["env"] = append(newEnv, map[string]any{"name": EnvName, "value": value})
		cr.Action = ActionInjected
		return out, cr, true
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
		return c, cr, true
	}
	mapping[opts.LabelKey] = opts.TagName
	value, err := encode(mapping)
	if err != nil {
		return skipped(ReasonInvalidJSON, "")
	}
	newEntry := obj.CopyMap(entry)
	newEntry["value"] = value
	newEnv := append([]any(nil), env...)
	newEnv[last] = newEntry
	out := obj.CopyMap(c)
	out["env"] = newEnv
	cr.Action = ActionInjected
	return out, cr, true
}

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
// duplicate keys (rewriting would silently drop one) and invalid UTF-8
// (encoding/json would replace it, changing a value we must keep exactly).
func parseMapping(raw string) (map[string]string, error) {
	m := map[string]string{}
	if raw == "" {
		return m, nil
	}
	if !utf8.ValidString(raw) {
		return nil, errors.New("invalid UTF-8")
	}
	r := obj.NewReader([]byte(raw))
	if r.Kind() != '{' {
		return nil, errors.New("not an object")
	}
	err := r.Members(func(key string) error {
		if r.Kind() != '"' {
			return errors.New("value is not a string")
		}
		val, err := r.String()
		if err != nil {
			return err
		}
		if _, dup := m[key]; dup {
			return errDuplicate
		}
		m[key] = val
		return nil
	})
	if err == nil {
		err = r.End()
	}
	if err != nil {
		return nil, err
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

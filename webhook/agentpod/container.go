package agentpod

import (
	"errors"
	"fmt"
	"strconv"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
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
	Action Action
	// Tag is the tag LabelKey already maps to (ActionPresent).
	Tag string
	// Reason and Detail say why it was skipped (ActionSkipped).
	Reason Reason
	Detail string
}

// mutateContainer applies contract 3.3 to one container. The operation's path
// is relative to the container. handled is false for an init container that
// does not declare the variable (contract 3.2).
func mutateContainer(c map[string]any, init bool, volumes map[string]string, opts Options) (*jsonpatch.Operation, Container, bool) {
	name, _ := c["name"].(string)
	cr := Container{Name: name}
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
	bad := ""
	env, envFound, _, ok := obj.List(c, "env")
	if !ok {
		bad = "env is " + obj.TypeName(envFound)
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
		switch envFrom, found, _, ok := obj.List(c, "envFrom"); {
		case !ok:
			return skipped(ReasonUnexpectedType, "envFrom is "+obj.TypeName(found))
		case len(envFrom) > 0:
			return skipped(ReasonEnvFrom, "")
		}
		value, _ := encode(map[string]string{opts.LabelKey: opts.TagName})
		entry := map[string]any{"name": EnvName, "value": value}
		if envFound == nil { // no env, or env: null
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
	mapping, err := ParseMapping(raw)
	if errors.Is(err, ErrDuplicate) {
		return skipped(ReasonDuplicateKeys, "")
	} else if err != nil {
		return skipped(ReasonInvalidJSON, "")
	}
	if tag, ok := Mapped(mapping, opts.LabelKey); ok {
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

package agentpod

import (
	"fmt"
	"strconv"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/outcome"
)

// mutatePodSpec handles containers (all) and init containers (only those that
// already declare the variable) of the pod spec at pointer. The returned
// Result has an empty Reason unless the spec as a whole was left alone.
func mutatePodSpec(spec map[string]any, pointer string, opts Options) ([]jsonpatch.Operation, Result) {
	var res Result
	var ops []jsonpatch.Operation
	volumes := volumeKinds(spec)
	for _, field := range []string{"containers", "initContainers"} {
		init := field == "initContainers"
		list, found, _, ok := obj.List(spec, field)
		if !ok {
			return nil, unexpectedPod("spec."+field, found)
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

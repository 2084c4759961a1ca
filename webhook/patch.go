package webhook

import (
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
)

// runRule runs a rule on request.object as decodeReview left it (only what
// the rule reads, see obj.Shape) and returns the JSON Patch to its output.
// A patch carrying a value the shape left out would mean the rule reads more
// than it declares (a bug the tests are there to catch): the rule then runs
// again on the whole object, so that the answer is still right, and the log
// says so.
func runRule[R any](req admission.Request, log logr.Logger, rule func(map[string]any) (map[string]any, R)) (
	in map[string]any, ops []jsonpatch.JsonPatchOperation, res R, err error) {
	if in, err = requestObject(req); err != nil {
		return nil, nil, res, err
	}
	out, res := rule(in)
	if ops = treePatch(in, out); !carriesSkipped(ops) {
		return in, ops, res, nil
	}
	log.Error(nil, "BUG: the rule's output carries a member its shape did not decode; running it on the whole object", "uid", req.UID)
	if in, err = obj.Decode(req.Object.Raw); err != nil {
		return nil, nil, res, err
	}
	out, res = rule(in)
	return in, treePatch(in, out), res, nil
}

func carriesSkipped(ops []jsonpatch.JsonPatchOperation) bool {
	var has func(v any) bool
	has = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			for _, e := range v {
				if has(e) {
					return true
				}
			}
		case []any:
			for _, e := range v {
				if has(e) {
					return true
				}
			}
		default:
			return v == obj.Skipped
		}
		return false
	}
	for _, op := range ops {
		if has(op.Value) {
			return true
		}
	}
	return false
}

// treePatch returns the JSON Patch (RFC 6902, as gomodules.xyz/jsonpatch/v2
// operations) that turns in into out, where out is a rule's output.
//
// Why not admission.PatchResponseFromRaw: it marshals the whole object and
// decodes both sides again to diff them, which measured as most of a review's
// cost (docs/benchmarks.md). The rules copy only the maps and slices on the
// path they change and share everything else with their input, so a map or
// slice that is the same in both is skipped unread: the cost is the size of
// the change. TestTreePatchMatchesPatchResponseFromRaw checks both give the
// same object on every golden and fuzz case.
//
// A member that was absent or null gets "add" (RFC 6902 add replaces a
// null), so the rules' patches are add-only (contract 2.4); a changed scalar
// (the agent's env value) gets "replace". Keys are visited in order, so the
// patch is deterministic.
func treePatch(in, out map[string]any) []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	diff("", in, out, &ops)
	return ops
}

func diff(path string, a, b any, ops *[]jsonpatch.JsonPatchOperation) {
	switch bv := b.(type) {
	case map[string]any:
		av, ok := a.(map[string]any)
		if !ok {
			break
		}
		if sameBacking(av, bv) {
			return
		}
		// Only the keys whose values the rule replaced are sorted and walked:
		// a container has dozens of members, of which the rule changes one.
		var changed, removed []string
		for k, v := range bv {
			if old, had := av[k]; !had || !unchanged(old, v) {
				changed = append(changed, k)
			}
		}
		for k := range av {
			if _, has := bv[k]; !has {
				removed = append(removed, k)
			}
		}
		slices.Sort(changed)
		slices.Sort(removed)
		for _, k := range changed {
			old, had := av[k]
			p := path + "/" + escapePointer(k)
			if !had || (old == nil && bv[k] != nil) {
				*ops = append(*ops, jsonpatch.NewOperation("add", p, bv[k]))
				continue
			}
			diff(p, old, bv[k], ops)
		}
		for _, k := range removed {
			*ops = append(*ops, jsonpatch.NewOperation("remove", path+"/"+escapePointer(k), nil))
		}
		return
	case []any:
		av, ok := a.([]any)
		if !ok || len(bv) < len(av) {
			break
		}
		if len(av) == len(bv) && sameBacking(av, bv) {
			return
		}
		for i := range av {
			diff(path+"/"+strconv.Itoa(i), av[i], bv[i], ops)
		}
		for i := len(av); i < len(bv); i++ {
			*ops = append(*ops, jsonpatch.NewOperation("add", path+"/"+strconv.Itoa(i), bv[i]))
		}
		return
	default:
		if isScalar(a) && a == b {
			return
		}
	}
	*ops = append(*ops, jsonpatch.NewOperation("replace", path, b))
}

// sameBacking: the rule did not copy this map or slice.
func sameBacking(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return va.UnsafePointer() == vb.UnsafePointer()
}

// unchanged: b is a (same backing) or an equal scalar; when false, diff walks it.
func unchanged(a, b any) bool {
	switch bv := b.(type) {
	case map[string]any:
		av, ok := a.(map[string]any)
		return ok && sameBacking(av, bv)
	case []any:
		av, ok := a.([]any)
		return ok && len(av) == len(bv) && sameBacking(av, bv)
	}
	return isScalar(a) && a == b
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// escapePointer escapes a key for a JSON Pointer (RFC 6901).
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

package offline

import (
	"fmt"
	"reflect"
	"sort"
)

// An edit is one change between a rule's input and its output. The rules
// only add map keys, append list entries and replace values (contract 2.4: the
// webhook's patch is made of "add" operations; the agent rule also rewrites
// one env value), so these three kinds are all the writers need.
type edit struct {
	op   editOp
	path []any // keys (string) and indexes (int) from the document root
	// opAdd: keys to add to the map at path, sorted, with their values.
	keys []string
	vals []any
	// opAppend: entries appended to the list at path. opReplace: val replaces
	// the value at path.
	items []any
	val   any
}

type editOp int

const (
	opAdd editOp = iota
	opAppend
	opReplace
)

func (e edit) String() string {
	switch e.op {
	case opAdd:
		return fmt.Sprintf("add %v to %v", e.keys, e.path)
	case opAppend:
		return fmt.Sprintf("append %d to %v", len(e.items), e.path)
	default:
		return fmt.Sprintf("replace %v", e.path)
	}
}

// diff lists the edits that turn old into new. It fails if a key was
// removed, which no rule does.
func diff(old, new any) ([]edit, error) {
	var edits []edit
	err := diffAt(nil, old, new, &edits)
	return edits, err
}

func diffAt(path []any, old, new any, edits *[]edit) error {
	if reflect.DeepEqual(old, new) {
		return nil
	}
	switch o := old.(type) {
	case map[string]any:
		n, ok := new.(map[string]any)
		if !ok {
			break
		}
		var added []string
		for k := range n {
			if _, has := o[k]; !has {
				added = append(added, k)
			}
		}
		for k := range o {
			if _, has := n[k]; !has {
				return fmt.Errorf("key %q removed at %v", k, path)
			}
		}
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := diffAt(appendPath(path, k), o[k], n[k], edits); err != nil {
				return err
			}
		}
		if len(added) > 0 {
			sort.Strings(added)
			e := edit{op: opAdd, path: path, keys: added}
			for _, k := range added {
				e.vals = append(e.vals, n[k])
			}
			*edits = append(*edits, e)
		}
		return nil
	case []any:
		n, ok := new.([]any)
		if !ok || len(n) < len(o) {
			break
		}
		for i := range o {
			if err := diffAt(appendPath(path, i), o[i], n[i], edits); err != nil {
				return err
			}
		}
		if len(n) > len(o) {
			*edits = append(*edits, edit{op: opAppend, path: path, items: n[len(o):]})
		}
		return nil
	}
	*edits = append(*edits, edit{op: opReplace, path: path, val: new})
	return nil
}

func appendPath(p []any, k any) []any {
	return append(append(make([]any, 0, len(p)+1), p...), k)
}

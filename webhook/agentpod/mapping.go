package agentpod

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	kjson "sigs.k8s.io/json"
)

// Mapped returns the tag the mapping gives key. The agent lower-cases the
// mapping's keys and the pod's label names (strings.ToLower), so the match is
// on lower-cased keys; with several such keys (e.g. "role" and "Role") the
// exact one wins, else the first in sorted order, so the answer is stable.
func Mapped(m map[string]string, key string) (string, bool) {
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

// ErrDuplicate: the mapping names a key twice.
var ErrDuplicate = errors.New("duplicate key")

// ParseMapping reads a JSON object whose values are all strings. It refuses
// duplicate keys (rewriting would silently drop one; sigs.k8s.io/json reports
// them) and invalid UTF-8 (encoding/json would replace it, changing a value
// we must keep exactly).
func ParseMapping(raw string) (map[string]string, error) {
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
		return nil, ErrDuplicate
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

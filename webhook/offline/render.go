package offline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Rendering of the values the rules add, as YAML text. Block lines are
// returned without indentation; the caller indents them to their place.

// blockEntry renders "key: value" as block lines.
func blockEntry(key string, v any, l layout) []string {
	k := blockScalar(key)
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return []string{k + ": {}"}
		}
		return append([]string{k + ":"}, indent(blockMap(x, l), l.mapIndent)...)
	case []any:
		if len(x) == 0 {
			return []string{k + ": []"}
		}
		var lines []string
		for _, it := range x {
			lines = append(lines, blockItem(it, 2, l)...)
		}
		return append([]string{k + ":"}, indent(lines, l.seqIndent)...)
	}
	return []string{k + ": " + scalarText(v)}
}

func blockMap(m map[string]any, l layout) []string {
	var lines []string
	for _, k := range sortedKeys(m) {
		lines = append(lines, blockEntry(k, m[k], l)...)
	}
	return lines
}

// blockItem renders one sequence entry: "- " then the value, its further
// lines indented by off (the column of the content after the dash).
func blockItem(v any, off int, l layout) []string {
	if off < 2 {
		off = 2
	}
	dash := "-" + strings.Repeat(" ", off-1)
	var lines []string
	switch x := v.(type) {
	case map[string]any:
		if len(x) > 0 {
			lines = blockMap(x, l)
		}
	}
	if lines == nil {
		return []string{dash + inlineValue(v)}
	}
	out := []string{dash + lines[0]}
	return append(out, indent(lines[1:], off)...)
}

func indent(lines []string, n int) []string {
	pad := strings.Repeat(" ", n)
	out := make([]string, len(lines))
	for i, s := range lines {
		out[i] = pad + s
	}
	return out
}

// inlineValue renders a value on one line: scalars as in block context,
// collections in flow style.
func inlineValue(v any) string {
	switch v.(type) {
	case map[string]any, []any:
		return flowValue(v)
	}
	return scalarText(v)
}

// scalarText renders a scalar for block context. Strings get yaml.v3's
// choice of plain or quoted style (the Datadog chart's single-quoted JSON
// comes out the same); strings yaml.v3 would write as a block scalar are
// double-quoted to stay on one line.
func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return blockScalar(x)
	case nil:
		return "null"
	case json.Number:
		return x.String()
	case bool:
		return fmt.Sprint(x)
	default:
		return flowValue(x)
	}
}

func blockScalar(s string) string {
	out, err := yaml.Marshal(s)
	t := strings.TrimSuffix(string(out), "\n")
	if err != nil || strings.Contains(t, "\n") || strings.HasPrefix(t, "|") || strings.HasPrefix(t, ">") {
		return jsonString(s)
	}
	return t
}

// flowScalar is a string safe inside a flow collection: plain when yaml.v3
// would write it plain and it holds no flow indicator, double-quoted otherwise.
func flowScalar(s string) string {
	t := blockScalar(s)
	if t[0] == '"' || t[0] == '\'' || !strings.ContainsAny(t, ",[]{}#:") {
		return t
	}
	return jsonString(s)
}

// flowValue renders a value in flow style, keys sorted.
func flowValue(v any) string {
	switch x := v.(type) {
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range sortedKeys(x) {
			parts = append(parts, flowScalar(k)+": "+flowValue(x[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, it := range x {
			parts[i] = flowValue(it)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		return flowScalar(x)
	case nil:
		return "null"
	case json.Number:
		return x.String()
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// jsonString is s as a JSON string, which is also a valid YAML
// double-quoted scalar. HTML characters are kept as typed.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// singleQuoted is s in YAML single quotes, or "" if it cannot be (line
// breaks and control characters need double quotes).
func singleQuoted(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

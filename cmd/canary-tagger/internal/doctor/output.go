package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes the report as one indented JSON object.
func WriteJSON(w io.Writer, r Report) error {
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

var marks = map[Status]string{OK: "ok    ", Action: "ACTION", Info: "info  ", Error: "ERROR "}

// WriteText writes the report for a person: one line per finding, its
// items and fix commands indented below, then the verdict.
func WriteText(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "canary-tagger doctor: cluster %s, webhook configuration %s\n\n", r.Cluster, r.WebhookConfiguration)
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%s %-15s ", marks[f.Status], f.Category)
		if f.Object != "" {
			fmt.Fprintf(&b, "%s: ", f.Object)
		}
		b.WriteString(f.Message)
		b.WriteString("\n")
		if f.Reason != "" {
			fmt.Fprintf(&b, "         reason: %s\n", f.Reason)
		}
		const maxItems = 10
		for i, it := range f.Items {
			if i == maxItems && f.Status != Action {
				fmt.Fprintf(&b, "         … and %d more\n", len(f.Items)-maxItems)
				break
			}
			fmt.Fprintf(&b, "         - %s\n", it)
		}
		for _, c := range f.Fix {
			fmt.Fprintf(&b, "         $ %s\n", c)
		}
	}
	b.WriteString("\n")
	switch r.ExitCode() {
	case 0:
		b.WriteString("All is well: nothing needs doing.\n")
	case 1:
		fmt.Fprintf(&b, "%d thing(s) need doing: run the commands above.\n", r.Summary.Action)
	default:
		fmt.Fprintf(&b, "%d check(s) could not be made (ERROR above); %d thing(s) need doing.\n", r.Summary.Error, r.Summary.Action)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

package agentpod

import (
	"fmt"
	"strings"
)

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

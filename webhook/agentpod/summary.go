package agentpod

import "github.com/canary-tagger/canary-tagger/webhook/outcome"

// Summary is the result in the words every shell uses: the containers that
// got the mapping, and each container's status (as in the status
// annotation), or why the object was left alone. An object that is not an
// agent is quiet.
func (r Result) Summary() outcome.Summary {
	s := outcome.Summary{Outcome: r.Outcome, Reason: string(r.Reason)}
	switch r.Reason {
	case ReasonNotPod, ReasonNotWorkload, ReasonNotAgent, ReasonNotOwned:
		s.Quiet = true
	case ReasonNone:
		s.Reason = r.Status()
	}
	if r.Detail != "" {
		s.Reason += ": " + r.Detail
	}
	for _, c := range r.Containers {
		if c.Action == ActionInjected {
			s.Added = append(s.Added, c.Name)
		}
	}
	return s
}

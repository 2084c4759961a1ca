package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/canary-tagger/canary-tagger/webhook/webhooktest"
	"os"
	"path/filepath"
)

// auditPolicy records Rollout requests (and nothing else) at Metadata
// level, which carries the admission annotations, once each request is done.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    resources:
      - group: argoproj.io
        resources: [rollouts]
  - level: None
`

// AuditEvent is the part of an audit.k8s.io/v1 Event the suites read.
type AuditEvent struct {
	AuditID   string `json:"auditID"`
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Annotations map[string]string `json:"annotations"`
}

// enableAuditLog writes the audit policy into dir and returns the
// kube-apiserver flags that log to dir/audit.log.
func enableAuditLog(dir string) (map[string][]string, string, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return nil, "", err
	}
	log := filepath.Join(dir, "audit.log")
	return map[string][]string{
		"audit-policy-file": {policy},
		"audit-log-path":    {log},
		"audit-log-format":  {"json"},
	}, log, nil
}

// AuditEvents reads the audit log (Options.AuditLog) and returns the
// completed Rollout requests for ns/name with verb, oldest first.
func (e *Env) AuditEvents(ns, name, verb string) ([]AuditEvent, error) {
	if e.auditLog == "" {
		return nil, fmt.Errorf("no audit log: start the Env with Options.AuditLog")
	}
	data, err := os.ReadFile(e.auditLog)
	if err != nil {
		return nil, err
	}
	var out []AuditEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var ev AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s: %w", e.auditLog, err)
		}
		r := ev.ObjectRef
		if ev.Stage == "ResponseComplete" && ev.Verb == verb && r.Namespace == ns && r.Name == name && r.Subresource == "" {
			out = append(out, ev)
		}
	}
	return out, sc.Err()
}

// WaitAuditEvent waits until the audit log holds a completed request for
// ns/name with verb (the log is written after the response) and returns the
// last one.
func (e *Env) WaitAuditEvent(ctx context.Context, ns, name, verb string) (AuditEvent, error) {
	var last AuditEvent
	err := Eventually(ctx, "WaitAuditEvent", func(context.Context) (bool, error) {
		evs, err := e.AuditEvents(ns, name, verb)
		if err != nil {
			return false, webhooktest.StopPolling(err)
		}
		if len(evs) == 0 {
			return false, fmt.Errorf("no %s of rollout %s/%s in the audit log yet", verb, ns, name)
		}
		last = evs[len(evs)-1]
		return true, nil
	})
	return last, err
}

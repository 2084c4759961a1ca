package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMutateWriteFlag: -w is wired: the file gets what mutate prints for it,
// stdout stays empty; without a file -w is a usage error. The behaviour
// itself is tested in webhook/offline (TestWriteInPlace, TestRecursiveGoesOn).
func TestMutateWriteFlag(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rollout.yaml")
	write(t, file, rolloutDoc)
	code, out, stderr := mutate(t, "", "-w", "-f", file)
	if data, _ := os.ReadFile(file); code != 0 || out != "" || string(data) != rolloutOut {
		t.Errorf("-w: exit %d, stdout %q, file:\n%s\nwant 0, nothing, and:\n%s\nstderr: %s", code, out, data, rolloutOut, stderr)
	}
	if code, out, stderr := mutate(t, rolloutDoc, "-w"); code != 2 || out != "" || !strings.Contains(stderr, "-w") {
		t.Errorf("-w on stdin: exit %d, stdout %q, stderr %q; want 2, nothing, a message", code, out, stderr)
	}
}

// TestMutateKRMFunction: a ResourceList on stdin is answered as a KRM
// function: the items mutated, results, settings from the functionConfig.
// The behaviour itself is tested in webhook/offline (TestFunction*).
func TestMutateKRMFunction(t *testing.T) {
	items := strings.ReplaceAll(rolloutDoc, "\n", "\n    ")
	in := "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n  - " + strings.TrimSuffix(items, "    ") +
		"functionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: settings\n  data:\n    labelKey: track\n"
	code, out, stderr := mutate(t, in)
	if code != 0 || !strings.Contains(out, "track: canary") || !strings.Contains(out, "\nresults:\n") || !strings.Contains(out, "severity: info") {
		t.Errorf("exit %d, stdout:\n%s\nstderr: %s", code, out, stderr)
	}
	code, out, stderr = mutate(t, strings.Replace(in, "labelKey: track", "labelKey: not a key", 1))
	if code != 1 || !strings.Contains(out, "severity: error") || strings.Contains(out, "canaryMetadata") || !strings.Contains(stderr, "data.labelKey") {
		t.Errorf("invalid functionConfig: exit %d, stdout:\n%s\nstderr: %s", code, out, stderr)
	}
}

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

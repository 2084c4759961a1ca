package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

// noSignals fails the test if a command reaches the point of serving.
func noSignals(t *testing.T) func() context.Context {
	return func() context.Context {
		t.Fatal("serve got past flag validation")
		return nil
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, nil, &out, &errb, noSignals(t)); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if got := out.String(); !strings.Contains(got, "canary-tagger dev") || !strings.Contains(got, runtime.Version()) {
		t.Errorf("version output %q", got)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}} {
		var out, errb bytes.Buffer
		if code := run(args, nil, &out, &errb, noSignals(t)); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if !strings.Contains(errb.String(), "usage: canary-tagger") {
			t.Errorf("%q: no usage on stderr: %q", args, errb.String())
		}
	}
}

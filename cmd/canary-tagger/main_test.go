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

func TestVersionFlag(t *testing.T) {
	var cmdOut, flagOut bytes.Buffer
	run([]string{"version"}, nil, &cmdOut, &bytes.Buffer{}, noSignals(t))
	if code := run([]string{"--version"}, nil, &flagOut, &bytes.Buffer{}, noSignals(t)); code != 0 || flagOut.String() != cmdOut.String() {
		t.Errorf("--version: exit %d, %q; want 0 and what `version` prints, %q", code, flagOut.String(), cmdOut.String())
	}
}

// TestUsage: no command, or an unknown one, is bad usage (exit 2) and says
// so on stderr; help is asked for (exit 0, on stdout).
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"Usage:", "canary-tagger [command]", "serve", "mutate", "doctor"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "canary-tagger --help"}},
		{[]string{"--frobnicate"}, []string{"unknown flag: --frobnicate", "canary-tagger --help"}},
		{[]string{"version", "extra"}, []string{`unexpected argument "extra"`}},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, nil, &out, &errb, noSignals(t)); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("%q: stderr does not say %q: %q", tc.args, w, errb.String())
			}
		}
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		var out, errb bytes.Buffer
		if code := run(args, nil, &out, &errb, noSignals(t)); code != 0 || !strings.Contains(out.String(), "canary-tagger [command]") {
			t.Errorf("%q: exit %d, stdout %q; want 0 and the usage", args, code, out.String())
		}
	}
}

// TestCompletion: cobra's shell completion, including flag values.
func TestCompletion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"completion", "bash"}, nil, &out, &errb, noSignals(t)); code != 0 || !strings.Contains(out.String(), "__start_canary-tagger") {
		t.Errorf("completion bash: exit %d, %.200q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"__complete", "doctor", "-o", ""}, nil, &out, &errb, noSignals(t)); code != 0 || !strings.Contains(out.String(), "text\njson\n") {
		t.Errorf("doctor -o completion: exit %d, %q", code, out.String())
	}
}

// TestDoctorRefusesBadFlags: refused before any cluster is contacted.
func TestDoctorRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "yaml"}, `-o="yaml"`},
		{[]string{"--label-key=not a key"}, "--label-key"},
		{[]string{"--timeout=soon"}, "--timeout"},
		{[]string{"ns1"}, `unexpected argument "ns1"`},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"doctor", "--kubeconfig=/nonexistent"}, tc.args...), nil, &out, &errb, noSignals(t)); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %s", tc.args, code, errb.String(), tc.want)
		}
	}
}

package datadogagent_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/canary-tagger/canary-tagger/webhook/internal/obj"
	"github.com/canary-tagger/canary-tagger/webhook/internal/obj/objtest"
)

// FuzzMutate: on any JSON object the rule never panics, and what it returns
// holds run's properties (input untouched, add only, applies, idempotent).
func FuzzMutate(f *testing.F) {
	for _, c := range cases {
		if m, err := objtest.YAML(c.in); err == nil {
			f.Add(objtest.JSON(m))
		}
	}
	paths, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			if m, err := objtest.YAML(string(b)); err == nil {
				f.Add(objtest.JSON(m))
			}
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := obj.Decode(raw)
		if err != nil {
			return
		}
		run(t, in, defaults)
	})
}

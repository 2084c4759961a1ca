package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	begin = "<!-- begin admissionbench: written by the run, replaced by the next -->\n"
	end   = "<!-- end admissionbench -->\n"
)

// The run writes its own section of docs/benchmarks.md and nothing else:
// the title and make scale's section stay byte for byte.
func TestWriteSectionOfTheDoc(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/benchmarks.md")
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("docs/benchmarks.md has no admissionbench section (markers %q … %q)", begin, end)
	}
	before, section, after := string(doc[:i]), string(doc[i+len(begin):j]), string(doc[j+len(end):])
	if !strings.Contains(after, "<!-- begin scalebench") {
		t.Fatal("docs/benchmarks.md: no scalebench section after the admissionbench one")
	}
	// The section in the doc is the run's: its fixed text is markdown's.
	fixed := report{}.markdown("TABLE")
	intro, outro, _ := strings.Cut(fixed, "TABLE")
	if !strings.HasPrefix(section, intro) || !strings.HasSuffix(section, outro) {
		t.Errorf("docs/benchmarks.md's admissionbench section does not begin and end with the text markdown writes")
	}

	path := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	body := report{}.markdown("| a new table |\n")
	if err := writeSection(path, body); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := before + begin + body + end + after; string(got) != want {
		t.Errorf("after writeSection: the rest of the file changed, or the section is not the body\n%s", got)
	}
}

// A file without the section (e.g. only make scale's) gets it appended.
func TestWriteSectionAppends(t *testing.T) {
	scale := "# Benchmarks\n\n<!-- begin scalebench: written by the run, replaced by the next -->\n## Scale\n<!-- end scalebench -->\n"
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := os.WriteFile(path, []byte(scale), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, "## Latest run\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := scale + "\n" + begin + "## Latest run\n" + end; string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

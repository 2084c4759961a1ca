package pinned

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	repo := t.TempDir()
	dir := filepath.Join(repo, "test", "tools", "argo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod := `module example.com/tools

go 1.26.10

toolchain go1.27.3

require (
	github.com/argoproj/argo-rollouts-extra v1.99.0
	github.com/argoproj/argo-rollouts v1.10.2
)

require github.com/other/mod v0.1.0 // indirect
`
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	v, tc, err := ArgoRollouts.Version(repo)
	if err != nil || v != "v1.10.2" || tc != "go1.27.3" {
		t.Errorf("Version = %q, %q, %v; want v1.10.2, go1.27.3", v, tc, err)
	}
	other := Module{Path: "github.com/other/mod", GoMod: ArgoRollouts.GoMod}
	if v, _, err := other.Version(repo); err != nil || v != "v0.1.0" {
		t.Errorf("single-line require: %q, %v", v, err)
	}
	absent := Module{Path: "github.com/absent/mod", GoMod: ArgoRollouts.GoMod}
	if _, _, err := absent.Version(repo); err == nil {
		t.Error("no error for a module that is not required")
	}
}

// The repository pins every module the tests read CRDs from.
func TestRepoPinsEveryModule(t *testing.T) {
	repo, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range All {
		if v, _, err := m.Version(repo); err != nil || !strings.HasPrefix(v, "v") {
			t.Errorf("%s in %s: %q, %v", m.Path, m.GoMod, v, err)
		}
	}
}

func TestDirVarReplacesTheLookup(t *testing.T) {
	dir := t.TempDir()
	m := Module{Path: "example.com/absent", GoMod: "no/such/go.mod", DirVar: "PINNED_TEST_DIR", CRDs: "crds/*.yaml"}
	t.Setenv(m.DirVar, dir)
	if _, err := m.CRDFiles(t.Context(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "no crds/*.yaml under "+dir) {
		t.Errorf("CRDFiles of an empty directory: %v, want an error naming the glob and the directory", err)
	}
	crd := filepath.Join(dir, "crds", "a.yaml")
	if err := os.MkdirAll(filepath.Dir(crd), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if files, err := m.CRDFiles(t.Context(), t.TempDir()); err != nil || len(files) != 1 || files[0] != crd {
		t.Errorf("CRDFiles = %v, %v; want [%s]", files, err, crd)
	}
}

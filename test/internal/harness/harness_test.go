package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPinnedVersion(t *testing.T) {
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
	v, tc, err := PinnedVersion(repo, "argo", ArgoRolloutsModule)
	if err != nil || v != "v1.10.2" || tc != "go1.27.3" {
		t.Errorf("PinnedVersion = %q, %q, %v; want v1.10.2, go1.27.3", v, tc, err)
	}
	if v, _, err := PinnedVersion(repo, "argo", "github.com/other/mod"); err != nil || v != "v0.1.0" {
		t.Errorf("single-line require: %q, %v", v, err)
	}
	if _, _, err := PinnedVersion(repo, "argo", "github.com/absent/mod"); err == nil {
		t.Error("no error for a module that is not required")
	}
}

// The repository's own tools module pins Argo Rollouts.
func TestRepoPinsArgoRollouts(t *testing.T) {
	repo, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := PinnedVersion(repo, "argo", ArgoRolloutsModule)
	if err != nil || !strings.HasPrefix(v, "v1.") {
		t.Errorf("PinnedVersion(argo-rollouts) = %q, %v", v, err)
	}
}

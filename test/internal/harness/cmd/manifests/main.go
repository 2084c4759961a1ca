// Command manifests writes manifests/<entry point>/ from the Helm chart in
// charts/canary-tagger (`make manifests`): the chart is the one source of the
// install's objects, and the kustomize entry points are its renders.
package main

import (
	"fmt"
	"os"

	"github.com/canary-tagger/canary-tagger/test/internal/harness"
)

func main() {
	repo, err := harness.RepoRoot()
	if err == nil {
		var paths []string
		if paths, err = harness.WriteManifestFiles(repo, harness.ManifestsKubeVersion); err == nil {
			for _, p := range paths {
				fmt.Println("wrote", p)
			}
			return
		}
	}
	fmt.Fprintln(os.Stderr, "manifests:", err)
	os.Exit(1)
}

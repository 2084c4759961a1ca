// Command crd-dirs prints NAME=DIR for every pinned module whose CRDs the
// tests read (the variable that overrides its lookup, and the directory the
// tests use): `hack/tools.sh crd-dirs` runs it with the repository's root.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/canary-tagger/canary-tagger/test/internal/pinned"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: crd-dirs REPOSITORY-ROOT")
		os.Exit(2)
	}
	for _, m := range pinned.All {
		dir, err := m.Dir(context.Background(), os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "crd-dirs:", err)
			os.Exit(1)
		}
		fmt.Printf("%s=%s\n", m.DirVar, dir)
	}
}

// Command image builds canary-tagger's container image without a container
// engine: one layer holding the static binary (plus /etc/passwd and
// /etc/group naming the non-root user) on an empty base, written as a
// tarball that `docker load`, `kind load image-archive` and `crane push`
// read, and optionally as an OCI image layout directory.
//
// It lives in its own module so that go-containerregistry stays out of the
// root module's go.mod.
//
//	go run . --binary ../../bin/image/canary-tagger-linux-amd64 --tag canary-tagger:v1 --out ../../bin/canary-tagger-image.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	var o Options
	var created string
	flag.StringVar(&o.Binary, "binary", "", "statically linked linux canary-tagger binary (CGO_ENABLED=0)")
	flag.StringVar(&o.Tag, "tag", "canary-tagger:dev", "image reference written into the tarball (what `docker load` names it)")
	flag.StringVar(&o.Out, "out", "", "docker-loadable image tarball to write")
	flag.StringVar(&o.Layout, "oci-layout", "", "also write an OCI image layout directory here (optional)")
	flag.StringVar(&o.Arch, "arch", "", "image architecture (default: the binary's, read from its ELF header)")
	flag.StringVar(&created, "created", "", "image creation time, RFC 3339 (default: SOURCE_DATE_EPOCH, else 1970-01-01: reproducible)")
	flag.Parse()
	if o.Binary == "" || o.Out == "" {
		fmt.Fprintln(os.Stderr, "image: --binary and --out are required")
		flag.Usage()
		os.Exit(2)
	}
	var err error
	if o.Created, err = creationTime(created, os.Getenv("SOURCE_DATE_EPOCH")); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(2)
	}
	info, err := Build(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("image: %s (%s/%s, id %s, manifest %s) → %s", info.Tag, info.OS, info.Arch, info.ID, info.Digest, o.Out)
	if o.Layout != "" {
		fmt.Printf(", %s", o.Layout)
	}
	fmt.Println()
}

func creationTime(flagValue, sourceDateEpoch string) (time.Time, error) {
	switch {
	case flagValue != "":
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("--created=%q: %v", flagValue, err)
		}
		return t.UTC(), nil
	case strings.TrimSpace(sourceDateEpoch) != "":
		var sec int64
		if _, err := fmt.Sscan(sourceDateEpoch, &sec); err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", sourceDateEpoch)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}

package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const testVersion = "v0.0.0-imagetest"

// buildCanaryTagger builds the repository's binary as `make image` does:
// static, for linux on this machine's architecture, with a known version.
func buildCanaryTagger(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "canary-tagger")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+testVersion, "-o", out, "./cmd/canary-tagger")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/canary-tagger: %v\n%s", err, b)
	}
	return out
}

// TestImageTarball builds the image tarball and reads it back the way a
// runtime would: the tag, the config (entrypoint, user, platform), the one
// layer's files (no shell), and the binary from the layer running `version`.
func TestImageTarball(t *testing.T) {
	bin := buildCanaryTagger(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "canary-tagger-image.tar")
	oci := filepath.Join(dir, "oci")
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	info, err := Build(Options{Binary: bin, Tag: "canary-tagger:" + testVersion, Out: out, Layout: oci, Created: created})
	if err != nil {
		t.Fatal(err)
	}

	tag, err := name.NewTag("canary-tagger:" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("reading %s back under tag %s: %v", out, tag, err)
	}
	id, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if id != info.ID {
		t.Errorf("image ID read back %s, Build reported %s", id, info.ID)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/canary-tagger"}; !reflect.DeepEqual(cf.Config.Entrypoint, want) {
		t.Errorf("Entrypoint = %q, want %q", cf.Config.Entrypoint, want)
	}
	if want := []string{"serve"}; !reflect.DeepEqual(cf.Config.Cmd, want) {
		t.Errorf("Cmd = %q, want %q", cf.Config.Cmd, want)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532 (non-root, as the Deployment's runAsUser)", cf.Config.User)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !cf.Created.Time.Equal(created) {
		t.Errorf("created %s, want %s", cf.Created.Time, created)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1 (no base image)", len(layers))
	}
	files, binary := readLayer(t, layers[0])
	wantFiles := []string{"canary-tagger", "etc/", "etc/group", "etc/passwd", "home/", "home/nonroot/"}
	if !reflect.DeepEqual(files, wantFiles) {
		t.Errorf("layer holds %q, want exactly %q", files, wantFiles)
	}
	for _, f := range files {
		if base := filepath.Base(strings.TrimSuffix(f, "/")); base == "sh" || base == "bash" || base == "ash" || base == "busybox" {
			t.Errorf("layer holds a shell: %s", f)
		}
	}

	// The binary taken out of the layer runs: it is static and complete.
	exe := filepath.Join(t.TempDir(), "canary-tagger")
	if err := os.WriteFile(exe, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(exe, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", exe, err, got)
	}
	if !strings.HasPrefix(string(got), "canary-tagger "+testVersion+" ") || !strings.Contains(string(got), "linux/"+runtime.GOARCH) {
		t.Errorf("version printed %q, want canary-tagger %s (… linux/%s)", got, testVersion, runtime.GOARCH)
	}

	// The OCI layout holds the same image under its tag.
	idx, err := layout.ImageIndexFromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != info.Digest || m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != testVersion {
		t.Errorf("OCI layout index %+v, want one manifest %s named %s", m.Manifests, info.Digest, testVersion)
	}
}

// TestImageRefusesDynamicBinary: a binary that needs a dynamic loader cannot
// start on an empty base, so the build stops instead of writing an image.
func TestImageRefusesDynamicBinary(t *testing.T) {
	dynamic := ""
	for _, p := range []string{"/bin/ls", "/usr/bin/env", "/bin/sh"} {
		if _, err := os.Stat(p); err == nil {
			dynamic = p
			break
		}
	}
	if dynamic == "" {
		t.Fatal("no system binary to use as a dynamically linked one")
	}
	if _, err := staticLinuxArch(dynamic); err == nil {
		t.Fatalf("%s accepted; want it refused as dynamically linked (is it static on this system?)", dynamic)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	_, err := Build(Options{Binary: dynamic, Tag: "canary-tagger:x", Out: out})
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("Build(%s) error = %v, want one saying to build with CGO_ENABLED=0", dynamic, err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s written for a dynamic binary (stat: %v)", out, err)
	}
}

// readLayer lists the layer's entries (sorted) and returns the binary's bytes.
func readLayer(t *testing.T, l v1.Layer) ([]string, []byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	var binary []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "canary-tagger" {
			if h.Mode&0o111 == 0 || h.Uid != 0 {
				t.Errorf("canary-tagger mode %o uid %d, want executable and owned by root (the user cannot rewrite it)", h.Mode, h.Uid)
			}
			if binary, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	sort.Strings(names)
	if binary == nil {
		t.Fatal("no canary-tagger in the layer")
	}
	return names, binary
}

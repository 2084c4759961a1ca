package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed facts: the manifests (charts/canary-tagger/templates/deployment.yaml)
// run it as this user with a read-only root filesystem, and nothing in it is
// written at run time.
const (
	BinaryPath = "/canary-tagger"
	UID        = 65532
	User       = "65532:65532"
	UserName   = "nonroot"
)

// Entrypoint and Cmd: `docker run IMAGE` serves; `docker run IMAGE version` prints the version.
var (
	Entrypoint = []string{BinaryPath}
	Cmd        = []string{"serve"}
)

// Options say what to build and where to write it.
type Options struct {
	Binary  string // static linux binary
	Tag     string // e.g. canary-tagger:v1.2.3
	Out     string // docker-loadable tarball
	Layout  string // OCI image layout directory (optional)
	Arch    string // default: from the binary
	Created time.Time
}

// Info describes the image written.
type Info struct {
	Tag      string
	OS, Arch string
	// Digest is the OCI manifest's (the layout's, and a registry's after
	// `crane push`); ID is the config's digest, which `docker images`
	// shows as IMAGE ID. A docker tarball stores no manifest, so a reader
	// of it computes a manifest digest of its own.
	Digest, ID v1.Hash
}

// Build writes the image of o.Binary to o.Out (and o.Layout).
func Build(o Options) (Info, error) {
	arch, err := staticLinuxArch(o.Binary)
	if err != nil {
		return Info{}, err
	}
	if o.Arch != "" && o.Arch != arch {
		return Info{}, fmt.Errorf("--arch=%s but %s is a linux/%s binary", o.Arch, o.Binary, arch)
	}
	ref, err := name.NewTag(o.Tag)
	if err != nil {
		return Info{}, fmt.Errorf("--tag=%q: %v", o.Tag, err)
	}
	img, err := Image(o.Binary, arch, o.Created)
	if err != nil {
		return Info{}, err
	}
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
		return Info{}, err
	}
	if err := tarball.WriteToFile(o.Out, ref, img); err != nil {
		return Info{}, fmt.Errorf("writing %s: %w", o.Out, err)
	}
	if o.Layout != "" {
		if err := writeLayout(o.Layout, ref, img); err != nil {
			return Info{}, err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return Info{}, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return Info{}, err
	}
	return Info{Tag: ref.String(), OS: "linux", Arch: arch, Digest: digest, ID: id}, nil
}

// Image is the binary in one layer on an empty base, with the config the
// Dockerfile gives it.
func Image(binaryPath, arch string, created time.Time) (v1.Image, error) {
	data, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(data, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "hack/image: " + BinaryPath + " (static, CGO_ENABLED=0)",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: created}
	cf.Config.Entrypoint = Entrypoint
	cf.Config.Cmd = Cmd
	cf.Config.User = User
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":  "canary-tagger",
		"org.opencontainers.image.source": "https://github.com/canary-tagger/canary-tagger",
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the layer: the binary (root-owned, executable by anyone: the
// user cannot rewrite it) and the passwd/group entries that give 65532 a
// name and a home. No shell, no package manager, no writable directory.
func rootfs(exe []byte, mtime time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", UserName, UID, UID, UserName, UserName)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", UserName, UID)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		hdr  tar.Header
		data []byte
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, []byte(group)},
		{tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, []byte(passwd)},
		{tar.Header{Typeflag: tar.TypeDir, Name: "home/", Mode: 0o755}, nil},
		{tar.Header{Typeflag: tar.TypeDir, Name: "home/" + UserName + "/", Mode: 0o700, Uid: UID, Gid: UID}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: BinaryPath[1:], Mode: 0o755}, exe},
	}
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.data))
		h.ModTime = mtime
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// staticLinuxArch returns the GOARCH of a linux ELF executable and refuses
// one that needs a dynamic loader: on an empty base it could not start.
func staticLinuxArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: not an ELF executable (build with GOOS=linux): %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked (it asks for a program interpreter); build it with CGO_ENABLED=0", path)
		}
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return "", fmt.Errorf("%s: ELF OS ABI %s, want linux", path, f.OSABI)
	}
	arch, ok := map[elf.Machine]string{
		elf.EM_X86_64:  "amd64",
		elf.EM_AARCH64: "arm64",
		elf.EM_386:     "386",
		elf.EM_ARM:     "arm",
		elf.EM_PPC64:   "ppc64le",
		elf.EM_S390:    "s390x",
		elf.EM_RISCV:   "riscv64",
	}[f.Machine]
	if f.Machine == elf.EM_PPC64 && f.ByteOrder != binary.LittleEndian {
		arch = "ppc64"
	}
	if !ok {
		return "", fmt.Errorf("%s: ELF machine %s has no image architecture here", path, f.Machine)
	}
	return arch, nil
}

// writeLayout writes an OCI image layout with the image under its tag (the
// org.opencontainers.image.ref.name annotation), replacing an older one.
func writeLayout(dir string, ref name.Tag, img v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing %s: %w", dir, err)
	}
	err = p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.TagStr(),
		"io.containerd.image.name":          ref.String(),
	}))
	if err != nil {
		return errors.Join(fmt.Errorf("writing %s", dir), err)
	}
	return nil
}

package certs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// smWriteDir publishes files in dir the way the kubelet publishes a Secret
// volume: the content goes into a fresh hidden directory, a "..data" symlink
// is switched to it with one rename, and each name is a symlink through
// "..data". controller-runtime's certwatcher therefore never reads a
// certificate from one generation with the key of another.
//
// It returns false when the files already hold this content.
func smWriteDir(dir string, files map[string][]byte) (bool, error) {
	same := true
	for name, content := range files {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(b, content) {
			same = false
			break
		}
	}
	if same {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	gen, err := os.MkdirTemp(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(gen, name), content, 0o600); err != nil {
			_ = os.RemoveAll(gen)
			return false, err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))

	// ..data -> ..<generation>, switched atomically.
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(gen), tmpLink); err != nil {
		_ = os.RemoveAll(gen)
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
		_ = os.RemoveAll(gen)
		return false, err
	}
	// name -> ..data/name (a no-op after the first generation).
	for name := range files {
		target := filepath.Join("..data", name)
		p := filepath.Join(dir, name)
		if t, err := os.Readlink(p); err == nil && t == target {
			continue
		}
		tmp := p + ".tmp"
		_ = os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return false, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return false, fmt.Errorf("publish %s: %w", name, err)
		}
	}
	// Removing the previous generation is what the file watchers see (the
	// watched inodes go away); they re-add their watches and read the new files.
	if old != "" && old != filepath.Base(gen) && strings.HasPrefix(old, "..") {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return true, nil
}

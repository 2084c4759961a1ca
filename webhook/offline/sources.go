package offline

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Read collects the inputs named by -f, in order: "-" is stdin (once), a
// directory stands for its *.yaml, *.yml and *.json files in lexical order
// (with recursive, those of its subdirectories too; filepath.WalkDir order), anything
// else is a file. No names means stdin. Any unreadable file is an error.
func Read(names []string, recursive bool, stdin io.Reader) ([]Input, error) {
	if len(names) == 0 {
		names = []string{"-"}
	}
	var inputs []Input
	stdinRead := false
	for _, name := range names {
		if name == "-" {
			if stdinRead {
				return nil, fmt.Errorf("-f -: stdin can be read only once")
			}
			stdinRead = true
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			inputs = append(inputs, Input{Name: "stdin", Data: data})
			continue
		}
		files, err := expand(name, recursive)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			inputs = append(inputs, Input{Name: f, Data: data})
		}
	}
	return inputs, nil
}

func expand(name string, recursive bool) ([]string, error) {
	info, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{name}, nil
	}
	var files []string
	err = filepath.WalkDir(name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != name && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no *.yaml, *.yml or *.json files in this directory", name)
	}
	return files, nil
}

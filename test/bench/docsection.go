package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// WriteSection replaces, in the Markdown file path, the part between the
// comment lines that mark section name with body, or appends the marked
// section if the file has none (or does not exist). The rest of the file is
// left as it is, so several benchmarks can each own a part of one document.
func WriteSection(path, name, body string) error {
	begin := fmt.Sprintf("<!-- begin %s: written by the run, replaced by the next -->\n", name)
	end := fmt.Sprintf("<!-- end %s -->\n", name)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	doc := string(old)
	section := begin + strings.TrimRight(body, "\n") + "\n" + end
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	switch {
	case i >= 0 && j > i:
		doc = doc[:i] + section + doc[j+len(end):]
	case i >= 0 || j >= 0:
		return fmt.Errorf("%s: section %s is marked at one end only; fix the file by hand", path, name)
	default:
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			doc = strings.TrimRight(doc, "\n") + "\n\n"
		}
		doc += section
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteSection(t *testing.T) {
	begin := "<!-- begin s: written by the run, replaced by the next -->\n"
	end := "<!-- end s -->\n"
	// another run's section
	other := func(name string) string {
		return "<!-- begin " + name + ": written by the run, replaced by the next -->\n## " + name + "\n<!-- end " + name + " -->\n"
	}
	for _, c := range []struct {
		name, before, body, want, err string
	}{
		{name: "no file", before: "\x00", body: "one\n", want: begin + "one\n" + end},
		{name: "appended after the rest", before: "# Benchmarks\n\ntext\n", body: "one",
			want: "# Benchmarks\n\ntext\n\n" + begin + "one\n" + end},
		{name: "replaced in place, the rest kept", before: "# B\n\n" + begin + "old\nlines\n" + end + "\n## after\n", body: "new\n",
			want: "# B\n\n" + begin + "new\n" + end + "\n## after\n"},
		{name: "replaced between two others, kept byte for byte", before: "# B\n\n" + other("a") + begin + "old\n" + end + "\n" + other("z"), body: "new",
			want: "# B\n\n" + other("a") + begin + "new\n" + end + "\n" + other("z")},
		{name: "missing, appended after the others", before: "# B\n\n" + other("z"), body: "new",
			want: "# B\n\n" + other("z") + "\n" + begin + "new\n" + end},
		{name: "one marker only", before: "# B\n" + begin + "old\n", body: "new", err: "marked at one end only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b.md")
			if c.before != "\x00" {
				if err := os.WriteFile(path, []byte(c.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := WriteSection(path, "s", c.body)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				if got, _ := os.ReadFile(path); string(got) != c.before {
					t.Errorf("file changed on error:\n%s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
			}
			// A second run with the same body changes nothing.
			if err := WriteSection(path, "s", c.body); err != nil {
				t.Fatal(err)
			}
			if again, _ := os.ReadFile(path); string(again) != c.want {
				t.Errorf("second write:\n%s", again)
			}
		})
	}
}

package offline

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// Command is one run of `canary-tagger mutate`, as its flags say.
type Command struct {
	// Files are the -f names: files, directories, "-" for stdin; none
	// means stdin.
	Files []string
	// Recursive (-R) also reads the subdirectories of a directory.
	Recursive bool
	// Check (--check) writes nothing and lists what would change.
	Check bool
	// Write (-w) writes changed files in place instead of the stream.
	Write    bool
	Settings config.Flags
}

// Run runs the command and returns its exit code: 0 done, 1 --check found
// changes or a KRM function's settings are invalid, 2 error.
//
// With -R or -w every file stands alone: one that does not parse is named
// and left out, the others are processed (and written), and the exit code
// is 2 at the end. Otherwise the stream is one: an unparsable document
// anywhere means nothing is written (contract 7).
func (c Command) Run(stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "canary-tagger mutate: %s\n", line)
		}
		return 2
	}
	switch {
	case c.Write && c.Check:
		return fail(fmt.Errorf("-w and --check: -w writes the files, --check writes nothing; use one"))
	case c.Write && (len(c.Files) == 0 || slices.Contains(c.Files, "-")):
		return fail(fmt.Errorf("-w writes files in place: name them with -f (stdin has no file to write back)"))
	}
	rules, err := c.Settings.Validate()
	if err != nil {
		return fail(err)
	}
	inputs, err := Read(c.Files, c.Recursive, stdin)
	if err != nil {
		return fail(err)
	}
	opts := Options{Rollout: rules.Rollout, AgentPod: rules.AgentPod}
	if !c.Check {
		if call := resourceList(c, inputs); call != nil {
			return c.function(call, stdout, stderr)
		}
	}
	if c.Recursive || c.Write {
		return c.each(inputs, opts, stdout, stderr)
	}
	// Everything is read, parsed and mutated before a byte is written, so an
	// error in the last document leaves stdout empty (contract 7).
	res, err := Process(inputs, opts)
	if err != nil {
		return fail(err)
	}
	res.printNotes(stderr)
	if c.Check {
		return res.reportCheck(stderr)
	}
	if _, err := res.WriteTo(stdout); err != nil {
		return fail(fmt.Errorf("writing the output: %w", err))
	}
	return 0
}

// each is Run for files that stand alone (-R, -w).
func (c Command) each(inputs []Input, opts Options, stdout, stderr io.Writer) int {
	res := ProcessEach(inputs, opts)
	res.printNotes(stderr)
	code := 0
	switch {
	case c.Check:
		code = res.reportCheck(stderr)
	case c.Write:
		for _, f := range res.Files() {
			if f.Changed == 0 {
				continue // untouched, byte for byte and mtime
			}
			if err := WriteFile(f.Name, f.Data); err != nil {
				fmt.Fprintf(stderr, "canary-tagger mutate: writing %s: %v\n", f.Name, err)
				code = 2
			}
		}
	default:
		if _, err := res.WriteTo(stdout); err != nil {
			fmt.Fprintf(stderr, "canary-tagger mutate: writing the output: %v\n", err)
			code = 2
		}
	}
	if len(res.Failed) > 0 {
		files := map[string]bool{}
		for _, err := range res.Failed {
			fmt.Fprintf(stderr, "canary-tagger mutate: %v\n", err)
			files[err.Source] = true
		}
		what := "left out of the output"
		switch {
		case c.Check:
			what = "not checked"
		case c.Write:
			what = "not written"
		}
		fmt.Fprintf(stderr, "canary-tagger mutate: %d %s %s, as %s not parse\n", len(files), plural(len(files), "file"), what,
			map[bool]string{true: "it does", false: "they do"}[len(files) == 1])
		code = 2
	}
	return code
}

func (r *Result) printNotes(stderr io.Writer) {
	for _, n := range r.Notes {
		fmt.Fprintln(stderr, n)
	}
}

// reportCheck is --check's report: each file that would change, one a line,
// then the count; exit 1 if any.
func (r *Result) reportCheck(stderr io.Writer) int {
	n := r.Changed()
	if n == 0 {
		return 0
	}
	for _, f := range r.Files() {
		if f.Changed > 0 {
			fmt.Fprintf(stderr, "%s: %d of %d %s would change\n", f.Name, f.Changed, f.Docs, plural(f.Docs, "document"))
		}
	}
	fmt.Fprintf(stderr, "canary-tagger mutate --check: %d of %d documents would change\n", n, len(r.Docs))
	return 1
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

package harness

import (
	"flag"
	"io"

	"github.com/canary-tagger/canary-tagger/webhook/config"
)

// ServeRules returns the rules `serve` builds from args, the flags it shares
// with `mutate` (e.g. "--blue-green"): parsed by the flag definitions the
// command registers and validated as it validates them. With no args, the
// defaults (contract 1).
func ServeRules(args ...string) (config.Rules, error) {
	var flags config.Flags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error says it
	flags.Register(fs)
	if err := fs.Parse(args); err != nil {
		return config.Rules{}, err
	}
	return flags.Validate()
}

package main

import (
	"errors"
	"flag"
)

// parseMixed parses args allowing flags after positional arguments
// ("report BATCH --out x.csv"), and returns the positional arguments. Like
// parse, it returns an exit code and false when the command must not go on.
// Everything after "--" is positional.
func (f *flags) parseMixed(args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		rest := f.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

package admincli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// ExitError carries a process exit code out of a cobra RunE: the binary's
// main prints Msg (when not empty) as its last line and exits with Code.
// The codes are part of the CLI's contract (docs/cli.md): scripts and the
// image's HEALTHCHECK branch on them.
type ExitError struct {
	Code int
	Msg  string
}

func (e ExitError) Error() string { return e.Msg }

// ApplyEnv reads WIMMS_<FLAG> for every flag of fs not given on the
// command line. It is the rule every subcommand of the binary follows, the
// server's included.
func ApplyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			return
		}
		name := "WIMMS_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

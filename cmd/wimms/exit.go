package main

import (
	"errors"
	"fmt"

	"github.com/wimms-dev/wimms/cmd/internal/admincli"
)

// exitError carries a process exit code out of a cobra RunE (jepsen: 0
// valid, 1 invalid, 2 could not run; health: 1 unhealthy). The commands
// of cmd/internal/admincli return admincli.ExitError, which main treats
// the same way.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func asExit(err error, target *exitError) bool {
	if errors.As(err, target) {
		return true
	}
	var ae admincli.ExitError
	if errors.As(err, &ae) {
		*target = exitError{code: ae.Code, msg: ae.Msg}
		return true
	}
	return false
}

// The exit codes every client command shares (admincli, docs/cli.md).
const (
	exitAPIError    = admincli.ExitAPIError
	exitUsage       = admincli.ExitUsage
	exitUnreachable = admincli.ExitUnreachable
)

// usageErrorf is bad input found before anything was sent (exit 2).
func usageErrorf(format string, args ...any) error {
	return exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// envFirst is a command's RunE that reads WIMMS_<FLAG> for every flag not
// given before running body (admincli.EnvFirst).
var envFirst = admincli.EnvFirst

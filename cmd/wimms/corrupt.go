package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/wimms-dev/wimms/store"
)

// exitCorrupt is the exit status of a member that found its own data
// damaged: distinct from 1 and 2 so a supervisor (or an operator reading
// `systemctl status`) can tell "replace this member" from a crash.
const exitCorrupt = 3

// openStoreError turns store.Open's error into the process's last words:
// damaged data is one line naming the directory and what to do.
func openStoreError(err error) error {
	if errors.Is(err, store.ErrCorrupt) {
		return exitError{code: exitCorrupt, msg: err.Error()}
	}
	if errors.Is(err, store.ErrWrongIdentity) {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	return fmt.Errorf("opening store: %w", err)
}

// exitOnCorruption stops a running member whose log fails a read-back check
// (the store has logged the one-line cause): raft would otherwise panic on
// the unreadable entry.
func exitOnCorruption(err error) {
	fmt.Fprintln(os.Stderr, "wimms:", err)
	os.Exit(exitCorrupt)
}

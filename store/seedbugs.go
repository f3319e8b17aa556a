//go:build !chaos

package store

import (
	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
)

// The seeded bugs exist only in a chaos build (seedbugs_chaos.go). Here
// their switches are constants, so the write and read paths compile to the
// correct code alone.
const (
	staleLinearizableRead = false
	ackBeforeCommit       = false
	// dropTailOnOpen: entries a restarted member drops from its log.
	dropTailOnOpen uint64 = 0
)

// dropTail is never called: dropTailOnOpen is 0.
func dropTail(*raftStorage, uint64, hclog.Logger) error {
	panic("store: seeded bugs exist only in chaos builds")
}

// applyBeforeCommit is never called: ackBeforeCommit is false.
func (s *Store) applyBeforeCommit(fsm.Command) (fsm.Result, Meta, error) {
	panic("store: seeded bugs exist only in chaos builds")
}

//go:build chaos

package store

import (
	"context"
	"fmt"

	"github.com/wimms-dev/wimms/fsm"
)

// SeedBugs are deliberate consistency bugs. They exist only in a chaos
// build (go build -tags chaos), so that the chaos harness can prove that
// its checker fails.
type SeedBugs struct {
	// StaleLinearizableRead: linearizable reads are served from local
	// state, without ReadIndex.
	StaleLinearizableRead bool
	// AckBeforeCommit: the leader answers a write from a dry run on a copy
	// of its state and does not wait for the entry to commit.
	AckBeforeCommit bool
}

var staleLinearizableRead, ackBeforeCommit bool

// SetSeedBugs switches seeded bugs on or off for every store of the
// process. Call it before Open (switching while a store serves is a data
// race).
func SetSeedBugs(b SeedBugs) {
	staleLinearizableRead, ackBeforeCommit = b.StaleLinearizableRead, b.AckBeforeCommit
}

// forkable is a machine that can copy its current state privately.
type forkable interface {
	fork() machine
}

func (m fsmMachine) fork() machine { return fsmMachine{m.f.Fork()} }

// applyBeforeCommit is the seeded AckBeforeCommit bug: the answer comes from
// a dry run on a copy of the state, the entry is submitted, and nobody waits
// for it to commit. A leader that is partitioned away acknowledges writes
// that are then lost.
func (s *Store) applyBeforeCommit(cmd fsm.Command) (fsm.Result, Meta, error) {
	op := opName(cmd.Op)
	if !s.IsLeader() {
		return fsm.Result{}, s.Meta(), s.notLeader("apply " + op)
	}
	m, ok := s.machine.(forkable)
	if !ok {
		return fsm.Result{}, s.Meta(), fmt.Errorf("apply %s (ack-before-commit): %T cannot copy its state", op, s.machine)
	}
	res := m.fork().Apply(cmd)
	f := s.raft.Apply(s.codec.encode(cmd), s.cfg.ApplyTimeout)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.waitFuture(context.Background(), f, s.cfg.ApplyTimeout); err != nil {
			s.logger.Warn("seeded bug: acknowledged write did not commit", "op", op, "error", err)
		}
	}()
	return res, s.Meta(), nil
}

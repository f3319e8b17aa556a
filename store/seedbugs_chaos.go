//go:build chaos

package store

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

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
	// DropTailOnOpen: a member restarted on its data silently drops this
	// many entries from the end of its log (never below its newest
	// snapshot), as raft-wal does with a damaged tail segment.
	DropTailOnOpen uint64
}

var (
	staleLinearizableRead, ackBeforeCommit bool
	dropTailOnOpen                         uint64
)

// SetSeedBugs switches seeded bugs on or off for every store of the
// process. Call it before Open (switching while a store serves is a data
// race).
func SetSeedBugs(b SeedBugs) {
	staleLinearizableRead, ackBeforeCommit = b.StaleLinearizableRead, b.AckBeforeCommit
	dropTailOnOpen = b.DropTailOnOpen
}

// dropTail is the seeded DropTailOnOpen bug: the last n entries of the log
// go, without a word above Warn, before raft starts on it. A whole-cluster
// restart then elects from logs that lack acknowledged writes.
func dropTail(st *raftStorage, n uint64, logger hclog.Logger) error {
	last, err := st.durable.LastIndex()
	if err != nil {
		return fmt.Errorf("seeded bug drop-tail-on-open: %w", err)
	}
	floor, err := st.durable.FirstIndex()
	if err != nil {
		return fmt.Errorf("seeded bug drop-tail-on-open: %w", err)
	}
	// raft-wal refuses a gap: never below the newest snapshot.
	if snaps, err := st.snaps.List(); err == nil && len(snaps) > 0 {
		floor = max(floor, snaps[0].Index+1)
	}
	if last < floor+n {
		return nil
	}
	if err := st.durable.DeleteRange(last-n+1, last); err != nil {
		return fmt.Errorf("seeded bug drop-tail-on-open: %w", err)
	}
	logger.Warn("seeded bug: dropped the end of the log", "from", last-n+1, "to", last)
	return nil
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

package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
)

// LeaderCh delivers this member's leadership: true on gaining it, false on
// losing it. It is raft's own channel (buffered, the newest value replaces
// an unread one), so a slow reader never misses the current state; two
// trues in a row mean leadership was lost and regained. Exactly one reader
// may consume it: the leader loop of the layer above (cluster).
func (s *Store) LeaderCh() <-chan bool { return s.raft.LeaderCh() }

// watchObservations turns raft's leader observations into a broadcast that
// WaitForLeader and the read path block on.
func (s *Store) watchObservations(obsCh <-chan raft.Observation) {
	defer s.wg.Done()
	for {
		select {
		case o := <-obsCh:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				s.logger.Info("leader changed", "leader", lo.LeaderID, "term", s.raft.CurrentTerm())
			}
			next := make(chan struct{})
			close(*s.leaderCh.Swap(&next))
		case <-s.stopCh:
			return
		}
	}
}

// leaderChanged returns a channel closed at the next leader change. Load it
// before checking the condition you wait for.
func (s *Store) leaderChanged() <-chan struct{} { return *s.leaderCh.Load() }

// WaitForLeader blocks until this member knows a leader.
func (s *Store) WaitForLeader(ctx context.Context) error {
	for {
		changed := s.leaderChanged()
		if id, _ := s.Leader(); id != "" {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for a leader: %w: %w", ErrNoLeader, ctx.Err())
		case <-s.stopCh:
			return fmt.Errorf("waiting for a leader: %w", ErrShutdown)
		}
	}
}

// EstablishLeadership makes this member's term of leadership usable for
// reads: unless an entry of the current term is applied here already, it
// commits a no-op command of the term and waits until it is applied. Only
// then are the entries earlier leaders committed known to be committed and
// applied here (Raft §5.4.2, §8), which the read paths check through
// appliedTerm. The leader loop calls it first thing on gaining leadership;
// the read paths call it too, so a store without a leader loop (tests,
// tools) still answers. Errors: ErrNotLeader, ErrShutdown, or the no-op's
// failure (the caller decides whether to retry).
//
// The no-op is an fsm command rather than raft.Barrier(): raft keeps barrier
// entries from the FSM, so the applied index the adapter tracks would stop
// short of the barrier and WaitApplied on the commit index could hang.
func (s *Store) EstablishLeadership(ctx context.Context) error {
	// One no-op at a time: concurrent callers wait for it and then find
	// the term applied.
	select {
	case s.establishing <- struct{}{}:
		defer func() { <-s.establishing }()
	case <-ctx.Done():
		return fmt.Errorf("establish leadership: %w", ctx.Err())
	case <-s.stopCh:
		return fmt.Errorf("establish leadership: %w", ErrShutdown)
	}
	for {
		if s.raft.State() != raft.Leader {
			return s.notLeader("establish leadership")
		}
		term := s.raft.CurrentTerm()
		if s.adapter.appliedTerm.Load() >= term {
			return nil
		}
		_, meta, err := s.propose(ctx, fsm.Command{Op: fsm.OpNoop, TS: s.cfg.Now().UnixMilli()})
		if err != nil {
			return fmt.Errorf("establish leadership of term %d: %w", term, err)
		}
		s.logger.Info("leadership established: an entry of the term is applied", "term", term, "index", meta.Index)
		// Loop: the term may have changed meanwhile.
	}
}

// awaitTermApplied returns once this leader has applied an entry of its
// current term, establishing leadership itself if the leader loop has not
// yet (bounded by ctx and an election timeout).
func (s *Store) awaitTermApplied(ctx context.Context, op string) error {
	term := s.raft.CurrentTerm()
	if s.adapter.appliedTerm.Load() >= term && s.raft.State() == raft.Leader {
		return nil
	}
	ectx, cancel := context.WithTimeout(ctx, s.cfg.ElectionTimeout)
	defer cancel()
	err := s.EstablishLeadership(ectx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotLeader):
		return s.notLeader(op)
	case errors.Is(err, ErrShutdown):
		return fmt.Errorf("%s: %w", op, ErrShutdown)
	}
	// Nothing about the read's own state is unknown: the leader is just not
	// ready yet, which the caller may retry.
	return fmt.Errorf("%s: leader of term %d has not applied an entry of its term yet: %w: %v", op, term, ErrNoLeader, err)
}

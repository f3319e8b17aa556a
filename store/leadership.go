package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
)

// watchLeadership drains raft's NotifyCh (raft blocks on it, so this loop
// must never block), fans the value out to subscribers and wakes the leader
// loop.
func (s *Store) watchLeadership(notifyCh <-chan bool) {
	defer s.wg.Done()
	for {
		select {
		case leader := <-notifyCh:
			s.logger.Info("leadership changed", "is_leader", leader, "term", s.raft.CurrentTerm())
			s.publishLeadership(leader)
			select {
			case s.leaderSignal <- struct{}{}:
			default: // a wake-up is already pending; the loop reads state afresh
			}
		case <-s.stopCh:
			return
		}
	}
}

func (s *Store) publishLeadership(leader bool) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	s.isLeader.Store(leader)
	for _, ch := range s.subs {
		overwrite(ch, leader)
	}
}

// overwrite leaves v as the only value in ch (buffer 1). Only
// publishLeadership sends, under subsMu, so the second send cannot block.
func overwrite(ch chan bool, v bool) {
	select {
	case ch <- v:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- v:
	default:
	}
}

// SubscribeLeadership returns a channel holding the latest leadership value
// of this member (buffered(1); older values are overwritten, so a slow reader
// sees the newest). It starts with the current value. The channel is never
// closed; after Close its last value is false.
func (s *Store) SubscribeLeadership() <-chan bool {
	ch := make(chan bool, 1)
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	ch <- s.isLeader.Load()
	s.subs = append(s.subs, ch)
	return ch
}

// watchObservations turns raft's leader observations into a broadcast that
// WaitForLeader and the read path block on.
func (s *Store) watchObservations(obsCh <-chan raft.Observation) {
	defer s.wg.Done()
	for {
		select {
		case <-obsCh:
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

// leaderLoop makes every term of this member's leadership usable for reads:
// on gaining leadership it commits a no-op command of the new term and waits
// until it is applied. Only then are entries committed by earlier leaders
// known to be committed and applied here (Raft §5.4.2, §8), which the read
// paths check through appliedTerm.
//
// The no-op is an fsm command rather than raft.Barrier(): raft keeps barrier
// entries from the FSM, so the applied index the adapter tracks would stop
// short of the barrier and WaitApplied on the commit index could hang.
func (s *Store) leaderLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.leaderSignal:
			s.establishLeadership()
		case <-s.stopCh:
			return
		}
	}
}

func (s *Store) establishLeadership() {
	backoff := 50 * time.Millisecond
	for {
		if s.raft.State() != raft.Leader {
			return
		}
		term := s.raft.CurrentTerm()
		if s.adapter.appliedTerm.Load() >= term {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		_, meta, err := s.propose(ctx, fsm.Command{Op: fsm.OpNoop, TS: s.cfg.Now().UnixMilli()})
		cancel()
		if err == nil {
			s.logger.Info("leadership established: an entry of the term is applied", "term", term, "index", meta.Index)
			continue // re-checks the term: leadership may have changed meanwhile
		}
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrShutdown) {
			return
		}
		s.logger.Warn("committing the leader's first entry failed; retrying", "term", term, "error", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-s.stopCh:
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

// awaitTermApplied waits, bounded by ctx and an election timeout, until this
// leader has applied an entry of its current term.
func (s *Store) awaitTermApplied(ctx context.Context, op string) error {
	term := s.raft.CurrentTerm()
	timer := time.NewTimer(s.cfg.ElectionTimeout)
	defer timer.Stop()
	for {
		applied := s.adapter.appliedChanged()
		leaderChanged := s.leaderChanged()
		if s.adapter.appliedTerm.Load() >= term {
			return nil
		}
		if s.raft.State() != raft.Leader || s.raft.CurrentTerm() != term {
			return s.notLeader(op)
		}
		select {
		case <-applied:
		case <-leaderChanged:
		case <-timer.C:
			return fmt.Errorf("%s: leader of term %d has not applied an entry of its term yet: %w", op, term, ErrNoLeader)
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for the leader's first entry of term %d: %w: %w", op, term, ErrNoLeader, ctx.Err())
		case <-s.stopCh:
			return fmt.Errorf("%s: %w", op, ErrShutdown)
		}
	}
}

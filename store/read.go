package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
)

// remoteReadIndexFunc asks the leader for a read index (see ReadIndex).
type remoteReadIndexFunc func(ctx context.Context) (uint64, error)

// SetRemoteReadIndex installs how a follower obtains the leader's read index
// for linearizable reads (the cluster layer calls the leader's ReadIndex over
// HTTP). Until it is set, linearizable reads on a follower fail with
// ErrNoLeader.
func (s *Store) SetRemoteReadIndex(fn func(ctx context.Context) (uint64, error)) {
	if fn == nil {
		s.remoteReadIndex.Store(nil)
		return
	}
	f := remoteReadIndexFunc(fn)
	s.remoteReadIndex.Store(&f)
}

// Read runs fn against this member's state at the requested level:
//   - stale: local state now; with MaxStaleness, refused (ErrStaleRead) on a
//     follower that knows no leader or whose state does not hold everything
//     a leader had committed MaxStaleness ago (see checkStaleness);
//   - default: leader only (ErrNotLeader on a follower: forward), local state
//     once the leader has applied an entry of its term;
//   - linearizable: the leader's read index (ReadIndex, or the function set
//     by SetRemoteReadIndex on a follower), applied here before fn runs.
//
// fn's error is returned unwrapped.
func (s *Store) Read(ctx context.Context, opts ReadOptions, fn func(fsm.Reader) error) (Meta, error) {
	if s.closing.Load() {
		return s.Meta(), fmt.Errorf("read: %w", ErrShutdown)
	}
	switch opts.Level {
	case ReadStale:
		// A member caught up with a leader since Open holds at least what
		// was committed; before that, it must not answer from less than it
		// had on disk at start.
		if f := s.Freshness(); f.CaughtUpAt.IsZero() {
			if err := s.checkReplayed(); err != nil {
				return s.Meta(), err
			}
		}
		if err := s.checkStaleness(opts.MaxStaleness); err != nil {
			return s.Meta(), err
		}
	case ReadDefault:
		if !s.IsLeader() {
			if id, _ := s.Leader(); id == "" {
				return s.Meta(), fmt.Errorf("default read: %w", ErrNoLeader)
			}
			return s.Meta(), s.notLeader("default read")
		}
		// Not linearizable (no quorum check), but a freshly elected leader
		// must not answer before it has applied what earlier leaders
		// committed, or a failover would visibly roll writes back.
		if err := s.awaitTermApplied(ctx, "default read"); err != nil {
			return s.Meta(), err
		}
	case ReadLinearizable:
		if !staleLinearizableRead {
			if err := s.linearizableBarrier(ctx); err != nil {
				return s.Meta(), err
			}
		}
	default:
		return s.Meta(), fmt.Errorf("read: unknown read level %d", opts.Level)
	}
	meta := s.Meta()
	return meta, fn(s.machine.reader())
}

// checkStaleness bounds applied lag, not only leader contact: a follower
// answers only if its state holds everything a leader had committed as of
// some moment within maxStaleness, i.e. at a contact no longer than
// maxStaleness ago it learned a commit index it has applied since
// (Freshness.CaughtUpAt). A follower that hears from the leader but cannot
// append or apply fast enough (a full disk) is refused like one cut off.
// The leader answers from its own state.
func (s *Store) checkStaleness(maxStaleness time.Duration) error {
	if maxStaleness <= 0 || s.IsLeader() {
		return nil
	}
	id, _ := s.Leader()
	if id == "" {
		return fmt.Errorf("stale read: no leader known: %w", ErrStaleRead)
	}
	f := s.Freshness()
	age, ok := f.Staleness(time.Now())
	if !ok {
		return fmt.Errorf("stale read: not yet caught up with a leader since start (applied %d, leader committed %d): %w",
			f.Applied, f.LearnedCommit, ErrStaleRead)
	}
	if age > maxStaleness {
		return fmt.Errorf("stale read: state holds what the leader had committed %s ago, more than %s (applied %d, leader committed %d): %w",
			age.Round(time.Millisecond), maxStaleness, f.Applied, f.LearnedCommit, ErrStaleRead)
	}
	return nil
}

// linearizableBarrier returns once this member has applied everything that
// was committed when the read arrived.
func (s *Store) linearizableBarrier(ctx context.Context) error {
	idx, err := s.readIndexes.get(ctx, s.readIndexHere)
	if err != nil {
		return err
	}
	if err := s.WaitApplied(ctx, idx); err != nil {
		return fmt.Errorf("linearizable read: %w", err)
	}
	return nil
}

// readIndexHere is the read index as this member can obtain it now: its
// own ReadIndex when it leads, the leader's (SetRemoteReadIndex) otherwise.
func (s *Store) readIndexHere(ctx context.Context) (uint64, error) {
	var idx uint64
	if s.IsLeader() {
		var err error
		if idx, err = s.ReadIndex(ctx); err != nil {
			return 0, fmt.Errorf("linearizable read: %w", err)
		}
	} else {
		remote := s.remoteReadIndex.Load()
		if remote == nil {
			return 0, fmt.Errorf("linearizable read on a follower: no way to reach the leader configured: %w", ErrNoLeader)
		}
		if id, _ := s.Leader(); id == "" {
			return 0, fmt.Errorf("linearizable read: %w", ErrNoLeader)
		}
		var err error
		if idx, err = (*remote)(ctx); err != nil {
			return 0, fmt.Errorf("linearizable read: getting the leader's read index: %w", err)
		}
	}
	return idx, nil
}

// ReadIndex is the leader's half of a linearizable read (Raft §6.4): the
// commit index as of now, returned only once a quorum has confirmed this
// member is still leader and an entry of its term is applied (so that the
// commit index covers everything earlier leaders committed). A reader then
// waits until that index is applied wherever it reads. Leader only
// (ErrNotLeader); ErrNoLeader while a new leader is not ready yet.
func (s *Store) ReadIndex(ctx context.Context) (uint64, error) {
	if s.closing.Load() {
		return 0, fmt.Errorf("read index: %w", ErrShutdown)
	}
	if !s.IsLeader() {
		return 0, s.notLeader("read index")
	}
	term := s.raft.CurrentTerm()
	if err := s.awaitTermApplied(ctx, "read index"); err != nil {
		return 0, err
	}
	ci := s.raft.CommitIndex()
	if err := s.waitFuture(ctx, s.raft.VerifyLeader(), 0); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
			return 0, s.notLeader("read index: leadership not confirmed")
		case errors.Is(err, raft.ErrRaftShutdown):
			return 0, fmt.Errorf("read index: %w", ErrShutdown)
		}
		return 0, fmt.Errorf("read index: confirming leadership: %w", err)
	}
	// A quorum confirmed leadership in some term; it must be the one whose
	// entry made ci trustworthy.
	if now := s.raft.CurrentTerm(); now != term {
		return 0, fmt.Errorf("read index: term changed from %d to %d: %w", term, now, ErrNoLeader)
	}
	return ci, nil
}

// WaitApplied blocks until this member has applied index (or ctx ends).
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	for {
		changed := s.adapter.appliedChanged()
		if s.adapter.applied.Load() >= index {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %d (applied %d): %w", index, s.adapter.applied.Load(), ctx.Err())
		case <-s.stopCh:
			return fmt.Errorf("waiting for index %d: %w", index, ErrShutdown)
		}
	}
}

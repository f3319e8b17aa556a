package store

import (
	"errors"
	"time"
)

// Errors every layer above the store understands. Wrap them with
// fmt.Errorf("...: %w", err); test with errors.Is.
var (
	// ErrNotLeader: this member is not the leader; the caller may forward.
	ErrNotLeader = errors.New("not-leader")
	// ErrNoLeader: no leader is known (election in progress, partition).
	ErrNoLeader = errors.New("no-leader")
	// ErrStaleRead: a stale read's max_staleness bound is exceeded.
	ErrStaleRead = errors.New("stale-read")
	// ErrUnknownOutcome: a write was submitted but its outcome is unknown
	// (timeout, leadership lost mid-commit). It is never retried blindly.
	ErrUnknownOutcome = errors.New("unknown-outcome")
	// ErrMemberNotFound: DELETE /v1/cluster/members/{id} of an unknown id.
	ErrMemberNotFound = errors.New("member not found")
	// ErrShutdown: the store is closing.
	ErrShutdown = errors.New("store is shut down")
	// ErrRefused: a membership request that is the caller's mistake
	// (removing the only voter, handing leadership over with no other
	// voter); nothing changed.
	ErrRefused = errors.New("refused")
	// ErrReplaying: a stale read on a member that has not yet applied the
	// log it had on disk at start; its state would be older than its own.
	ErrReplaying = errors.New("replaying")
)

// ReadLevel is the consistency a read asks for (docs/spec.md §6).
type ReadLevel int

const (
	ReadDefault      ReadLevel = iota // the leader's state
	ReadStale                         // this member's state
	ReadLinearizable                  // ReadIndex, served by any member
)

// ParseReadLevel parses ?consistency=.
func ParseReadLevel(s string) (ReadLevel, error) {
	switch s {
	case "", "default":
		return ReadDefault, nil
	case "stale":
		return ReadStale, nil
	case "linearizable":
		return ReadLinearizable, nil
	}
	return 0, errors.New("consistency must be one of stale, default, linearizable")
}

// Placement is where an operation must run; the cluster's router sends a
// request there before anything is parsed or proposed.
type Placement int

const (
	// AnyMember: stale and linearizable reads (a follower asks the leader
	// only for a read index), and everything that is not a command.
	AnyMember Placement = iota
	// OnLeader: writes and membership changes.
	OnLeader
	// OnLeaderIfKnown: default reads. They need the leader's state, but a
	// member that knows no leader answers no-leader at once rather than
	// waiting for one.
	OnLeaderIfKnown
)

// Placement is where a read at level l must run.
func (l ReadLevel) Placement() Placement {
	if l == ReadDefault {
		return OnLeaderIfKnown
	}
	return AnyMember
}

func (p Placement) String() string {
	switch p {
	case OnLeader:
		return "leader"
	case OnLeaderIfKnown:
		return "leader-if-known"
	}
	return "any-member"
}

func (l ReadLevel) String() string {
	switch l {
	case ReadStale:
		return "stale"
	case ReadLinearizable:
		return "linearizable"
	}
	return "default"
}

// ReadOptions select a read level; MaxStaleness (stale only, 0 = no bound)
// refuses the read with ErrStaleRead on a follower whose state does not
// hold everything a leader had committed MaxStaleness ago (applied lag,
// not only leader contact: Store.Freshness).
type ReadOptions struct {
	Level        ReadLevel
	MaxStaleness time.Duration
}

// Meta is what every answer reports in X-Wimms-* headers.
type Meta struct {
	Index         uint64 // applied index the answer reflects
	MemberID      string
	KnownLeader   bool
	LastContactMs int64 // 0 on the leader
}

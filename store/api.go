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

// ReadLevel is the consistency a read asks for (SPEC §6).
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
// refuses the read with ErrStaleRead when this member has not heard from a
// leader within it.
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

// Member is one member of the cluster as GET /v1/cluster shows it.
type Member struct {
	ID            string `json:"id"`
	RaftAddr      string `json:"raft_addr"`
	HTTPAddr      string `json:"http_addr"`
	GossipAddr    string `json:"gossip_addr,omitempty"`
	Zone          string `json:"zone"`
	Voter         bool   `json:"voter"`
	State         string `json:"state"` // leader, follower, candidate, left, unknown, ...
	LastContactMs int64  `json:"last_contact_ms"`
}

// ClusterStatus is GET /v1/cluster.
type ClusterStatus struct {
	Leader       *Member  `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Members      []Member `json:"members"`
}

package store

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Readiness and max_staleness come from the cluster, not from the disk: a
// follower is fresh as of the last moment at which it had applied what the
// leader had committed. Followers learn the leader's commit index from
// every AppendEntries (the leader sends one at least every CommitTimeout,
// also when idle). raft's own CommitIndex on a follower is capped at the
// follower's last log index, so a follower that cannot append (full disk)
// would look caught up; the commit index is therefore taken from the RPCs
// themselves, as they arrive (commitTransport).

// maxPendingCommits bounds the learned commit points kept while the member
// lags; dropping the oldest only makes the member look staler than it is.
const maxPendingCommits = 4096

// commitPoint: at time at, a leader had committed up to index.
type commitPoint struct {
	index uint64
	at    time.Time
}

// catchUp tracks the commit indexes learned from leaders and when this
// member last had them applied.
type catchUp struct {
	mu sync.Mutex
	// learned is the highest commit index heard of (a new leader may send a
	// lower one for a moment; what was committed stays committed).
	learned uint64
	// pending holds the commit points not yet known to be applied, oldest
	// first, one per distinct index (the newest time for it).
	pending []commitPoint
	// caughtUpAt is the contact time of the newest commit point this member
	// has applied: its state holds everything committed as of then.
	caughtUpAt time.Time
}

// observe records that at time at a leader had committed index.
func (c *catchUp) observe(index uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if index < c.learned {
		index = c.learned
	}
	c.learned = index
	if n := len(c.pending); n > 0 && c.pending[n-1].index == index {
		c.pending[n-1].at = at
		return
	}
	if len(c.pending) >= maxPendingCommits {
		c.pending = append(c.pending[:0], c.pending[1:]...)
	}
	c.pending = append(c.pending, commitPoint{index: index, at: at})
}

// status advances past every commit point covered (applied, given the
// index) and returns when this member was last caught up (zero if never
// since Open) and the highest commit index learned.
func (c *catchUp) status(covered func(index uint64) bool) (caughtUpAt time.Time, learned uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for n < len(c.pending) && covered(c.pending[n].index) {
		c.caughtUpAt = c.pending[n].at
		n++
	}
	if n > 0 {
		c.pending = append(c.pending[:0], c.pending[n:]...)
	}
	return c.caughtUpAt, c.learned
}

// commitTransport is the Raft transport with the leader's commit index
// read off every AppendEntries request on its way to raft. Heartbeats
// carry none (raft sends them without a commit index) and take raft's
// fast path past the consumer channel, so only replication RPCs count.
type commitTransport struct {
	*raft.NetworkTransport
	observe func(commit uint64)
	out     chan raft.RPC
	stop    chan struct{}
	once    sync.Once
	done    sync.WaitGroup
}

func newCommitTransport(inner *raft.NetworkTransport, observe func(commit uint64)) *commitTransport {
	t := &commitTransport{NetworkTransport: inner, observe: observe, out: make(chan raft.RPC), stop: make(chan struct{})}
	t.done.Add(1)
	go t.forward()
	return t
}

// Consumer is the channel raft reads incoming RPCs from.
func (t *commitTransport) Consumer() <-chan raft.RPC { return t.out }

func (t *commitTransport) forward() {
	defer t.done.Done()
	in := t.NetworkTransport.Consumer()
	for {
		select {
		case rpc := <-in:
			if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok && req.LeaderCommitIndex > 0 {
				t.observe(req.LeaderCommitIndex)
			}
			select {
			case t.out <- rpc:
			case <-t.stop:
				rpc.Respond(nil, raft.ErrTransportShutdown)
				return
			}
		case <-t.stop:
			return
		}
	}
}

// stopForwarding ends the forwarding goroutine; raft must no longer read
// from Consumer.
func (t *commitTransport) stopForwarding() {
	t.once.Do(func() { close(t.stop) })
	t.done.Wait()
}

// covered reports whether this member's state reflects every entry up to
// index: it applied index, or every entry after what it applied up to
// index is one raft keeps from the state machine (its election no-op, a
// barrier), which changes nothing there. Only a short gap is looked at:
// a longer one is simply not covered yet.
func (s *Store) covered(index uint64) bool {
	applied := s.AppliedIndex()
	if applied >= index {
		return true
	}
	if index-applied > 4 || s.raft.AppliedIndex() < index {
		return false
	}
	for i := applied + 1; i <= index; i++ {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// termCommittedAndApplied reports whether this leader has committed an
// entry of its current term (so its commit index covers everything earlier
// leaders committed, Raft §5.4.2) and applied up to its commit index. raft
// commits a no-op at the start of every term, so this holds moments after
// an election even before the leader loop commits its own no-op command.
func (s *Store) termCommittedAndApplied() bool {
	term := s.raft.CurrentTerm()
	if s.adapter.appliedTerm.Load() >= term {
		return true
	}
	ci := s.raft.CommitIndex()
	if ci == 0 {
		return false
	}
	var l raft.Log
	if err := s.logs.GetLog(ci, &l); err != nil || l.Term != term {
		return false
	}
	return s.covered(ci)
}

// Freshness is how current this member's state is, from the cluster's
// point of view.
type Freshness struct {
	// Leading: this member leads, has committed an entry of its term and
	// applied its commit index, so it holds everything committed.
	Leading bool
	// CaughtUpAt: the newest time at which this member had applied
	// everything a leader had committed (as of when the leader's message
	// arrived); now while Leading; zero if never since start.
	CaughtUpAt time.Time
	// LearnedCommit: the highest commit index heard from a leader (the own
	// commit index while leading); Applied: what the state reflects.
	LearnedCommit, Applied uint64
	// AppendErr, set while appending to the log fails, is the last error;
	// AppendFailingSince is when the failures started.
	AppendErr          error
	AppendFailingSince time.Time
}

// Lag is how many entries the state is behind the learned commit index.
func (f Freshness) Lag() uint64 {
	if f.LearnedCommit > f.Applied {
		return f.LearnedCommit - f.Applied
	}
	return 0
}

// Freshness reports how current this member's state is now.
func (s *Store) Freshness() Freshness {
	now := time.Now()
	f := Freshness{Applied: s.AppliedIndex()}
	f.AppendFailingSince, f.AppendErr = s.appends.failing()
	if s.raft.State() == raft.Leader && s.termCommittedAndApplied() {
		f.Leading, f.CaughtUpAt, f.LearnedCommit = true, now, s.raft.CommitIndex()
		return f
	}
	f.CaughtUpAt, f.LearnedCommit = s.catchUp.status(s.covered)
	return f
}

// Staleness is how far behind the cluster this member's state may be:
// now minus CaughtUpAt (0 while leading). ok is false if it never caught up.
func (f Freshness) Staleness(now time.Time) (d time.Duration, ok bool) {
	if f.CaughtUpAt.IsZero() {
		return 0, false
	}
	if d = now.Sub(f.CaughtUpAt); d < 0 {
		d = 0
	}
	return d, true
}

// readyWindow is how long ago a follower may last have been caught up and
// still count as ready: a heartbeat timeout, after which raft itself would
// give up on the leader. Under load a follower is a few entries behind the
// newest commit it heard of most of the time; it stays ready as long as it
// keeps catching up.
func (s *Store) readyWindow() time.Duration { return s.cfg.HeartbeatTimeout }

// notReadyReason is "" when this member is ready, else why not. Ready: it
// knows a leader, its appends work, and it leads (an entry of its term
// applied) or applied the leader's commit index as of a contact within the
// ready window.
func (s *Store) notReadyReason() (check, why string) {
	if id, _ := s.Leader(); id == "" {
		return CheckLeader, "this member knows no leader"
	}
	f := s.Freshness()
	if f.AppendErr != nil {
		return CheckAppend, fmt.Sprintf("appending to the raft log fails since %s (%s ago): %v",
			f.AppendFailingSince.UTC().Format(time.RFC3339), time.Since(f.AppendFailingSince).Round(time.Millisecond), f.AppendErr)
	}
	if f.Leading {
		return "", ""
	}
	if s.IsLeader() {
		return CheckCaughtUp, "this member was just elected and has not committed and applied an entry of its term yet"
	}
	age, ok := f.Staleness(time.Now())
	switch {
	case !ok:
		return CheckCaughtUp, fmt.Sprintf("this member has not yet applied the leader's commit index (applied %d, leader committed %d)", f.Applied, f.LearnedCommit)
	case age > s.readyWindow():
		return CheckCaughtUp, fmt.Sprintf("this member last had the leader's commits applied %s ago (applied %d, leader committed %d, %d entries behind)",
			age.Round(time.Millisecond), f.Applied, f.LearnedCommit, f.Lag())
	}
	return "", ""
}

// Readiness check names (the keys of /__heartbeat__'s checks).
const (
	CheckLeader   = "leader"
	CheckCaughtUp = "caught_up"
	CheckAppend   = "log_append"
)

// NotReady reports why this member is not ready: the failing check (one of
// the Check* names) and a one-line reason; "", "" when it is ready.
func (s *Store) NotReady() (check, why string) { return s.notReadyReason() }

package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/wimms-dev/wimms/store"
)

// runLeaderLoop is this member's one leader loop, Consul's leader.go in
// small. It is the only reader of the store's LeaderCh, which always holds
// the latest leadership value, so no change is missed and nothing polls.
// Gaining leadership starts leadTerm; losing it revokes (stops leadTerm and
// drops its state). A true while leading means leadership was lost and
// regained in between: the old term is revoked and a new one starts.
func (c *Cluster) runLeaderLoop(ctx context.Context) {
	leaderCh := c.st.LeaderCh()
	var term *runningTerm
	revoke := func() {
		if term != nil {
			term.stop()
			<-term.done
			term = nil
		}
	}
	defer revoke()
	for {
		select {
		case <-ctx.Done():
			return
		case leading := <-leaderCh:
			revoke()
			if leading {
				term = c.startTerm(ctx)
			}
		}
	}
}

// runningTerm is a leadTerm in progress.
type runningTerm struct {
	stop context.CancelFunc
	done chan struct{}
}

func (c *Cluster) startTerm(ctx context.Context) *runningTerm {
	termCtx, stop := context.WithCancel(ctx)
	t := &runningTerm{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		c.leadTerm(termCtx)
	}()
	return t
}

// leadTerm is one term of leadership, in Consul's order: establish it (the
// term's no-op is applied, so this leader's state covers everything
// committed before it and its reads may be served), then reconcile the
// membership on every gossip event and every ReconcileInterval, until ctx
// ends the term. What the term learned (leaderLoopState) ends with it.
func (c *Cluster) leadTerm(ctx context.Context) {
	c.log.Info("leadership gained: establishing it")
	defer c.log.Info("leadership revoked: membership reconcile stopped")
	tick := time.NewTicker(c.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		err := c.st.EstablishLeadership(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrShutdown) {
			return // already lost; LeaderCh tells the loop
		}
		c.log.Warn("establishing leadership failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	c.log.Info("leadership established: reconciling membership")
	lc := &leaderLoopState{since: c.now(), absentSince: map[string]time.Time{}, refused: map[string]string{}}
	for {
		c.reconcile(ctx, lc)
		select {
		case <-ctx.Done():
			return
		case <-c.memberEvents:
		case <-tick.C:
		}
		if ctx.Err() != nil {
			return // select picks at random among ready cases
		}
	}
}

// memberEvent wakes the leader loop for a reconcile (gossip saw a member
// join, change or go). It never blocks: a pending wake-up covers it.
func (c *Cluster) memberEvent() {
	select {
	case c.memberEvents <- struct{}{}:
	default:
	}
}

// leaderLoopState lives for one term of leadership: what this leader saw
// itself, never inherited from an earlier leader.
type leaderLoopState struct {
	since time.Time
	// absentSince: configuration members gossip has never shown this
	// process, by when this leader first noticed.
	absentSince map[string]time.Time
	// refused: the last reason a reap was refused per id, to log changes only.
	refused map[string]string
}

func (c *Cluster) reconcile(ctx context.Context, lc *leaderLoopState) {
	defer c.reconciles.Add(1)
	servers, err := c.st.Servers()
	if err != nil {
		c.log.Warn("reconcile: read raft configuration", "error", err)
		return
	}
	c.addGossipMembers(ctx, servers)
	c.reapOne(ctx, servers, lc)
}

// addGossipMembers adds every alive gossip member missing from the Raft
// configuration (or present at an old address), once its Raft port
// accepts connections: adding an unreachable voter could cost the quorum.
// Only in an open cluster (no TLS, no gossip key): a secured cluster takes
// membership changes from authenticated joins only.
func (c *Cluster) addGossipMembers(ctx context.Context, servers []store.Server) {
	inConfig := make(map[string]string, len(servers))
	for _, s := range servers {
		inConfig[s.ID] = s.Address
	}
	for _, p := range c.peers.all() {
		id := p.meta.ID
		if id == c.cfg.ID || p.state != gossipAlive || p.meta.Raft == "" {
			continue
		}
		addr, known := inConfig[id]
		if known && addr == p.meta.Raft {
			continue
		}
		if c.cfg.AuthenticatedJoinOnly {
			// Gossip is no proof of identity: only an authenticated HTTP
			// join admits a new member or moves a known one to a new Raft
			// address (every member re-joins that way when it starts with
			// --join). Anyone with the gossip key can claim an address
			// for an id, and a bare TCP probe says nothing about who
			// listens there (docs/security.md).
			if known {
				c.log.Debug("reconcile: ignoring a gossip address change; a secured member moves by re-joining", "id", id, "raft", addr, "gossip_raft", p.meta.Raft)
			}
			continue
		}
		if p.meta.Removed {
			continue
		}
		c.mu.Lock()
		ts, buried := c.tombstones[id]
		if buried && ts.incarnation != p.meta.Incarnation {
			// Restarted since we removed it: it may come back.
			delete(c.tombstones, id)
			buried = false
		}
		c.mu.Unlock()
		if buried {
			continue
		}
		if err := c.probeTCP(ctx, p.meta.Raft); err != nil {
			c.log.Debug("reconcile: gossip member's raft address not reachable yet", "id", id, "raft", p.meta.Raft, "error", err)
			continue
		}
		if err := c.ensureServer(ctx, id, p.meta.Raft, true, "seen in gossip"); err != nil {
			c.log.Warn("reconcile: add gossip member", "id", id, "raft", p.meta.Raft, "error", err)
		}
	}
}

// probeTCP checks that addr accepts a TCP connection, dialing from this
// member's own IP like every other outgoing connection.
func (c *Cluster) probeTCP(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	if ip := hostIP(c.cfg.RaftAddr); ip != nil {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// reapCandidate is one configuration member with how long this leader has
// seen it failed (zero: not failed).
type reapCandidate struct {
	id          string
	voter       bool
	failedSince time.Time
}

// reapOne removes at most one member that has been failed or left for
// longer than ReapAfter, if reapDecision allows it. One per round, so every
// decision is made on a fresh configuration.
func (c *Cluster) reapOne(ctx context.Context, servers []store.Server, lc *leaderLoopState) {
	now := c.now()
	voters, failedVoters := 0, 0
	var oldest *reapCandidate
	present := map[string]bool{}
	for _, s := range servers {
		id := s.ID
		present[id] = true
		voter := s.Voter
		if voter {
			voters++
		}
		if id == c.cfg.ID {
			continue
		}
		failedSince, failed := c.failedSince(id, lc, now)
		if !failed {
			continue
		}
		if voter {
			failedVoters++
		}
		if now.Sub(failedSince) < c.cfg.ReapAfter {
			continue
		}
		if oldest == nil || failedSince.Before(oldest.failedSince) {
			oldest = &reapCandidate{id: id, voter: voter, failedSince: failedSince}
		}
	}
	for id := range lc.absentSince {
		if !present[id] {
			delete(lc.absentSince, id)
		}
	}
	if oldest == nil {
		return
	}
	ok, reason := reapDecision(voters, failedVoters, oldest.voter)
	if !ok {
		if lc.refused[oldest.id] != reason {
			lc.refused[oldest.id] = reason
			c.log.Warn("not reaping failed member", "id", oldest.id, "failed_for", now.Sub(oldest.failedSince).Round(time.Second), "voters", voters, "failed_voters", failedVoters, "reason", reason)
		}
		return
	}
	delete(lc.refused, oldest.id)
	c.log.Warn("reaping member gossip has seen failed for longer than reap_after",
		"id", oldest.id, "failed_for", now.Sub(oldest.failedSince).Round(time.Second), "reap_after", c.cfg.ReapAfter,
		"voters", voters, "failed_voters", failedVoters)
	if err := c.st.RemoveServer(ctx, oldest.id); err != nil {
		c.log.Warn("reap member", "id", oldest.id, "error", err)
	}
}

// failedSince says whether this leader considers id failed and since when:
// gossip saw it fail or leave, or gossip never showed it to this process
// (then counted from when this leader first noticed, never earlier).
func (c *Cluster) failedSince(id string, lc *leaderLoopState, now time.Time) (time.Time, bool) {
	p, known := c.peers.get(id)
	if known && p.state != gossipUnknown {
		delete(lc.absentSince, id)
		if p.state == gossipAlive {
			return time.Time{}, false
		}
		return p.since, true
	}
	since, ok := lc.absentSince[id]
	if !ok {
		since = now
		lc.absentSince[id] = since
	}
	return since, true
}

// reapDecision is the quorum guard for removing one failed member. It is
// pure so it can be tested exhaustively.
//
//   - More than (voters-1)/2 voters failed: refuse. Either quorum is
//     already at stake or this leader's gossip view is wrong (a gossip-only
//     partition); removing members on that view can make a minority
//     configuration (Consul autopilot's CleanupDeadServers guard).
//   - A voter removal that would take a cluster of 3 or more voters below
//     3: refuse. Three voters survive one more failure; two do not.
//
// failedVoters counts every failed voter, the candidate included.
func reapDecision(voters, failedVoters int, candidateIsVoter bool) (bool, string) {
	switch {
	case voters < 1 || failedVoters < 0 || failedVoters > voters:
		return false, fmt.Sprintf("inconsistent counts: %d voters, %d failed", voters, failedVoters)
	case candidateIsVoter && failedVoters < 1:
		return false, "inconsistent counts: the candidate voter is not counted as failed"
	case failedVoters > (voters-1)/2:
		return false, fmt.Sprintf("%d of %d voters are failed, more than (voters-1)/2 = %d", failedVoters, voters, (voters-1)/2)
	case candidateIsVoter && voters >= 3 && voters-1 < 3:
		return false, fmt.Sprintf("removing a voter would leave %d voters, fewer than 3", voters-1)
	}
	return true, ""
}

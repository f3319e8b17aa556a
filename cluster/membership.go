package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/store"
)

// tombstone keeps a member this leader removed on purpose from being
// re-added from gossip while the same process (incarnation) is still
// running. An explicit join, or a restart, lifts it.
type tombstone struct {
	incarnation string
	at          time.Time
}

// Status merges the Raft configuration with gossip metadata and this
// member's own view. It never forwards: a member answers for itself.
func (c *Cluster) Status(ctx context.Context) (wire.ClusterStatus, error) {
	servers, err := c.st.Servers()
	if err != nil {
		return wire.ClusterStatus{}, fmt.Errorf("cluster status: read raft configuration: %w", err)
	}
	rs := c.st.RaftStatus()
	leaderID, leaderRaftAddr := rs.LeaderID, rs.LeaderAddr
	if leaderID == "" && leaderRaftAddr != "" {
		for _, s := range servers {
			if s.Address == leaderRaftAddr {
				leaderID = s.ID
			}
		}
	}
	now := c.now()
	st := wire.ClusterStatus{
		Term:         rs.Term,
		CommitIndex:  rs.CommitIndex,
		AppliedIndex: rs.AppliedIndex,
		Members:      make([]wire.Member, 0, len(servers)),
	}
	for _, s := range servers {
		st.Members = append(st.Members, c.describe(s, rs, leaderID, now))
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].ID < st.Members[j].ID })
	for i := range st.Members {
		if leaderID != "" && st.Members[i].ID == leaderID {
			m := st.Members[i]
			st.Leader = &m
		}
	}
	if st.Leader == nil && leaderID != "" {
		// A leader outside the configuration we have applied so far.
		m := c.describe(store.Server{ID: leaderID, Address: leaderRaftAddr, Voter: true}, rs, leaderID, now)
		st.Leader = &m
	}
	return st, nil
}

// describe is one member as this member (whose view is self) sees it.
// last_contact_ms is -1 when unknown.
func (c *Cluster) describe(s store.Server, self store.RaftStatus, leaderID string, now time.Time) wire.Member {
	id := s.ID
	m := wire.Member{
		ID:            id,
		RaftAddr:      s.Address,
		Voter:         s.Voter,
		LastContactMs: -1,
	}
	p, known := c.peers.get(id)
	if known {
		m.HTTPAddr, m.GossipAddr, m.Zone = p.meta.HTTP, p.meta.Gossip, p.meta.Zone
	}
	if id == c.cfg.ID {
		m.HTTPAddr, m.GossipAddr, m.Zone = c.cfg.HTTPAddr, c.GossipAddr(), c.cfg.Zone
	}
	switch {
	case id == leaderID:
		m.State = "leader"
		m.LastContactMs = 0
	case id == c.cfg.ID:
		m.State = "follower"
		if strings.EqualFold(self.State, "candidate") {
			m.State = "candidate"
		}
		if lc := self.LastContact; !lc.IsZero() {
			m.LastContactMs = max(0, now.Sub(lc).Milliseconds())
		}
	default:
		switch p.state {
		case gossipAlive:
			m.State = "follower"
		case gossipFailed:
			m.State = "failed"
		case gossipLeft:
			m.State = "left"
		default:
			m.State = "unknown"
		}
		if known && !p.lastHeard.IsZero() {
			m.LastContactMs = max(0, now.Sub(p.lastHeard).Milliseconds())
		}
	}
	return m
}

// Join adds a member (leader only: the router sends join requests to the
// leader, and a member that lost leadership since answers
// store.ErrNotLeader). Re-joining with the same id and address is
// a no-op success; with another address the old entry is replaced.
func (c *Cluster) Join(ctx context.Context, m wire.Member) error {
	if m.ID == "" || m.RaftAddr == "" {
		return errors.New("join: id and raft_addr are required")
	}
	// Remember the addresses on any member: it may forward to this member
	// before gossip has spread its metadata.
	c.peers.learn(nodeMeta{ID: m.ID, HTTP: m.HTTPAddr, Raft: m.RaftAddr, Gossip: m.GossipAddr, Zone: m.Zone})
	if !c.st.RaftStatus().Leading() {
		return fmt.Errorf("join %s: %w", m.ID, store.ErrNotLeader)
	}
	c.mu.Lock()
	delete(c.tombstones, m.ID)
	c.mu.Unlock()
	if err := c.ensureServer(ctx, m.ID, m.RaftAddr, m.Voter, "join request"); err != nil {
		return fmt.Errorf("join %s: %w", m.ID, err)
	}
	return nil
}

// ensureServer makes the Raft configuration hold id at raftAddr.
func (c *Cluster) ensureServer(ctx context.Context, id, raftAddr string, voter bool, reason string) error {
	servers, err := c.st.Servers()
	if err != nil {
		return fmt.Errorf("read raft configuration: %w", err)
	}
	for _, s := range servers {
		sid, saddr := s.ID, s.Address
		switch {
		case sid == id && saddr == raftAddr:
			if voter && !s.Voter {
				c.log.Info("promoting member to voter", "id", id, "reason", reason)
				if err := c.st.AddServer(ctx, store.Server{ID: id, Address: raftAddr, Voter: true}); err != nil {
					return fmt.Errorf("promote to voter: %w", err)
				}
			}
			return nil
		case sid == id:
			if id == c.cfg.ID {
				return fmt.Errorf("the leader's own raft address is %s, not %s", saddr, raftAddr)
			}
			c.log.Info("member changed raft address; replacing it", "id", id, "old", saddr, "new", raftAddr, "reason", reason)
			if err := c.st.RemoveServer(ctx, id); err != nil && !errors.Is(err, store.ErrMemberNotFound) {
				return fmt.Errorf("remove old address %s: %w", saddr, err)
			}
		case saddr == raftAddr:
			// Raft addresses are unique per process: a new id there means
			// the old member was re-created and will never come back.
			if sid == c.cfg.ID {
				return fmt.Errorf("raft address %s belongs to the leader %s", raftAddr, sid)
			}
			c.log.Info("raft address now used by another id; removing the old one", "old_id", sid, "id", id, "addr", raftAddr, "reason", reason)
			if err := c.st.RemoveServer(ctx, sid); err != nil && !errors.Is(err, store.ErrMemberNotFound) {
				return fmt.Errorf("remove %s, previous holder of %s: %w", sid, raftAddr, err)
			}
		}
	}
	c.log.Info("adding member", "id", id, "raft", raftAddr, "voter", voter, "reason", reason)
	if err := c.st.AddServer(ctx, store.Server{ID: id, Address: raftAddr, Voter: voter}); err != nil {
		return fmt.Errorf("add %s at %s: %w", id, raftAddr, err)
	}
	return nil
}

// Remove removes a member by id (leader only). Removing the leader itself
// first hands leadership to another voter, then asks the new leader to
// remove it (removeSelfViaNewLeader). The only voter cannot be removed.
func (c *Cluster) Remove(ctx context.Context, id string) error {
	if !c.st.RaftStatus().Leading() {
		return fmt.Errorf("remove %s: %w", id, store.ErrNotLeader)
	}
	servers, err := c.st.Servers()
	if err != nil {
		return fmt.Errorf("remove %s: read raft configuration: %w", id, err)
	}
	var target *store.Server
	otherVoters := 0
	for i, s := range servers {
		if s.ID == id {
			target = &servers[i]
		} else if s.Voter {
			otherVoters++
		}
	}
	if target == nil {
		return fmt.Errorf("remove %s: %w", id, store.ErrMemberNotFound)
	}
	if id == c.cfg.ID {
		if otherVoters == 0 {
			return fmt.Errorf("remove %s: it is the only voter; the cluster would have none: %w", id, store.ErrRefused)
		}
		return c.removeSelfViaNewLeader(ctx)
	}
	if p, ok := c.peers.get(id); ok {
		c.mu.Lock()
		c.tombstones[id] = tombstone{incarnation: p.meta.Incarnation, at: c.now()}
		c.mu.Unlock()
	}
	if err := c.st.RemoveServer(ctx, id); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	c.log.Info("member removed", "id", id, "raft", target.Address)
	c.goLoop(func(context.Context) { c.sendRemovalNotice(id) })
	return nil
}

// removeSelfViaNewLeader: a leader cannot remove itself safely (it would
// stop leading mid-change). It hands leadership over, then asks the new
// leader over HTTP to remove it, and reports that answer.
func (c *Cluster) removeSelfViaNewLeader(ctx context.Context) error {
	id := c.cfg.ID
	c.log.Info("removal of the leader requested: handing leadership over first", "id", id)
	if err := c.st.TransferLeadership(ctx, ""); err != nil {
		return fmt.Errorf("remove %s (the leader): hand leadership over: %w", id, retryable(err))
	}
	newLeader, addr, err := c.router.AwaitLeader(ctx, time.Now().Add(c.cfg.LeaderWait),
		func(rs store.RaftStatus) bool { return rs.LeaderID != "" && rs.LeaderID != id })
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("remove %s: waiting for the new leader: %w", id, ctx.Err())
	case err != nil:
		return fmt.Errorf("remove %s: leadership handed over, but no new leader is known yet: %w", id, store.ErrNoLeader)
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodDelete, c.members.URL(addr, "/v1/cluster/members/"+url.PathEscape(id)), nil)
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	c.members.SetAuth(req, true)
	req.Header.Set(wire.HeaderForwarded, id)
	resp, err := c.members.Do(req)
	if err != nil {
		return fmt.Errorf("remove %s: ask the new leader %s at %s: %w: %w", id, newLeader, addr, store.ErrNoLeader, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	switch {
	case resp.StatusCode/100 == 2:
		c.log.Info("removed by the new leader", "id", id, "leader", newLeader)
		return nil
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("remove %s: the new leader %s: %w", id, newLeader, store.ErrMemberNotFound)
	case resp.StatusCode == http.StatusServiceUnavailable:
		return fmt.Errorf("remove %s: the new leader %s answered %s: %w", id, newLeader, bytes.TrimSpace(b), store.ErrNoLeader)
	}
	return fmt.Errorf("remove %s: the new leader %s answered %d: %s", id, newLeader, resp.StatusCode, bytes.TrimSpace(b))
}

// TransferLeadership hands leadership to id, or to any voter if id is "".
func (c *Cluster) TransferLeadership(ctx context.Context, id string) error {
	if !c.st.RaftStatus().Leading() {
		return fmt.Errorf("transfer leadership: %w", store.ErrNotLeader)
	}
	servers, err := c.st.Servers()
	if err != nil {
		return fmt.Errorf("transfer leadership: read raft configuration: %w", err)
	}
	otherVoters := 0
	var target *store.Server
	for i, s := range servers {
		if s.ID == id {
			target = &servers[i]
		}
		if s.Voter && s.ID != c.cfg.ID {
			otherVoters++
		}
	}
	switch {
	case id == c.cfg.ID:
		return nil // already the leader
	case id != "" && target == nil:
		return fmt.Errorf("transfer leadership to %s: %w", id, store.ErrMemberNotFound)
	case id != "" && !target.Voter:
		return fmt.Errorf("transfer leadership to %s: it is not a voter: %w", id, store.ErrRefused)
	case otherVoters == 0:
		return fmt.Errorf("transfer leadership: there is no other voter: %w", store.ErrRefused)
	}
	if err := c.st.TransferLeadership(ctx, id); err != nil {
		return fmt.Errorf("transfer leadership to %q: %w", id, retryable(err))
	}
	return nil
}

// retryable marks a failed leadership transfer (raft's timeout, say) as
// store.ErrNoLeader, so the caller gets 503 with Retry-After rather than an
// internal error: leadership is in flux and a retry is the right response.
// Errors the store already classified are kept as they are.
func retryable(err error) error {
	for _, known := range []error{store.ErrNotLeader, store.ErrNoLeader, store.ErrShutdown, store.ErrMemberNotFound, store.ErrUnknownOutcome} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", store.ErrNoLeader, err)
}

package cluster

import "time"

// AnnounceLeaving gossips this member's leaving flag at the start of a
// graceful stop, before the store closes. When every member is stopped at
// once, a leader that sees all other voters leaving stops at once instead
// of trying to hand leadership to members that are going away too.
func (c *Cluster) AnnounceLeaving() {
	c.mu.Lock()
	ml := c.ml
	c.mu.Unlock()
	if ml == nil {
		return
	}
	if err := c.refreshMeta(func(m *nodeMeta) { m.Leaving = true }); err != nil {
		c.log.Debug("gossip leaving flag", "error", err)
		return
	}
	c.leavingAnnounced.Store(true)
	if err := ml.UpdateNode(500 * time.Millisecond); err != nil {
		c.log.Debug("gossip leaving flag", "error", err)
	}
}

// leaveTimeout bounds the wait for gossip's leave broadcast: the usual 2 s,
// but only a moment when every peer is itself leaving or gone (a
// whole-cluster stop), since nobody is left to receive it.
func (c *Cluster) leaveTimeout() time.Duration {
	for _, p := range c.peers.all() {
		if p.meta.ID == c.cfg.ID {
			continue
		}
		if p.state == gossipAlive && !p.meta.Leaving {
			return 2 * time.Second
		}
	}
	return 200 * time.Millisecond
}

// PeerLeaving reports whether gossip says member id is stopping or gone
// (it announced leaving, left, or was declared failed).
func (c *Cluster) PeerLeaving(id string) bool {
	p, ok := c.peers.get(id)
	if !ok {
		return false
	}
	return p.meta.Leaving || p.state == gossipLeft || p.state == gossipFailed
}

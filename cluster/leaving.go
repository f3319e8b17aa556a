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
	if err := ml.UpdateNode(500 * time.Millisecond); err != nil {
		c.log.Debug("gossip leaving flag", "error", err)
	}
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

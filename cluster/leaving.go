package cluster

import "time"

// Waits on gossip while leaving. memberlist confirms a broadcast only once
// it has been sent to enough peers, a few gossip rounds; nothing is
// delivered faster by waiting, so these only give the message a chance to
// go out before the process exits.
const (
	// leaveWaitStaying bounds the wait for the leave broadcast while some
	// peer stays up: it then sees this member as "left", not "failed".
	leaveWaitStaying = 500 * time.Millisecond
	// leaveWaitAlone: a moment when every peer is leaving or gone (a
	// whole-cluster stop), since nobody is left to receive the broadcast.
	leaveWaitAlone = 50 * time.Millisecond
	// leavingFlagWait bounds the background wait for the leaving flag's
	// broadcast (AnnounceLeaving does not block on it).
	leavingFlagWait = time.Second
)

// AnnounceLeaving gossips this member's leaving flag at the start of a
// graceful stop, before the store closes. When every member is stopped at
// once, a leader that sees all other voters leaving stops at once instead
// of trying to hand leadership to members that are going away too. It does
// not wait for the broadcast to be confirmed: the flag is queued for the
// next gossip round either way.
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
	// UpdateNode queues the broadcast before it waits; the wait ends by
	// itself (bounded) after Shutdown too.
	go func() {
		if err := ml.UpdateNode(leavingFlagWait); err != nil {
			c.log.Debug("gossip leaving flag", "error", err)
		}
	}()
}

// leaveTimeout bounds the wait for gossip's leave broadcast, and says
// whether some peer stays (only then is a timeout worth a warning).
func (c *Cluster) leaveTimeout() (wait time.Duration, someoneStays bool) {
	for _, p := range c.peers.all() {
		if p.meta.ID == c.cfg.ID {
			continue
		}
		if p.state == gossipAlive && !p.meta.Leaving {
			return leaveWaitStaying, true
		}
	}
	return leaveWaitAlone, false
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

package cluster

// What the in-process test (integration_test.go, package cluster_test)
// reads of a member's insides. That test wires a real HTTP API the way
// cmd/wimms does, which this package itself must not import.

// GossipSeen is what c's gossip registry holds of member id: its gossip
// state ("alive", "failed", "left", "unknown") and its removed flag.
func GossipSeen(c *Cluster, id string) (state string, removed, known bool) {
	p, ok := c.peers.get(id)
	if !ok {
		return "", false, false
	}
	return p.state.String(), p.meta.Removed, true
}

// Reconciles counts the finished reconcile passes of c's leader loop.
func Reconciles(c *Cluster) uint64 { return c.reconciles.Load() }

// CrashGossip stops c's gossip without leaving: peers see it fail.
func CrashGossip(c *Cluster) {
	c.mu.Lock()
	ml := c.ml
	c.ml = nil
	c.mu.Unlock()
	if ml != nil {
		_ = ml.Shutdown()
	}
}

package cluster

import (
	"testing"
	"time"
)

// The gossip leave waits for its broadcast only while some peer stays: in
// a whole-cluster stop every peer is leaving or gone, and nobody is left to
// receive it.
func TestLeaveWaitsOnlyForStayingPeers(t *testing.T) {
	c := &Cluster{cfg: Config{ID: "m1"}, peers: newRegistry(time.Now)}
	c.peers.alive(nodeMeta{ID: "m1"}) // itself never counts
	if wait, stays := c.leaveTimeout(); stays || wait != leaveWaitAlone {
		t.Fatalf("alone: wait %v, someone stays %v", wait, stays)
	}
	c.peers.alive(nodeMeta{ID: "m2"})
	c.peers.alive(nodeMeta{ID: "m3", Leaving: true})
	if wait, stays := c.leaveTimeout(); !stays || wait != leaveWaitStaying {
		t.Fatalf("m2 stays: wait %v, someone stays %v", wait, stays)
	}
	c.peers.alive(nodeMeta{ID: "m2", Leaving: true})
	if wait, stays := c.leaveTimeout(); stays || wait != leaveWaitAlone {
		t.Fatalf("every peer leaving: wait %v, someone stays %v", wait, stays)
	}
	c.peers.alive(nodeMeta{ID: "m4"})
	c.peers.gone("m4", false)
	if wait, stays := c.leaveTimeout(); stays || wait != leaveWaitAlone {
		t.Fatalf("the only non-leaving peer failed: wait %v, someone stays %v", wait, stays)
	}
	if leaveWaitAlone >= leaveWaitStaying || leaveWaitStaying > time.Second {
		t.Fatalf("waits %v / %v: a whole-cluster stop must not wait like a rolling one, and neither near a second", leaveWaitAlone, leaveWaitStaying)
	}
}

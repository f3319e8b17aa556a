package cluster

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/memberlist"
)

func mustMeta(t *testing.T, m nodeMeta) []byte {
	t.Helper()
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPeersFileLetsARestartedMemberFindGossip: what gossip showed one run is
// saved, and the next run (a fresh registry, as after a restart) dials the
// saved gossip addresses of the members the Raft configuration names.
func TestPeersFileLetsARestartedMemberFindGossip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gossip-peers.json")
	st := newFakeStore("m1")
	st.setServers(voter("m1", "127.0.0.1:2"), voter("m2", "127.0.0.2:2"), voter("m3", "127.0.0.3:2"))

	first := newFakeCluster(t, st, func(c *Config) { c.PeersFile = file })
	// A join request tells the leader a member's addresses before gossip
	// shows it alive with the same ones: that must still be saved.
	first.peers.learn(nodeMeta{ID: "m2", HTTP: "127.0.0.2:1", Raft: "127.0.0.2:2", Gossip: "127.0.0.2:3", Zone: "b"})
	first.observeAlive(&memberlist.Node{Name: "m2", Meta: mustMeta(t, nodeMeta{ID: "m2", HTTP: "127.0.0.2:1", Raft: "127.0.0.2:2", Gossip: "127.0.0.2:3", Zone: "b"})})
	first.observeAlive(&memberlist.Node{Name: "m3", Meta: mustMeta(t, nodeMeta{ID: "m3", HTTP: "127.0.0.3:1", Raft: "127.0.0.3:2", Gossip: "127.0.0.3:3", Zone: "c"})})

	saved, err := readPeersFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 2 || saved[0].ID != "m2" || saved[1].Gossip != "127.0.0.3:3" {
		t.Fatalf("saved peers %+v", saved)
	}

	restarted := newFakeCluster(t, st, func(c *Config) { c.PeersFile = file })
	if got := restarted.gossipSyncTargets(true); len(got) != 0 {
		t.Fatalf("before loading, a restarted member knows no gossip address, got %v", got)
	}
	restarted.loadPeers()
	got := restarted.gossipSyncTargets(true)
	slices.Sort(got)
	if want := []string{"127.0.0.2:3", "127.0.0.3:3"}; !slices.Equal(got, want) {
		t.Fatalf("gossip sync targets after loading the peers file: %v, want %v", got, want)
	}
	if p, ok := restarted.peers.get("m2"); !ok || p.meta.HTTP != "127.0.0.2:1" || p.state == gossipAlive {
		t.Fatalf("loaded peer m2: %+v (must be known but not alive)", p)
	}

	// A damaged file is ignored (advisory), never fatal.
	if err := writeFileAtomic(file, "not a list"); err != nil {
		t.Fatal(err)
	}
	third := newFakeCluster(t, st, func(c *Config) { c.PeersFile = file })
	third.loadPeers()
	if got := third.gossipSyncTargets(true); len(got) != 0 {
		t.Fatalf("a damaged peers file must teach nothing, got %v", got)
	}
}

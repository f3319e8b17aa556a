package cluster

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// TestForwardTimeoutCoversApplyTimeout: a relayed write may wait on the
// leader for as long as the store's apply timeout; the follower must wait
// longer than that for the answer, or it answers 504 while the leader
// still works. The router gets its bound from here.
func TestForwardTimeoutCoversApplyTimeout(t *testing.T) {
	for _, apply := range []time.Duration{0, time.Second, 10 * time.Second, 40 * time.Second, 5 * time.Minute} {
		c := newFakeCluster(t, newFakeStore("f1"), func(cfg *Config) { cfg.ApplyTimeout = apply })
		want := apply
		if want == 0 {
			want = DefaultApplyTimeout
		}
		if got := c.cfg.ForwardTimeout; got < want+ForwardMargin {
			t.Errorf("apply timeout %s: forward timeout %s, want at least %s", apply, got, want+ForwardMargin)
		}
	}
	// Set explicitly, it is kept.
	c := newFakeCluster(t, newFakeStore("f1"), func(cfg *Config) { cfg.ApplyTimeout = time.Minute; cfg.ForwardTimeout = 2 * time.Minute })
	if c.cfg.ForwardTimeout != 2*time.Minute {
		t.Errorf("explicit forward timeout became %s", c.cfg.ForwardTimeout)
	}
}

// TestDialersBindOwnIP: member-to-member TCP must leave from the member's
// own loopback IP, or iptables partitions by source address cannot work.
// (cluster/routing's TestRelayDialsFromOwnIP covers a relay.)
func TestDialersBindOwnIP(t *testing.T) {
	rec := testutil.ListenSourceIPs(t)
	target, expect := rec.Target, rec.Expect

	st := newFakeStore("m2")
	c := newFakeCluster(t, st, func(cfg *Config) {
		cfg.HTTPAddr = "127.0.0.2:8080"
		cfg.RaftAddr = "127.0.0.2:8300"
		cfg.GossipBind = "127.0.0.3:0"
	})

	// The member-to-member HTTP client (joins, status, relays).
	req, err := http.NewRequest(http.MethodGet, c.members.URL(target, "/v1/cluster"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.members.Do(req); err == nil {
		resp.Body.Close()
	}
	expect("member client", "127.0.0.2")

	// Gossip streams, through the transport memberlist really uses.
	ml, err := c.createMemberlist()
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if n, _ := ml.Join([]string{target}); n != 0 {
		t.Fatalf("joined a listener that does not speak gossip")
	}
	expect("gossip", "127.0.0.3")

	// The leader loop's raft reachability probe.
	if err := c.probeTCP(context.Background(), target); err != nil {
		t.Fatal(err)
	}
	expect("probe", "127.0.0.2")
}

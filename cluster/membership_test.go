package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/store"
)

func TestJoinOnFollowerIsNotLeaderButRemembersAddresses(t *testing.T) {
	st := newFakeStore("f")
	st.setLeader(false, "L", "raft-L")
	c := newFakeCluster(t, st, nil)
	err := c.Join(context.Background(), wire.Member{ID: "n", RaftAddr: "raft-n", HTTPAddr: "http-n", Zone: "z"})
	if !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("Join on a follower: %v, want ErrNotLeader", err)
	}
	if p, ok := c.peers.get("n"); !ok || p.meta.HTTP != "http-n" || p.meta.Zone != "z" {
		t.Fatalf("addresses not remembered: %+v", p)
	}
	if calls := st.callLog(); len(calls) != 0 {
		t.Fatalf("a follower changed the configuration: %v", calls)
	}
}

func TestJoinOnLeader(t *testing.T) {
	st := newLeaderStore("L", "127.0.0.1:2", voter("b", "raft-b"), nonvoter("n", "raft-n"))
	c := newFakeCluster(t, st, nil)
	ctx := context.Background()
	steps := []struct {
		m    wire.Member
		want []string
	}{
		// Same id and address: no-op.
		{wire.Member{ID: "b", RaftAddr: "raft-b", Voter: true}, nil},
		// New member, voter.
		{wire.Member{ID: "c", RaftAddr: "raft-c", Voter: true}, []string{"add-voter c raft-c"}},
		// New member, non-voter.
		{wire.Member{ID: "d", RaftAddr: "raft-d"}, []string{"add-nonvoter d raft-d"}},
		// Existing non-voter asking to vote: promoted.
		{wire.Member{ID: "n", RaftAddr: "raft-n", Voter: true}, []string{"add-voter n raft-n"}},
		// Same id, another address: removed and re-added.
		{wire.Member{ID: "b", RaftAddr: "raft-b2", Voter: true}, []string{"remove b", "add-voter b raft-b2"}},
		// Another id at an address in use: the stale id goes.
		{wire.Member{ID: "e", RaftAddr: "raft-c", Voter: true}, []string{"remove c", "add-voter e raft-c"}},
	}
	var want []string
	for _, s := range steps {
		if err := c.Join(ctx, s.m); err != nil {
			t.Fatalf("Join %+v: %v", s.m, err)
		}
		want = append(want, s.want...)
		if calls := st.callLog(); !slices.Equal(calls, want) {
			t.Fatalf("after Join %+v: calls %v, want %v", s.m, calls, want)
		}
	}
	if err := c.Join(ctx, wire.Member{ID: "x", RaftAddr: "127.0.0.1:2"}); err == nil {
		t.Fatal("joined a new id at the leader's own raft address")
	}
	if err := c.Join(ctx, wire.Member{ID: "", RaftAddr: "raft-z"}); err == nil {
		t.Fatal("joined without an id")
	}
}

func TestRemove(t *testing.T) {
	st := newLeaderStore("L", "raft-L", voter("b", "raft-b"), voter("c", "raft-c"))
	c := newFakeCluster(t, st, nil)
	c.peers.alive(nodeMeta{ID: "b", Raft: "raft-b", Incarnation: "i1"})
	ctx := context.Background()

	if err := c.Remove(ctx, "zz"); !errors.Is(err, store.ErrMemberNotFound) {
		t.Fatalf("Remove unknown: %v, want ErrMemberNotFound", err)
	}
	if err := c.Remove(ctx, "b"); err != nil {
		t.Fatalf("Remove b: %v", err)
	}
	if calls := st.callLog(); !slices.Equal(calls, []string{"remove b"}) {
		t.Fatalf("calls %v", calls)
	}
	if ts, ok := c.tombstones["b"]; !ok || ts.incarnation != "i1" {
		t.Fatalf("no tombstone for b: %+v", c.tombstones)
	}
	// A later Join of b lifts the tombstone.
	if err := c.Join(ctx, wire.Member{ID: "b", RaftAddr: "raft-b", Voter: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.tombstones["b"]; ok {
		t.Fatal("explicit join did not lift the tombstone")
	}

	fst := newFakeStore("f")
	fst.setLeader(false, "L", "raft-L")
	if err := newFakeCluster(t, fst, nil).Remove(ctx, "b"); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("Remove on a follower: %v, want ErrNotLeader", err)
	}

	solo := newFakeStore("s")
	solo.setLeader(true, "s", "raft-s")
	solo.setServers(voter("s", "raft-s"), nonvoter("n", "raft-n"))
	if err := newFakeCluster(t, solo, nil).Remove(ctx, "s"); err == nil || errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("removing the only voter: %v, want a refusal", err)
	}
}

// TestRemoveLeaderHandsOverThenAsksNewLeader: the leader cannot remove
// itself; it transfers leadership and the new leader removes it.
func TestRemoveLeaderHandsOverThenAsksNewLeader(t *testing.T) {
	var deleted []string
	newLeader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/cluster/members/") && r.Header.Get("Authorization") == "Bearer adm" {
			deleted = append(deleted, strings.TrimPrefix(r.URL.Path, "/v1/cluster/members/"))
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer newLeader.Close()

	st := newLeaderStore("L", "raft-L", voter("b", "raft-b"), voter("c", "raft-c"))
	st.transferTo = "b"
	c := newFakeCluster(t, st, func(cfg *Config) { cfg.AdminToken = "adm" })
	c.peers.learn(nodeMeta{ID: "b", HTTP: newLeader.Listener.Addr().String(), Raft: "raft-b"})
	if err := c.Remove(context.Background(), "L"); err != nil {
		t.Fatalf("Remove of the leader: %v", err)
	}
	if calls := st.callLog(); !slices.Equal(calls, []string{`transfer ""`}) {
		t.Fatalf("calls %v, want only a transfer (the new leader removes)", calls)
	}
	if !slices.Equal(deleted, []string{"L"}) {
		t.Fatalf("new leader saw deletes %v, want [L]", deleted)
	}
}

func TestTransferLeadership(t *testing.T) {
	st := newLeaderStore("L", "raft-L", voter("b", "raft-b"), nonvoter("n", "raft-n"))
	c := newFakeCluster(t, st, nil)
	ctx := context.Background()
	if err := c.TransferLeadership(ctx, "zz"); !errors.Is(err, store.ErrMemberNotFound) {
		t.Errorf("to unknown: %v", err)
	}
	if err := c.TransferLeadership(ctx, "n"); err == nil {
		t.Errorf("to a non-voter: no error")
	}
	if err := c.TransferLeadership(ctx, "L"); err != nil {
		t.Errorf("to itself: %v", err)
	}
	if err := c.TransferLeadership(ctx, "b"); err != nil {
		t.Errorf("to b: %v", err)
	}
	if calls := st.callLog(); !slices.Equal(calls, []string{`transfer "b"`}) {
		t.Errorf("calls %v", calls)
	}
	if err := c.TransferLeadership(ctx, ""); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("after handing over: %v, want ErrNotLeader", err)
	}
}

func TestStatusMergesRaftAndGossip(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	st := newFakeStore("b")
	st.setLeader(false, "a", "raft-a")
	st.lastContact = clock.t.Add(-120 * time.Millisecond)
	st.setServers(voter("a", "raft-a"), voter("b", "127.0.0.1:2"), voter("c", "raft-c"), nonvoter("d", "raft-d"), voter("e", "raft-e"), voter("f", "raft-f"))
	c := newFakeCluster(t, st, func(cfg *Config) { cfg.Zone = "zb"; cfg.HTTPAddr = "127.0.0.1:8002" })
	c.now = clock.now
	c.peers.alive(nodeMeta{ID: "a", HTTP: "http-a", Gossip: "g-a", Zone: "za"})
	clock.advance(300 * time.Millisecond)
	c.peers.alive(nodeMeta{ID: "c", HTTP: "http-c", Zone: "zc"})
	c.peers.alive(nodeMeta{ID: "d", HTTP: "http-d", Zone: "zd"})
	c.peers.gone("d", false)
	c.peers.alive(nodeMeta{ID: "e", HTTP: "http-e"})
	c.peers.gone("e", true)
	clock.advance(50 * time.Millisecond)

	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.Member{
		{ID: "a", RaftAddr: "raft-a", HTTPAddr: "http-a", GossipAddr: "g-a", Zone: "za", Voter: true, State: "leader", LastContactMs: 0},
		{ID: "b", RaftAddr: "127.0.0.1:2", HTTPAddr: "127.0.0.1:8002", GossipAddr: "127.0.0.1:0", Zone: "zb", Voter: true, State: "follower", LastContactMs: 470},
		{ID: "c", RaftAddr: "raft-c", HTTPAddr: "http-c", Zone: "zc", Voter: true, State: "follower", LastContactMs: 50},
		{ID: "d", RaftAddr: "raft-d", HTTPAddr: "http-d", Zone: "zd", Voter: false, State: "failed", LastContactMs: 50},
		{ID: "e", RaftAddr: "raft-e", HTTPAddr: "http-e", Voter: true, State: "left", LastContactMs: 50},
		{ID: "f", RaftAddr: "raft-f", Voter: true, State: "unknown", LastContactMs: -1},
	}
	if !slices.Equal(got.Members, want) {
		gb, _ := json.MarshalIndent(got.Members, "", " ")
		t.Fatalf("members:\n%s", gb)
	}
	if got.Leader == nil || *got.Leader != want[0] {
		t.Fatalf("leader %+v", got.Leader)
	}
	if got.Term != 3 || got.CommitIndex != 8 || got.AppliedIndex != 7 {
		t.Fatalf("indexes %+v", got)
	}

	st.setLeader(false, "", "")
	got, _ = c.Status(context.Background())
	if got.Leader != nil {
		t.Fatalf("leader %+v with none known", got.Leader)
	}
}

func TestMetaSizeIsChecked(t *testing.T) {
	st := newFakeStore(strings.Repeat("x", 400))
	_, err := newCluster(Config{ID: st.id, HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2", GossipBind: "127.0.0.1:0", Zone: strings.Repeat("z", 100)}, st)
	if err == nil {
		t.Fatal("accepted gossip metadata over memberlist's limit")
	}
	b, err := encodeMeta(nodeMeta{ID: "a", HTTP: "127.0.0.1:1", Raft: "127.0.0.1:2", Gossip: "127.0.0.1:3", Zone: "eu-1", Incarnation: "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeMeta(b)
	if err != nil || m.Zone != "eu-1" || m.Gossip != "127.0.0.1:3" {
		t.Fatalf("round trip: %+v, %v", m, err)
	}
}

// startFake starts a Cluster on a fake store: real gossip, no Raft.
func startFake(t *testing.T, id, ip string, join []string, timeout time.Duration) (*Cluster, error) {
	t.Helper()
	st := newFakeStore(id)
	c := newFakeCluster(t, st, func(cfg *Config) {
		cfg.HTTPAddr = ip + ":1"
		cfg.RaftAddr = ip + ":2"
		cfg.GossipBind = ip + ":0"
		cfg.Join = join
		cfg.GossipProbeInterval = 200 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c, c.Start(ctx)
}

// A member that answers the HTTP join with an error (here: no leader yet)
// still lets the joiner into gossip, through the gossip addresses its
// /v1/cluster names; the leader adds the joiner from there. A 401 does not.
func TestJoinFallsBackToGossipThroughAnHTTPMember(t *testing.T) {
	x, err := startFake(t, "x", "127.0.0.1", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var postCode atomic.Int32
	postCode.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/cluster/members":
			w.WriteHeader(int(postCode.Load()))
			_, _ = w.Write([]byte(`{"status":"no-leader","errors":[]}`))
		case r.Method == http.MethodGet && r.URL.Path == "/v1/cluster":
			_ = json.NewEncoder(w).Encode(wire.ClusterStatus{Members: []wire.Member{{ID: "x", GossipAddr: x.GossipAddr(), HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2"}}})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()

	if _, err := startFake(t, "y", "127.0.0.2", []string{srv.Listener.Addr().String()}, 5*time.Second); err != nil {
		t.Fatalf("join through an HTTP member without a leader: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "x to see y in gossip", func() bool {
		p, ok := x.peers.get("y")
		return ok && p.state == gossipAlive && p.meta.Zone == "z-y"
	})

	postCode.Store(http.StatusUnauthorized)
	if _, err := startFake(t, "z", "127.0.0.3", []string{srv.Listener.Addr().String()}, time.Second); err == nil {
		t.Fatal("joined although the member refused the token")
	}
	if _, ok := x.peers.get("z"); ok {
		t.Fatal("z reached gossip through a member that refused its token")
	}
}

// A join address that does not speak HTTP is tried as a gossip address.
func TestJoinThroughGossipAddress(t *testing.T) {
	x, err := startFake(t, "x", "127.0.0.1", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startFake(t, "y", "127.0.0.2", []string{x.GossipAddr()}, 5*time.Second); err != nil {
		t.Fatalf("join through a gossip address: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "x to see y", func() bool {
		p, ok := x.peers.get("y")
		return ok && p.state == gossipAlive
	})
	// Nothing listens: Start gives up when its context ends.
	dead := testutil.FreeAddr(t, "127.0.0.1")
	if _, err := startFake(t, "z", "127.0.0.3", []string{dead}, 500*time.Millisecond); err == nil {
		t.Fatal("Start succeeded with no reachable join address")
	}
}

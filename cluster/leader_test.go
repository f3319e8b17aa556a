package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// TestReapDecisionTable pins the guard on hand-checked cases.
func TestReapDecisionTable(t *testing.T) {
	cases := []struct {
		voters, failed int
		candidateVoter bool
		want           bool
	}{
		{5, 1, true, true},   // 5 → 4 voters, one failed of five
		{5, 2, true, true},   // two failed of five is (5-1)/2
		{5, 3, true, false},  // three failed of five: quorum at stake
		{4, 1, true, true},   // 4 → 3
		{4, 2, true, false},  // (4-1)/2 = 1
		{3, 1, true, false},  // 3 → 2 voters: below the floor
		{3, 0, false, true},  // a failed non-voter in a healthy 3-voter cluster
		{3, 1, false, true},  // one failed voter of three is tolerated for a non-voter reap
		{3, 2, false, false}, // two of three voters failed
		{2, 1, true, false},  // (2-1)/2 = 0 failed allowed
		{2, 0, false, true},  // non-voter of a healthy 2-voter cluster
		{1, 0, false, true},  // non-voter of a single-voter cluster
		{1, 1, true, false},  // the only voter
		{7, 3, true, true},
		{7, 4, true, false},
		{0, 0, false, false}, // no voters: nonsense
		{3, 4, false, false}, // more failed than voters: nonsense
		{5, 0, true, false},  // candidate voter not counted as failed: nonsense
	}
	for _, tc := range cases {
		got, reason := reapDecision(tc.voters, tc.failed, tc.candidateVoter)
		if got != tc.want {
			t.Errorf("reapDecision(voters=%d, failed=%d, voter=%v) = %v (%q), want %v",
				tc.voters, tc.failed, tc.candidateVoter, got, reason, tc.want)
		}
		if !got && reason == "" {
			t.Errorf("reapDecision(%d, %d, %v) refused without a reason", tc.voters, tc.failed, tc.candidateVoter)
		}
	}
}

// TestReapDecisionExhaustive checks the two safety rules, and that nothing
// else is refused, over every consistent input up to 12 voters.
func TestReapDecisionExhaustive(t *testing.T) {
	allowedCount := 0
	for voters := 1; voters <= 12; voters++ {
		for failed := 0; failed <= voters; failed++ {
			for _, candidateVoter := range []bool{false, true} {
				if candidateVoter && failed == 0 {
					continue // the candidate voter is itself failed
				}
				ok, _ := reapDecision(voters, failed, candidateVoter)
				after := voters
				if candidateVoter {
					after--
				}
				// Safety: never with a failed majority-or-more view...
				if ok && failed > (voters-1)/2 {
					t.Errorf("voters=%d failed=%d voter=%v: allowed with more than (v-1)/2 failed", voters, failed, candidateVoter)
				}
				// ...never below three voters from three or more...
				if ok && voters >= 3 && after < 3 {
					t.Errorf("voters=%d failed=%d voter=%v: allowed down to %d voters", voters, failed, candidateVoter, after)
				}
				// ...and after a reap the remaining voters still hold a
				// majority of the alive ones.
				if ok {
					aliveAfter := voters - failed
					failedAfter := failed
					if candidateVoter {
						failedAfter--
					}
					if aliveAfter <= failedAfter {
						t.Errorf("voters=%d failed=%d voter=%v: leaves %d alive vs %d failed", voters, failed, candidateVoter, aliveAfter, failedAfter)
					}
				}
				// Liveness: everything else is allowed.
				if !ok && failed <= (voters-1)/2 && (voters < 3 || after >= 3) {
					t.Errorf("voters=%d failed=%d voter=%v: refused although both rules hold", voters, failed, candidateVoter)
				}
				if ok {
					allowedCount++
				}
			}
		}
	}
	if allowedCount == 0 {
		t.Fatal("the guard never allows anything")
	}
}

// fakeClock is a settable now for the registry and leader loop.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newReconcileFixture(t *testing.T, servers ...string) (*Cluster, *fakeStore, *fakeClock, *leaderLoopState) {
	t.Helper()
	st := newFakeStore("a")
	st.setLeader(true, "a", "127.0.0.1:2")
	for _, id := range append([]string{"a"}, servers...) {
		st.servers = append(st.servers, voter(id, "raft-"+id))
	}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newFakeCluster(t, st, func(cfg *Config) { cfg.ReapAfter = time.Hour })
	c.now = clock.now
	lc := &leaderLoopState{since: clock.now(), absentSince: map[string]time.Time{}, refused: map[string]string{}}
	return c, st, clock, lc
}

func TestReapAfterReapAfterOnlyWithQuorumGuards(t *testing.T) {
	c, st, clock, lc := newReconcileFixture(t, "b", "c", "d", "e")
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		c.peers.alive(nodeMeta{ID: id, Raft: "raft-" + id})
	}
	ctx := context.Background()

	c.peers.gone("e", false)
	clock.advance(59 * time.Minute)
	c.reconcile(ctx, lc)
	if calls := st.callLog(); len(calls) != 0 {
		t.Fatalf("reaped before ReapAfter: %v", calls)
	}
	clock.advance(2 * time.Minute)
	c.reconcile(ctx, lc)
	if calls := st.callLog(); !slices.Equal(calls, []string{"remove e"}) {
		t.Fatalf("after ReapAfter: calls %v, want [remove e]", calls)
	}

	// 4 voters: d fails; 4 → 3 is allowed.
	c.peers.gone("d", true)
	clock.advance(2 * time.Hour)
	c.reconcile(ctx, lc)
	if calls := st.callLog(); !slices.Equal(calls, []string{"remove e", "remove d"}) {
		t.Fatalf("calls %v, want d reaped too", calls)
	}

	// 3 voters: never below 3, however long c is gone.
	c.peers.gone("c", false)
	clock.advance(100 * time.Hour)
	c.reconcile(ctx, lc)
	c.reconcile(ctx, lc)
	if calls := st.callLog(); len(calls) != 2 {
		t.Fatalf("reaped down to fewer than 3 voters: %v", calls)
	}
	servers, _ := st.Servers()
	if len(servers) != 3 {
		t.Fatalf("configuration has %d servers, want 3", len(servers))
	}
}

func TestReapRefusedWhenTooManyVotersFailed(t *testing.T) {
	c, st, clock, lc := newReconcileFixture(t, "b", "c", "d", "e")
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		c.peers.alive(nodeMeta{ID: id, Raft: "raft-" + id})
	}
	// Three of five failed: this leader's view cannot be trusted (it could
	// not even commit with it); nothing is reaped.
	c.peers.gone("c", false)
	c.peers.gone("d", false)
	c.peers.gone("e", false)
	clock.advance(10 * time.Hour)
	c.reconcile(context.Background(), lc)
	if calls := st.callLog(); len(calls) != 0 {
		t.Fatalf("reaped with 3 of 5 voters failed: %v", calls)
	}
	// One comes back: two of five failed; the one failed longest goes first.
	c.peers.alive(nodeMeta{ID: "c", Raft: "raft-c"})
	clock.advance(time.Second)
	c.reconcile(context.Background(), lc)
	if calls := st.callLog(); len(calls) != 1 || calls[0] != "remove d" && calls[0] != "remove e" {
		t.Fatalf("calls %v, want one of d, e removed", calls)
	}
}

func TestReapUsesOnlyThisLeadersOwnObservations(t *testing.T) {
	c, st, clock, lc := newReconcileFixture(t, "b", "c", "d", "e")
	for _, id := range []string{"a", "b", "c", "d"} {
		c.peers.alive(nodeMeta{ID: id, Raft: "raft-" + id})
	}
	// e never appeared in this process's gossip view: it counts as failed
	// from when this leader first noticed, not from any earlier time.
	c.reconcile(context.Background(), lc)
	clock.advance(30 * time.Minute)
	c.reconcile(context.Background(), lc)
	if calls := st.callLog(); len(calls) != 0 {
		t.Fatalf("reaped a member unseen for less than ReapAfter: %v", calls)
	}
	clock.advance(31 * time.Minute)
	c.reconcile(context.Background(), lc)
	if calls := st.callLog(); !slices.Equal(calls, []string{"remove e"}) {
		t.Fatalf("calls %v, want e reaped after ReapAfter of this leader's own view", calls)
	}
}

func TestReconcileAddsReachableGossipMembers(t *testing.T) {
	raftB, raftD, raftE, raftF := testutil.AcceptingAddr(t, "127.0.0.1"), testutil.AcceptingAddr(t, "127.0.0.1"), testutil.AcceptingAddr(t, "127.0.0.1"), testutil.AcceptingAddr(t, "127.0.0.1")
	unreachable := testutil.FreeAddr(t, "127.0.0.1")

	c, st, _, lc := newReconcileFixture(t)
	c.peers.alive(nodeMeta{ID: "a", Raft: "raft-a"})
	c.peers.alive(nodeMeta{ID: "b", Raft: raftB, Incarnation: "1"})
	c.peers.alive(nodeMeta{ID: "c", Raft: unreachable})
	c.peers.alive(nodeMeta{ID: "d", Raft: raftD, Removed: true})
	c.peers.alive(nodeMeta{ID: "e", Raft: raftE, Incarnation: "7"})
	c.tombstones["e"] = tombstone{incarnation: "7"}
	c.peers.alive(nodeMeta{ID: "f", Raft: raftF})
	c.peers.gone("f", false)

	c.reconcile(context.Background(), lc)
	want := []string{"add-voter b " + raftB}
	if calls := st.callLog(); !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want %v (c unreachable, d removed, e tombstoned, f failed)", calls, want)
	}
	c.reconcile(context.Background(), lc)
	if calls := st.callLog(); !slices.Equal(calls, want) {
		t.Fatalf("second round: calls %v, want nothing new", calls)
	}

	// e restarted (new incarnation): the tombstone no longer applies.
	c.peers.alive(nodeMeta{ID: "e", Raft: raftE, Incarnation: "8"})
	c.reconcile(context.Background(), lc)
	want = append(want, "add-voter e "+raftE)
	if calls := st.callLog(); !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}

	// b moved to another raft address: replaced.
	raftB2 := testutil.AcceptingAddr(t, "127.0.0.1")
	c.peers.alive(nodeMeta{ID: "b", Raft: raftB2, Incarnation: "2"})
	c.reconcile(context.Background(), lc)
	want = append(want, "remove b", "add-voter b "+raftB2)
	if calls := st.callLog(); !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
}

// TestLeaderLoopEstablishesReconcilesRevokes: the loop runs one term per
// leadership, in Consul's order: establish, reconcile (driven here by
// gossip events alone: the interval is longer than the test), and revoke
// on loss, which cancels a change in progress. Regaining leadership starts
// a fresh term.
func TestLeaderLoopEstablishesReconcilesRevokes(t *testing.T) {
	raftB := testutil.AcceptingAddr(t, "127.0.0.1")
	st := newFakeStore("a")
	st.setServers(voter("a", "raft-a"))
	c := newFakeCluster(t, st, func(cfg *Config) { cfg.ReconcileInterval = time.Hour })
	c.goLoop(c.runLeaderLoop)

	st.setLeader(true, "a", "raft-a")
	testutil.WaitFor(t, 2*time.Second, "the term to be established", func() bool { return slices.Equal(st.callLog(), []string{"establish"}) })

	st.mu.Lock()
	st.holdAdds, st.addsCanceled = true, make(chan string, 1)
	st.mu.Unlock()
	c.peers.alive(nodeMeta{ID: "b", Raft: raftB})
	c.memberEvent() // what gossip's join callback does
	want := []string{"establish", "add-voter b " + raftB}
	testutil.WaitFor(t, 2*time.Second, "the gossip event to reconcile", func() bool { return slices.Equal(st.callLog(), want) })

	st.setLeader(false, "", "")
	select {
	case id := <-st.addsCanceled:
		if id != "b" {
			t.Fatalf("canceled add of %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("losing leadership did not cancel the term's membership change")
	}

	st.mu.Lock()
	st.holdAdds = false
	st.mu.Unlock()
	st.setLeader(true, "a", "raft-a")
	want = append(want, "establish", "add-voter b "+raftB)
	testutil.WaitFor(t, 2*time.Second, "a new term to establish, then reconcile", func() bool { return len(st.callLog()) >= len(want) })
	if calls := st.callLog(); !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
}

// With credentials configured, gossip is no proof of membership: a
// stranger is never added and a known member is never moved from gossip
// (issue 19: the gossip key alone re-addressed a stopped voter); both
// happen through the authenticated HTTP join.
func TestReconcileAdmitsOnlyAuthenticatedJoins(t *testing.T) {
	raftB, raftX := testutil.AcceptingAddr(t, "127.0.0.1"), testutil.AcceptingAddr(t, "127.0.0.1")
	c, st, _, lc := newReconcileFixture(t, "b")
	c.cfg.AuthenticatedJoinOnly = true
	c.peers.alive(nodeMeta{ID: "x", Raft: raftX})
	c.peers.alive(nodeMeta{ID: "b", Raft: raftB})

	c.reconcile(context.Background(), lc)
	if calls := st.callLog(); len(calls) != 0 {
		t.Fatalf("calls %v, want none (x and b's new address came from gossip only)", calls)
	}

	// The same claims made over the authenticated HTTP join are taken.
	if err := c.Join(context.Background(), wire.Member{ID: "b", RaftAddr: raftB, Voter: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Join(context.Background(), wire.Member{ID: "x", RaftAddr: raftX, Voter: true}); err != nil {
		t.Fatal(err)
	}
	want := []string{"remove b", "add-voter b " + raftB, "add-voter x " + raftX}
	if calls := st.callLog(); !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
}

//go:build chaos

package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// seedBugs switches seeded bugs on for one test.
func seedBugs(t *testing.T, b SeedBugs) {
	t.Helper()
	SetSeedBugs(b)
	t.Cleanup(func() { SetSeedBugs(SeedBugs{}) })
}

func (m *fakeMachine) fork() machine {
	st := m.state()
	return &fakeMachine{services: st.Services, nextID: st.NextID, applied: st.Applied}
}

// TestSeedBugStaleLinearizableRead: the seeded bug is observable, a
// held-back follower answers a linearizable read at once without the
// acknowledged write.
func TestSeedBugStaleLinearizableRead(t *testing.T) {
	seedBugs(t, SeedBugs{StaleLinearizableRead: true})
	c := newTestCluster(t, 3, nil)
	leader, follower := c.leader(), c.followers()[0]
	follower.SetRemoteReadIndex(leader.ReadIndex)
	fm := c.machineOf(follower)
	fm.hold()
	defer fm.release()
	if _, _, err := leader.Apply(ctxTimeout(t, 5*time.Second), putService("bug-1.0")); err != nil {
		t.Fatal(err)
	}
	var saw bool
	if _, err := follower.Read(ctxTimeout(t, 5*time.Second), ReadOptions{Level: ReadLinearizable}, func(rd fsm.Reader) error {
		_, err := rd.GetService("bug-1.0")
		saw = err == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if saw {
		t.Fatal("seeded stale linearizable read saw the write although the follower was held back")
	}
}

// TestSeedBugAckBeforeCommit: a leader cut off from its quorum acknowledges
// a write at once, which never commits (TestIsolatedLeaderWriteHasUnknownOutcome
// is the correct store).
func TestSeedBugAckBeforeCommit(t *testing.T) {
	seedBugs(t, SeedBugs{AckBeforeCommit: true})
	leader := isolatedLeader(t)
	before := leader.CommitIndex()
	res, _, err := leader.Apply(ctxTimeout(t, 300*time.Millisecond), putService("lost-1.0"))
	if errors.Is(err, ErrNotLeader) {
		t.Skip("leader stepped down before the write; cannot observe the bug")
	}
	if err != nil || !res.Created {
		t.Fatalf("seeded bug: Apply = %+v, %v; want an immediate created answer", res, err)
	}
	if leader.CommitIndex() != before || leader.machine.(*fakeMachine).has("lost-1.0") {
		t.Fatal("the acknowledged write committed: nothing was isolated")
	}
}

// TestSeedBugAckBeforeCommitUsesFork: the seeded bug answers from
// fsm.Fork(); the answer must match what the committed entry later produces
// when nothing else interferes.
func TestSeedBugAckBeforeCommitUsesFork(t *testing.T) {
	seedBugs(t, SeedBugs{AckBeforeCommit: true})
	s := openReal(t, testConfig(t, testutil.Logger(t), "solo", true))
	testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
	// What the cluster's leader loop does first, so that its no-op does not
	// mix with what this test measures.
	if err := s.EstablishLeadership(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("EstablishLeadership: %v", err)
	}
	res, _, err := s.Apply(context.Background(), fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("{node}")})
	if err != nil || !res.Created || res.Service == nil {
		t.Fatalf("ack-before-commit apply = %+v, %v", res, err)
	}
	testutil.WaitFor(t, 5*time.Second, "the entry to apply", func() bool {
		_, err := stateMachine(s).GetService("sync-1.5")
		return err == nil
	})
	_, err = stateMachine(s).GetService("nope-1.0")
	var fe *fsm.Error
	if !errors.As(err, &fe) || fe.Status != fsm.StatusNotFound {
		t.Fatalf("GetService(nope) err = %v", err)
	}
}

// TestSeedBugDropTailOnOpen: the seeded bug is observable, a restarted
// member's state lacks the writes at the end of its log.
func TestSeedBugDropTailOnOpen(t *testing.T) {
	seedBugs(t, SeedBugs{DropTailOnOpen: 5})
	s, _ := openSoloLeader(t)
	putServices(t, s, "s", 0, 20)
	crash(s)
	again, m := openFake(t, func() Config { c := s.cfg; c.RaftBind = s.RaftAddr(); return c }())
	testutil.WaitFor(t, 10*time.Second, "leadership after the restart", again.IsLeader)
	if err := again.EstablishLeadership(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(m.state().Services); n >= 20 {
		t.Fatalf("%d services after the restart: the seeded bug dropped nothing", n)
	}
}

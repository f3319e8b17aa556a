package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// These tests run the store with the real state machine and codec.

func openReal(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stateMachine is the state machine of a store opened with Open.
func stateMachine(s *Store) *fsm.FSM { return s.machine.(fsmMachine).f }

func applyOK(t testing.TB, s *Store, cmd fsm.Command) fsm.Result {
	t.Helper()
	res, _, err := s.Apply(ctxTimeout(t, 5*time.Second), cmd)
	if err != nil {
		t.Fatalf("apply %v: %v", cmd.Op, err)
	}
	if res.Err != nil {
		t.Fatalf("apply %v: %v", cmd.Op, res.Err)
	}
	return res
}

func TestRealFSMClusterReplicatesSnapshotsAndRestarts(t *testing.T) {
	logger := testutil.Logger(t)
	const clock = int64(1_700_000_000_000)
	tune := func(cfg *Config) {
		cfg.Now = func() time.Time { return time.UnixMilli(clock) }
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
		cfg.SnapshotInterval = 100 * time.Millisecond
		// The test writes to the first member throughout: raft's LAN
		// timings keep it leader on a loaded machine (CI runs the chaos
		// tests beside it), where the shared test timings let a 150 ms
		// stall depose it.
		cfg.HeartbeatTimeout = time.Second
		cfg.ElectionTimeout = time.Second
		cfg.LeaderLeaseTimeout = 500 * time.Millisecond
	}
	var stores []*Store
	for i := range 3 {
		cfg := testConfig(t, logger, fmt.Sprintf("r%d", i), i == 0)
		tune(&cfg)
		s := openReal(t, cfg)
		stores = append(stores, s)
		if i == 0 {
			testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
			continue
		}
		if err := stores[0].AddVoter(ctxTimeout(t, 5*time.Second), s.ID(), s.RaftAddr()); err != nil {
			t.Fatal(err)
		}
	}
	leader := stores[0]
	applyOK(t, leader, fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("{node}/1.5/{uid}")})
	applyOK(t, leader, fsm.Command{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "https://n1.example", Capacity: fsm.SomeInt64(1000)})
	var last fsm.Result
	for i := range 80 {
		last = applyOK(t, leader, fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: fmt.Sprintf("u%d@example.com", i)})
	}
	if last.User == nil || last.User.CreatedAt != clock {
		t.Fatalf("allocate result %+v: want created_at stamped from the proposer's clock %d", last.User, clock)
	}

	// Linearizable read of the last write on a follower.
	follower := stores[1]
	follower.SetRemoteReadIndex(leader.ReadIndex)
	var got fsm.User
	if _, err := follower.Read(ctxTimeout(t, 5*time.Second), ReadOptions{Level: ReadLinearizable}, func(r fsm.Reader) error {
		var err error
		got, err = r.GetUser("sync-1.5", "u79@example.com")
		return err
	}); err != nil {
		t.Fatalf("linearizable read on follower: %v", err)
	}
	if got.UID != last.User.UID {
		t.Fatalf("follower read uid %d, leader allocated %d", got.UID, last.User.UID)
	}

	// Restart a follower from its data dir (its own snapshot plus log).
	testutil.WaitFor(t, 15*time.Second, "the follower's snapshot", func() bool { return countSnapshots(t, follower.cfg.DataDir) > 0 })
	fcfg := follower.cfg
	fcfg.RaftBind = follower.RaftAddr()
	crash(follower)
	applyOK(t, leader, fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: "while-down@example.com"})
	restarted := openReal(t, fcfg)
	if restarted.AppliedIndex() == 0 {
		t.Fatal("the restarted follower did not restore its snapshot at Open")
	}
	if err := restarted.WaitApplied(ctxTimeout(t, 15*time.Second), leader.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{stores[2], restarted} {
		if err := s.WaitApplied(ctxTimeout(t, 10*time.Second), leader.AppliedIndex()); err != nil {
			t.Fatal(err)
		}
		if !stateMachine(s).Equal(stateMachine(leader)) {
			t.Fatalf("%s's state differs from the leader's at index %d", s.ID(), leader.AppliedIndex())
		}
	}
}

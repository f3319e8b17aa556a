package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// testConfig has timings short enough for fast tests yet loose enough not to
// flap on a loaded two-core machine.
func testConfig(t testing.TB, logger hclog.Logger, id string, bootstrap bool) Config {
	return Config{
		ID:                 id,
		DataDir:            t.TempDir(),
		RaftBind:           "127.0.0.1:0",
		Bootstrap:          bootstrap,
		Logger:             logger,
		ApplyTimeout:       5 * time.Second,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
	}
}

func openFake(t testing.TB, cfg Config) (*Store, *fakeMachine) {
	t.Helper()
	m := newFakeMachine()
	s, err := open(cfg, m, jsonCodec)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, m
}

// openSoloLeader opens a single bootstrapping member "solo" on a fake
// machine and waits until it leads.
func openSoloLeader(t testing.TB) (*Store, *fakeMachine) {
	t.Helper()
	s, m := openFake(t, testConfig(t, testutil.Logger(t), "solo", true))
	testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
	return s, m
}

// openBolt opens the raft.db of a stopped member's data dir, as
// openRaftStorage does, for a test to read or rewrite what it holds.
func openBolt(t testing.TB, dataDir string) *raftboltdb.BoltStore {
	t.Helper()
	db, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, "raft.db")})
	if err != nil {
		t.Fatalf("opening raft.db of %s: %v", dataDir, err)
	}
	return db
}

// crash stops a member without the graceful leadership handover.
func crash(s *Store) {
	s.closeOnce.Do(func() { s.closeErr = s.close(false) })
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// putServices creates services prefix{from}-1.0 up to but not including
// prefix{to}-1.0 through s, one command each.
func putServices(t testing.TB, s *Store, prefix string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, _, err := s.Apply(ctxTimeout(t, 5*time.Second), putService(fmt.Sprintf("%s%d-1.0", prefix, i))); err != nil {
			t.Fatal(err)
		}
	}
}

func putService(name string) fsm.Command {
	return fsm.Command{Op: fsm.OpPutService, Service: name, Pattern: fsm.SomeString("{node}/1.5/{uid}")}
}

type testCluster struct {
	stores   []*Store
	machines []*fakeMachine
}

// newTestCluster starts n members: the first bootstraps, the leader adds
// the others as voters, and every member has caught up on return.
func newTestCluster(t testing.TB, n int, mutate func(*Config)) *testCluster {
	t.Helper()
	logger := testutil.Logger(t)
	c := &testCluster{}
	for i := range n {
		cfg := testConfig(t, logger, fmt.Sprintf("m%d", i), i == 0)
		// Each member on its own loopback IP, as the chaos harness runs them.
		cfg.RaftBind = fmt.Sprintf("127.0.0.%d:0", i+1)
		if mutate != nil {
			mutate(&cfg)
		}
		s, m := openFake(t, cfg)
		c.stores = append(c.stores, s)
		c.machines = append(c.machines, m)
		if i == 0 {
			testutil.WaitFor(t, 10*time.Second, "the bootstrapped member to lead", s.IsLeader)
			continue
		}
		if err := c.stores[0].AddVoter(ctxTimeout(t, 10*time.Second), s.ID(), s.RaftAddr()); err != nil {
			t.Fatalf("adding %s: %v", s.ID(), err)
		}
	}
	c.waitConverged(t)
	return c
}

// waitConverged waits until every live member knows the same leader and has
// applied the leader's commit index.
func (c *testCluster) waitConverged(t testing.TB) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "members to converge", func() bool {
		l := c.leader()
		if l == nil {
			return false
		}
		target := l.CommitIndex()
		for _, s := range c.stores {
			if s.closing.Load() {
				continue
			}
			if id, _ := s.Leader(); id != l.ID() || s.AppliedIndex() < target {
				return false
			}
		}
		return true
	})
}

func (c *testCluster) leader() *Store {
	for _, s := range c.stores {
		if !s.closing.Load() && s.IsLeader() {
			return s
		}
	}
	return nil
}

func (c *testCluster) followers() []*Store {
	var out []*Store
	for _, s := range c.stores {
		if !s.closing.Load() && !s.IsLeader() {
			out = append(out, s)
		}
	}
	return out
}

func (c *testCluster) machineOf(s *Store) *fakeMachine {
	for i, st := range c.stores {
		if st == s {
			return c.machines[i]
		}
	}
	return nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/testutil"
)

func TestCatchUpTracksTheNewestAppliedCommitPoint(t *testing.T) {
	var c catchUp
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	upTo := func(applied uint64) func(uint64) bool { return func(i uint64) bool { return i <= applied } }

	if got, learned := c.status(upTo(100)); !got.IsZero() || learned != 0 {
		t.Fatalf("before any contact: caught up at %v, learned %d", got, learned)
	}
	c.observe(10, at(0))
	c.observe(10, at(50)) // same commit, newer contact
	c.observe(20, at(100))
	c.observe(30, at(150))
	if got, _ := c.status(upTo(9)); !got.IsZero() {
		t.Fatalf("applied 9 < every learned commit: caught up at %v", got)
	}
	if got, _ := c.status(upTo(10)); !got.Equal(at(50)) {
		t.Fatalf("applied 10: caught up at %v, want the newest contact that taught 10 (%v)", got, at(50))
	}
	if got, _ := c.status(upTo(25)); !got.Equal(at(100)) {
		t.Fatalf("applied 25: caught up at %v, want %v", got, at(100))
	}
	// A new leader that knows a lower commit index for a moment does not
	// make an older state count as current.
	c.observe(15, at(200))
	if got, learned := c.status(upTo(25)); !got.Equal(at(100)) || learned != 30 {
		t.Fatalf("after a lower commit index: caught up at %v learned %d, want %v and 30", got, learned, at(100))
	}
	if got, _ := c.status(upTo(30)); !got.Equal(at(200)) {
		t.Fatalf("applied 30: caught up at %v, want %v", got, at(200))
	}
	// Bounded while lagging; dropping the oldest points only makes the
	// member look staler.
	for i := range maxPendingCommits + 10 {
		c.observe(uint64(100+i), at(300+i))
	}
	if len(c.pending) != maxPendingCommits {
		t.Fatalf("%d pending commit points, want the bound %d", len(c.pending), maxPendingCommits)
	}
	if got, _ := c.status(upTo(105)); !got.Equal(at(200)) {
		t.Fatalf("applied 105 whose point was dropped: caught up at %v, want the older %v", got, at(200))
	}
}

func TestAppendHealthReportsFailingAppends(t *testing.T) {
	a := newAppendHealth(raft.NewInmemStore(), time.Now)
	if _, err := a.failing(); err != nil {
		t.Fatalf("fresh: failing %v", err)
	}
	enospc := fmt.Errorf("write wal: %w", syscall.ENOSPC)
	a.failWith.Store(&enospc)
	start := time.Now()
	for i := uint64(1); i <= 2; i++ {
		if err := a.StoreLog(&raft.Log{Index: i}); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append %d: %v, want the injected error", i, err)
		}
	}
	since, err := a.failing()
	if !errors.Is(err, syscall.ENOSPC) || since.Before(start) || a.errors.Load() != 2 {
		t.Fatalf("failing = %v since %v, %d errors", err, since, a.errors.Load())
	}
	a.failWith.Store(nil)
	if err := a.StoreLogs([]*raft.Log{{Index: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.failing(); err != nil {
		t.Fatalf("after a successful append: failing %v", err)
	}
}

// restart opens a crashed member again on its data dir and Raft address.
func restart(t *testing.T, s *Store) *Store {
	t.Helper()
	cfg := s.cfg
	cfg.RaftBind = s.RaftAddr()
	cfg.Bootstrap = false
	r, _ := openFake(t, cfg)
	return r
}

// TestReplacedTailMemberBecomesReady: a leader appends entries nobody
// else gets, stops, and the others elect a new leader whose log is
// shorter. Restarted, the old leader has its tail replaced and must be
// ready once it holds what the new leader committed, in an idle cluster
// (readiness used to wait for the log length found on disk at start).
func TestReplacedTailMemberBecomesReady(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	old := c.leader()
	fs := c.followers()
	crash(fs[0])
	crash(fs[1])
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, _, _ = old.Apply(ctx, putService(fmt.Sprintf("lost%d-1.0", i)))
		}()
	}
	wg.Wait()
	crash(old)

	a, b := restart(t, fs[0]), restart(t, fs[1])
	var leader *Store
	testutil.WaitFor(t, 10*time.Second, "a leader among the two members that missed the tail", func() bool {
		for _, s := range []*Store{a, b} {
			if s.IsLeader() {
				leader = s
				return true
			}
		}
		return false
	})
	if err := leader.EstablishLeadership(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	putServices(t, leader, "new", 0, 1)

	back := restart(t, old)
	testutil.WaitFor(t, 10*time.Second, "the member whose tail was replaced to be ready", back.Ready)
	if back.AppliedIndex() >= back.openTarget {
		t.Fatalf("applied %d ≥ the %d entries found at start: the tail was not longer than the new log, the test proves nothing",
			back.AppliedIndex(), back.openTarget)
	}
	if _, err := back.Read(ctxTimeout(t, time.Second), ReadOptions{Level: ReadStale}, func(fsm.Reader) error { return nil }); err != nil {
		t.Fatalf("stale read on the caught-up member: %v", err)
	}
	if check, why := back.NotReady(); check != "" {
		t.Fatalf("ready but NotReady says %s: %s", check, why)
	}
}

// TestFollowerThatCannotAppendIsNotReady: a follower whose appends fail
// (a full disk) still hears heartbeats and knows its leader; it must say
// it is not ready, why, and refuse reads bounded by max_staleness, then
// recover once appends work again.
func TestFollowerThatCannotAppendIsNotReady(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	f := c.followers()[0]
	if err := leader.EstablishLeadership(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "every member ready", func() bool { return leader.Ready() && f.Ready() })
	bound := ReadOptions{Level: ReadStale, MaxStaleness: 3 * f.cfg.HeartbeatTimeout}
	noop := func(fsm.Reader) error { return nil }
	if _, err := f.Read(ctxTimeout(t, time.Second), bound, noop); err != nil {
		t.Fatalf("bounded stale read on a healthy follower: %v", err)
	}

	enospc := fmt.Errorf("write wal segment: %w", syscall.ENOSPC)
	f.appends.failWith.Store(&enospc)
	putServices(t, leader, "behind", 0, 5)
	testutil.WaitFor(t, 10*time.Second, "the follower to report failing appends", func() bool {
		check, _ := f.NotReady()
		return check == CheckAppend
	})
	if f.Ready() {
		t.Fatal("Ready() with failing appends")
	}
	got := gatherMetrics(t, f)
	if got["wimms_store_append_failing"] != 1 || got["wimms_store_ready"] != 0 || got["wimms_apply_lag_entries"] < 1 {
		t.Fatalf("metrics while appends fail: failing %v ready %v lag %v",
			got["wimms_store_append_failing"], got["wimms_store_ready"], got["wimms_apply_lag_entries"])
	}
	testutil.WaitFor(t, 10*time.Second, "bounded stale reads refused for applied lag", func() bool {
		_, err := f.Read(ctxTimeout(t, time.Second), bound, noop)
		if err != nil && !errors.Is(err, ErrStaleRead) {
			t.Fatalf("bounded stale read: %v, want ErrStaleRead", err)
		}
		// The refusal must come from applied lag: the leader is still in
		// contact through heartbeats.
		if err != nil && time.Since(f.raft.LastContact()) > bound.MaxStaleness {
			t.Fatalf("refused only after losing contact (%v ago): the test proves nothing", time.Since(f.raft.LastContact()))
		}
		return err != nil
	})

	f.appends.failWith.Store(nil)
	testutil.WaitFor(t, 10*time.Second, "the follower to be ready again", f.Ready)
	if _, err := f.Read(ctxTimeout(t, time.Second), bound, noop); err != nil {
		t.Fatalf("bounded stale read after appends work again: %v", err)
	}
	if got := gatherMetrics(t, f); got["wimms_store_append_failing"] != 0 || got["wimms_store_append_errors_total"] < 1 {
		t.Fatalf("metrics after recovery: failing %v errors %v", got["wimms_store_append_failing"], got["wimms_store_append_errors_total"])
	}
}

type monotonicStore struct{ *raft.InmemStore }

func (monotonicStore) IsMonotonic() bool { return true }

// raft must still see that raft-wal cannot hold gaps through the wrapper.
func TestAppendHealthPassesMonotonicOn(t *testing.T) {
	if !newAppendHealth(monotonicStore{raft.NewInmemStore()}, time.Now).IsMonotonic() {
		t.Fatal("a monotonic store is not reported monotonic through appendHealth")
	}
	if newAppendHealth(raft.NewInmemStore(), time.Now).IsMonotonic() {
		t.Fatal("a store that allows gaps is reported monotonic")
	}
}

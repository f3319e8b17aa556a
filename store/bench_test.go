package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// BenchmarkApplyParallel measures allocations (the hot write) through a
// single in-process member with the real state machine: every op is one
// fsync'd, group-committed raft entry. Run with e.g.
//
//	go test ./store/ -run '^$' -bench ApplyParallel -benchtime 2000x
func BenchmarkApplyParallel(b *testing.B) {
	s := openReal(b, testConfig(b, testutil.Logger(b), "bench", true))
	if err := s.WaitForLeader(ctxTimeout(b, 10*time.Second)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	setup := []fsm.Command{
		{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("{node}/1.5/{uid}"), ReleaseRate: fsm.SomeString("1")},
		{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "https://n1.example", Capacity: fsm.SomeInt64(1 << 40)},
		{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "https://n2.example", Capacity: fsm.SomeInt64(1 << 40)},
	}
	for _, cmd := range setup {
		res, _, err := s.Apply(ctx, cmd)
		if err != nil || res.Err != nil {
			b.Fatalf("setup %v: %v %v", cmd.Op, err, res.Err)
		}
	}
	benchParallelApply(b, s, func(i int64) fsm.Command {
		return fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: fmt.Sprintf("u%d@example.com", i)}
	})
}

// BenchmarkApplyParallelFakeMachine isolates the replication layer (raft,
// bolt fsync, adapter) from the domain logic.
func BenchmarkApplyParallelFakeMachine(b *testing.B) {
	s, _ := openFake(b, testConfig(b, testutil.Logger(b), "bench", true))
	if err := s.WaitForLeader(ctxTimeout(b, 10*time.Second)); err != nil {
		b.Fatal(err)
	}
	benchParallelApply(b, s, func(i int64) fsm.Command { return putService(fmt.Sprintf("s%d-1.0", i)) })
}

func benchParallelApply(b *testing.B, s *Store, command func(int64) fsm.Command) {
	b.Helper()
	// Writers block on fsync, not CPU: many per core keep the group-commit
	// batches full, as concurrent HTTP clients would.
	b.SetParallelism(32)
	var next atomic.Int64
	var failed atomic.Value
	batches0, entries0 := s.adapter.batches.Load(), s.adapter.entries.Load()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, _, err := s.Apply(context.Background(), command(next.Add(1)))
			if err == nil && res.Err != nil {
				err = res.Err
			}
			if err != nil {
				failed.CompareAndSwap(nil, err)
			}
		}
	})
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if batches := s.adapter.batches.Load() - batches0; batches > 0 {
		b.ReportMetric(float64(s.adapter.entries.Load()-entries0)/float64(batches), "entries/batch")
	}
}

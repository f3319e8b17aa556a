package store

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

// TestIndexBatcherRoundStartsAfterTheRead: reads that arrive while a round
// runs are not answered by it (it may have fetched its index before they
// arrived) but share the next round, one fetch for all of them.
func TestIndexBatcherRoundStartsAfterTheRead(t *testing.T) {
	var b indexBatcher
	started := make(chan int, 4)
	release := make(chan struct{})
	calls := 0
	fetch := func(context.Context) (uint64, error) {
		calls++ // rounds never overlap, so no lock is needed
		started <- calls
		<-release
		return uint64(calls * 100), nil
	}
	type answer struct {
		idx uint64
		err error
	}
	first := make(chan answer, 1)
	go func() {
		idx, err := b.get(context.Background(), fetch)
		first <- answer{idx, err}
	}()
	if n := <-started; n != 1 {
		t.Fatalf("round %d started first", n)
	}
	// Two more reads arrive while round 1 runs.
	later := make(chan answer, 2)
	for range 2 {
		go func() {
			idx, err := b.get(context.Background(), fetch)
			later <- answer{idx, err}
		}()
	}
	waitForWaiters(t, &b, 2)
	release <- struct{}{}
	if a := <-first; a.err != nil || a.idx != 100 {
		t.Fatalf("first read: %d, %v; want round 1's index 100", a.idx, a.err)
	}
	if n := <-started; n != 2 {
		t.Fatalf("round %d started second", n)
	}
	release <- struct{}{}
	for range 2 {
		if a := <-later; a.err != nil || a.idx != 200 {
			t.Fatalf("later read: %d, %v; want round 2's index 200 (a round that began after it)", a.idx, a.err)
		}
	}
	if calls != 2 {
		t.Fatalf("%d fetches for 3 reads, want 2", calls)
	}
}

// TestIndexBatcherErrorsAndCancel: a round's error reaches its reads; a
// read whose context ends stops waiting, and the batcher keeps working.
func TestIndexBatcherErrorsAndCancel(t *testing.T) {
	var b indexBatcher
	type result struct {
		idx uint64
		err error
	}
	results := make(chan result, 3)
	fetch := func(context.Context) (uint64, error) {
		r := <-results
		return r.idx, r.err
	}
	boom := errors.New("no quorum")
	results <- result{err: boom}
	if _, err := b.get(context.Background(), fetch); !errors.Is(err, boom) {
		t.Fatalf("err %v, want %v", err, boom)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.get(ctx, fetch); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	results <- result{idx: 7} // the cancelled read's round ends
	results <- result{idx: 9}
	// The cancelled read's round takes 7 whether or not the next read
	// arrives before it ends; the next read gets a round of its own.
	if idx, err := b.get(context.Background(), fetch); err != nil || idx != 9 {
		t.Fatalf("after a cancelled read: %d, %v; want 9", idx, err)
	}
}

// waitForWaiters yields until n reads have joined the batcher's next round.
func waitForWaiters(t *testing.T, b *indexBatcher, n int) {
	t.Helper()
	for {
		b.mu.Lock()
		got := 0
		if b.next != nil {
			got = b.next.waiters
		}
		b.mu.Unlock()
		if got >= n {
			return
		}
		runtime.Gosched()
	}
}

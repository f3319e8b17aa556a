package main

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// peer is a system other than wimms, started by this program and driven by
// its own client library in this process.
type peer interface {
	// start runs the members (their data under dir) and waits until they
	// serve.
	start(ctx context.Context, dir string) error
	pids() []int
	// setupAlloc creates the service's nodes with their capacity.
	setupAlloc(ctx context.Context, nodes int, capacity int64) error
	// alloc assigns a new user (email) to the least-loaded node.
	alloc(ctx context.Context, c int, email string) (retries int, err error)
	// checkAlloc verifies what the alloc run left: node counts add up to
	// the users created, no node is over capacity, and the clients' view
	// (ok acknowledged, failed maybe applied) agrees.
	checkAlloc(ctx context.Context, ok, failed int64) (string, error)
	// setupLookup prepares users and waits until the members that lookups
	// go to can see all of them.
	setupLookup(ctx context.Context, users int) error
	lookup(ctx context.Context, c int, user int) error
	stop()
}

// Nodes get a capacity no run reaches, as in `wimms bench`, so that no
// allocation waits for a capacity release; the check still verifies it.
const nodeCapacity = 1_000_000_000

func nodeName(i int) string    { return fmt.Sprintf("node-%02d", i) }
func lookupEmail(i int) string { return fmt.Sprintf("bench-user-%d@bench.invalid", i) }
func allocEmail(run string, c int, n int64) string {
	return fmt.Sprintf("new-%s-%d-%d@bench.invalid", run, c, n)
}

// allocCheck states the consistency check's outcome in one line.
func allocCheck(sum, users int64, over []string, ok, failed int64) (string, error) {
	msg := fmt.Sprintf("node counts sum %d = users %d, acknowledged %d, failed %d, over capacity %d", sum, users, ok, failed, len(over))
	switch {
	case sum != users:
		return msg, fmt.Errorf("node counts sum %d but %d users exist", sum, users)
	case len(over) > 0:
		return msg, fmt.Errorf("nodes over capacity: %v", over)
	case users < ok || users > ok+failed:
		return msg, fmt.Errorf("%d users exist, clients saw %d acknowledged and %d failed", users, ok, failed)
	}
	return "ok: " + msg, nil
}

// allocCounts are every allocation's outcome, warmup included, per client
// (each client writes only its own slot; read after the run).
type allocCounts struct {
	seq, ok, failed []int64
	lastErr         []string
}

// totals adds the clients' counts up; why names one failure's error.
func (a *allocCounts) totals() (ok, failed int64, why string) {
	for c := range a.ok {
		ok += a.ok[c]
		failed += a.failed[c]
		if a.lastErr[c] != "" {
			why = a.lastErr[c]
		}
	}
	return ok, failed, why
}

// allocOp turns a peer's alloc into the load loop's operation; every
// client numbers its own new users, so emails never collide.
func allocOp(p peer, run string, clients int) (opFunc, *allocCounts) {
	a := &allocCounts{seq: make([]int64, clients), ok: make([]int64, clients), failed: make([]int64, clients),
		lastErr: make([]string, clients)}
	return func(ctx context.Context, c int, _ *rand.Rand) (int, error) {
		a.seq[c]++
		retries, err := p.alloc(ctx, c, allocEmail(run, c, a.seq[c]))
		if err != nil {
			a.failed[c]++
			a.lastErr[c] = errKind(err)
		} else {
			a.ok[c]++
		}
		return retries, err
	}, a
}

func lookupOp(p peer, users int) opFunc {
	return func(ctx context.Context, c int, rng *rand.Rand) (int, error) {
		return 0, p.lookup(ctx, c, rng.IntN(users))
	}
}

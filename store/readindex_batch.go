package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// indexBatcher shares one read-index round among the linearizable reads
// that wait for it. A read joins the next round that has not started yet;
// a round starts only when the previous one has ended. So the round a read
// gets its index from began after the read arrived, and its index — the
// commit index once a quorum confirmed leadership, fetched after the read
// arrived — covers every write that completed before the read began: the
// read stays linearizable (the same argument as for one read alone, Raft
// §6.4; etcd batches its read indexes the same way). Under load one round
// (one VerifyLeader on the leader, one HTTP request from a follower)
// serves every read that arrived while the previous round ran, instead of
// one round each.
//
// The zero value is ready to use.
type indexBatcher struct {
	mu      sync.Mutex
	next    *indexRound // the round new reads join; not started yet
	running bool        // a round is in progress
}

type indexRound struct {
	done    chan struct{}
	idx     uint64
	err     error
	waiters int // reads that joined (under indexBatcher.mu; for tests)
}

// indexRoundTimeout bounds one shared round: it serves many reads, so it
// does not run under any one read's context. Each read still waits only as
// long as its own context allows.
const indexRoundTimeout = 10 * time.Second

// get returns a read index from a round that starts after this call.
// fetch obtains it; a round runs with the fetch of the call that started
// the batcher's loop, so every call must pass the same function.
func (b *indexBatcher) get(ctx context.Context, fetch func(context.Context) (uint64, error)) (uint64, error) {
	b.mu.Lock()
	if b.next == nil {
		b.next = &indexRound{done: make(chan struct{})}
	}
	r := b.next
	r.waiters++
	if !b.running {
		b.running = true
		b.next = nil
		go b.run(r, fetch)
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.idx, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("linearizable read: waiting for a read index: %w", ctx.Err())
	}
}

// run runs r, then the rounds that gathered meanwhile, until none is left.
func (b *indexBatcher) run(r *indexRound, fetch func(context.Context) (uint64, error)) {
	for r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), indexRoundTimeout)
		r.idx, r.err = fetch(ctx)
		cancel()
		close(r.done)
		b.mu.Lock()
		r = b.next
		b.next = nil
		if r == nil {
			b.running = false
		}
		b.mu.Unlock()
	}
}

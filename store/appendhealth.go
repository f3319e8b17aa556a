package store

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// appendHealth sits between raft and the durable log and remembers whether
// appending works. A member whose appends fail (a full disk, an I/O error)
// keeps answering heartbeats and stays a follower that knows its leader, so
// raft alone would let it look healthy while it falls further behind; the
// last append outcome is what readiness and /__heartbeat__ report instead.
type appendHealth struct {
	raft.LogStore

	errors atomic.Uint64 // failed StoreLogs calls since Open
	// failWith, when set, makes appends fail with it without touching the
	// disk, as a full disk would: tests and the chaos build use it.
	failWith atomic.Pointer[error]

	mu      sync.Mutex
	lastErr error     // the last append's error; nil once one succeeds
	since   time.Time // when appends started failing
	now     func() time.Time
}

var _ raft.MonotonicLogStore = (*appendHealth)(nil)

func newAppendHealth(inner raft.LogStore, now func() time.Time) *appendHealth {
	return &appendHealth{LogStore: inner, now: now}
}

// IsMonotonic passes the inner store's answer on: raft-wal cannot hold
// gaps, and raft must know that to restore snapshots the way it needs.
func (a *appendHealth) IsMonotonic() bool {
	m, ok := a.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (a *appendHealth) StoreLog(l *raft.Log) error {
	return a.StoreLogs([]*raft.Log{l})
}

func (a *appendHealth) StoreLogs(logs []*raft.Log) error {
	var err error
	if injected := a.failWith.Load(); injected != nil {
		err = *injected
	} else {
		err = a.LogStore.StoreLogs(logs)
	}
	a.record(err)
	return err
}

func (a *appendHealth) record(err error) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.lastErr, a.since = nil, time.Time{}
		return
	}
	a.errors.Add(1)
	if a.lastErr == nil {
		a.since = now
	}
	a.lastErr = err
}

// failing reports the last append's error and when appends started
// failing, or nil when the last append succeeded.
func (a *appendHealth) failing() (since time.Time, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.since, a.lastErr
}

package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
)

// Apply proposes cmd through the raft log and returns the state machine's
// answer once the entry is committed and applied on this member. TS and Seed
// are stamped when zero. Errors: ErrNotLeader (nothing was appended; the
// caller may forward), ErrNoLeader (nothing appended; retry later),
// ErrUnknownOutcome (the entry may or may not commit: never retry blindly),
// ErrShutdown.
func (s *Store) Apply(ctx context.Context, cmd fsm.Command) (fsm.Result, Meta, error) {
	if s.closing.Load() {
		return fsm.Result{}, s.Meta(), fmt.Errorf("apply %s: %w", opName(cmd.Op), ErrShutdown)
	}
	if cmd.TS == 0 {
		cmd.TS = s.cfg.Now().UnixMilli()
	}
	if cmd.Seed == 0 {
		cmd.Seed = rand.Uint64()
	}
	if ackBeforeCommit {
		return s.applyBeforeCommit(cmd)
	}
	start := time.Now()
	res, meta, err := s.propose(ctx, cmd)
	s.metrics.observeApply(start, err)
	return res, meta, err
}

// propose appends cmd and waits, bounded by ctx and ApplyTimeout, until it is
// applied here.
func (s *Store) propose(ctx context.Context, cmd fsm.Command) (fsm.Result, Meta, error) {
	op := opName(cmd.Op)
	if err := ctx.Err(); err != nil {
		return fsm.Result{}, s.Meta(), fmt.Errorf("apply %s not submitted: %w", op, err)
	}
	budget := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < budget {
		budget = time.Until(dl)
	}
	deadline := time.Now().Add(budget)
	data := s.codec.encode(cmd)

	// raft.Apply blocks only until raft's main loop takes the entry; the
	// budget bounds that wait too (raft.ErrEnqueueTimeout).
	f := s.raft.Apply(data, budget)
	if err := s.waitFuture(ctx, f, time.Until(deadline)); err != nil {
		return fsm.Result{}, s.Meta(), s.classifyApplyError(op, f, err)
	}
	resp, ok := f.Response().(*applyResponse)
	if !ok || resp == nil {
		// Cannot happen for a LogCommand entry; guard rather than panic.
		return fsm.Result{}, s.Meta(), fmt.Errorf("apply %s at index %d: unexpected response %T", op, f.Index(), f.Response())
	}
	if resp.err != nil {
		return fsm.Result{}, s.metaAt(resp.index), fmt.Errorf("apply %s: %w", op, resp.err)
	}
	return resp.result, s.metaAt(resp.index), nil
}

// errWaitAbandoned marks a wait given up by us (ctx, budget or shutdown)
// while raft still holds the entry.
var errWaitAbandoned = errors.New("stopped waiting for raft")

// waitFuture waits for f bounded by ctx, a budget (<= 0: none) and shutdown.
// A wait given up early returns an error wrapping errWaitAbandoned.
func (s *Store) waitFuture(ctx context.Context, f raft.Future, budget time.Duration) error {
	done := make(chan error, 1)
	// raft.Future has no channel; this goroutine ends when raft answers,
	// which it does for every entry it took (commit, leadership loss or
	// shutdown).
	go func() { done <- f.Error() }()
	var timeout <-chan time.Time
	if budget > 0 {
		t := time.NewTimer(budget)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errWaitAbandoned, ctx.Err())
	case <-timeout:
		return fmt.Errorf("%w: timed out after %s", errWaitAbandoned, budget)
	case <-s.stopCh:
		return fmt.Errorf("%w: %w", errWaitAbandoned, ErrShutdown)
	}
}

// classifyApplyError maps raft's answer to the store's errors. The key
// question is whether the entry may have been appended: raft assigns an
// index only when the leader dispatches the entry to its log, so Index() == 0
// after a definite answer means nothing was written and the caller may
// safely try elsewhere.
func (s *Store) classifyApplyError(op string, f raft.ApplyFuture, err error) error {
	if errors.Is(err, errWaitAbandoned) {
		if errors.Is(err, ErrShutdown) {
			return fmt.Errorf("apply %s: %w: %w", op, ErrShutdown, ErrUnknownOutcome)
		}
		return fmt.Errorf("apply %s: %w: %w", op, ErrUnknownOutcome, err)
	}
	if f.Index() == 0 {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return s.notLeader("apply " + op)
		case errors.Is(err, raft.ErrRaftShutdown):
			return fmt.Errorf("apply %s: %w", op, ErrShutdown)
		case errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return fmt.Errorf("apply %s: leadership transfer in progress: %w", op, ErrNoLeader)
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return fmt.Errorf("apply %s: raft did not take the entry in time: %w", op, ErrNoLeader)
		}
		return fmt.Errorf("apply %s rejected by raft: %w", op, err)
	}
	if errors.Is(err, raft.ErrRaftShutdown) {
		return fmt.Errorf("apply %s at index %d: %w: %w", op, f.Index(), ErrShutdown, ErrUnknownOutcome)
	}
	return fmt.Errorf("apply %s at index %d: %w: %w", op, f.Index(), ErrUnknownOutcome, err)
}

// notLeader is the error for an operation only the leader can do, naming
// the leader when one is known.
func (s *Store) notLeader(op string) error {
	id, addr := s.Leader()
	if id == "" || id == s.cfg.ID {
		return fmt.Errorf("%s: no leader known: %w", op, ErrNotLeader)
	}
	return fmt.Errorf("%s: leader is %s at %s: %w", op, id, addr, ErrNotLeader)
}

var opNames = map[fsm.Op]string{
	fsm.OpNoop: "noop", fsm.OpPutService: "put-service", fsm.OpDeleteService: "delete-service",
	fsm.OpAddNode: "add-node", fsm.OpUpdateNode: "update-node", fsm.OpUnassignNode: "unassign-node",
	fsm.OpRemoveNode: "remove-node", fsm.OpAllocate: "allocate", fsm.OpUpdateUser: "update-user",
	fsm.OpLogin: "login", fsm.OpRetire: "retire", fsm.OpReplace: "replace",
	fsm.OpDeleteRecord: "delete-record", fsm.OpAccountEvent: "account-event", fsm.OpImport: "import",
	fsm.OpImportKeepTimes: "import-keep-times",
}

func opName(op fsm.Op) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("op-%d", op)
}

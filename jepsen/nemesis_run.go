package jepsen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/ctxtime"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
	"github.com/wimms-dev/wimms/jepsen/workload"
)

// nemesisLoop injects one fault at a time: a quiet gap, a fault held for a
// while, a heal. When ctx ends it heals the current fault and returns.
func (r *runner) nemesisLoop(ctx context.Context) {
	kinds := r.opts.Nemesis
	if len(kinds) == 0 {
		return
	}
	for {
		if !ctxtime.Sleep(ctx, r.between(r.opts.FaultGap)) {
			return
		}
		kind := kinds[r.rng.IntN(len(kinds))]
		ev, heal := r.inject(ctx, kind)
		r.log.Info("fault injected", "kind", kind, "targets", ev.Targets, "detail", ev.Detail, "error", ev.Error)
		if heal != nil {
			desc := fmt.Sprintf("%s %v", kind, ev.Targets)
			r.fault.Store(&desc)
			ctxtime.Sleep(ctx, r.between(r.opts.FaultHold))
			// Healing must happen even when the run is over or interrupted.
			if err := heal(); err != nil {
				ev.Error = errors.Join(errorOrNil(ev.Error), fmt.Errorf("heal: %w", err)).Error()
				r.log.Error("heal failed", "kind", kind, "error", err)
			}
			r.fault.Store(nil)
		}
		ev.End = r.clock()
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		r.log.Info("fault healed", "kind", kind, "targets", ev.Targets)
	}
}

func errorOrNil(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

func (r *runner) between(rng [2]time.Duration) time.Duration {
	return rng[0] + time.Duration(r.rng.Int64N(int64(rng[1]-rng[0])+1))
}

// pickTarget returns a running, unpaused member: the leader for *-leader
// faults when one is known, else a random one. -1 when none is left.
func (r *runner) pickTarget(ctx context.Context, kind nemesis.FaultKind) (int, string) {
	if kind.TargetsLeader() {
		if i := r.leaderIndex(ctx); i >= 0 {
			return i, "leader"
		}
	}
	for _, i := range r.rng.Perm(len(r.members)) {
		if r.target.Running(i) && !r.target.Paused(i) {
			if kind.TargetsLeader() {
				return i, "leader unknown, random member"
			}
			return i, "random member"
		}
	}
	return -1, "no running member"
}

// inject starts one fault. It returns the event and how to heal it (nil if
// nothing was injected).
func (r *runner) inject(ctx context.Context, kind nemesis.FaultKind) (nemesis.Event, func() error) {
	ev := nemesis.Event{Kind: kind, Start: r.clock()}
	switch kind {
	case nemesis.FaultPartitionHalves, nemesis.FaultPartitionLeader, nemesis.FaultPartitionRing, nemesis.FaultPartitionBridge:
		return r.injectPartition(ctx, kind, ev)

	case nemesis.FaultKill, nemesis.FaultKillLeader, nemesis.FaultPause, nemesis.FaultPauseLeader:
		return r.injectStop(ctx, kind, ev)

	case nemesis.FaultMembership:
		return r.injectMembership(ctx, ev)

	case nemesis.FaultRestartAll:
		return r.injectRestartAll(ev)

	case nemesis.FaultTailDamage:
		return r.injectTailDamage(ctx, ev)

	case nemesis.FaultDiskFull:
		return r.injectDiskFull(ctx, ev)
	}
	ev.Error = "unknown fault kind"
	return ev, nil
}

// memberIDs names the members at the given indexes, for an event's
// Targets.
func (r *runner) memberIDs(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, r.members[i].ID)
	}
	return out
}

// injectPartition cuts the network along the kind's shape; the event
// names every member on either side of a cut pair. The heal restores the
// whole network.
func (r *runner) injectPartition(ctx context.Context, kind nemesis.FaultKind, ev nemesis.Event) (nemesis.Event, func() error) {
	n := len(r.members)
	var pairs []nemesis.Pair
	var names []string
	for _, m := range r.members {
		names = append(names, m.ID)
	}
	switch kind {
	case nemesis.FaultPartitionHalves:
		pairs, ev.Detail = nemesis.HalvesCut(n, r.rng, names)
	case nemesis.FaultPartitionRing:
		pairs, ev.Detail = nemesis.RingCut(n, r.rng, names)
	case nemesis.FaultPartitionBridge:
		pairs, ev.Detail = nemesis.BridgeCut(n, r.rng, names)
	case nemesis.FaultPartitionLeader:
		target, why := r.pickTarget(ctx, kind)
		if target < 0 {
			ev.Error = why
			return ev, nil
		}
		pairs, ev.Detail = nemesis.IsolateCut(n, target, names)
		ev.Detail += " (" + why + ")"
	}
	involved := map[int]bool{}
	for _, p := range pairs {
		involved[p[0]], involved[p[1]] = true, true
	}
	for i := range n {
		if involved[i] {
			ev.Targets = append(ev.Targets, r.members[i].ID)
		}
	}
	ev.Detail = fmt.Sprintf("cut %s; %d pairs (%s)", ev.Detail, len(pairs), r.target.Mechanism(kind))
	if err := r.target.Partition(pairs); err != nil {
		ev.Error = err.Error()
	}
	ev.Injected = ev.Error == ""
	return ev, r.target.HealNetwork
}

// injectStop kills or pauses one member. A kill is undone by a restart, a
// pause by a resume; the target is picked the same way for both.
func (r *runner) injectStop(ctx context.Context, kind nemesis.FaultKind, ev nemesis.Event) (nemesis.Event, func() error) {
	fault, undo := r.target.Kill, r.target.Restart
	if kind == nemesis.FaultPause || kind == nemesis.FaultPauseLeader {
		fault, undo = r.target.Pause, r.target.Resume
	}
	target, why := r.pickTarget(ctx, kind)
	if target < 0 {
		ev.Error = why
		return ev, nil
	}
	ev.Targets, ev.Detail = r.memberIDs(target), r.target.Mechanism(kind)+" ("+why+")"
	if err := fault(target); err != nil {
		ev.Error = err.Error()
	}
	ev.Injected = ev.Error == ""
	return ev, func() error { return undo(target) }
}

// injectDiskFull fills one member's data disk; the heal frees it.
func (r *runner) injectDiskFull(ctx context.Context, ev nemesis.Event) (nemesis.Event, func() error) {
	target, why := r.pickTarget(ctx, nemesis.FaultDiskFull)
	if target < 0 {
		ev.Error = why
		return ev, nil
	}
	ev.Targets = r.memberIDs(target)
	detail, err := r.target.FillDisk(target)
	ev.Detail = detail + " (" + why + ")"
	if err != nil {
		ev.Error = err.Error()
	}
	ev.Injected = err == nil
	// Freed even when filling failed half-way.
	return ev, func() error { return r.target.FreeDisk(target) }
}

// injectMembership removes a member (DELETE /v1/cluster/members/{id} through
// another member) and stops it. The heal is an operator's replacement: wipe
// its data, start it again joining the others (target.Replace). Its data is
// only wiped once the cluster no longer lists it: wiping a voter would let
// it vote twice.
func (r *runner) injectMembership(ctx context.Context, ev nemesis.Event) (nemesis.Event, func() error) {
	target, why := r.pickTarget(ctx, nemesis.FaultMembership)
	if target < 0 || len(r.members) < 2 {
		ev.Error = "no member to remove: " + why
		return ev, nil
	}
	m := r.members[target]
	ev.Targets = []string{m.ID}
	var others []memberInfo
	for _, o := range r.members {
		if o.Index != m.Index {
			others = append(others, o)
		}
	}
	removed := false
	var lastErr string
	deadline := time.Now().Add(8 * time.Second)
	for !removed && time.Now().Before(deadline) && ctx.Err() == nil {
		via := others[r.rng.IntN(len(others))]
		meta, err := r.admin.Of(via.HTTPAddr).RemoveMember(ctx, m.ID)
		lastErr = fmt.Sprintf("DELETE via %s: %s", via.ID, workload.Describe(meta, err))
		if st, err := r.status(ctx, via); err == nil && st.Leader != nil &&
			!slices.ContainsFunc(st.Members, func(cm wire.Member) bool { return cm.ID == m.ID }) {
			removed = true
			break
		}
		ctxtime.Sleep(ctx, 500*time.Millisecond)
	}
	if !removed {
		ev.Error = "member was not removed: " + lastErr
		return ev, nil
	}
	ev.Detail = "removed from the configuration, stopped; heal wipes its data and starts it joining the others"
	ev.Injected = true
	if err := r.target.Kill(target); err != nil {
		ev.Error = err.Error()
	}
	return ev, func() error { return r.target.Replace(target) }
}

// injectRestartAll kills every running member at once; the heal starts
// them all again with their data. Nothing acknowledged may be lost: every
// acknowledged write was on a majority's disk.
func (r *runner) injectRestartAll(ev nemesis.Event) (nemesis.Event, func() error) {
	// Signalled concurrently, so that no member sees the others leave.
	errs := make([]error, len(r.members))
	var wg sync.WaitGroup
	for i, m := range r.members {
		if !r.target.Running(i) {
			errs[i] = fmt.Errorf("%s was not running", m.ID)
			continue
		}
		wg.Go(func() {
			if err := r.target.Kill(i); err != nil {
				errs[i] = fmt.Errorf("kill %s: %w", m.ID, err)
			}
		})
	}
	wg.Wait()
	var killed []int
	for i, m := range r.members {
		if errs[i] == nil {
			killed = append(killed, i)
			ev.Targets = append(ev.Targets, m.ID)
		}
	}
	ev.Detail = r.target.Mechanism(nemesis.FaultRestartAll)
	if err := errors.Join(errs...); err != nil {
		ev.Error = err.Error()
	}
	ev.Injected = len(killed) == len(r.members)
	return ev, func() error {
		var errs []error
		for _, i := range killed {
			if err := r.target.Restart(i); err != nil {
				errs = append(errs, fmt.Errorf("restart %s: %w", r.members[i].ID, err))
			}
		}
		return errors.Join(errs...)
	}
}

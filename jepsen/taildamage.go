package jepsen

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/ctxtime"
	"github.com/wimms-dev/wimms/jepsen/nemesis"
	"github.com/wimms-dev/wimms/jepsen/workload"
)

// The tail-damage fault against the loopback cluster: a majority is killed
// at once and each one's tail segment damaged (nemesis.DamageTail), then
// restarted allowing exit nemesis.ExitDamagedData. A member that refuses is
// brought back as an operator would: while a majority runs, removed from
// the cluster, wiped and added back; otherwise (no quorum to remove it) its
// data from before the damage is put back, standing in for a repair from
// the member's intact copy.

// backupDir is where the tail-damage fault keeps member id's data from
// before the damage.
func backupDir(outDir, id string) string { return filepath.Join(outDir, "tail-damage-backup", id) }

// DamageTail saves member i's data (stopped) and damages its tail segment.
func (c *localCluster) DamageTail(i int, mode string) (string, error) {
	m := c.members[i]
	if m.Running() {
		return "", fmt.Errorf("damage %s: still running", m.ID)
	}
	if err := nemesis.ReplaceDir(m.DataDir, backupDir(c.opts.OutDir, m.ID)); err != nil {
		return "", fmt.Errorf("save %s's data before damaging it: %w", m.ID, err)
	}
	return nemesis.DamageTail(m.DataDir, mode)
}

// RestoreData puts member i's data from before the last DamageTail back.
func (c *localCluster) RestoreData(i int) error {
	m := c.members[i]
	if m.Running() {
		return fmt.Errorf("restore %s: still running", m.ID)
	}
	return nemesis.ReplaceDir(backupDir(c.opts.OutDir, m.ID), m.DataDir)
}

func (c *localCluster) RestartAllowingExit(i, code int) error {
	return c.members[i].StartAllowingExit(code)
}

func (c *localCluster) ExitCode(i int) int { return c.members[i].ExitCode() }

// injectTailDamage kills a majority at once and damages each one's tail
// segment, alternating truncation and a flipped frame header. The heal
// restarts them and deals with those that refuse (see the top of the file).
func (r *runner) injectTailDamage(ctx context.Context, ev nemesis.Event) (nemesis.Event, func() error) {
	n := len(r.members)
	var targets []int
	for _, i := range r.rng.Perm(n) {
		if r.target.Running(i) && !r.target.Paused(i) && len(targets) < n/2+1 {
			targets = append(targets, i)
		}
	}
	if len(targets) < n/2+1 {
		ev.Error = "fewer running members than a majority"
		return ev, nil
	}
	slices.Sort(targets)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for _, i := range targets {
		wg.Go(func() { errs[i] = r.target.Kill(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		ev.Error = err.Error()
	}
	var details []string
	for k, i := range targets {
		ev.Targets = append(ev.Targets, r.members[i].ID)
		if errs[i] != nil {
			continue
		}
		mode := []string{nemesis.DamageTruncate, nemesis.DamageFlipHeader}[k%2]
		d, err := r.target.DamageTail(i, mode)
		if err != nil {
			ev.Error = strings.TrimPrefix(ev.Error+"; ", "; ") + fmt.Sprintf("%s %s: %v", r.members[i].ID, mode, err)
			continue
		}
		details = append(details, fmt.Sprintf("%s %s (%s)", r.members[i].ID, mode, d))
	}
	ev.Detail = "kill -9, then " + strings.Join(details, "; ")
	ev.Injected = ev.Error == ""
	// The heal runs also when the run is over (ctx done): it must still
	// reach the members, bounded by its own timeouts.
	return ev, func() error { return r.healTailDamage(context.WithoutCancel(ctx), targets) }
}

// healTailDamage restarts the damaged members, waits until each serves or
// has refused to start with the damage exit status, and brings the ones
// that refused back.
func (r *runner) healTailDamage(ctx context.Context, targets []int) error {
	var errs []error
	for _, i := range targets {
		if err := r.target.RestartAllowingExit(i, nemesis.ExitDamagedData); err != nil {
			errs = append(errs, err)
		}
	}
	// A damaged member decides at start; one that serves may still wait
	// for a quorum, so "running for a while" is the other outcome.
	deadline := time.Now().Add(r.opts.StartTimeout)
	var refused []int
	for _, i := range targets {
		for r.target.Running(i) && !r.ready(ctx, r.members[i]) && time.Now().Before(deadline) {
			ctxtime.Sleep(ctx, 200*time.Millisecond)
		}
		if !r.target.Running(i) && r.target.ExitCode(i) == nemesis.ExitDamagedData {
			refused = append(refused, i)
		}
	}
	if len(refused) == 0 {
		return errors.Join(errs...)
	}
	running := 0
	for i := range r.members {
		if r.target.Running(i) {
			running++
		}
	}
	var ids []string
	for _, i := range refused {
		ids = append(ids, r.members[i].ID)
	}
	if running >= len(r.members)/2+1 {
		r.note("tail-damage: %s refused to start (exit %d, damage named); a majority ran, so each was removed, wiped and added back",
			strings.Join(ids, ", "), nemesis.ExitDamagedData)
		for _, i := range refused {
			if err := r.removeMember(ctx, i); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := r.target.Replace(i); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	r.note("tail-damage: %s refused to start (exit %d, damage named); without a majority running, their data from before the damage was put back",
		strings.Join(ids, ", "), nemesis.ExitDamagedData)
	for _, i := range refused {
		if err := r.target.RestoreData(i); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := r.target.Restart(i); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeMember removes member i from the configuration through a running
// member, retrying until the cluster no longer lists it.
func (r *runner) removeMember(ctx context.Context, i int) error {
	m := r.members[i]
	var lastErr string
	deadline := time.Now().Add(r.opts.RecoveryTimeout)
	for time.Now().Before(deadline) {
		for _, via := range r.members {
			if via.Index == i || !r.target.Running(via.Index) {
				continue
			}
			meta, err := r.admin.Of(via.HTTPAddr).RemoveMember(ctx, m.ID)
			lastErr = fmt.Sprintf("DELETE via %s: %s", via.ID, workload.Describe(meta, err))
			if st, err := r.status(ctx, via); err == nil && st.Leader != nil &&
				!slices.ContainsFunc(st.Members, func(cm wire.Member) bool { return cm.ID == m.ID }) {
				return nil
			}
		}
		ctxtime.Sleep(ctx, 500*time.Millisecond)
	}
	return fmt.Errorf("remove %s after it refused to start: %s", m.ID, lastErr)
}

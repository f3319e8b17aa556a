package jepsen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wimms-dev/wimms/httpapi/wire"
	"github.com/wimms-dev/wimms/internal/ctxtime"
)

// Tail damage: a majority of members is stopped with kill -9 and the tail
// segment of each one's raft-wal log is damaged the two ways that were
// found to drop acknowledged writes: the last 300 written bytes cut off (a
// torn write), and one frame header in the middle of the segment flipped.
// Then they are restarted. The harness does not know how the server reacts:
// a member may refuse to start, naming the damage (exit status
// exitDamagedData), or start and recover what it lost from the others. Both
// are fine so long as every acknowledged write survives (the checker's
// lost_acknowledged_writes); serving a shorter log is what must not happen.
//
// A member that refuses is brought back as an operator would: while a
// majority runs, removed from the cluster, wiped and added back; otherwise
// (no quorum to remove it) its data from before the damage is put back,
// standing in for a repair from the member's intact copy.

// exitDamagedData is the server's exit status for damaged data.
const exitDamagedData = 3

// Tail damage modes.
const (
	damageTruncate   = "truncate"
	damageFlipHeader = "flip-header"
)

// truncateBytes is how much of the written end of the tail segment a
// truncation cuts off.
const truncateBytes = 300

// raft-wal's segment format (hashicorp/raft-wal/segment): a 32-byte file
// header, then frames of an 8-byte header (type, 3 reserved bytes, a
// little-endian uint32: the payload length, or a checksum for commit
// frames) and the payload padded to 8 bytes. Unwritten space is zeros.
const (
	walFileHeaderLen  = 32
	walFrameHeaderLen = 8
	walFrameEntry     = 1
	walFrameIndex     = 2
	walFrameCommit    = 3
)

// walFrame is one frame of a segment: where its header starts, its type.
type walFrame struct {
	off int64
	typ byte
}

// tailSegment is the newest raft-wal segment of a data directory.
func tailSegment(dataDir string) (string, error) {
	segs, err := filepath.Glob(filepath.Join(dataDir, "wal", "*.wal"))
	if err != nil {
		return "", err
	}
	if len(segs) == 0 {
		return "", fmt.Errorf("no raft-wal segment in %s", filepath.Join(dataDir, "wal"))
	}
	slices.Sort(segs) // named by zero-padded base index
	return segs[len(segs)-1], nil
}

// walFrames lists a segment's frames up to the end of what was written.
func walFrames(path string) (frames []walFrame, end int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	off := int64(walFileHeaderLen)
	for off+walFrameHeaderLen <= int64(len(b)) {
		h := b[off : off+walFrameHeaderLen]
		typ := h[0]
		if typ == 0 {
			break // zeros: the end of the written data
		}
		size := int64(walFrameHeaderLen)
		switch typ {
		case walFrameEntry, walFrameIndex:
			n := int64(binary.LittleEndian.Uint32(h[4:8]))
			size += (n + 7) &^ 7
		case walFrameCommit:
		default:
			return frames, off, fmt.Errorf("%s: unknown frame type %d at offset %d (already damaged?)", path, typ, off)
		}
		frames = append(frames, walFrame{off: off, typ: typ})
		off += size
	}
	return frames, off, nil
}

// damageTail damages the tail segment of dataDir as mode says and
// describes what it did.
func damageTail(dataDir, mode string) (string, error) {
	seg, err := tailSegment(dataDir)
	if err != nil {
		return "", err
	}
	frames, end, err := walFrames(seg)
	if err != nil {
		return "", err
	}
	name := filepath.Base(seg)
	switch mode {
	case damageTruncate:
		cut := max(int64(walFileHeaderLen), end-truncateBytes)
		if err := os.Truncate(seg, cut); err != nil {
			return "", fmt.Errorf("truncate %s: %w", seg, err)
		}
		return fmt.Sprintf("%s: written end %d cut to %d", name, end, cut), nil
	case damageFlipHeader:
		var entries []walFrame
		for _, f := range frames {
			if f.typ == walFrameEntry {
				entries = append(entries, f)
			}
		}
		if len(entries) == 0 {
			return "", fmt.Errorf("%s holds no entry frame", seg)
		}
		f := entries[len(entries)/2]
		file, err := os.OpenFile(seg, os.O_RDWR, 0)
		if err != nil {
			return "", err
		}
		defer file.Close()
		var typ [1]byte
		if _, err := file.ReadAt(typ[:], f.off); err != nil {
			return "", fmt.Errorf("read %s: %w", seg, err)
		}
		typ[0] ^= 0x80
		if _, err := file.WriteAt(typ[:], f.off); err != nil {
			return "", fmt.Errorf("write %s: %w", seg, err)
		}
		if err := file.Sync(); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: type byte of entry frame %d of %d (offset %d) flipped", name, len(entries)/2+1, len(entries), f.off), nil
	}
	return "", fmt.Errorf("unknown tail damage %q", mode)
}

// replaceDir makes dst a copy of src (dst removed first).
func replaceDir(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	return copyTree(src, dst)
}

// backupDir is where the tail-damage fault keeps member id's data from
// before the damage.
func backupDir(outDir, id string) string { return filepath.Join(outDir, "tail-damage-backup", id) }

// DamageTail saves member i's data (stopped) and damages its tail segment.
func (c *localCluster) DamageTail(i int, mode string) (string, error) {
	m := c.members[i]
	if m.Running() {
		return "", fmt.Errorf("damage %s: still running", m.ID)
	}
	if err := replaceDir(m.DataDir, backupDir(c.opts.OutDir, m.ID)); err != nil {
		return "", fmt.Errorf("save %s's data before damaging it: %w", m.ID, err)
	}
	return damageTail(m.DataDir, mode)
}

// RestoreData puts member i's data from before the last DamageTail back.
func (c *localCluster) RestoreData(i int) error {
	m := c.members[i]
	if m.Running() {
		return fmt.Errorf("restore %s: still running", m.ID)
	}
	return replaceDir(backupDir(c.opts.OutDir, m.ID), m.DataDir)
}

func (c *localCluster) RestartAllowingExit(i, code int) error {
	return c.members[i].StartAllowingExit(code)
}

func (c *localCluster) ExitCode(i int) int { return c.members[i].ExitCode() }

// injectTailDamage kills a majority at once and damages each one's tail
// segment, alternating truncation and a flipped frame header. The heal
// restarts them and deals with those that refuse (see the top of the file).
func (r *runner) injectTailDamage(ctx context.Context, ev NemesisEvent) (NemesisEvent, func() error) {
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
		mode := []string{damageTruncate, damageFlipHeader}[k%2]
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
		if err := r.target.RestartAllowingExit(i, exitDamagedData); err != nil {
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
		if !r.target.Running(i) && r.target.ExitCode(i) == exitDamagedData {
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
			strings.Join(ids, ", "), exitDamagedData)
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
		strings.Join(ids, ", "), exitDamagedData)
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
			meta, err := r.admin.of(via.HTTPAddr).RemoveMember(ctx, m.ID)
			lastErr = fmt.Sprintf("DELETE via %s: %s", via.ID, describe(meta, err))
			if st, err := r.status(ctx, via); err == nil && st.Leader != nil &&
				!slices.ContainsFunc(st.Members, func(cm wire.Member) bool { return cm.ID == m.ID }) {
				return nil
			}
		}
		ctxtime.Sleep(ctx, 500*time.Millisecond)
	}
	return fmt.Errorf("remove %s after it refused to start: %s", m.ID, lastErr)
}

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// LogTail is what a member's data dir says about the end of its log: what
// an operator compares across members to pick the one with the longest
// intact log (wimms check), and what Open checks before Raft starts.
type LogTail struct {
	LastIndex, LastTerm uint64
	// SnapshotIndex is the newest intact snapshot's index (0: none).
	SnapshotIndex uint64
	// Watermark is the log watermark (watermark.go); HasWatermark is false
	// for a data dir written before watermarks.
	Watermark    Watermark
	HasWatermark bool
	// TornBytes is the size of a torn final batch found after the last
	// complete batch of raft-wal's tail segment (never acknowledged: the
	// log still reaches the watermark). raft-wal drops it at open.
	TornBytes int64
	tornAt    int64
	tornPath  string
}

// tailRemedy is the remedy of a log that lost its tail: another member may
// still hold the entries, or, when most members lost theirs, the operator
// recovers from the best one.
const tailRemedy = "this member must not rejoin with this log: if the other members are intact, " +
	"move the data directory aside and add the member back empty (docs/cluster.md, \"Replacing a damaged member\"); " +
	"if most members are damaged, run `wimms check` on each and `wimms recover` on the one with the longest intact log " +
	"(docs/cluster.md, \"Recovering from a damaged majority\")"

// inspectLogTail checks that the log in rlog (durable is it behind
// checksums, already verified entry by entry) still reaches everything
// this member ever made durable: a log that ends below the watermark, or a
// raft-wal tail segment with a complete batch after an unreadable frame,
// is damage. snapIndex is the newest intact snapshot's index: a log
// emptied by a snapshot install ends there.
func inspectLogTail(dataDir string, rlog *raftLog, durable raft.LogStore, snapIndex uint64) (LogTail, error) {
	t := LogTail{SnapshotIndex: snapIndex}
	last, err := durable.LastIndex()
	if err != nil {
		return t, &CorruptionError{DataDir: dataDir, What: "raft log unreadable (last index)", Err: err}
	}
	t.LastIndex = last
	if last > 0 {
		var l raft.Log
		if err := durable.GetLog(last, &l); err != nil {
			return t, &CorruptionError{DataDir: dataDir, Index: last, What: "last log entry unreadable", Err: err}
		}
		t.LastTerm = l.Term
	}
	wm, found, err := ReadWatermark(dataDir)
	if err != nil {
		return t, err
	}
	t.Watermark, t.HasWatermark = wm, found
	reach := max(last, snapIndex)
	if rlog.kind == LogStoreWAL && rlog.wal != nil {
		ts, _, ok, err := walTail(rlog.wal, rlog.walDir)
		if err != nil {
			return t, err
		}
		if ok && ts.Damage != "" {
			what := ts.Damage + fmt.Sprintf("; the log now ends at raft index %d", last)
			if found && wm.Durable > reach {
				what += fmt.Sprintf(", entries %d..%d are missing", reach+1, wm.Durable)
			}
			return t, &CorruptionError{DataDir: dataDir, What: what, Remedy: tailRemedy}
		}
		if ok && ts.Unaccounted > 0 {
			t.TornBytes, t.tornAt, t.tornPath = ts.Unaccounted, ts.End, ts.Path
		}
	}
	if found && wm.Durable > reach {
		return t, &CorruptionError{DataDir: dataDir, Remedy: tailRemedy, What: fmt.Sprintf(
			"raft log ends at raft index %d (term %d) but this member made entries up to index %d durable (log watermark): entries %d..%d are missing",
			last, t.LastTerm, wm.Durable, reach+1, wm.Durable)}
	}
	return t, nil
}

// discardTornBatch says that the torn final batch inspectLogTail found is
// left behind: raft-wal already ignores it and appends over it. It never
// writes to the segment: the scan reads raft-wal's format independently,
// and a disagreement between the two about where the last batch ends must
// not let this member destroy an entry raft-wal holds (it once zeroed a
// complete last entry after a graceful stop, which then read back as
// corruption). A later start may report the same bytes again.
func discardTornBatch(t LogTail, logger hclog.Logger) error {
	if t.TornBytes == 0 {
		return nil
	}
	logger.Warn("discarded a torn final batch of the raft log that was never acknowledged: it was being written when the member stopped, and the log still reaches every index made durable",
		"segment", t.tornPath, "offset", t.tornAt, "bytes", t.TornBytes, "last_index", t.LastIndex, "watermark", t.Watermark.Durable)
	return nil
}

// snapshotState is what checkSnapshotsAtOpen decided.
type snapshotState struct {
	// Index of the newest intact snapshot raft will restore (0: none).
	Index uint64
	// damaged lists the snapshots setAsideDamaged moves away, with why.
	damaged []damagedSnapshot
	// logFirst and logLast are the log's range when they were checked.
	logFirst, logLast uint64
}

type damagedSnapshot struct {
	id    string
	index uint64
	cause error
}

// checkSnapshotsAtOpen verifies raft's CRC of the snapshots newer than the
// newest intact one, before raft sees them: raft would skip a damaged
// snapshot and restore an older one without a word (then fail on a log
// that no longer covers the gap, "log not found"), or fail with "failed to
// load any existing snapshots". A damaged snapshot is tolerated only when
// an older intact one plus the log cover everything it held (then
// setAsideDamaged moves it away and logs the fallback). Otherwise it is
// damage, named.
func checkSnapshotsAtOpen(dataDir string, snaps raft.SnapshotStore, logs raft.LogStore, logger hclog.Logger) (snapshotState, error) {
	var st snapshotState
	metas, err := snaps.List()
	if err != nil {
		return st, &CorruptionError{DataDir: dataDir, What: "snapshots unreadable", Err: err}
	}
	type damaged = damagedSnapshot
	var bad []damaged
	// raft's List skips a snapshot whose meta.json it cannot read: that is
	// damage too.
	listed := map[string]bool{}
	for _, m := range metas {
		listed[m.ID] = true
	}
	dir := filepath.Join(dataDir, "snapshots")
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") || listed[e.Name()] {
				continue
			}
			bad = append(bad, damaged{id: e.Name(), index: snapshotIndexFromName(e.Name()), cause: errors.New("its meta.json is unreadable")})
		}
	}
	var intact *raft.SnapshotMeta
	for _, m := range metas {
		_, rc, err := snaps.Open(m.ID) // reads the whole file against raft's CRC64
		if err != nil {
			bad = append(bad, damaged{id: m.ID, index: m.Index, cause: err})
			continue
		}
		_ = rc.Close()
		intact = m
		break
	}
	if intact != nil {
		st.Index = intact.Index
		// Only what is newer than the intact one matters here.
		keep := bad[:0]
		for _, b := range bad {
			if b.index > intact.Index {
				keep = append(keep, b)
			}
		}
		bad = keep
	}
	if len(bad) == 0 {
		return st, nil
	}
	newest := bad[0]
	for _, b := range bad {
		if b.index > newest.index {
			newest = b
		}
	}
	first, ferr := logs.FirstIndex()
	last, lerr := logs.LastIndex()
	if ferr != nil || lerr != nil {
		return st, &CorruptionError{DataDir: dataDir, What: "raft log unreadable", Err: errors.Join(ferr, lerr)}
	}
	from := st.Index + 1
	covered := last > 0 && first <= from && last >= newest.index
	if !covered {
		base := "no older intact snapshot"
		if intact != nil {
			base = fmt.Sprintf("the older intact snapshot %s ends at index %d", intact.ID, intact.Index)
		}
		logRange := "the log is empty"
		if last > 0 {
			logRange = fmt.Sprintf("the log holds only indexes %d..%d", first, last)
		}
		return st, &CorruptionError{DataDir: dataDir, Index: newest.index, Err: newest.cause, What: fmt.Sprintf(
			"snapshot %s is damaged and cannot be replaced: %s and %s, so indexes %d..%d are lost here",
			newest.id, base, logRange, from, newest.index)}
	}
	st.damaged, st.logFirst, st.logLast = bad, first, last
	return st, nil
}

// setAsideDamaged moves the damaged snapshots checkSnapshotsAtOpen found
// (the log covers them) to snapshots.damaged/, kept for a post-mortem, and
// says so. It runs only once every check of the data dir passed, so a
// refused start changes nothing.
func setAsideDamaged(dataDir string, st snapshotState, logger hclog.Logger) error {
	if len(st.damaged) == 0 {
		return nil
	}
	dir := filepath.Join(dataDir, "snapshots")
	aside := filepath.Join(dataDir, "snapshots.damaged")
	if err := os.MkdirAll(aside, snapshotDirMode); err != nil {
		return fmt.Errorf("creating %s: %w", aside, err)
	}
	for _, b := range st.damaged {
		logger.Warn("snapshot is damaged; starting from the older intact snapshot and replaying the log, which covers the gap",
			"damaged", b.id, "cause", b.cause, "intact_snapshot_index", st.Index, "log_first", st.logFirst, "log_last", st.logLast, "moved_to", aside)
		if err := os.Rename(filepath.Join(dir, b.id), filepath.Join(aside, b.id)); err != nil {
			return fmt.Errorf("moving damaged snapshot %s aside: %w", b.id, err)
		}
	}
	return syncDir(dir)
}

// snapshotIndexFromName reads the index from raft's snapshot directory name
// (term-index-milliseconds), 0 if it does not parse.
func snapshotIndexFromName(name string) uint64 {
	parts := strings.Split(name, "-")
	if len(parts) < 3 {
		return 0
	}
	n, _ := strconv.ParseUint(parts[1], 10, 64)
	return n
}

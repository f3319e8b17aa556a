package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"
)

// Log store kinds (Config.LogStore, `--log-store`).
const (
	// LogStoreWAL keeps the raft log in hashicorp/raft-wal segment files
	// under <data-dir>/wal: one fsync per append batch.
	LogStoreWAL = "wal"
	// LogStoreBolt keeps the raft log in <data-dir>/raft.db next to the
	// stable store (the layout before raft-wal): two fsyncs per append.
	LogStoreBolt = "bolt"
	// DefaultLogStore is what a new data dir gets when Config.LogStore is
	// empty. Chosen by measurement (docs/benchmarks.md).
	DefaultLogStore = LogStoreWAL
)

const (
	walDirName = "wal"
	// walBuildDirName holds a WAL being filled from raft.db; it only
	// becomes the log once renamed to walDirName.
	walBuildDirName = "wal.migrating"
	// walRetiredDirName holds a WAL whose entries were copied back into
	// raft.db; raft.db is the log once wal/ is renamed to this.
	walRetiredDirName = "wal.retired"
	// migrateBatchBytes bounds the memory a migration copy holds at once.
	migrateBatchBytes = 4 << 20
)

// raft-wal segment sizes (Config.WALSegmentSize, `--wal-segment-size`).
// Every segment file is preallocated at this size when it is created.
const (
	DefaultWALSegmentSize = 64 << 20 // raft-wal's own default
	// MinWALSegmentSize keeps segment rotation (a meta db commit and a new
	// preallocated file) rare next to appends.
	MinWALSegmentSize = 1 << 20
	// MaxWALSegmentSize stays well below raft-wal's limit (frame offsets
	// are 32-bit, files at most 2 GiB).
	MaxWALSegmentSize = 1 << 30
)

// ValidLogStore reports whether kind names a log store ("" = keep what the
// data dir holds, or DefaultLogStore for a new one).
func ValidLogStore(kind string) bool {
	return kind == "" || kind == LogStoreWAL || kind == LogStoreBolt
}

// raftLog is an opened raft log store and what closes it.
type raftLog struct {
	kind  string
	store raft.LogStore
	close func() error
	// wal and walDir are set for LogStoreWAL: the tail check (walscan.go)
	// reads raft-wal's meta db and tail segment.
	wal    *openedWAL
	walDir string
}

// openLogStore opens the raft log in dir, the only place that decides
// which store holds it. The data dir decides first: a wal/ directory means
// raft-wal, log entries in raft.db (the layout before raft-wal) mean bolt.
// If want names the other store, the entries are migrated (crash-safe: the
// switch is one directory rename); if the log is empty, want (or
// DefaultLogStore) is used. stable is raft.db, which stays the stable store
// either way and is the bolt log store too.
//
// openRaftStorage wraps the returned store in the checksum store
// (logcheck.go); any wrapper must forward raft.MonotonicLogStore (raft-wal
// refuses gaps, and raft only clears the log after a snapshot install when
// it knows that).
func openLogStore(dir, want string, stable *raftboltdb.BoltStore, logger hclog.Logger) (*raftLog, error) {
	return openLogStoreSized(dir, want, stable, logger, 0)
}

// openLogStoreSized is openLogStore with raft-wal's segment size (0: what
// the data dir uses, resolveSegmentSize).
func openLogStoreSized(dir, want string, stable *raftboltdb.BoltStore, logger hclog.Logger, segmentSize int) (*raftLog, error) {
	if !ValidLogStore(want) {
		return nil, fmt.Errorf("unknown log store %q (want %q or %q)", want, LogStoreWAL, LogStoreBolt)
	}
	walDir := filepath.Join(dir, walDirName)
	segmentSize = resolveSegmentSize(walDir, segmentSize)
	// Leftovers of an interrupted migration: never the log (see the
	// rename points below), so they can go.
	for _, stale := range []string{walBuildDirName, walRetiredDirName} {
		if err := os.RemoveAll(filepath.Join(dir, stale)); err != nil {
			return nil, fmt.Errorf("removing leftover %s: %w", stale, err)
		}
	}
	haveWAL, err := dirExists(walDir)
	if err != nil {
		return nil, err
	}
	boltLast, err := stable.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("reading last index of the log in raft.db: %w", err)
	}

	current := ""
	switch {
	case haveWAL:
		current = LogStoreWAL
	case boltLast > 0:
		current = LogStoreBolt
	}
	if want == "" {
		want = current
	}
	if want == "" {
		want = DefaultLogStore
	}

	switch {
	case want == LogStoreBolt && current == LogStoreWAL:
		if err := migrateWALToBolt(dir, stable, logger); err != nil {
			return nil, err
		}
	case want == LogStoreWAL && current == LogStoreBolt:
		if err := migrateBoltToWAL(dir, stable, logger); err != nil {
			return nil, err
		}
	}

	if want == LogStoreBolt {
		return &raftLog{kind: LogStoreBolt, store: stable, close: func() error { return nil }}, nil
	}
	w, err := openWAL(walDir, logger, segmentSize)
	if err != nil {
		return nil, err
	}
	// A crash after a bolt→wal switch but before raft.db's copy was cleared
	// leaves entries there; wal/ is the log, so they are garbage.
	if err := clearBoltLog(stable); err != nil {
		_ = w.Close()
		return nil, err
	}
	return &raftLog{kind: LogStoreWAL, store: w, close: w.Close, wal: w, walDir: walDir}, nil
}

// openedWAL is a raft-wal log and its meta db: WAL.Close (v0.4.0) leaves
// the meta db open, and its file lock would block the next open in this
// process, so the store supplies the meta db and closes it itself.
type openedWAL struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (w *openedWAL) Close() error {
	return errors.Join(w.WAL.Close(), w.meta.Close())
}

func openWAL(walDir string, logger hclog.Logger, segmentSize int) (*openedWAL, error) {
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating raft log dir %s: %w", walDir, err)
	}
	meta := &metadb.BoltMetaDB{}
	if segmentSize <= 0 {
		segmentSize = DefaultWALSegmentSize
	}
	w, err := wal.Open(walDir, wal.WithLogger(logger.Named("wal")), wal.WithMetaStore(meta), wal.WithSegmentSize(segmentSize))
	if err != nil {
		_ = meta.Close()
		return nil, fmt.Errorf("opening raft log %s: %w", walDir, err)
	}
	return &openedWAL{WAL: w, meta: meta}, nil
}

// migrateBoltToWAL copies raft.db's log into a new WAL. The WAL is built
// aside and renamed into place: until the rename raft.db is the log, after
// it wal/ is (openLogStore then clears raft.db's copy).
func migrateBoltToWAL(dir string, stable *raftboltdb.BoltStore, logger hclog.Logger) error {
	build := filepath.Join(dir, walBuildDirName)
	w, err := openWAL(build, logger, 0)
	if err != nil {
		return err
	}
	first, _ := stable.FirstIndex()
	last, _ := stable.LastIndex()
	logger.Info("migrating raft log from raft.db to raft-wal", "first_index", first, "last_index", last)
	if err := migrate.CopyLogs(context.Background(), w, stable, migrateBatchBytes, nil); err != nil {
		_ = w.Close()
		return fmt.Errorf("copying raft log from raft.db to %s: %w", build, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("closing migrated raft log %s: %w", build, err)
	}
	if err := renameDurably(dir, walBuildDirName, walDirName); err != nil {
		return err
	}
	logger.Info("raft log migrated to raft-wal", "entries", last-first+1)
	return nil
}

// migrateWALToBolt copies the WAL's entries into raft.db and then retires
// wal/ with one rename: until then wal/ is the log (raft.db's partial copy
// is cleared on the next open), after it raft.db is.
func migrateWALToBolt(dir string, stable *raftboltdb.BoltStore, logger hclog.Logger) error {
	if err := clearBoltLog(stable); err != nil {
		return err
	}
	w, err := openWAL(filepath.Join(dir, walDirName), logger, 0)
	if err != nil {
		return err
	}
	first, _ := w.FirstIndex()
	last, _ := w.LastIndex()
	logger.Info("migrating raft log from raft-wal to raft.db", "first_index", first, "last_index", last)
	copyErr := migrate.CopyLogs(context.Background(), stable, w, migrateBatchBytes, nil)
	if err := errors.Join(copyErr, w.Close()); err != nil {
		return fmt.Errorf("copying raft log from wal to raft.db: %w", err)
	}
	if err := renameDurably(dir, walDirName, walRetiredDirName); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(dir, walRetiredDirName)); err != nil {
		logger.Warn("removing retired raft-wal dir", "error", err)
	}
	logger.Info("raft log migrated to raft.db", "entries", last-first+1)
	return nil
}

func clearBoltLog(stable *raftboltdb.BoltStore) error {
	first, err := stable.FirstIndex()
	if err != nil {
		return fmt.Errorf("reading first index of the log in raft.db: %w", err)
	}
	last, err := stable.LastIndex()
	if err != nil {
		return fmt.Errorf("reading last index of the log in raft.db: %w", err)
	}
	if last == 0 {
		return nil
	}
	if err := stable.DeleteRange(first, last); err != nil {
		return fmt.Errorf("clearing the log in raft.db: %w", err)
	}
	return nil
}

// renameDurably renames dir/from to dir/to and fsyncs dir, so the switch
// survives a crash.
func renameDurably(dir, from, to string) error {
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", from, to, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s to sync it: %w", dir, err)
	}
	syncErr := d.Sync()
	if err := errors.Join(syncErr, d.Close()); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

func dirExists(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if !fi.IsDir() {
			return false, fmt.Errorf("%s is not a directory", path)
		}
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("checking %s: %w", path, err)
	}
}

// resolveSegmentSize is the segment size to create new segments with: the
// one asked for, else the size of walDir's newest segment (segments are
// preallocated to their size), else DefaultWALSegmentSize. A member that
// was started once with a small --wal-segment-size (a small disk) keeps it
// on later starts and in `wimms recover` without being told again: a
// 64 MiB segment would not fit where it runs.
func resolveSegmentSize(walDir string, asked int) int {
	if asked > 0 {
		return asked
	}
	segs, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
	sort.Strings(segs) // named by base index: the newest sorts last
	for i := len(segs) - 1; i >= 0; i-- {
		if fi, err := os.Stat(segs[i]); err == nil && ValidWALSegmentSize(int(fi.Size())) == nil && fi.Size() > 0 {
			return int(fi.Size())
		}
	}
	return DefaultWALSegmentSize
}

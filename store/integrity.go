package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bbolt "go.etcd.io/bbolt"
)

// boltOpenError names a raft.db that bbolt refuses as damaged (bad meta
// page checksum, not a bolt file) as corruption; other failures (locked,
// permissions) stay ordinary errors.
func boltOpenError(dataDir string, err error) error {
	path := filepath.Join(dataDir, "raft.db")
	if errors.Is(err, bbolt.ErrInvalid) || errors.Is(err, bbolt.ErrChecksum) ||
		errors.Is(err, bbolt.ErrVersionMismatch) {
		return &CorruptionError{DataDir: dataDir, What: "raft log database " + path + " is damaged", Err: err}
	}
	return fmt.Errorf("opening raft log %s: %w", path, err)
}

// snapshotDirMode and snapshotFileMode: snapshots hold every user's email
// and assignment, so only the member's own user may read them.
const (
	snapshotDirMode  fs.FileMode = 0o700
	snapshotFileMode fs.FileMode = 0o600
)

// openSnapshotStore opens raft's file snapshot store with private
// permissions: raft creates its directories 0755 and files 0644, so the
// store tightens them at open (older snapshots) and after every snapshot.
func openSnapshotStore(dataDir string, logger hclog.Logger) (raft.SnapshotStore, error) {
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, snapshotsRetained, logger)
	if err != nil {
		return nil, fmt.Errorf("opening snapshot store in %s: %w", dataDir, err)
	}
	dir := filepath.Join(dataDir, "snapshots")
	if err := restrictTree(dir); err != nil {
		return nil, fmt.Errorf("restricting permissions of %s: %w", dir, err)
	}
	return privateSnapshots{FileSnapshotStore: snaps, dir: dir}, nil
}

func restrictTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // raft removes reaped snapshots concurrently
			}
			return err
		}
		mode := snapshotFileMode
		if d.IsDir() {
			mode = snapshotDirMode
		}
		if err := os.Chmod(path, mode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

type privateSnapshots struct {
	*raft.FileSnapshotStore
	dir string
}

func (p privateSnapshots) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := p.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	// Tighten the temporary directory at once so the state is never
	// readable by others while it is written.
	_ = restrictTree(p.dir)
	return privateSink{SnapshotSink: sink, dir: p.dir}, nil
}

type privateSink struct {
	raft.SnapshotSink
	dir string
}

func (s privateSink) Close() error {
	err := s.SnapshotSink.Close()
	if rerr := restrictTree(s.dir); rerr != nil && err == nil {
		err = fmt.Errorf("restricting snapshot permissions: %w", rerr)
	}
	return err
}

// watchCorruption arms the log store's read-back check for the running
// member: damage found from now on goes to Config.OnCorruption.
func (s *Store) watchCorruption(durable *checksumLogStore) {
	fn := func(err error) {
		if s.closing.Load() {
			return // reads racing shutdown fail for that reason alone
		}
		if s.cfg.OnCorruption != nil {
			s.cfg.OnCorruption(err) // reports it: one line, not two
			return
		}
		s.logger.Error(err.Error())
	}
	durable.onCorrupt.Store(&fn)
}

// checkReplayed refuses a stale read until this member has applied the log
// it had on disk at Open: a stale answer may be old, but never older than
// what the member itself already held (a restarted member would otherwise
// describe an empty state while it replays).
func (s *Store) checkReplayed() error {
	if applied := s.AppliedIndex(); applied < s.openTarget {
		return fmt.Errorf("stale read: applied %d of the %d entries held at start: %w", applied, s.openTarget, ErrReplaying)
	}
	return nil
}

// SetPeerLeaving installs how the store learns that another member is
// stopping too (the cluster layer reads it from gossip). Close skips the
// leadership handover when every other voter is leaving.
func (s *Store) SetPeerLeaving(fn func(id string) bool) {
	if fn == nil {
		s.peerLeaving.Store(nil)
		return
	}
	s.peerLeaving.Store(&fn)
}

// hasStayingVoters reports whether some other voter is not known to be
// leaving: only then is handing leadership over worth waiting for.
func (s *Store) hasStayingVoters() bool {
	servers, err := s.Servers()
	if err != nil {
		return false
	}
	leaving := func(string) bool { return false }
	if fn := s.peerLeaving.Load(); fn != nil {
		leaving = *fn
	}
	for _, srv := range servers {
		if srv.Voter && srv.ID != s.cfg.ID && !leaving(srv.ID) {
			return true
		}
	}
	return false
}

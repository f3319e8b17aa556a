package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// CheckRestoredIdentity: on the first start on a data dir that `wimms
// restore` prepared (a snapshot, no Raft log or stable store yet), the
// member must be the one voter the restore named, else Raft would wait for
// ever for an election it cannot hold. It returns one line naming both.
// Any other data dir passes: membership of a running cluster changes
// through Raft and a member's own snapshot may predate its joining. It runs
// before the store opens, so that the binary can refuse with one line
// before anything listens; it lives here because only this package reads
// Raft's files.
func CheckRestoredIdentity(dataDir, id, raftAddr string) error {
	for _, name := range []string{"raft.db", "wal"} {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err == nil || !errors.Is(err, os.ErrNotExist) {
			return nil // Raft state exists, or cannot be told: not a fresh restore
		}
	}
	entries, err := os.ReadDir(filepath.Join(dataDir, "snapshots"))
	if err != nil || len(entries) == 0 {
		return nil
	}
	snaps, err := raft.NewFileSnapshotStore(dataDir, 1, io.Discard)
	if err != nil {
		return fmt.Errorf("reading the snapshots of %s: %w", dataDir, err)
	}
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return nil // unreadable snapshots: the store reports them when it opens
	}
	conf := metas[0].Configuration
	for _, s := range conf.Servers {
		if string(s.ID) == id && string(s.Address) == raftAddr {
			return nil
		}
	}
	if len(conf.Servers) != 1 {
		return nil // not what restore writes
	}
	want := conf.Servers[0]
	return fmt.Errorf("data dir %s was restored for member %s at raft address %s, but this member is --id %s at %s: start it with --id %s --raft-advertise %s, or run wimms restore again with --id %s --raft-addr %s",
		dataDir, want.ID, want.Address, id, raftAddr, want.ID, want.Address, id, raftAddr)
}

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bbolt "go.etcd.io/bbolt"

	"github.com/wimms-dev/wimms/fsm"
)

// RecoverInfo is what Recover kept.
type RecoverInfo struct {
	// Index and Term of the last entry the recovered state holds.
	Index, Term uint64
}

// Recover rewrites a stopped member's Raft configuration to just itself
// (memberID at raftAddr), keeping its state: the way back when a majority
// of members is lost or damaged, so no leader can be elected and
// membership cannot change through Raft. The data dir goes through every
// check Open makes first (entry checksums, the log watermark, the tail
// segment, snapshots), so a damaged log is refused, never promoted. It
// uses raft.RecoverCluster: the state (newest snapshot plus the log) is
// replayed into a fresh state machine and written as a new snapshot whose
// configuration is the one voter, and the log is cleared. `wimms server`
// started on the dir with the same id and Raft address then elects itself;
// the other members rejoin with empty data dirs.
//
// segmentSize is the size of the raft-wal segment it creates after
// clearing the log (0: the size the data dir already uses).
func Recover(dataDir, memberID, raftAddr string, segmentSize int, logger hclog.Logger) (RecoverInfo, error) {
	var info RecoverInfo
	if memberID == "" || raftAddr == "" {
		return info, errors.New("recover: member id and raft address are required")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	db := filepath.Join(dataDir, "raft.db")
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return info, fmt.Errorf("recover: %s holds no raft state (no raft.db)", dataDir)
	}
	// raft-boltdb would wait for a running member's lock forever.
	probe, err := bbolt.Open(db, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return info, fmt.Errorf("recover: %s is locked: is the member still running? stop it first", db)
		}
		return info, boltOpenError(dataDir, err)
	}
	if err := probe.Close(); err != nil {
		return info, fmt.Errorf("recover: closing %s: %w", db, err)
	}
	storage, err := openRaftStorage(dataDir, "", segmentSize, logger)
	if err != nil {
		return info, err
	}
	defer func() { _ = storage.log.close(); _ = storage.bolt.Close() }()
	adapter := newFSMAdapter(fsmMachine{fsm.New(fsm.Options{})}, fsmCodec, logger.Named("fsm"))
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(memberID)
	rc.Logger = logger.Named("raft")
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(memberID), Address: raft.ServerAddress(raftAddr)}}}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(raftAddr)) // only encodes peers for the snapshot's legacy field
	if err := raft.RecoverCluster(rc, adapter, storage.logs, storage.bolt, storage.snaps, trans, conf); err != nil {
		return info, fmt.Errorf("recover: rewriting the configuration of %s: %w", dataDir, err)
	}
	metas, err := storage.snaps.List()
	if err != nil || len(metas) == 0 {
		return info, fmt.Errorf("recover: reading back the recovery snapshot in %s: %v", dataDir, err)
	}
	info.Index, info.Term = metas[0].Index, metas[0].Term
	logger.Info("recovered: the configuration is now this member alone", "dir", dataDir, "member", memberID,
		"raft_addr", raftAddr, "index", info.Index, "term", info.Term)
	return info, nil
}

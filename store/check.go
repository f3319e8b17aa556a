package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bbolt "go.etcd.io/bbolt"

	"github.com/wimms-dev/wimms/fsm"
)

// CheckReport is what Check found in a stopped member's data directory.
type CheckReport struct {
	DataDir string
	HasLog  bool
	Log     LogReport
	// Tail is the end of the log: last index and term, the watermark,
	// what an operator compares across members (docs/cluster.md).
	Tail      LogTail
	Snapshots []SnapshotReport
}

// SnapshotReport is one snapshot's verdict: raft's CRC over the file, then
// a full decode of the state it holds.
type SnapshotReport struct {
	ID          string
	Index, Term uint64
	Err         error
}

// Problems lists every piece of damage found.
func (r CheckReport) Problems() []error {
	out := append([]error(nil), r.Log.Problems...)
	for _, s := range r.Snapshots {
		if s.Err != nil {
			out = append(out, s.Err)
		}
	}
	return out
}

// checkMaxProblems bounds how many damaged entries one check lists.
const checkMaxProblems = 20

// Check verifies a stopped member's Raft log (every entry against its
// checksum, every entry decodable) and snapshots (CRC and state decode)
// without changing anything. The error is for a check that could not run
// (no such directory, the member still running); damage is in the report.
func Check(dataDir string) (CheckReport, error) {
	rep := CheckReport{DataDir: dataDir}
	if st, err := os.Stat(dataDir); err != nil {
		return rep, fmt.Errorf("data directory %s: %w", dataDir, err)
	} else if !st.IsDir() {
		return rep, fmt.Errorf("data directory %s: not a directory", dataDir)
	}
	checkSnapshots(&rep)
	if err := checkLog(&rep); err != nil {
		return rep, err
	}
	return rep, nil
}

func checkLog(rep *CheckReport) (err error) {
	path := filepath.Join(rep.DataDir, "raft.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	rep.HasLog = true
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a damaged page may point past the mmap
	defer func() {
		if r := recover(); r != nil {
			rep.Log.Problems = append(rep.Log.Problems, panicAsCorruption(rep.DataDir, r))
		}
	}()
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("%s is locked: is the member still running? stop it first", path)
		}
		if oerr := boltOpenError(rep.DataDir, err); errors.Is(oerr, ErrCorrupt) {
			rep.Log.Problems = append(rep.Log.Problems, oerr)
			return nil
		}
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer bolt.Close()
	var logs raft.LogStore = bolt
	rlog := &raftLog{kind: LogStoreBolt}
	walDir := filepath.Join(rep.DataDir, walDirName)
	if ok, err := dirExists(walDir); err != nil {
		return err
	} else if ok {
		// The log is raft-wal's (store/logstore.go): raft.db, locked by a
		// running member, was opened above, so the member is stopped.
		w, err := openWAL(walDir, hclog.NewNullLogger(), 0)
		if err != nil {
			rep.Log.Problems = append(rep.Log.Problems, &CorruptionError{DataDir: rep.DataDir, What: "raft log (wal) unreadable", Err: err})
			return nil
		}
		defer w.Close()
		logs = w
		rlog = &raftLog{kind: LogStoreWAL, wal: w, walDir: walDir}
	}
	durable := newChecksumLogStore(logs, rep.DataDir)
	lr, err := verifyLog(durable, false, checkMaxProblems)
	rep.Log = lr
	if err != nil {
		rep.Log.Problems = append(rep.Log.Problems, err)
	}
	var snapIndex uint64
	for _, s := range rep.Snapshots {
		if s.Err == nil && s.Index > snapIndex {
			snapIndex = s.Index
		}
	}
	tail, err := inspectLogTail(rep.DataDir, rlog, durable, snapIndex)
	rep.Tail = tail
	if err != nil {
		rep.Log.Problems = append(rep.Log.Problems, err)
	}
	return nil
}

func checkSnapshots(rep *CheckReport) {
	if _, err := os.Stat(filepath.Join(rep.DataDir, "snapshots")); err != nil {
		return
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(rep.DataDir, snapshotsRetained, hclog.NewNullLogger())
	if err != nil {
		rep.Snapshots = append(rep.Snapshots, SnapshotReport{Err: fmt.Errorf("opening snapshots: %w", err)})
		return
	}
	metas, err := snaps.List()
	if err != nil {
		rep.Snapshots = append(rep.Snapshots, SnapshotReport{Err: fmt.Errorf("listing snapshots: %w", err)})
		return
	}
	listed := map[string]bool{}
	for _, m := range metas {
		listed[m.ID] = true
		rep.Snapshots = append(rep.Snapshots, checkSnapshot(rep.DataDir, snaps, m))
	}
	// raft's List leaves out a snapshot whose meta.json it cannot read.
	ents, _ := os.ReadDir(filepath.Join(rep.DataDir, "snapshots"))
	for _, e := range ents {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") && !listed[e.Name()] {
			idx := snapshotIndexFromName(e.Name())
			rep.Snapshots = append(rep.Snapshots, SnapshotReport{ID: e.Name(), Index: idx, Err: &CorruptionError{
				DataDir: rep.DataDir, Index: idx, What: "snapshot " + e.Name() + " is damaged: its meta.json is unreadable"}})
		}
	}
}

func checkSnapshot(dataDir string, snaps *raft.FileSnapshotStore, m *raft.SnapshotMeta) (sr SnapshotReport) {
	sr = SnapshotReport{ID: m.ID, Index: m.Index, Term: m.Term}
	damaged := func(err error) error {
		return &CorruptionError{DataDir: dataDir, Index: m.Index, What: "snapshot " + m.ID + " is damaged", Err: err}
	}
	defer func() {
		if r := recover(); r != nil {
			sr.Err = damaged(fmt.Errorf("%v", r))
		}
	}()
	_, rc, err := snaps.Open(m.ID) // verifies raft's CRC64 over the file
	if err != nil {
		sr.Err = damaged(err)
		return sr
	}
	a := newFSMAdapter(fsmMachine{fsm.New(fsm.Options{})}, fsmCodec, hclog.NewNullLogger())
	if err := a.Restore(rc); err != nil {
		sr.Err = damaged(err)
	}
	return sr
}

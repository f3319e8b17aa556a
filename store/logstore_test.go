package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/testutil"
)

// restartable opens one bootstrapped member again and again on the same
// data dir and raft address, with the log store asked for each time.
type restartable struct {
	t   *testing.T
	cfg Config
}

func newRestartable(t *testing.T) *restartable {
	cfg := testConfig(t, testutil.Logger(t), "m0", true)
	return &restartable{t: t, cfg: cfg}
}

// open starts the member with logStore, waits until it leads and has
// applied what its data dir holds, and checks the log store it chose.
func (r *restartable) open(logStore, wantKind string) (*Store, *fakeMachine) {
	r.t.Helper()
	cfg := r.cfg
	cfg.LogStore = logStore
	s, m := openFake(r.t, cfg)
	r.cfg.RaftBind = s.RaftAddr()
	if s.log.kind != wantKind {
		r.t.Fatalf("LogStore %q on this data dir: got log store %q, want %q", logStore, s.log.kind, wantKind)
	}
	testutil.WaitFor(r.t, 10*time.Second, "leadership", s.IsLeader)
	testutil.WaitFor(r.t, 10*time.Second, "ready", s.Ready)
	return s, m
}

func (r *restartable) put(s *Store, names ...string) {
	r.t.Helper()
	for _, name := range names {
		if _, _, err := s.Apply(ctxTimeout(r.t, 5*time.Second), putService(name)); err != nil {
			r.t.Fatalf("put %s: %v", name, err)
		}
	}
}

func (r *restartable) close(s *Store) {
	r.t.Helper()
	if err := s.Close(); err != nil {
		r.t.Fatalf("close: %v", err)
	}
}

func requireServices(t *testing.T, m *fakeMachine, names ...string) {
	t.Helper()
	for _, name := range names {
		if !m.has(name) {
			t.Fatalf("service %s missing after restart", name)
		}
	}
}

func requireWALDir(t *testing.T, dir string, want bool) {
	t.Helper()
	have, err := dirExists(filepath.Join(dir, walDirName))
	if err != nil {
		t.Fatal(err)
	}
	if have != want {
		t.Fatalf("wal dir present: %v, want %v", have, want)
	}
}

func boltLogLast(t *testing.T, s *Store) uint64 {
	t.Helper()
	last, err := s.bolt.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// A data dir of the layout before raft-wal (log and stable store in
// raft.db) keeps its log there unless asked otherwise; asking for wal
// migrates the entries, asking for bolt migrates them back, and the state
// survives every step.
func TestLogStoreKeepsAndMigratesExistingDataDirs(t *testing.T) {
	r := newRestartable(t)
	dir := r.cfg.DataDir

	s, _ := r.open(LogStoreBolt, LogStoreBolt)
	r.put(s, "a", "b", "c")
	r.close(s)
	requireWALDir(t, dir, false)

	s, m := r.open("", LogStoreBolt)
	requireServices(t, m, "a", "b", "c")
	if boltLogLast(t, s) == 0 {
		t.Fatal("bolt layout: raft.db holds no log entries")
	}
	r.put(s, "d")
	r.close(s)

	s, m = r.open(LogStoreWAL, LogStoreWAL)
	requireServices(t, m, "a", "b", "c", "d")
	requireWALDir(t, dir, true)
	if last := boltLogLast(t, s); last != 0 {
		t.Fatalf("after migrating to wal raft.db still holds log entries up to %d", last)
	}
	r.put(s, "e")
	r.close(s)

	s, m = r.open("", LogStoreWAL)
	requireServices(t, m, "a", "b", "c", "d", "e")
	r.close(s)

	s, m = r.open(LogStoreBolt, LogStoreBolt)
	requireServices(t, m, "a", "b", "c", "d", "e")
	requireWALDir(t, dir, false)
	r.put(s, "f")
	r.close(s)

	s, m = r.open("", LogStoreBolt)
	requireServices(t, m, "a", "b", "c", "d", "e", "f")
	r.close(s)
}

func TestLogStoreNewDataDirGetsTheDefault(t *testing.T) {
	r := newRestartable(t)
	s, _ := r.open("", DefaultLogStore)
	r.put(s, "a")
	r.close(s)
	s, m := r.open("", DefaultLogStore)
	requireServices(t, m, "a")
	r.close(s)
}

// A migration interrupted before its rename leaves a half-built WAL that
// is not the log; one interrupted after it leaves raft.db's stale copy.
// Either way the next open serves the whole state from the real log.
func TestLogStoreInterruptedMigrations(t *testing.T) {
	r := newRestartable(t)
	dir := r.cfg.DataDir
	s, _ := r.open(LogStoreBolt, LogStoreBolt)
	r.put(s, "a", "b")
	r.close(s)

	// Before the rename: a partial wal.migrating.
	if err := os.MkdirAll(filepath.Join(dir, walBuildDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, walBuildDirName, "00000000000000000001-0000000000000001.wal"), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, m := r.open("", LogStoreBolt)
	requireServices(t, m, "a", "b")
	if _, err := os.Stat(filepath.Join(dir, walBuildDirName)); !os.IsNotExist(err) {
		t.Fatalf("leftover %s not removed: %v", walBuildDirName, err)
	}
	r.put(s, "c")
	r.close(s)

	// After the rename, before raft.db's copy is cleared.
	bolt := openBolt(t, dir)
	if err := migrateBoltToWAL(dir, bolt, testutil.Logger(t)); err != nil {
		t.Fatal(err)
	}
	if last, _ := bolt.LastIndex(); last == 0 {
		t.Fatal("test setup: raft.db's log should still hold the copied entries")
	}
	if err := bolt.Close(); err != nil {
		t.Fatal(err)
	}
	s, m = r.open("", LogStoreWAL)
	requireServices(t, m, "a", "b", "c")
	if last := boltLogLast(t, s); last != 0 {
		t.Fatalf("raft.db's stale log copy (to %d) was not cleared", last)
	}
	r.close(s)
}

func TestConfigRejectsUnknownLogStore(t *testing.T) {
	cfg := testConfig(t, testutil.Logger(t), "m0", true)
	cfg.LogStore = "rocksdb"
	if _, err := Open(cfg); err == nil {
		t.Fatal("Open accepted LogStore \"rocksdb\"")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft.db")); !os.IsNotExist(err) {
		t.Fatalf("a rejected config created raft.db: %v", err)
	}
}

// copyFixture copies the files of testdata/<name> into a fresh data dir.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("testdata", name, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raft.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A data dir written by the previous release (testdata/prev-layout-4233133)
// opens with its log in raft.db and its whole state; naming wal migrates it
// and the state survives.
func TestLogStorePreviousLayoutFixture(t *testing.T) {
	const service = "bench-1.0"
	wantStats := fsm.Stats{Users: 20, Records: 20, Nodes: 2}
	cfg := testConfig(t, testutil.Logger(t), "m1", true)
	cfg.DataDir = copyFixture(t, "prev-layout-4233133")
	for _, step := range []struct{ logStore, wantKind string }{
		{"", LogStoreBolt},
		{LogStoreWAL, LogStoreWAL},
		{"", LogStoreWAL},
	} {
		cfg.LogStore = step.logStore
		s := openReal(t, cfg)
		if !s.HadState() {
			t.Fatalf("LogStore %q: the fixture's state was not found", step.logStore)
		}
		if s.log.kind != step.wantKind {
			t.Fatalf("LogStore %q: got log store %q, want %q", step.logStore, s.log.kind, step.wantKind)
		}
		testutil.WaitFor(t, 15*time.Second, "ready", s.Ready)
		var got fsm.Stats
		if _, err := s.Read(ctxTimeout(t, 5*time.Second), ReadOptions{Level: ReadStale}, func(r fsm.Reader) error {
			var err error
			got, err = r.Stats(service)
			return err
		}); err != nil {
			t.Fatalf("LogStore %q: reading stats: %v", step.logStore, err)
		}
		if got != wantStats {
			t.Fatalf("LogStore %q: stats %+v, want %+v", step.logStore, got, wantStats)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A compacted bolt log (first index > 1, state partly in a snapshot)
// migrates to wal and back with the state intact.
func TestLogStoreMigratesACompactedLog(t *testing.T) {
	r := newRestartable(t)
	r.cfg.SnapshotThreshold = 4
	r.cfg.TrailingLogs = 2
	r.cfg.SnapshotInterval = 50 * time.Millisecond
	s, _ := r.open(LogStoreBolt, LogStoreBolt)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	r.put(s, names...)
	testutil.WaitFor(t, 15*time.Second, "a snapshot and log compaction", func() bool {
		first, err := s.log.store.FirstIndex()
		return err == nil && first > 1 && countSnapshots(t, r.cfg.DataDir) > 0
	})
	r.close(s)

	s, m := r.open(LogStoreWAL, LogStoreWAL)
	requireServices(t, m, names...)
	if first, err := s.log.store.FirstIndex(); err != nil || first <= 1 {
		t.Fatalf("migrated wal starts at %d (%v); want the compacted bolt log's first index > 1", first, err)
	}
	r.put(s, "k")
	r.close(s)

	s, m = r.open(LogStoreBolt, LogStoreBolt)
	requireServices(t, m, append(names, "k")...)
	r.close(s)
}

// A follower clears a suffix of its log when a new leader disagrees with it
// (raft's DeleteRange of the tail). raft-wal v0.4.0 sealed the segment it
// truncated without an index block, and the reopened log could not read
// its first entry ("sealed segment has no index block", hashicorp/raft-wal
// issue 31): the member refused to start as if its data were damaged. The
// chaos test found it after a kill-leader; v0.4.1 fixes it.
func TestWALReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	stable := openBolt(t, dir)
	defer stable.Close()
	rlog, err := openLogStore(dir, LogStoreWAL, stable, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	if err := rlog.store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := rlog.store.DeleteRange(9, 10); err != nil {
		t.Fatal(err)
	}
	if err := rlog.store.StoreLogs([]*raft.Log{{Index: 9, Term: 2, Type: raft.LogCommand, Data: []byte{9}}}); err != nil {
		t.Fatal(err)
	}
	if err := rlog.close(); err != nil {
		t.Fatal(err)
	}
	rlog, err = openLogStore(dir, LogStoreWAL, stable, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rlog.close()
	for i := uint64(1); i <= 9; i++ {
		var l raft.Log
		if err := rlog.store.GetLog(i, &l); err != nil {
			t.Fatalf("after reopening, entry %d: %v", i, err)
		}
		wantTerm := uint64(1)
		if i == 9 {
			wantTerm = 2 // rewritten after the truncation
		}
		if l.Term != wantTerm {
			t.Fatalf("entry %d term %d, want %d", i, l.Term, wantTerm)
		}
	}
	if last, _ := rlog.store.LastIndex(); last != 9 {
		t.Fatalf("last index %d, want 9", last)
	}
}

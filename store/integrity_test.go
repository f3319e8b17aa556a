package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bbolt "go.etcd.io/bbolt"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// writeAndStop bootstraps a one-member store, applies n services and stops
// it; it returns the config (for reopening) and the Raft index of each.
func writeAndStop(t *testing.T, n int) (Config, map[string]uint64) {
	t.Helper()
	return writeAndStopOn(t, LogStoreBolt, n)
}

// writeAndStopOn is writeAndStop with the log in the given store.
func writeAndStopOn(t *testing.T, logStore string, n int) (Config, map[string]uint64) {
	t.Helper()
	cfg := testConfig(t, testutil.Logger(t), "solo", true)
	cfg.LogStore = logStore
	s, _ := openFake(t, cfg)
	testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
	at := map[string]uint64{}
	for i := range n {
		name := fmt.Sprintf("svc%d-1.0", i)
		_, meta, err := s.Apply(ctxTimeout(t, 5*time.Second), putService(name))
		if err != nil {
			t.Fatal(err)
		}
		at[name] = meta.Index
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.RaftBind = "127.0.0.1:0"
	return cfg, at
}

// editStoredEntry rewrites the raw stored bytes of one log entry, the way a
// damaged disk would (bolt keeps no checksum per value).
func editStoredEntry(t *testing.T, dataDir string, index uint64, edit func([]byte) []byte) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dataDir, "raft.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("logs"))
		key := make([]byte, 8)
		for i := range 8 {
			key[7-i] = byte(index >> (8 * i))
		}
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("no entry %d", index)
		}
		return b.Put(key, edit(append([]byte(nil), v...)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkRefusedAt checks that the damage at log index idx of cfg's data
// directory, which what describes, is found both ways: open refuses with a
// CorruptionError naming the index and the directory, and Check reports it
// as the one problem.
func checkRefusedAt(t *testing.T, cfg Config, idx uint64, what string) {
	t.Helper()
	_, err := open(cfg, newFakeMachine(), jsonCodec)
	var ce *CorruptionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of %s: err = %v, want a CorruptionError", what, err)
	}
	if ce.Index != idx || ce.DataDir != cfg.DataDir {
		t.Fatalf("%s: corruption names index %d dir %s, want %d %s", what, ce.Index, ce.DataDir, idx, cfg.DataDir)
	}
	rep, err := Check(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems()) != 1 || !errors.As(rep.Problems()[0], &ce) || ce.Index != idx {
		t.Fatalf("Check of %s: problems = %v, want one at index %d", what, rep.Problems(), idx)
	}
}

func TestFlippedByteInStoredEntryRefusesToOpen(t *testing.T) {
	cfg, at := writeAndStop(t, 5)
	idx := at["svc2-1.0"]
	editStoredEntry(t, cfg.DataDir, idx, func(v []byte) []byte {
		i := bytes.Index(v, []byte("svc2-1.0"))
		if i < 0 {
			t.Fatalf("entry %d does not hold its command", idx)
		}
		v[i+3] ^= 0x01 // svc2 -> svc3: a plausible, different command
		return v
	})
	checkRefusedAt(t, cfg, idx, "a flipped byte in a stored entry")
}

// The same damage in raft-wal's segment files (the default log store): the
// entry's checksum catches it wherever the bytes live.
func TestFlippedByteInWALSegmentRefusesToOpen(t *testing.T) {
	cfg, at := writeAndStopOn(t, LogStoreWAL, 5)
	idx := at["svc2-1.0"]
	segs, err := filepath.Glob(filepath.Join(cfg.DataDir, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no wal segments: %v", err)
	}
	damaged := 0
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte("svc2-1.0")); i >= 0 {
			b[i+3] ^= 0x01
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}
			damaged++
		}
	}
	if damaged == 0 {
		t.Fatal("no segment holds the entry")
	}
	checkRefusedAt(t, cfg, idx, "a damaged wal")
}

func TestDamagedEntryHeaderRefusesToOpen(t *testing.T) {
	cfg, at := writeAndStop(t, 3)
	idx := at["svc1-1.0"]
	editStoredEntry(t, cfg.DataDir, idx, func(v []byte) []byte {
		v[0] = 0xc1 // never used by msgpack
		return v
	})
	checkRefusedAt(t, cfg, idx, "a damaged entry header")
}

func TestEntriesWithoutChecksumStillLoad(t *testing.T) {
	cfg, at := writeAndStop(t, 3)
	// Rewrite every entry as an older version wrote it: no extension.
	db := openBolt(t, cfg.DataDir)
	first, _ := db.FirstIndex()
	last, _ := db.LastIndex()
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := db.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Extensions) != checksumExtLen {
			t.Fatalf("entry %d stored without a checksum", i)
		}
		l.Extensions = nil
		if err := db.StoreLog(&l); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.Close()

	rep, err := Check(cfg.DataDir)
	if err != nil || len(rep.Problems()) != 0 || rep.Log.Checked != 0 || rep.Log.Unchecked != int(last-first+1) {
		t.Fatalf("Check of old data = %+v, %v", rep, err)
	}
	s, m := openFake(t, cfg)
	testutil.WaitFor(t, 10*time.Second, "ready", s.Ready)
	for name := range at {
		if !m.has(name) {
			t.Fatalf("%s lost", name)
		}
	}
}

func TestSnapshotFilesArePrivate(t *testing.T) {
	cfg := testConfig(t, testutil.Logger(t), "solo", true)
	s := openReal(t, cfg) // the real state machine: Check decodes its snapshots
	testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
	if _, _, err := s.Apply(ctxTimeout(t, 5*time.Second), putService("a-1.0")); err != nil {
		t.Fatal(err)
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.Walk(filepath.Join(cfg.DataDir, "snapshots"), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n++
		want := snapshotFileMode
		if fi.IsDir() {
			want = snapshotDirMode
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("walked %d paths, err %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(cfg.DataDir)
	if err != nil || len(rep.Snapshots) != 1 || len(rep.Problems()) != 0 {
		t.Fatalf("Check = %+v, %v", rep, err)
	}
}

// TestReadBackDamageReachesOnCorruption: damage found while the member
// runs (replication, apply of uncached entries) is reported through the
// callback before raft sees the failed read.
func TestReadBackDamageReachesOnCorruption(t *testing.T) {
	inner := raft.NewInmemStore()
	s := newChecksumLogStore(inner, "/data/m1")
	var reported []error
	fn := func(err error) { reported = append(reported, err) }
	s.onCorrupt.Store(&fn)
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("one")},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("two")},
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if logs[0].Extensions != nil {
		t.Fatal("StoreLogs changed the caller's entry")
	}
	var l raft.Log
	if err := s.GetLog(1, &l); err != nil || string(l.Data) != "one" || l.Extensions != nil {
		t.Fatalf("intact entry: %+v, %v", l, err)
	}
	var stored raft.Log
	if err := inner.GetLog(2, &stored); err != nil {
		t.Fatal(err)
	}
	stored.Data = []byte("twO")
	if err := inner.StoreLog(&stored); err != nil {
		t.Fatal(err)
	}
	err := s.GetLog(2, &l)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Index != 2 || len(reported) != 1 {
		t.Fatalf("damaged entry: err %v, reported %v", err, reported)
	}
	if err := s.GetLog(3, &l); !errors.Is(err, raft.ErrLogNotFound) || len(reported) != 1 {
		t.Fatalf("a missing entry is not damage: %v, reported %v", err, reported)
	}
}

// TestDamagedBoltPageRefusesToOpen: a damaged page header (bolt keeps no
// checksum on data pages) makes bbolt panic or fault while reading it;
// both become a CorruptionError, in Open and in Check.
func TestDamagedBoltPageRefusesToOpen(t *testing.T) {
	cfg, _ := writeAndStop(t, 5)
	path := filepath.Join(cfg.DataDir, "raft.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	damaged := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte("svc2-1.0"))
		if i < 0 {
			break
		}
		at := off + i
		page := at - at%pageSize
		for k := page; k < page+16; k++ { // id, flags, count, overflow
			b[k] = 0xff
		}
		damaged++
		off = at + 1
	}
	if damaged == 0 {
		t.Fatal("no page holds the entry")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 { // the fault, when there is one, depends on the mmap's layout
		if _, err := open(cfg, newFakeMachine(), jsonCodec); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open with a damaged page: %v, want corruption", err)
		}
	}
	rep, err := Check(cfg.DataDir)
	if err != nil || len(rep.Problems()) == 0 {
		t.Fatalf("Check = %+v, %v", rep, err)
	}
}

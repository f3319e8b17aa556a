package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/testutil"
)

func sampleBackup(t *testing.T, users int) (*fsm.FSM, []byte) {
	t.Helper()
	f := fsm.New(fsm.Options{})
	ts := int64(1_700_000_000_000)
	f.Apply(fsm.Command{Op: fsm.OpPutService, TS: ts, Service: "sync-1.5", Pattern: fsm.SomeString("{node}/1.5/{uid}")})
	f.Apply(fsm.Command{Op: fsm.OpAddNode, TS: ts, Service: "sync-1.5", NodeURL: "https://n1", Capacity: fsm.SomeInt64(1_000_000), Available: fsm.SomeInt64(1_000_000)})
	for i := 0; i < users; i++ {
		f.Apply(fsm.Command{Op: fsm.OpAllocate, TS: ts + int64(i), Service: "sync-1.5", Email: "u" + string(rune('a'+i%26)) + time.Duration(i).String() + "@x"})
	}
	b := &Backup{Info: BackupInfo{Version: backupVersionV1, Index: 42, Term: 3, TakenAt: time.UnixMilli(ts)}, state: f.Snapshot()}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatalf("write backup: %v", err)
	}
	return f, buf.Bytes()
}

func TestBackupRoundTrip(t *testing.T) {
	f, data := sampleBackup(t, 3000) // several chunks
	info, got, err := ReadBackup(bytes.NewReader(data), fsm.Options{})
	if err != nil {
		t.Fatalf("read backup: %v", err)
	}
	if info.Index != 42 || info.Term != 3 || info.Version != 1 || info.TakenAt.UnixMilli() != 1_700_000_000_000 {
		t.Fatalf("header %+v", info)
	}
	if !got.Equal(f) {
		t.Fatalf("restored state differs")
	}
}

func TestBackupDamageIsRefused(t *testing.T) {
	_, data := sampleBackup(t, 50)
	for _, n := range []int{0, 5, 9, 20, 33, 37, len(data) / 2, len(data) - 5, len(data) - 4, len(data) - 1} {
		_, _, err := ReadBackup(bytes.NewReader(data[:n]), fsm.Options{})
		if !errors.Is(err, ErrBadBackup) {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(data), err)
		}
	}
	for i := 0; i < len(data); i++ {
		bad := append([]byte{}, data...)
		bad[i] ^= 0x10
		if _, _, err := ReadBackup(bytes.NewReader(bad), fsm.Options{}); err == nil {
			t.Fatalf("bit flip at byte %d accepted", i)
		}
	}
	if _, _, err := ReadBackup(bytes.NewReader(append(append([]byte{}, data...), 0)), fsm.Options{}); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("trailing byte: %v", err)
	}
	future := append([]byte{}, data...)
	future[8] = 99
	if _, _, err := ReadBackup(bytes.NewReader(future), fsm.Options{}); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("unknown version: %v", err)
	}
}

// testdata/backup_v1.bin was written by this version; every later version
// must keep restoring it.
func TestBackupV1FixtureStillRestores(t *testing.T) {
	path := filepath.Join("testdata", "backup_v1.bin")
	if os.Getenv("WIMMS_UPDATE_GOLDEN") != "" {
		_, data := sampleBackup(t, 20)
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	info, f, err := ReadBackup(bytes.NewReader(data), fsm.Options{})
	if err != nil {
		t.Fatalf("v1 backup no longer restores: %v", err)
	}
	if info.Version != 1 || info.Index != 42 {
		t.Fatalf("header %+v", info)
	}
	if st, err := f.Stats("sync-1.5"); err != nil || st.Users != 20 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestPrepareRestoreRefusesUsedDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "raft.db"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, data := sampleBackup(t, 1)
	if _, err := PrepareRestore(bytes.NewReader(data), dir, "m1", "127.0.0.1:1", nil); err == nil {
		t.Fatalf("restore into a used data dir succeeded")
	}
	fresh := filepath.Join(t.TempDir(), "d")
	if _, err := PrepareRestore(bytes.NewReader(data[:len(data)-1]), fresh, "m1", "127.0.0.1:1", nil); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("truncated backup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fresh, "snapshots")); err == nil {
		t.Fatalf("a refused backup left a snapshot behind")
	}
}

func domainSnapshot(t *testing.T, r fsm.Reader) []fsm.User {
	t.Helper()
	var out []fsm.User
	for i := 0; i < 40; i++ {
		u, err := r.GetUser("sync-1.5", fmt.Sprintf("user%d@x", i))
		if err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
		out = append(out, u)
	}
	return out
}

// A backup of a live store restores into a new data dir from which a
// store bootstraps nothing, elects itself and holds exactly that state.
func TestBackupRestoreIntoNewMember(t *testing.T) {
	ctx := context.Background()
	logger := testutil.Logger(t)
	cfg := testConfig(t, logger, "a", true)
	src, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	testutil.WaitFor(t, 10*time.Second, "leader", src.IsLeader)
	mustApply := func(s *Store, cmd fsm.Command) fsm.Result {
		t.Helper()
		res, _, err := s.Apply(ctx, cmd)
		if err != nil || res.Err != nil {
			t.Fatalf("apply %+v: %v %v", cmd, err, res.Err)
		}
		return res
	}
	mustApply(src, fsm.Command{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("{node}/1.5/{uid}")})
	mustApply(src, fsm.Command{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "https://n1", Capacity: fsm.SomeInt64(100), Available: fsm.SomeInt64(100)})
	for i := 0; i < 40; i++ {
		mustApply(src, fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: fmt.Sprintf("user%d@x", i)})
	}
	b, data := backupBytes(t, ctx, src)
	var want []fsm.User
	if _, err := src.Read(ctx, ReadOptions{Level: ReadStale}, func(r fsm.Reader) error { want = domainSnapshot(t, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if b.Info.Index < 42 {
		t.Fatalf("backup index %d below the writes it holds", b.Info.Index)
	}

	dst, info := restoredLeader(t, logger, data)
	if info.Index != b.Info.Index {
		t.Fatalf("restored index %d, backup %d", info.Index, b.Info.Index)
	}
	var got []fsm.User
	if _, err := dst.Read(ctx, ReadOptions{Level: ReadLinearizable}, func(r fsm.Reader) error { got = domainSnapshot(t, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored users differ")
	}
	// The new cluster takes writes and hands out uids above the old ones.
	res := mustApply(dst, fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: "after@x"})
	if res.User.UID != 41 {
		t.Fatalf("uid after restore %d", res.User.UID)
	}
}

// A backup taken while 16 clients write holds every write acknowledged
// before the backup was asked for, and restores into a new member.
func TestBackupUnderLoadHoldsAcknowledgedWrites(t *testing.T) {
	ctx := context.Background()
	logger := testutil.Logger(t)
	src, err := Open(testConfig(t, logger, "a", true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	testutil.WaitFor(t, 10*time.Second, "leader", src.IsLeader)
	for _, cmd := range []fsm.Command{
		{Op: fsm.OpPutService, Service: "sync-1.5", Pattern: fsm.SomeString("{node}/1.5/{uid}")},
		{Op: fsm.OpAddNode, Service: "sync-1.5", NodeURL: "https://n1", Capacity: fsm.SomeInt64(1 << 40), Available: fsm.SomeInt64(1 << 40)},
	} {
		if res, _, err := src.Apply(ctx, cmd); err != nil || res.Err != nil {
			t.Fatalf("setup: %v %v", err, res.Err)
		}
	}
	writers := testutil.StartWriters(16, 20, func(w, i int) (string, int64, bool, bool) {
		email := fmt.Sprintf("w%d-%d@x", w, i)
		res, _, err := src.Apply(ctx, fsm.Command{Op: fsm.OpAllocate, Service: "sync-1.5", Email: email})
		if err != nil || res.Err != nil {
			t.Errorf("write %s: %v %v", email, err, res.Err)
			return email, 0, false, false
		}
		return email, res.User.UID, true, true
	})
	writers.WaitWarm() // every writer is in full swing
	ackedBefore := writers.Acked()
	_, data := backupBytes(t, ctx, src)
	writers.Stop()
	if len(ackedBefore) < 16*20 {
		t.Fatalf("only %d writes acknowledged before the backup", len(ackedBefore))
	}

	dst, _ := restoredLeader(t, logger, data)
	if _, err := dst.Read(ctx, ReadOptions{Level: ReadLinearizable}, func(r fsm.Reader) error {
		for email, uid := range ackedBefore {
			u, err := r.GetUser("sync-1.5", email)
			if err != nil || u.UID != uid {
				t.Errorf("acknowledged write %s (uid %d) missing from the restored member: %+v %v", email, uid, u, err)
			}
		}
		st, err := r.Stats("sync-1.5")
		if err != nil {
			return err
		}
		if st.Users < int64(len(ackedBefore)) {
			t.Errorf("restored %d users, %d acknowledged before the backup", st.Users, len(ackedBefore))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// backupBytes takes a backup of s and streams it into memory.
func backupBytes(t *testing.T, ctx context.Context, s *Store) (*Backup, []byte) {
	t.Helper()
	b, err := s.Backup(ctx)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return b, buf.Bytes()
}

// restoredLeader restores data into a new one-member cluster "restored",
// opens it and waits until it leads.
func restoredLeader(t *testing.T, logger hclog.Logger, data []byte) (*Store, BackupInfo) {
	t.Helper()
	addr := testutil.FreeAddr(t, "127.0.0.1")
	cfg := testConfig(t, logger, "restored", true)
	cfg.RaftBind = addr
	info, err := PrepareRestore(bytes.NewReader(data), cfg.DataDir, "restored", addr, logger)
	if err != nil {
		t.Fatalf("prepare restore: %v", err)
	}
	dst, err := Open(cfg)
	if err != nil {
		t.Fatalf("open restored: %v", err)
	}
	t.Cleanup(func() { _ = dst.Close() })
	testutil.WaitFor(t, 10*time.Second, "restored member leads", dst.IsLeader)
	return dst, info
}

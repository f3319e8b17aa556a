package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/wimms-dev/wimms/internal/testutil"
)

// walSegmentOf is the data dir's newest raft-wal segment.
func walSegmentOf(t *testing.T, dataDir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dataDir, walDirName, "*.wal"))
	if len(segs) == 0 {
		t.Fatalf("no segment in %s", dataDir)
	}
	sort.Strings(segs)
	return segs[len(segs)-1]
}

// commitFrames lists the offsets of the commit frames in a segment, and
// the offsets of its entry frames.
func segmentLayout(t *testing.T, b []byte) (commits, entries []int64) {
	t.Helper()
	off := int64(walFileHeaderLen)
	for off+8 <= int64(len(b)) && b[off] != 0 {
		size := int64(8)
		switch b[off] {
		case walFrameCommit:
			commits = append(commits, off)
		default:
			if b[off] == walFrameEntry {
				entries = append(entries, off)
			}
			n := binary.LittleEndian.Uint32(b[off+4:])
			size += int64(n) + walPad(n)
		}
		off += size
	}
	return commits, entries
}

func rewrite(t *testing.T, path string, edit func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func openErr(cfg Config) error {
	s, err := open(cfg, newFakeMachine(), jsonCodec)
	if err == nil {
		_ = s.Close()
	}
	return err
}

func TestWatermarkFollowsTheLog(t *testing.T) {
	cfg, at := writeAndStopOn(t, LogStoreWAL, 6)
	wm, found, err := ReadWatermark(cfg.DataDir)
	if err != nil || !found {
		t.Fatalf("watermark: found %v, err %v", found, err)
	}
	if last := at["svc5-1.0"]; wm.Durable < last || wm.Commit < last-1 {
		t.Fatalf("watermark %+v below the last acknowledged index %d", wm, last)
	}
	rep, err := Check(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Tail.HasWatermark || rep.Tail.Watermark.Durable != rep.Tail.LastIndex || rep.Tail.LastTerm == 0 {
		t.Fatalf("check of an intact log: tail %+v", rep.Tail)
	}
}

// TestLostAcknowledgedBatchRefusesToOpen: the last batch (acknowledged:
// its StoreLogs returned) is zeroed, exactly what a torn write looks like
// to raft-wal. Only the watermark tells it apart.
func TestLostAcknowledgedBatchRefusesToOpen(t *testing.T) {
	cfg, _ := writeAndStopOn(t, LogStoreWAL, 6)
	wm, _, _ := ReadWatermark(cfg.DataDir)
	rewrite(t, walSegmentOf(t, cfg.DataDir), func(b []byte) []byte {
		commits, _ := segmentLayout(t, b)
		from := commits[len(commits)-2] + 8
		clear(b[from : commits[len(commits)-1]+8])
		return b
	})
	err := openErr(cfg)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("..%d are missing", wm.Durable)) {
		t.Fatalf("open of a log missing an acknowledged batch: %v", err)
	}
	rep, err := Check(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems()) != 1 || rep.Tail.LastIndex >= wm.Durable {
		t.Fatalf("check: problems %v, tail %+v", rep.Problems(), rep.Tail)
	}
}

// TestFlippedByteInLastBatchRefusesToOpen: a flipped data byte in the last
// (acknowledged) batch makes raft-wal drop that batch as torn at open.
func TestFlippedByteInLastBatchRefusesToOpen(t *testing.T) {
	cfg, _ := writeAndStopOn(t, LogStoreWAL, 6)
	wm, _, _ := ReadWatermark(cfg.DataDir)
	rewrite(t, walSegmentOf(t, cfg.DataDir), func(b []byte) []byte {
		_, entries := segmentLayout(t, b)
		b[entries[len(entries)-1]+12] ^= 0x01
		return b
	})
	err := openErr(cfg)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("..%d are missing", wm.Durable)) {
		t.Fatalf("open of a log whose last batch fails its CRC: %v", err)
	}
}

func TestFlippedFrameHeaderInTailRefusesToOpen(t *testing.T) {
	cfg, _ := writeAndStopOn(t, LogStoreWAL, 8)
	seg := walSegmentOf(t, cfg.DataDir)
	rewrite(t, seg, func(b []byte) []byte {
		_, entries := segmentLayout(t, b)
		b[entries[len(entries)/2]] ^= 0x40
		return b
	})
	ts, err := scanTailSegment(seg)
	if err != nil || ts.Damage == "" {
		t.Fatalf("scan of a flipped header: %+v, %v", ts, err)
	}
	// Even without a watermark (a data dir from before them) it is damage.
	if err := os.Remove(filepath.Join(cfg.DataDir, watermarkFile)); err != nil {
		t.Fatal(err)
	}
	err = openErr(cfg)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "unreadable frame at offset") {
		t.Fatalf("open: %v", err)
	}
}

// TestTornFinalBatchIsDiscardedAndLogged: bytes of a batch that never got
// its commit frame after the last complete batch, never acknowledged by
// construction (StoreLogs never returned for them: they are a copy of half
// the last batch, placed after it).
func TestTornFinalBatchIsDiscardedAndLogged(t *testing.T) {
	cfg, at := writeAndStopOn(t, LogStoreWAL, 6)
	seg := walSegmentOf(t, cfg.DataDir)
	rewrite(t, seg, func(b []byte) []byte {
		commits, _ := segmentLayout(t, b)
		start, end := commits[len(commits)-2]+8, commits[len(commits)-1]+8
		batch := append([]byte(nil), b[start:end]...)
		copy(b[end:], batch[:len(batch)/2])
		return b
	})
	ts, err := scanTailSegment(seg)
	if err != nil || ts.Damage != "" || ts.Unaccounted == 0 {
		t.Fatalf("scan of a torn batch: %+v, %v", ts, err)
	}
	logs := &syncBuf{}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: logs})
	s, m := openFake(t, cfg)
	testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
	if !strings.Contains(logs.String(), "discarded a torn final batch") {
		t.Fatalf("no word of the discarded batch in the log:\n%s", logs.String())
	}
	if err := s.WaitApplied(ctxTimeout(t, 5*time.Second), at["svc5-1.0"]); err != nil {
		t.Fatal(err)
	}
	requireServices(t, m, "svc0-1.0", "svc5-1.0")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The torn bytes are left where they are (never overwritten by the
	// store), and the next scan still reads them as a torn tail, not damage.
	if ts, err := scanTailSegment(seg); err != nil || ts.Damage != "" {
		t.Fatalf("the tail after the restart: %+v, %v", ts, err)
	}
}

func TestWatermarkSurvivesATornSlot(t *testing.T) {
	dir := t.TempDir()
	w, err := openWatermark(dir, Watermark{Durable: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint64{7, 9} {
		if err := w.set(idx, idx-1); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, watermarkFile)
	cur, _, _ := ReadWatermark(dir)
	// Tear the slot written last: the other one (an older, lower value)
	// remains.
	rewrite(t, path, func(b []byte) []byte { b[int(cur.seq%2)*watermarkSlotSize+14] ^= 1; return b })
	got, found, err := ReadWatermark(dir)
	if err != nil || !found || got.Durable != 7 {
		t.Fatalf("after a torn slot: %+v found %v err %v, want durable 7", got, found, err)
	}
	rewrite(t, path, func(b []byte) []byte { b[int((cur.seq+1)%2)*watermarkSlotSize+14] ^= 1; return b })
	if _, _, err := ReadWatermark(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("both slots damaged: err %v, want corruption", err)
	}
}

// TestWatermarkGoesDownBeforeTheTailIsDeleted: a follower dropping
// conflicting entries, or raft clearing the log after a snapshot install,
// must not leave the watermark above the log.
func TestWatermarkGoesDownBeforeTheTailIsDeleted(t *testing.T) {
	dir := t.TempDir()
	bolt := openBolt(t, dir)
	defer bolt.Close()
	mark, err := openWatermark(dir, Watermark{})
	if err != nil {
		t.Fatal(err)
	}
	defer mark.Close()
	s := newChecksumLogStore(bolt, dir)
	s.mark = mark
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("x")})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if got := mark.get().Durable; got != 10 {
		t.Fatalf("after storing 1..10: watermark %d", got)
	}
	if err := s.DeleteRange(1, 3); err != nil { // compaction of the head
		t.Fatal(err)
	}
	if got := mark.get().Durable; got != 10 {
		t.Fatalf("head compaction moved the watermark to %d", got)
	}
	if err := s.DeleteRange(7, 10); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := ReadWatermark(dir); got.Durable != 6 {
		t.Fatalf("after deleting the tail 7..10: durable watermark %d, want 6", got.Durable)
	}
}

func TestNoRoomForASegmentRefusesAndLeavesNothing(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	small := func(string) (uint64, error) { return 20 << 20, nil }
	err := checkRoomForSegment(dir, "", 0, small)
	if err == nil || !strings.Contains(err.Error(), "not enough disk space") || !strings.Contains(err.Error(), "--wal-segment-size") {
		t.Fatalf("20 MiB free for a 64 MiB segment: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused data dir was created: %v", err)
	}
	if err := checkRoomForSegment(dir, "", 8<<20, small); err != nil {
		t.Fatalf("8 MiB segments in 20 MiB: %v", err)
	}
	if err := checkRoomForSegment(dir, LogStoreBolt, 0, small); err != nil {
		t.Fatalf("bolt needs no segment: %v", err)
	}
	// A data dir that already has its segment needs no new one.
	cfg, _ := writeAndStopOn(t, LogStoreWAL, 1)
	if err := checkRoomForSegment(cfg.DataDir, "", 0, small); err != nil {
		t.Fatalf("existing wal: %v", err)
	}
	if err := ValidWALSegmentSize(512 << 10); err == nil {
		t.Fatal("a 512 KiB segment size was accepted")
	}
}

// TestSmallSegmentsOnATinyFileSystem runs a member on a 20 MiB tmpfs:
// 64 MiB segments are refused before anything is created, 4 MiB ones work.
func TestSmallSegmentsOnATinyFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a 20 MiB tmpfs")
	}
	mnt := t.TempDir()
	if out, err := runCmd("mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", mnt); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = runCmd("umount", mnt) })
	cfg := testConfig(t, testutil.Logger(t), "tiny", true)
	cfg.DataDir = filepath.Join(mnt, "data")
	err := openErr(cfg)
	if err == nil || !strings.Contains(err.Error(), "not enough disk space") {
		t.Fatalf("64 MiB segments on 20 MiB: %v", err)
	}
	if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
		t.Fatalf("the refused start left %v behind", ents)
	}
	cfg.WALSegmentSize = 4 << 20
	s, _ := openFake(t, cfg)
	testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
	putServices(t, s, "tiny", 0, 5)
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runCmd(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// snapshotsOf writes `rounds` batches of services, taking a snapshot after
// each, then stops the member: its data dir then holds two snapshots.
func snapshotsOf(t *testing.T, trailingLogs uint64) (Config, []*raft.SnapshotMeta) {
	t.Helper()
	cfg := testConfig(t, testutil.Logger(t), "solo", true)
	cfg.LogStore = LogStoreWAL
	cfg.TrailingLogs = trailingLogs
	cfg.SnapshotThreshold = 1 << 20 // only the snapshots this test asks for
	s, _ := openFake(t, cfg)
	testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
	for round := range 2 {
		putServices(t, s, fmt.Sprintf("r%d-", round), 0, 5)
		if err := s.raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}
	putServices(t, s, "tail-", 0, 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, snapshotsRetained, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	metas, err := snaps.List()
	if err != nil || len(metas) != 2 {
		t.Fatalf("snapshots: %v, %v", metas, err)
	}
	return cfg, metas // newest first
}

func damageSnapshot(t *testing.T, dataDir, id string) {
	t.Helper()
	rewrite(t, filepath.Join(dataDir, "snapshots", id, "state.bin"), func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b })
}

// TestDamagedSnapshotFallsBackOnlyWhenTheLogCoversTheGap: the newest
// snapshot fails its CRC. With the log still holding everything since the
// older snapshot, the member starts from the older one and says so; after
// compaction (the log no longer reaches back) the damage is named.
func TestDamagedSnapshotFallsBackOnlyWhenTheLogCoversTheGap(t *testing.T) {
	t.Run("covered", func(t *testing.T) {
		cfg, metas := snapshotsOf(t, 10240)
		damageSnapshot(t, cfg.DataDir, metas[0].ID)
		logs := &syncBuf{}
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: logs})
		s, m := openFake(t, cfg)
		testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
		if !strings.Contains(logs.String(), "snapshot is damaged; starting from the older intact snapshot") ||
			!strings.Contains(logs.String(), metas[0].ID) {
			t.Fatalf("the fallback was not logged:\n%s", logs.String())
		}
		if err := s.WaitApplied(ctxTimeout(t, 5*time.Second), metas[0].Index); err != nil {
			t.Fatal(err)
		}
		requireServices(t, m, "r0-0-1.0", "r1-4-1.0", "tail-1-1.0")
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "snapshots.damaged", metas[0].ID)); err != nil {
			t.Fatalf("the damaged snapshot was not kept aside: %v", err)
		}
	})
	t.Run("compacted", func(t *testing.T) {
		cfg, metas := snapshotsOf(t, 1)
		damageSnapshot(t, cfg.DataDir, metas[0].ID)
		err := openErr(cfg)
		var ce *CorruptionError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "snapshot "+metas[0].ID+" is damaged") ||
			!strings.Contains(err.Error(), "CRC") || ce.Index != metas[0].Index {
			t.Fatalf("open with a damaged newest snapshot and a compacted log: %v", err)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "snapshots", metas[0].ID)); err != nil {
			t.Fatalf("a refused start moved the snapshot: %v", err)
		}
	})
}

// TestRecoverKeepsTheSegmentSize: `wimms recover` clears the log, and
// raft-wal then creates a new segment: it must have the size the data dir
// already uses (a member on a small disk runs with small segments, and a
// 64 MiB one would not fit), unless another size is asked for.
func TestRecoverKeepsTheSegmentSize(t *testing.T) {
	for _, c := range []struct{ asked, want int }{{0, 4 << 20}, {2 << 20, 2 << 20}} {
		cfg := testConfig(t, testutil.Logger(t), "solo", true)
		cfg.LogStore, cfg.WALSegmentSize = LogStoreWAL, 4<<20
		s, _ := openFake(t, cfg)
		testutil.WaitFor(t, 10*time.Second, "leadership", s.IsLeader)
		for i := range 5 {
			if _, _, err := s.Apply(ctxTimeout(t, 5*time.Second), putService(fmt.Sprintf("svc%d-1.0", i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := Recover(cfg.DataDir, "solo", "127.0.0.1:1", c.asked, testutil.Logger(t)); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(walSegmentOf(t, cfg.DataDir))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != int64(c.want) {
			t.Fatalf("recover asked for %d: its new segment is %d bytes, want %d", c.asked, fi.Size(), c.want)
		}
	}
}
